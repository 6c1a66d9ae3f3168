"""The channel-atlas job: every image of a folder → top-k images per channel → output folder.

``atlas_job(reporter, loaded, settings)`` (an :class:`AtlasSettings`) is what the ``atlas``
command and the app's Dataset dock run. It lists the folder, measures the layer's receptive
field once, runs one forward per batch (stopped at the layer) and merges each batch into a
bounded top-k per channel (:class:`~core.experiments.atlas.TopK`, memory O(channels · k)).
The top-k is checkpointed to ``atlas_state.npz`` (written whole, then renamed) at most every
few seconds and on cancel, so rerunning the same settings resumes after the last checkpoint.

Output folder:

- ``atlas.parquet``: one row per (channel, rank): ``channel``, ``rank`` (0 = highest),
  ``path`` (relative to the image folder), ``value`` (the channel's maximum over the image),
  ``row``, ``col`` (its argmax on the layer's grid), ``x0``, ``y0``, ``x1``, ``y1`` (the
  receptive-field crop in the image's own pixels);
- ``crops/c{channel:05d}_r{rank:03d}.png``: those crops;
- ``atlas_maps.npy``: float16 (C, k, h, w), the channel's activation map on each image;
- ``atlas.json``: identity (model, weights, settings), state, grid, receptive field, notes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from itertools import compress
from pathlib import Path

import numpy as np
import torch

from hookscope.core.engine.guard import state_checksum
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.atlas import (
    AtlasSettings,
    Field,
    TopK,
    cell_box,
    layer_activations,
    layer_layout,
    measure_field,
    to_image_box,
)
from hookscope.core.experiments.atlas_ray import ray_activations, require_ray
from hookscope.core.experiments.scan import (
    ScanDataset,
    folder_loader,
    list_images,
)
from hookscope.core.io.scan_outputs import disk_errors, take_folder
from hookscope.core.loading.images import load_image
from hookscope.core.reporting import SCANNING, Cancelled, Reporter, per_batch

__all__ = [
    "ATLAS_FILE",
    "AtlasEntry",
    "AtlasSettings",
    "AtlasSummary",
    "AtlasView",
    "atlas_for",
    "atlas_job",
    "read_atlas",
    "remember_atlas",
]

ATLAS_FILE = "atlas.parquet"
INFO_FILE = "atlas.json"
MAPS_FILE = "atlas_maps.npy"
STATE_FILE = "atlas_state.npz"
CROPS_DIR = "crops"
COLUMNS = ("channel", "rank", "path", "value", "row", "col", "x0", "y0", "x1", "y1")
CHECKPOINT_S = 5.0
"""Seconds between checkpoints of the top-k (a hard kill loses at most this much work)."""
KEEP_PIXELS = 4
"""The loader hands the loop an image's decoded pixels when it has at most this many times
the model input's pixels (so at most the input tensor's bytes): its crops are cut then, not
after a second decode. Larger images are decoded again at the end."""
CROP_BUDGET = 256 << 20
"""Bytes all kept crops may take (C · k of them): a crop larger than its share is cut at the end."""
CROP_LEVEL = 0
"""zlib level of the crop PNGs: 0 stores the pixels (about twice level 1's bytes, a 54² crop
9 KB instead of 4 KB) in a tenth of level 1's time; the crops' encoding was a tenth of an
atlas's time at level 1."""


@dataclass(frozen=True)
class AtlasSummary:
    """What an atlas run did.

    Attributes:
        out: The output folder.
        channels: Channels of the layer.
        images: Images listed; ``errors`` of them did not decode and are not ranked.
        computed: Images computed by this run; ``resumed``: taken from a checkpoint.
        grid: (h, w) of the layer's grid.
        field: The receptive field the crops use.
        seconds: Wall time of this run.
        notes: What the atlas had to simplify.
    """

    out: Path
    channels: int
    images: int
    errors: int
    computed: int
    resumed: int
    grid: tuple[int, int]
    field: Field
    seconds: float
    notes: tuple[str, ...] = ()


def crop_name(channel: int, rank: int) -> str:
    """File name (in ``crops/``) of a channel's crop at a rank."""
    return f"c{channel:05d}_r{rank:03d}.png"


