"""The dataset scan job: every image of a folder → CAMs → SpRAy clusters → output folder.

``scan_job(reporter, loaded, settings)`` (a :class:`ScanSettings`) is what the ``scan``
command and the app's Dataset dock both run. It lists the folder, resumes what an earlier run
of the same settings left in the output folder, computes the rest in batches (locally through
a ``DataLoader`` with decoding workers, or on Ray), writes rows and maps as they come, then
clusters the maps and writes ``results.parquet``, ``maps.npy``, ``clusters.json`` and
``report.html`` (:mod:`core.io.scan_outputs`). Cancel (or Ctrl+C) leaves a valid partial
folder: the rows so far in ``results.parquet`` and ``maps.npy``, ``state: "partial"`` in
``scan.json``.

While it runs, every batch is handed to ``reporter.partial`` as a :class:`ScanChunk` (rows,
maps, a provisional 2-D place from :class:`PreviewLayout`); :class:`LiveScan` gathers them
into what the Dataset dock shows before the clusters exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from hookscope.core.display.colormaps import DEFAULT_CMAP, check_colormap
from hookscope.core.display.colormaps import colorize as colorize_map
from hookscope.core.engine.guard import state_checksum
from hookscope.core.engine.targets import class_name
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import (
    ScanDataset,
    folder_labels,
    folder_loader,
    list_images,
    pool_maps,
    scan_decoded,
    spray,
)
from hookscope.core.experiments.scan_ray import ray_batches
from hookscope.core.experiments.scan_settings import ScanSettings, app_batch_size
from hookscope.core.io.scan_outputs import (
    CLUSTERS_FILE,
    MAPS_FILE,
    PARTS_DIR,
    RESULTS_FILE,
    SETTINGS_FILE,
    ClusterInfo,
    ScanOutputs,
    ScanWriter,
    check_extras,
    disk_errors,
    finalize,
    mean_of,
    open_scan,
    read_settings,
    remove_parts,
    take_folder,
    update_settings,
    write_clusters,
    write_results,
    write_settings,
)
from hookscope.core.io.scan_report import write_mean_maps, write_report
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import SCANNING, Cancelled, Reporter, per_batch

__all__ = ["LiveScan", "ScanChunk", "ScanSettings", "ScanSummary", "app_batch_size", "scan_job"]

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

    def counts(self) -> str:
        """The images in numbers that add up: "31 images: 30 mapped, 1 unreadable".

        ``rows`` = mapped + unreadable, and = computed + resumed (an unreadable image is
        computed too: it was tried), so neither pair is said as if it were the other.
        """
        text = f"{self.rows} images"
        if self.errors:
            text += f": {self.rows - self.errors} mapped, {self.errors} unreadable"
        if self.resumed:
            text += f" ({self.computed} computed, {self.resumed} resumed)"
        return text


@dataclass(frozen=True)
class ScanChunk:
    """Rows a running scan just wrote, for a live view (``reporter.partial``).

    Attributes:
        rows: Result rows (:data:`~core.io.scan_outputs.ROW_COLUMNS` keys) of this batch.
        maps: Their maps, float16 (n, S, S).
        xy: A provisional 2-D place per row (:class:`PreviewLayout`), float32 (n, 2); NaN for
            error rows. SpRAy's embedding replaces it when the scan ends.
        relayout: New places of every row streamed so far, (N, 2), when the layout was refit;
            else None.
        done: Images done so far (resumed ones included).
        total: Images in the scan.
        resumed: Images taken from an earlier run (not streamed).
    """

    rows: tuple[dict, ...]
    maps: np.ndarray
    xy: np.ndarray
    relayout: np.ndarray | None
    done: int
    total: int
    resumed: int


class PreviewLayout:
    """A cheap 2-D place for each map while a scan runs, before SpRAy's embedding exists.

    The first two principal components of the maps pooled to ``side``×``side``; the axes are
    refit whenever the rows seen double, up to ``refit_max`` rows, then kept.
    """

    def __init__(self, side: int = 8, refit_max: int = 4096):
        self.side, self.refit_max = side, refit_max
        self._feats: list[np.ndarray] = []  # pooled maps of the first refit_max rows
        self._ok: list[np.ndarray] = []
        self.n = 0
        self._next_fit = 2
        self._mean: np.ndarray | None = None
        self._axes: np.ndarray | None = None

    def add(self, maps: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Place a batch of maps (``ok`` False: an error row, no place).

        Returns:
            ``(xy of these rows, xy of every row so far or None when the axes did not move)``.
        """
        feats = pool_maps(np.asarray(maps, np.float32), self.side)
        ok = np.asarray(ok, bool)
        relayout = None
        if self.n < self.refit_max:
            self._feats.append(feats)
            self._ok.append(ok)
        self.n += len(feats)
        if self.n >= self._next_fit and self.n <= self.refit_max + len(feats):
            self._next_fit = 2 * self.n
            if self._fit():
                relayout = self._place(np.concatenate(self._feats), np.concatenate(self._ok))
        xy = self._place(feats, ok)
        return xy, relayout

    def _fit(self) -> bool:
        f = np.concatenate(self._feats)[np.concatenate(self._ok)].astype(np.float64)
        if len(f) < 2:
            return False
        self._mean = f.mean(0)
        _, _, vt = np.linalg.svd(f - self._mean, full_matrices=False)
        axes = np.zeros((2, f.shape[1]))
        axes[: min(2, len(vt))] = vt[:2]
        self._axes = axes
        return True

    def _place(self, feats: np.ndarray, ok: np.ndarray) -> np.ndarray:
        xy = np.full((len(feats), 2), np.nan, np.float32)
        if self._axes is None:
            xy[ok] = 0.0
            return xy
        xy[ok] = ((feats[ok] - self._mean) @ self._axes.T).astype(np.float32)
        return xy


