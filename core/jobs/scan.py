"""The dataset scan job: every image of a folder → CAMs → SpRAy clusters → output folder.

``scan_job(reporter, loaded, images, layer, ...)`` is what the ``scan`` command and the app's
Dataset dock both run. It lists the folder, resumes what an earlier run of the same settings
left in the output folder, computes the rest in batches (locally through a ``DataLoader``
with decoding workers, or on Ray), writes rows and maps as they come, then clusters the maps
and writes ``results.parquet``, ``maps.npy``, ``clusters.json`` and ``report.html``
(:mod:`core.io.scan_outputs`). Cancel (or Ctrl+C) leaves a valid partial folder: the rows
so far in ``results.parquet`` and ``maps.npy``, ``state: "partial"`` in ``scan.json``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hookscope.core.display.colormaps import DEFAULT_CMAP, check_colormap
from hookscope.core.display.colormaps import colorize as colorize_map
from hookscope.core.engine.guard import state_checksum
from hookscope.core.engine.targets import class_name, parse_target
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import (
    ScanDataset,
    auto_workers,
    collate,
    decode_worker_init,
    folder_labels,
    list_images,
    scan_decoded,
    spray,
)
from hookscope.core.experiments.scan_ray import ray_batches
from hookscope.core.io.scan_outputs import (
    CLUSTERS_FILE,
    LOCK_FILE,
    MAPS_FILE,
    PARTS_DIR,
    RESULTS_FILE,
    SETTINGS_FILE,
    ClusterInfo,
    ScanWriter,
    check_extras,
    disk_errors,
    finalize,
    lock_folder,
    mean_of,
    open_scan,
    read_settings,
    remove_parts,
    update_settings,
    write_clusters,
    write_results,
    write_settings,
)
from hookscope.core.io.scan_report import write_mean_maps, write_report
from hookscope.core.methods.cam import CAM_METHODS
from hookscope.core.reporting import Cancelled, Reporter

OUTPUT_FILES = (SETTINGS_FILE, RESULTS_FILE, MAPS_FILE, CLUSTERS_FILE, PARTS_DIR, "report.html")


@dataclass(frozen=True)
class ScanSummary:
    """What a scan did.

    Attributes:
        out: The output folder (open it with :func:`core.io.scan_outputs.open_scan`).
        rows: Images in ``results.parquet``.
        errors: Rows with an ``error`` (unreadable images).
        computed: Images computed by this run.
        resumed: Images taken from an earlier run of the same settings.
        clusters: Number of clusters.
        complete: False when cancelled (the folder then holds the partial rows).
        seconds: Wall time of this run.
        images_per_s: ``computed`` / time spent computing them.
        notes: Sentences on what the scan had to simplify or redo (all maps equal, more
            clusters asked than different maps, unreadable parts, changed images).
    """

    out: Path
    rows: int
    errors: int
    computed: int
    resumed: int
    clusters: int
    complete: bool
    seconds: float
    images_per_s: float
    notes: tuple[str, ...] = ()


def scan_job(
    reporter: Reporter,
    loaded,
    images: str | Path,
    layer: str,
    *,
    method: str = "gradcam",
    target: str | int = "pred",
    masks: str | Path | None = None,
    out: str | Path | None = None,
    map_size: int = 64,
    batch_size: int = 32,
    workers: int | None = None,
    clusters: str | int = "auto",
    limit: int | None = None,
    ray: str | None = None,
    model_spec: str | None = None,
    colormap: str = DEFAULT_CMAP,
    cluster_colors: Sequence[tuple[int, int, int]] | None = None,
    spec=None,
    reshape=None,
    chunk_rows: int = 256,
) -> ScanSummary:
    """Scan a folder of images; see the module docstring for what is written.

    Args:
        reporter: Progress (images done of all images, resumed ones included) and cancel.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        images: Folder; every image below it, recursively. Sub-folders named after the
            model's classes (ImageFolder layout) give the labels.
        layer: The CAM layer.
        method: A key of ``CAM_METHODS``.
        target: ``"pred"``, ``"label"`` or a class index / name.
        masks: Folder of object masks at the same relative paths (pixel > 127 = object).
        out: Output folder (default: ``scan-<folder name>`` in the working directory).
        map_size: Side S of the stored maps.
        batch_size: Images per forward / backward.
        workers: Decoding processes (default: one per spare core, at most 4; 0 = in-process).
        clusters: ``"auto"`` (eigengap) or a number.
        limit: Scan only the first N images (sorted by path).
        ray: None (local), ``"local"``, ``"auto"`` or a Ray cluster address.
        model_spec: The spec string the model was loaded from (recorded in scan.json).
        colormap: Colour map of the PNGs and the report (``core.display.colormaps``).
        cluster_colors: RGB per cluster id for the report.
        spec: Input spec overriding ``loaded.input_spec``.
        reshape: Layout of the layer's output, as for ``compute_cam``.
        chunk_rows: Rows per part file.

    Raises:
        HookScopeError: Bad options, an empty folder, a missing extra, an output folder holding
            another scan or being written by one, a full or read-only disk.
        Cancelled: After writing the partial output, when the reporter was cancelled.
    """
    start = time.perf_counter()
    colorize = partial(colorize_map, cmap=check_colormap(colormap))  # a bad name fails now
    spec = spec or loaded.input_spec
    n_classes = len(loaded.class_names) if loaded.class_names else None
    _check_options(method, map_size, batch_size, workers, clusters, limit)
    check_extras(ray=bool(ray))  # before anything is created: no folder left "running"
    root = Path(images).expanduser().resolve()
    masks_root = Path(masks).expanduser().resolve() if masks else None
    if masks_root is not None and not masks_root.is_dir():
        raise HookScopeError(f"The mask folder {masks_root} does not exist or is not a folder.")
    out = Path(out).expanduser() if out else Path.cwd() / f"scan-{root.name}"
    reporter.check()
    paths = list_images(root, limit)
    if not paths:
        raise HookScopeError(f"No images (PNG, JPEG, BMP, WebP, TIFF) found below {root}.")
    labels = folder_labels(paths, loaded.class_names)
    if target in ("pred", None):
        target = "pred"
    elif target == "label":
        if labels is None:
            raise HookScopeError(
                "--target label needs labels: put the images in sub-folders named after the "
                "model's classes (ImageFolder layout)."
            )
    else:
        target = parse_target(target, loaded.class_names, n_classes)
    identity = {
        "model": model_spec or loaded.name,
        "model_name": loaded.name,
        "weights_sha256": state_checksum(loaded.model),
        "layer": layer,
        "method": method,
        "target": target,
        "map_size": int(map_size),
        "input_spec": spec.to_dict(),
        "images": str(root),
        "masks": str(masks_root) if masks_root else None,
        "reshape": None if reshape is None else str(reshape),
    }
    # One scan per folder: a second one would interleave its parts with this one's. The lock
    # is taken before the folder is judged, and released (by the system, too) when this ends.
    lock = lock_folder(out)
    try:
        _claim(out, identity)
    except HookScopeError:
        lock.release(discard=True)
        raise
    with lock, disk_errors(out):
        write_settings(
            out, identity, {"state": "running", "class_names": list(loaded.class_names or [])}
        )
        writer = ScanWriter(out, map_size, chunk_rows, images_root=root)  # seeds a finished one
        todo = [i for i, p in enumerate(paths) if p not in writer.done_paths]
        resumed = len(paths) - len(todo)
        total = len(paths)
        reporter.progress(resumed, total, "Scanning")
        computed = 0
        t0 = time.perf_counter()
        try:
            if todo:
                batches = _batches(
                    loaded,
                    paths,
                    todo,
                    ray=ray,
                    root=root,
                    spec=spec,
                    masks_root=masks_root,
                    labels=labels,
                    layer=layer,
                    method=method,
                    target=target,
                    map_size=map_size,
                    batch_size=batch_size,
                    workers=workers,
                    reshape=reshape,
                )
                for arr in batches:
                    writer.add(_rows(arr, paths, labels, loaded.class_names), arr["maps"])
                    computed += len(arr["i"])
                    reporter.progress(resumed + computed, total, "Scanning")
            writer.close()
        except (Cancelled, KeyboardInterrupt):
            writer.close()
            table = finalize(out, map_size, paths)
            update_settings(out, state="partial", rows=table.num_rows)
            raise
        except BaseException:
            writer.close()
            raise
        rate = computed / max(time.perf_counter() - t0, 1e-9)

        reporter.progress(total, total, "Clustering")
        table = finalize(out, map_size, paths)
        n_clusters, n_err, how, notes = _cluster(out, table, clusters, colorize)
        notes = (*writer.notes, *notes)
        update_settings(
            out,
            state="complete",
            notes=list(notes),
            embedding=how,
            rows=table.num_rows,
            errors=n_err,
            clusters=n_clusters,
            images_per_s=rate,
        )
        remove_parts(out)
        reporter.progress(total, total, "Writing the report")
        write_report(open_scan(out), colorize=colorize, cluster_colors=cluster_colors)
        return ScanSummary(
            out=out,
            rows=table.num_rows,
            errors=n_err,
            computed=computed,
            resumed=resumed,
            clusters=n_clusters,
            complete=True,
            seconds=time.perf_counter() - start,
            images_per_s=rate,
            notes=notes,
        )


def _check_options(method, map_size, batch_size, workers, clusters, limit) -> None:
    if method not in CAM_METHODS:
        raise HookScopeError(f"Unknown CAM method '{method}': use one of {', '.join(CAM_METHODS)}.")
    if int(map_size) < 2:
        raise HookScopeError(f"--map-size must be at least 2, not {map_size}.")
    if int(batch_size) < 1:
        raise HookScopeError(f"--batch-size must be at least 1, not {batch_size}.")
    if workers is not None and int(workers) < 0:
        raise HookScopeError(f"--workers must be 0 or more, not {workers}.")
    if limit is not None and int(limit) < 1:
        raise HookScopeError(f"--limit must be at least 1, not {limit}.")
    if clusters != "auto" and (not str(clusters).isdigit() or int(clusters) < 1):
        raise HookScopeError(
            f"--clusters must be auto or a whole number of at least 1, not {clusters}."
        )


def _claim(out: Path, identity: dict) -> None:
    """Refuse an output folder that holds other files or a scan with other settings."""
    if out.exists() and not out.is_dir():
        raise HookScopeError(f"--out {out} is a file; give a folder.")
    old = read_settings(out) if out.is_dir() else None
    if old is None:
        if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise HookScopeError(
                f"The output folder {out} is not empty and holds no scan; pick a new or empty one."
            )
        out.mkdir(parents=True, exist_ok=True)
        return
    before = old.get("identity", {})
    diff = [k for k in identity if before.get(k) != identity[k]]
    if diff:
        raise HookScopeError(
            f"{out} holds a scan made with another {diff[0].replace('_', ' ')}; pick another "
            "--out folder or delete that one to start over."
        )


def _batches(
    loaded,
    paths,
    todo,
    *,
    ray,
    root,
    spec,
    masks_root,
    labels,
    layer,
    method,
    target,
    map_size,
    batch_size,
    workers,
    reshape,
) -> Iterator[dict]:
    """Scanned batches, from Ray when asked, else from a local DataLoader."""
    label_arr = np.asarray(labels if labels else [-1] * len(paths), np.int64)
    if ray:
        yield from ray_batches(
            ray,
            loaded.model,
            root,
            paths,
            todo,
            spec,
            masks_root=masks_root,
            labels=labels,
            layer=layer,
            method=method,
            target=target,
            map_size=map_size,
            batch_size=batch_size,
            reshape=reshape,
        )
        return
    n_workers = auto_workers() if workers is None else int(workers)
    n_workers = min(n_workers, max(0, len(todo) // batch_size))  # tiny scans: no start-up cost
    # Forking a process that runs other threads (the app's UI) can deadlock the child:
    # off the main thread, workers start fresh ("spawn").
    context = None if threading.current_thread() is threading.main_thread() else "spawn"
    loader = torch.utils.data.DataLoader(
        ScanDataset(root, paths, spec, masks_root, todo),
        batch_size=batch_size,
        num_workers=n_workers,
        collate_fn=collate,
        worker_init_fn=decode_worker_init if n_workers else None,
        prefetch_factor=2 if n_workers else None,
        multiprocessing_context=context if n_workers else None,
    )
    for batch in loader:
        yield scan_decoded(
            loaded.model,
            batch,
            layer,
            method,
            target,
            labels=label_arr[batch["i"]] if labels else None,
            map_size=map_size,
            reshape=reshape,
        )


def _name(idx: int, names) -> str | None:
    if idx is None or idx < 0:
        return None
    return class_name(int(idx), names) or str(int(idx))


def _rows(arr: dict, paths: Sequence[str], labels, names) -> list[dict]:
    """Result rows (:data:`~core.io.scan_outputs.ROW_COLUMNS`) of one scanned batch."""
    rows = []
    for k, i in enumerate(np.asarray(arr["i"]).tolist()):
        err = str(arr["error"][k]) or None
        lab = int(labels[i]) if labels else None
        row = {"path": paths[i], "label": _name(lab, names), "label_idx": lab, "error": err}
        if err is None:
            pred, tgt = int(arr["pred"][k]), int(arr["target"][k])
            bg = float(arr["bg_mass"][k])
            row |= {
                "pred": _name(pred, names),
                "pred_idx": pred,
                "prob": float(arr["prob"][k]),
                "correct": (pred == lab) if lab is not None else None,
                "target": _name(tgt, names),
                "target_idx": tgt,
                "target_prob": float(arr["target_prob"][k]),
                "bg_mass": bg if np.isfinite(bg) else None,
            }
        rows.append(row)
    return rows


def _cluster(
    out: Path, table, clusters, colorize: Callable | None
) -> tuple[int, int, str, tuple[str, ...]]:
    """SpRAy on the rows with a map; writes the cluster columns, PNGs and clusters.json.

    Returns:
        Clusters, error rows, the embedding's name and SpRAy's notes.
    """
    n = table.num_rows
    errors = table.column("error").to_pylist()
    ok = np.asarray([e is None for e in errors], bool)
    rows = np.flatnonzero(ok)
    maps = np.load(out / MAPS_FILE, mmap_mode="r")
    res = spray(_Rows(maps, rows), clusters)
    cl = np.full(n, -1, np.int64)
    x = np.full(n, np.nan, np.float32)
    y = np.full(n, np.nan, np.float32)
    cl[rows], x[rows], y[rows] = res.labels, res.xy[:, 0], res.xy[:, 1]
    write_results(out, table, {"cluster": cl, "x": x, "y": y})

    paths = table.column("path").to_pylist()
    labels = table.column("label").to_pylist()
    preds = table.column("pred").to_pylist()
    correct = table.column("correct").to_pylist()
    bg = table.column("bg_mass").to_numpy(zero_copy_only=False).astype(np.float64)
    infos, means = [], {}
    for cid in range(res.n_clusters):
        members = rows[res.labels == cid]
        if not len(members):
            continue
        means[cid] = mean_of(maps, members)
        feats = res.features[res.labels == cid]
        centre = feats.mean(0)
        typical = members[np.argsort(((feats - centre) ** 2).sum(1), kind="stable")]
        b = bg[members]
        judged = [correct[k] for k in members if correct[k] is not None]
        infos.append(
            ClusterInfo(
                id=cid,
                size=int(len(members)),
                share=float(len(members) / max(1, len(rows))),
                mean_bg_mass=float(np.nanmean(b)) if np.isfinite(b).any() else None,
                labels=_counts(labels[k] for k in members),
                preds=_counts(preds[k] for k in members),
                accuracy=float(np.mean(judged)) if judged else None,
                mean_map="",
                examples=tuple(paths[k] for k in typical[:12]),
            )
        )
    pngs = write_mean_maps(out, means, colorize)
    infos = [
        ClusterInfo(**{**c.to_dict(), "mean_map": pngs[c.id], "examples": c.examples})
        for c in infos
    ]
    write_clusters(out, infos)
    return len(infos), int((~ok).sum()), res.embedding, res.notes


def _counts(values) -> dict:
    out: dict = {}
    for v in values:
        if v is not None:
            out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


class _Rows:
    """``maps[rows]`` without copying: slicing reads only the rows asked for."""

    def __init__(self, maps: np.ndarray, rows: np.ndarray):
        self.maps, self.rows = maps, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, s):
        return self.maps[self.rows[s]]