@per_batch
def atlas_job(reporter: Reporter, loaded, settings: AtlasSettings) -> AtlasSummary:
    """Build the channel atlas of ``settings.layer`` over ``settings.images``.

    Raises:
        HookScopeError: Bad layer, empty folder, an output folder holding something else.
        Cancelled: After checkpointing, when the reporter was cancelled.
    """
    start = time.perf_counter()
    if settings.ray:
        require_ray()  # before any folder is made
    s = settings.resolve(loaded)
    root = Path(s.images)
    out = Path(s.out).expanduser() if s.out else Path.cwd() / f"atlas-{root.name}-{s.layer}"
    paths = list_images(root, s.limit)
    if not paths:
        raise HookScopeError(f"No images (PNG, JPEG, BMP, WebP, TIFF) found below {root}.")
    model = loaded.model
    layout, field = _geometry(model, s)
    identity = {
        "model": s.model_spec or loaded.name,
        "weights_sha256": state_checksum(model),
        **s.key(),
    }
    lock = take_folder(out, identity, lambda folder: _read_json(folder / INFO_FILE), "atlas")
    with lock, disk_errors(out):
        top, done, errors, notes = _resume(out, paths, identity)
        resumed = done
        _write_info(out, identity, "running", layout, field, notes)
        try:
            geometry = (layout, field)
            top, errors = _stream(s, model, paths, geometry, reporter, out, (top, done, errors))
        except (Cancelled, KeyboardInterrupt):
            _write_info(out, identity, "partial", layout, field, notes)
            raise
        if top is None:
            raise HookScopeError(f"None of the {len(paths)} images below {root} could be read.")
        reporter.progress(len(paths), len(paths), "Writing crops")
        _write_outputs(out, root, paths, top, _Cutter(field, s.spec, top))
        if errors:
            notes = (*notes, f"{errors} images could not be read and are not ranked.")
        _write_info(out, identity, "complete", layout, field, notes)
        _checkpoint(out, top, paths, len(paths), errors)  # small: a rerun only rewrites
        remember_atlas(model, s.layer, out)
        return AtlasSummary(
            out=out,
            channels=int(top.values.shape[0]),
            images=len(paths),
            errors=errors,
            computed=len(paths) - resumed,
            resumed=resumed,
            grid=tuple(layout.grid),
            field=field,
            seconds=time.perf_counter() - start,
            notes=tuple(notes),
        )


def _geometry(model, s: AtlasSettings):
    """The layer's layout and receptive field at the settings' input size."""
    h, w = s.spec.size
    probe = torch.zeros(1, s.spec.channels, h, w, device=_device(model))
    layout = layer_layout(model, s.layer, probe, s.reshape)
    if not layout.grid:
        raise HookScopeError(f"Layer '{s.layer}' has no spatial grid; pick a grid layer.")
    return layout, measure_field(model, s.layer, layout, (h, w), s.spec.channels)


def _stream(s: AtlasSettings, model, paths, geometry, reporter: Reporter, out: Path, state):
    """Merge every batch after the ``state`` (top-k or None, images done, unreadable) into
    the top-k, checkpointing every few seconds and on cancel; returns (top-k, unreadable).
    ``geometry``: the layer's (layout, receptive field), from :func:`_geometry`."""
    top, done, errors = state
    layout, field = geometry
    cutter = None if top is None else _Cutter(field, s.spec, top)
    t_ckpt = time.perf_counter()
    try:
        for idx, acts, images, err, end in _activations(s, model, paths, done, layout, reporter):
            if len(idx):
                if top is None:
                    top = TopK(acts.shape[1], s.top, tuple(acts.shape[2:]))
                    cutter = _Cutter(field, s.spec, top)
                # inline, not in a helper thread: torch's threads already take every core,
                # and a thread beside them made its OpenMP barriers spin (measured slower)
                cutter.keep(top.add(acts, idx), images)
            del acts, images  # not alive through the next batch's decoding and forward
            done, errors = end, errors + err
            reporter.progress(done, len(paths), "Building the atlas", SCANNING)
            if top is not None and time.perf_counter() - t_ckpt > CHECKPOINT_S:
                _checkpoint(out, top, paths, done, errors)
                t_ckpt = time.perf_counter()
    except (Cancelled, KeyboardInterrupt):
        if top is not None:
            _checkpoint(out, top, paths, done, errors)
        raise
    return top, errors