@per_batch
def scan_job(
    reporter: Reporter,
    loaded,
    settings: ScanSettings | str | Path,
    layer: str | None = None,
    *,
    colormap: str = DEFAULT_CMAP,
    cluster_colors: Sequence[tuple[int, int, int]] | None = None,
    **options,
) -> ScanSummary:
    """Scan a folder of images; see the module docstring for what is written.

    Model work runs in ``reporter.batch()`` blocks, one per batch (the app's interactive
    runs go in between), and every batch is streamed with ``reporter.partial`` as a
    :class:`ScanChunk`.

    Args:
        reporter: Progress (images done of all images, resumed ones included) and cancel.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        settings: What to scan (:class:`~core.experiments.scan_settings.ScanSettings`). Old
            callers may pass the image folder, ``layer`` and the settings' fields as keywords.
        colormap: Colour map of the PNGs and the report (``core.display.colormaps``).
        cluster_colors: RGB per cluster id for the report.

    Raises:
        HookScopeError: Bad options, an empty folder, a missing extra, an output folder holding
            another scan or being written by one, a full or read-only disk.
        Cancelled: After writing the partial output, when the reporter was cancelled.
    """
    start = time.perf_counter()
    if not isinstance(settings, ScanSettings):
        settings = ScanSettings(settings, layer, **options)
    elif layer is not None or options:
        raise HookScopeError("Pass the scan's options in its ScanSettings, not beside it.")
    colorize = partial(colorize_map, cmap=check_colormap(colormap))  # a bad name fails now
    check_extras(ray=bool(settings.ray))  # before anything is created: no folder left "running"
    s = settings.resolve(loaded)
    root = Path(s.images)
    out = Path(s.out).expanduser() if s.out else Path.cwd() / f"scan-{root.name}"
    reporter.check()
    paths = list_images(root, s.limit)
    if not paths:
        raise HookScopeError(f"No images (PNG, JPEG, BMP, WebP, TIFF) found below {root}.")
    labels = folder_labels(paths, loaded.class_names)
    if s.target == "label" and labels is None:
        raise HookScopeError(
            "--target label needs labels: put the images in sub-folders named after the "
            "model's classes (ImageFolder layout)."
        )
    identity = {
        "model": s.model_spec or loaded.name,
        "model_name": loaded.name,
        "weights_sha256": state_checksum(loaded.model),
        **s.key(),
    }
    # One scan per folder: a second one would interleave its parts with this one's. The lock
    # is taken before the folder is judged, and released (by the system, too) when this ends.
    lock = take_folder(out, identity, read_settings, "scan")
    with lock, disk_errors(out):
        write_settings(
            out, identity, {"state": "running", "class_names": list(loaded.class_names or [])}
        )
        writer = ScanWriter(out, s.map_size, s.chunk_rows, images_root=root)  # seeds a finished one
        todo = [i for i, p in enumerate(paths) if p not in writer.done_paths]
        resumed = len(paths) - len(todo)
        total = len(paths)
        reporter.progress(resumed, total, "Scanning", SCANNING)
        computed = 0
        t0 = time.perf_counter()
        try:
            if todo:
                layout = PreviewLayout()
                for arr in _batches(s, loaded.model, paths, todo, labels, reporter):
                    rows = _rows(arr, paths, labels, loaded.class_names)
                    writer.add(rows, arr["maps"])
                    computed += len(arr["i"])
                    ok = np.asarray([r["error"] is None for r in rows], bool)
                    xy, relayout = layout.add(arr["maps"], ok)
                    done = resumed + computed
                    chunk = ScanChunk(tuple(rows), arr["maps"], xy, relayout, done, total, resumed)
                    reporter.partial(chunk)
                    reporter.progress(done, total, "Scanning", SCANNING)
            writer.close()
        except (Cancelled, KeyboardInterrupt):
            writer.close()
            table = finalize(out, s.map_size, paths)
            update_settings(out, state="partial", rows=table.num_rows)
            raise
        except BaseException:
            writer.close()
            raise
        rate = computed / max(time.perf_counter() - t0, 1e-9)

        reporter.progress(total, total, "Clustering")
        table = finalize(out, s.map_size, paths)
        n_clusters, n_err, how, notes = _cluster(out, table, s.clusters, colorize)
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
        try:  # complete on disk: a cancel now comes too late, the finished scan wins
            reporter.progress(total, total, "Writing the report")
        except Cancelled:
            pass
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