def _device(model) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _digest(paths) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def _resume(out: Path, paths, identity) -> tuple[TopK | None, int, int, tuple[str, ...]]:
    """The checkpointed top-k and how many images (a prefix of ``paths``) it holds."""
    try:
        with np.load(out / STATE_FILE) as z:
            state = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None, 0, 0, ()
    done = int(state["done"])
    if done > len(paths) or str(state["digest"]) != _digest(paths[:done]):
        return None, 0, 0, ("The folder changed since the checkpoint; the atlas started over.",)
    return TopK.from_state(state), done, int(state["errors"]), ()


def _checkpoint(out: Path, top: TopK, paths, done: int, errors: int) -> None:
    """Write the top-k whole, then rename: a kill leaves the old or the new checkpoint."""
    tmp = out / (STATE_FILE + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, done=done, errors=errors, digest=_digest(paths[:done]), **top.state())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out / STATE_FILE)


def _write_info(out: Path, identity, state: str, layout, field: Field, notes) -> None:
    data = {
        "format": "hookscope-atlas/1",
        "identity": identity,
        "state": state,
        "grid": list(layout.grid),
        "layout": str(layout),
        "field": {
            "stride": list(field.stride),
            "offset": list(field.offset),
            "input_size": list(field.input_size),
            "how": field.how,
        },
        "notes": list(notes),
    }
    tmp = out / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, out / INFO_FILE)


def _activations(s: AtlasSettings, model, paths, start: int, layout, reporter: Reporter):
    """Per batch of ``paths[start:]``, in order: readable image indices, their activations
    (N, C, h, w) float32, their decoded images (a list of PIL images, None where the loader
    kept none), the unreadable count, and one past the batch's last index."""
    todo = list(range(start, len(paths)))
    if s.ray:
        for idx, ok, acts in ray_activations(s, model, paths, todo):
            reporter.check()
            yield idx[ok], acts[ok], [None] * int(ok.sum()), int((~ok).sum()), int(idx.max()) + 1
        return
    h, w = s.spec.size
    dataset = ScanDataset(s.images, paths, s.spec, None, todo, keep_image=KEEP_PIXELS * h * w)
    for batch in folder_loader(dataset, s.batch_size, s.workers):
        reporter.check()
        ok = np.asarray([not e for e in batch["error"]], bool)
        idx = np.asarray(batch["i"], np.int64)
        x = batch["x"] if ok.all() else batch["x"][torch.from_numpy(np.flatnonzero(ok))]
        images = batch.get("image") or [None] * len(ok)
        acts = np.zeros((0,), np.float32)
        if len(x):
            with reporter.batch():
                acts = layer_activations(model, s.layer, x.to(_device(model)), layout).numpy()
        del batch, x  # the caller's merge and the next decoding need not keep them alive
        yield idx[ok], acts, list(compress(images, ok)), int((~ok).sum()), int(idx.max()) + 1
        del acts, images


class _Cutter:
    """Crop boxes of top-k entries, and their pixels cut while the image is still decoded.

    :meth:`keep` stores each new entry's (box, pixels) in ``top.crops`` (it moves with its
    entry; an evicted entry's crop is dropped), so the end only encodes them. An entry with
    no pixels (a large image, a resumed or a Ray run) keeps None: the end decodes its image.
    """

    def __init__(self, field: Field, spec, top: TopK):
        self.field, self.spec, self.top = field, spec, top
        self.cap = CROP_BUDGET // max(1, top.crops.size)
        self.boxes: dict[tuple, tuple[int, int, int, int]] = {}

    def box(self, size: tuple[int, int], row: int, col: int) -> tuple[int, int, int, int]:
        """Crop box in the pixels of an image of ``size`` (w, h) for cell (row, col)."""
        key = (size, row, col)
        box = self.boxes.get(key)
        if box is None:
            if len(self.boxes) > 100_000:  # many image sizes: keep the cache bounded
                self.boxes.clear()
            box = self.boxes[key] = to_image_box(cell_box(self.field, row, col), size, self.spec)
        return box

    def keep(self, fresh, images) -> None:
        """Cut the crops of ``fresh`` (channels, slots, batch positions) from ``images``."""
        top = self.top
        chs, slots, where = fresh
        cells = zip(top.row[chs, slots].tolist(), top.col[chs, slots].tolist(), strict=True)
        arrays: dict[int, np.ndarray] = {}  # only images with a new entry become arrays
        for ch, slot, pos, (r, c) in zip(chs.tolist(), slots.tolist(), where.tolist(), cells):
            img = images[pos]
            if img is None:
                continue
            pix = arrays.get(pos)
            if pix is None:
                pix = arrays[pos] = np.asarray(img)
            box = self.box(img.size, r, c)
            x0, y0, x1, y1 = box
            crop = pix[y0:y1, x0:x1]
            if crop.nbytes <= self.cap:  # a copy: the batch's images are not kept alive
                top.crops[ch, slot] = (box, crop.copy())


def _write_outputs(out: Path, root: Path, paths, top: TopK, cutter: _Cutter) -> None:
    """``atlas.parquet``, the crops and the maps of the final top-k.

    Most crops were cut in the loop (``top.crops``): they are only encoded, here (file
    creations in one folder queue on its lock: more threads only spun, measured). The
    others' images are decoded once each in a few threads (decoding releases the GIL), all
    their crops cut from it. Entries that share a crop (the same box of the same image, for
    several channels) share one encoding and one file (:func:`_write_crop`).
    """
    crops = out / CROPS_DIR
    crops.mkdir(exist_ok=True)
    rerun = any(crops.iterdir())  # a rerun's files may be links: unlink before writing
    kept: dict[tuple, list[tuple[int, int]]] = {}
    by_image: dict[int, list[tuple[int, int]]] = {}
    for ch, rank in zip(*np.nonzero(top.index >= 0), strict=True):
        ch, rank, i = int(ch), int(rank), int(top.index[ch, rank])
        if top.crops[ch, rank] is not None:
            kept.setdefault((i, top.crops[ch, rank][0]), []).append((ch, rank))
        else:
            by_image.setdefault(i, []).append((ch, rank))

    def cut(i: int) -> list[tuple]:
        img = load_image(root / paths[i])
        pixels = np.asarray(img)
        same: dict[tuple, list[tuple[int, int]]] = {}
        for ch, rank in by_image[i]:
            box = cutter.box(img.size, int(top.row[ch, rank]), int(top.col[ch, rank]))
            same.setdefault(box, []).append((ch, rank))
        for (x0, y0, x1, y1), entries in same.items():
            _write_crop(crops, entries, pixels[y0:y1, x0:x1], rerun)
        return [(*e, box) for box, entries in same.items() for e in entries]

    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = pool.map(cut, sorted(by_image))
        for group in kept.values():
            _write_crop(crops, group, top.crops[group[0]][1], rerun)
        done = [(*e, top.crops[e][0]) for group in kept.values() for e in group]
        done += [e for part in decoded for e in part]
    _write_table(out / ATLAS_FILE, paths, top, sorted(done))
    tmp = out / (MAPS_FILE + ".tmp.npy")
    np.save(tmp, top.maps)
    os.replace(tmp, out / MAPS_FILE)


def _write_crop(folder: Path, entries, pixels: np.ndarray, rerun: bool) -> None:
    """One crop as the PNG of every (channel, rank) in ``entries``: encoded once, written
    once, the others hard links to that file (a copy where the disk has no links).

    ``rerun``: the folder may hold files of an earlier run, each perhaps a link of another
    crop; they are unlinked first, never written through.
    """
    data, first = None, None
    for ch, rank in entries:
        path = folder / crop_name(ch, rank)
        if rerun:
            with suppress(FileNotFoundError):
                path.unlink()
        if first is not None:
            try:
                os.link(first, path)
                continue
            except OSError:
                pass
        data = data if data is not None else png_bytes(pixels, CROP_LEVEL)
        path.write_bytes(data)
        first = first or path


def _write_table(path: Path, paths, top: TopK, entries) -> None:
    """``atlas.parquet`` of ``entries`` ((channel, rank, box) sorted)."""
    import pyarrow as pa

    from hookscope.core.io.scan_outputs import write_atomic

    cols = {k: [] for k in COLUMNS}
    for ch, rank, box in entries:
        row = (ch, rank, paths[top.index[ch, rank]], top.values[ch, rank])
        row += (top.row[ch, rank], top.col[ch, rank], *box)
        for k, v in zip(COLUMNS, row, strict=True):
            cols[k].append(v)
    table = pa.table(
        {
            k: pa.array(v, pa.string())
            if k == "path"
            else pa.array(np.asarray(v, np.float32 if k == "value" else np.int32))
            for k, v in cols.items()
        }
    )
    write_atomic(table, path)