def _batches(
    s: ScanSettings, model, paths: Sequence[str], todo: Sequence[int], labels, reporter: Reporter
) -> Iterator[dict]:
    """Scanned batches of resolved settings ``s``: from Ray when asked, else from a local
    DataLoader, each batch's model work in one ``reporter.batch()`` (decoding outside it)."""
    if s.ray:
        yield from ray_batches(s, model, paths, todo, labels)
        return
    label_arr = np.asarray(labels if labels else [-1] * len(paths), np.int64)
    dataset = ScanDataset(s.images, paths, s.spec, s.masks, todo)
    loader = folder_loader(dataset, s.batch_size, s.workers)
    for batch in loader:
        with reporter.batch():
            arr = scan_decoded(
                model,
                batch,
                s.layer,
                s.method,
                s.target,
                labels=label_arr[batch["i"]] if labels else None,
                map_size=s.map_size,
                reshape=s.reshape,
            )
        yield arr  # outside the block: the model is free while the rows are written


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


class LiveScan:
    """The rows a running scan streamed (:class:`ScanChunk`), read like a partial
    :class:`~core.io.scan_outputs.ScanOutputs`: what the Dataset dock shows while it runs.

    Columns grow by doubling, so adding a chunk costs its own rows; ``column`` returns views.

    Args:
        settings: The scan's resolved :class:`ScanSettings`.
        folder: Its output folder.
        model_name: The model's name (for the dock's sentence).
    """

    FLOATS = ("prob", "bg_mass", "x", "y")
    OBJECTS = ("path", "label", "pred", "correct", "error")
    complete = False
    clusters: tuple = ()

    def __init__(self, settings: ScanSettings, folder: str | Path, model_name: str = ""):
        self.folder = Path(folder)
        ident = {"model_name": model_name, **settings.key()}
        self.settings = {"state": "running", "identity": ident}
        self.map_size = settings.map_size
        self.done = self.total = self.resumed = 0
        self._n = 0
        self._cols: dict[str, np.ndarray] = {k: np.zeros(0, np.float32) for k in self.FLOATS}
        self._cols |= {k: np.zeros(0, object) for k in self.OBJECTS}
        self._maps = np.zeros((0, self.map_size, self.map_size), np.float16)
        self._sum = np.zeros((self.map_size, self.map_size), np.float64)
        self._ok = 0

    def __len__(self) -> int:
        return self._n

    def add(self, chunk: ScanChunk) -> None:
        """Append a chunk's rows (and move every row when the preview layout was refit)."""
        n, k = self._n, len(chunk.rows)
        self._grow(n + k)
        for name in self.FLOATS[:2] + self.OBJECTS:
            col = self._cols[name]
            for j, row in enumerate(chunk.rows):
                v = row.get(name)
                col[n + j] = (np.nan if v is None else v) if name in self.FLOATS else v
        self._cols["x"][n : n + k], self._cols["y"][n : n + k] = chunk.xy[:, 0], chunk.xy[:, 1]
        if chunk.relayout is not None:
            m = min(len(chunk.relayout), n + k)
            self._cols["x"][:m], self._cols["y"][:m] = chunk.relayout[:m, 0], chunk.relayout[:m, 1]
        self._maps[n : n + k] = chunk.maps
        ok = np.asarray([r.get("error") is None for r in chunk.rows], bool)
        self._sum += np.asarray(chunk.maps, np.float64)[ok].sum(0)
        self._ok += int(ok.sum())
        self._n = n + k
        self.done, self.total, self.resumed = chunk.done, chunk.total, chunk.resumed

    def _grow(self, need: int) -> None:
        size = len(self._maps)
        if need <= size:
            return
        size = max(need, 2 * size, 64)
        for name, col in self._cols.items():
            new = (
                np.full(size, np.nan, np.float32) if name in self.FLOATS else np.empty(size, object)
            )
            new[: self._n] = col[: self._n]
            self._cols[name] = new
        maps = np.zeros((size, self.map_size, self.map_size), np.float16)
        maps[: self._n] = self._maps[: self._n]
        self._maps = maps

    @property
    def maps(self) -> np.ndarray:
        return self._maps[: self._n]

    @property
    def images_root(self) -> Path:
        return Path(self.settings["identity"]["images"])

    @property
    def masks_root(self) -> Path | None:
        m = self.settings["identity"].get("masks")
        return Path(m) if m else None

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec.from_dict(self.settings["identity"]["input_spec"])

    def column(self, name: str) -> np.ndarray:
        """A column so far (``cluster`` is -1 everywhere: not clustered yet)."""
        if name == "cluster":
            return np.full(self._n, -1, np.int64)
        return self._cols[name][: self._n]

    def image_path(self, row: int) -> Path:
        return self.images_root / self._cols["path"][row]

    def mean_map(self, cluster: int) -> np.ndarray:
        """Mean map of the rows without an error so far (every row is cluster -1)."""
        if cluster >= 0 or not self._ok:
            return np.zeros((self.map_size, self.map_size), np.float32)
        return (self._sum / self._ok).astype(np.float32)

    # Same as a scan folder's: the image as the model saw it, a row's map, a cluster's rows.
    input_image = ScanOutputs.input_image
    map = ScanOutputs.map
    rows_of = ScanOutputs.rows_of