def png_bytes(rgb: np.ndarray, level: int = 1) -> bytes:
    """An 8-bit RGB (h, w, 3) array as PNG bytes: no filter, zlib ``level`` (lossless).

    Pillow's encoder spends most of a small crop's time in per-image set-up; this writes the
    three chunks a PNG needs directly.
    """
    h, w = rgb.shape[:2]
    raw = np.zeros((h, w * 3 + 1), np.uint8)  # a 0 (no filter) byte before each row
    raw[:, 1:] = np.asarray(rgb, np.uint8).reshape(h, w * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    head = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    idat = zlib.compress(raw.tobytes(), level)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def read_atlas(folder: str | Path) -> dict | None:
    """A finished atlas folder's ``atlas.json`` (with ``folder``), or None when there is none."""
    info = _read_json(Path(folder) / INFO_FILE)
    if info is None or info.get("state") != "complete":
        return None
    return info | {"folder": str(folder)}


@dataclass(frozen=True)
class AtlasEntry:
    """One of a channel's top images: ``rank`` 0 is the highest ``value``; ``box`` is the
    crop (x0, y0, x1, y1) in the image's own pixels; ``crop`` its PNG."""

    channel: int
    rank: int
    path: str
    value: float
    row: int
    col: int
    box: tuple[int, int, int, int]
    crop: Path


class AtlasView:
    """A finished atlas folder, read for display (the Activations dock)."""

    def __init__(self, folder: str | Path):
        import pyarrow.parquet as pq

        self.folder = Path(folder)
        info = read_atlas(self.folder)
        if info is None:
            raise HookScopeError(f"{self.folder} holds no finished atlas; build one first.")
        self.info = info
        self.layer = info["identity"]["layer"]
        table = pq.read_table(self.folder / ATLAS_FILE)
        self._cols = {k: table.column(k).to_numpy(zero_copy_only=False) for k in COLUMNS}
        self.channels = int(self._cols["channel"].max()) + 1 if table.num_rows else 0

    def top(self, channel: int) -> list[AtlasEntry]:
        """The channel's entries, rank 0 first (empty for a channel out of range)."""
        c = self._cols
        rows = np.flatnonzero(c["channel"] == channel)
        rows = rows[np.argsort(c["rank"][rows], kind="stable")]
        return [
            AtlasEntry(
                channel=int(channel),
                rank=int(c["rank"][i]),
                path=str(c["path"][i]),
                value=float(c["value"][i]),
                row=int(c["row"][i]),
                col=int(c["col"][i]),
                box=tuple(int(c[k][i]) for k in ("x0", "y0", "x1", "y1")),
                crop=self.folder / CROPS_DIR / crop_name(int(channel), int(c["rank"][i])),
            )
            for i in rows
        ]


_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model → {layer: folder of its latest finished atlas in this process}."""


def remember_atlas(model, layer: str, folder: str | Path) -> None:
    """Note that ``folder`` holds the atlas of ``model``'s ``layer`` (the job does this)."""
    _KNOWN.setdefault(model, {})[layer] = Path(folder)


def adopt_atlases(model, spec: str | None, folders) -> list[Path]:
    """Remember those of ``folders`` that hold a finished atlas of these very weights.

    For an app restart: the folders are ones it saw built before. A folder counts when its
    identity names ``spec`` and the weights' checksum (hashed only when some folder names
    ``spec``); a later folder of the same layer wins. Returns the folders taken.
    """
    infos = [i for f in folders if (i := read_atlas(f)) and i["identity"].get("model") == spec]
    if model is None or not infos:
        return []
    checksum = state_checksum(model)
    taken = []
    for info in infos:
        identity = info["identity"]
        if identity.get("weights_sha256") == checksum and identity.get("layer"):
            remember_atlas(model, identity["layer"], info["folder"])
            taken.append(Path(info["folder"]))
    return taken


def atlas_for(model, layer: str | None) -> Path | None:
    """Folder of the latest finished atlas of ``model``'s ``layer`` in this process, or None."""
    if model is None or not layer:
        return None
    try:
        folder = _KNOWN.get(model, {}).get(layer)
    except TypeError:  # not weak-referenceable
        return None
    return folder if folder is not None and read_atlas(folder) is not None else None
