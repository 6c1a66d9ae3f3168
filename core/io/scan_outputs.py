"""A dataset scan's output folder: written in chunks as results come, resumable, readable.

Layout of ``OUT/``::

    scan.json        settings that define the rows, state ("running" | "partial" | "complete")
    results.parquet  one row per image, sorted by ``path`` (the table order)
    maps.npy         float16 (rows, S, S): row k is the map of table row k
    clusters.json    one object per cluster (id, size, mean_bg_mass, labels, preds, mean_map,
                     examples)
    clusters/        cluster_NN.png: each cluster's mean map, colour-mapped
    report.html      static page, no network needed
    parts/           work in progress: part-NNNNNN.parquet chunks and maps.f16 (raw float16
                     maps in arrival order); removed when the scan completes

Rows reach disk in chunks (:class:`ScanWriter`): a chunk's maps are appended to ``maps.f16``
first, then its rows are written as a new part file by an atomic rename, so a part never
names maps that are not on disk. A crash or Ctrl+C loses at most the rows not yet in a part;
a rerun with the same settings reads the parts (and a finished folder's tables) and skips
those images. :func:`finalize` turns the parts into ``results.parquet`` and ``maps.npy``
streaming the maps through ``np.lib.format.open_memmap``, so memory stays flat.
:func:`open_scan` reopens a folder (finished or partial) without rerunning anything.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import spec_from_dict
from hookscope.core.io.export import to_jsonable, write_json
from hookscope.core.loading.images import load_image, preprocess
from hookscope.core.loading.spec import InputSpec

FORMAT = "hookscope-scan/1"
SETTINGS_FILE = "scan.json"
RESULTS_FILE = "results.parquet"
MAPS_FILE = "maps.npy"
CLUSTERS_FILE = "clusters.json"
REPORT_FILE = "report.html"
PARTS_DIR = "parts"
RAW_MAPS = "maps.f16"
CLUSTER_DIR = "clusters"

# Columns of every row, in order, with their Arrow types (as strings for pyarrow.type_for_alias).
ROW_COLUMNS: dict[str, str] = {
    "path": "string",  # relative to the image folder, POSIX separators
    "label": "string",  # class name (or index as text) from the folder layout; null if none
    "label_idx": "int32",
    "pred": "string",  # top-1 class name (or index as text); null for an error row
    "pred_idx": "int32",
    "prob": "float32",  # softmax probability of pred
    "correct": "bool",  # pred == label; null without a label
    "target": "string",  # the explained class
    "target_idx": "int32",
    "target_prob": "float32",
    "bg_mass": "float32",  # share of the map's mass outside the object mask; null without one
    "error": "string",  # why the image has no result; null when fine
}
CLUSTER_COLUMNS: dict[str, str] = {"cluster": "int32", "x": "float32", "y": "float32"}
# ``cluster``/``x``/``y`` are null for error rows and in a partial (cancelled) output.


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise HookScopeError(
            "The dataset scan needs pyarrow: pip install 'hookscope[scan]'."
        ) from exc
    return pa, pq


def _schema(columns: Mapping[str, str]):
    pa, _ = _pa()
    return pa.schema([(k, pa.type_for_alias(v)) for k, v in columns.items()])


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- settings ---------------------------------------------------------------------------------
def read_settings(out: str | Path) -> dict | None:
    """``scan.json`` of a folder, or None when there is none."""
    path = Path(out) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise HookScopeError(
            f"Cannot read {path} ({exc}); delete it or pick another --out."
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HookScopeError(f"{path} is not a HookScope scan file; pick another --out folder.")
    return data


def write_settings(out: str | Path, identity: Mapping, extra: Mapping | None = None) -> Path:
    """Write ``scan.json``: ``identity`` (what the rows depend on) plus ``extra`` fields."""
    data = {"format": FORMAT, "updated": _now(), "identity": dict(identity)} | dict(extra or {})
    path = Path(out) / SETTINGS_FILE
    tmp = path.with_suffix(".json.tmp")
    write_json(tmp, data)
    os.replace(tmp, path)
    return path


def update_settings(out: str | Path, **fields) -> dict:
    """Merge ``fields`` into ``scan.json`` (which must exist)."""
    data = read_settings(out) or {}
    ident = data.pop("identity", {})
    data.pop("format", None)
    data.pop("updated", None)
    write_settings(out, ident, data | fields)
    return read_settings(out)


# -- writing ----------------------------------------------------------------------------------
class ScanWriter:
    """Append rows and their maps to ``OUT/parts`` in chunks; resumes what is already there.

    Args:
        out: The output folder.
        map_size: Side S of the maps.
        chunk_rows: Rows buffered before a part file is written.
    """

    def __init__(self, out: str | Path, map_size: int, chunk_rows: int = 256):
        self.out = Path(out)
        self.parts = self.out / PARTS_DIR
        self.map_size = int(map_size)
        self.chunk_rows = max(1, int(chunk_rows))
        self.parts.mkdir(parents=True, exist_ok=True)
        self._raw_path = self.parts / RAW_MAPS
        self._rows: list[dict] = []
        self._row_bytes = self.map_size * self.map_size * 2
        self.done_paths, committed = self._committed()
        # Maps past the last committed part belong to rows that never reached a part.
        self._raw_path.touch()
        with open(self._raw_path, "r+b") as fh:
            fh.truncate(committed * self._row_bytes)
        self._raw = open(self._raw_path, "ab")  # closed in close()
        self._next_map = committed
        self._next_part = 1 + max(
            (int(p.stem.split("-")[1]) for p in self._part_files()), default=-1
        )

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def _committed(self) -> tuple[set[str], int]:
        _, pq = _pa()
        done: set[str] = set()
        maps = 0
        for p in self._part_files():
            t = pq.read_table(p, columns=["path", "map_row"])
            done.update(t.column("path").to_pylist())
            rows = t.column("map_row").to_numpy()
            if len(rows):
                maps = max(maps, int(rows.max()) + 1)
        return done, maps

    def add(self, rows: Sequence[Mapping[str, Any]], maps: np.ndarray) -> None:
        """Queue rows (dicts with :data:`ROW_COLUMNS` keys) and their (N, S, S) maps."""
        maps = np.asarray(maps, dtype=np.float16)
        if maps.shape != (len(rows), self.map_size, self.map_size):
            raise ValueError(f"maps of shape {maps.shape} for {len(rows)} rows")
        self._raw.write(np.ascontiguousarray(maps).tobytes())
        for r in rows:
            row = {k: r.get(k) for k in ROW_COLUMNS}
            row["map_row"] = self._next_map
            self._next_map += 1
            self._rows.append(row)
            self.done_paths.add(row["path"])
        if len(self._rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one part file (their maps are synced first)."""
        if not self._rows:
            return
        pa, pq = _pa()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        schema = _schema(ROW_COLUMNS | {"map_row": "int64"})
        table = pa.Table.from_pylist(self._rows, schema=schema)
        final = self.parts / f"part-{self._next_part:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        self._next_part += 1
        self._rows = []

    def close(self) -> None:
        """Flush and close the raw map file."""
        try:
            self.flush()
        finally:
            self._raw.close()

    def __enter__(self) -> ScanWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def seed_parts_from_results(out: str | Path, map_size: int) -> None:
    """Turn a finished folder's ``results.parquet`` + ``maps.npy`` back into parts.

    Used when a finished scan is rerun on a folder that has new images: the old rows are kept
    and only the new images are computed.
    """
    _, pq = _pa()
    out = Path(out)
    parts = out / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(out / RESULTS_FILE).select(list(ROW_COLUMNS))
    maps = np.load(out / MAPS_FILE, mmap_mode="r")
    if maps.shape[1:] != (map_size, map_size) or len(maps) != table.num_rows:
        raise HookScopeError(f"{out} holds maps that do not match its table; pick a new --out.")
    with open(parts / RAW_MAPS, "wb") as fh:
        for a in range(0, len(maps), 1024):
            fh.write(np.ascontiguousarray(maps[a : a + 1024], dtype=np.float16).tobytes())
    pa, _ = _pa()
    table = table.append_column("map_row", pa.array(np.arange(table.num_rows), pa.int64()))
    pq.write_table(table, parts / "part-000000.parquet")


def read_parts(out: str | Path):
    """All committed rows of ``OUT/parts`` as one Arrow table sorted by path (first copy kept)."""
    pa, pq = _pa()
    files = sorted((Path(out) / PARTS_DIR).glob("part-*.parquet"))
    schema = _schema(ROW_COLUMNS | {"map_row": "int64"})
    if not files:
        return schema.empty_table()
    table = pa.concat_tables([pq.read_table(f).cast(schema) for f in files])
    paths = table.column("path").to_pylist()
    keep: dict[str, int] = {}
    for k, p in enumerate(paths):
        keep.setdefault(p, k)
    return table.take(pa.array([keep[p] for p in sorted(keep)], pa.int64()))


def finalize(out: str | Path, map_size: int, keep: Iterable[str] | None = None, chunk: int = 1024):
    """Write ``results.parquet`` (no cluster columns yet) and ``maps.npy`` from the parts.

    Maps are copied from the raw file into a memory-mapped ``.npy`` in table order, ``chunk``
    rows at a time. ``keep``: only rows of these paths (the images the command asked for).
    Returns the table (with ``map_row`` dropped).
    """
    pa, _ = _pa()
    out = Path(out)
    table = read_parts(out)
    if keep is not None:
        wanted = set(keep)
        mask = [p in wanted for p in table.column("path").to_pylist()]
        table = table.filter(pa.array(mask, pa.bool_()))
    rows = table.column("map_row").to_numpy().astype(np.int64)
    n_raw = (out / PARTS_DIR / RAW_MAPS).stat().st_size // (map_size * map_size * 2)
    raw = (
        np.memmap(out / PARTS_DIR / RAW_MAPS, np.float16, "r", shape=(n_raw, map_size, map_size))
        if n_raw
        else np.zeros((0, map_size, map_size), np.float16)
    )
    tmp = out / (MAPS_FILE + ".tmp")
    npy = np.lib.format.open_memmap(tmp, "w+", np.float16, (len(rows), map_size, map_size))
    for a in range(0, len(rows), chunk):
        npy[a : a + chunk] = raw[rows[a : a + chunk]]
    npy.flush()
    del npy, raw
    os.replace(tmp, out / MAPS_FILE)
    table = table.drop_columns(["map_row"])
    write_results(out, table, None)
    return table


def write_results(out: str | Path, table, clusters: Mapping[str, np.ndarray] | None) -> Path:
    """Write ``results.parquet``: the row columns plus ``cluster``, ``x``, ``y``.

    Args:
        out: Folder.
        table: Arrow table with :data:`ROW_COLUMNS`.
        clusters: ``{"cluster": int (N,), "x": (N,), "y": (N,)}`` with -1 / NaN for rows
            without one, or None for all null.
    """
    pa, pq = _pa()
    table = table.select(list(ROW_COLUMNS)).cast(_schema(ROW_COLUMNS))
    n = table.num_rows
    for name, typ in CLUSTER_COLUMNS.items():
        if clusters is None:
            col = pa.nulls(n, pa.type_for_alias(typ))
        else:
            v = np.asarray(clusters[name])
            missing = v < 0 if name == "cluster" else ~np.isfinite(v)
            col = pa.array(v.astype(typ), pa.type_for_alias(typ), mask=missing)
        table = table.append_column(name, col)
    path = Path(out) / RESULTS_FILE
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def remove_parts(out: str | Path) -> None:
    """Delete the work-in-progress chunks once the final files are written."""
    shutil.rmtree(Path(out) / PARTS_DIR, ignore_errors=True)


# -- clusters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterInfo:
    """One entry of ``clusters.json``.

    Attributes:
        id: Cluster number; 0 is the largest.
        size: Number of images.
        share: ``size`` / images with a result.
        mean_bg_mass: Mean ``bg_mass`` of its images with a mask, or None.
        labels: Label → count (unlabelled images are not counted).
        preds: Prediction → count.
        accuracy: Share of its labelled images predicted right, or None.
        mean_map: PNG path relative to the folder.
        examples: Image paths (relative to the image folder), most typical first.
    """

    id: int
    size: int
    share: float
    mean_bg_mass: float | None
    labels: dict
    preds: dict
    accuracy: float | None
    mean_map: str
    examples: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "size": self.size,
            "share": self.share,
            "mean_bg_mass": self.mean_bg_mass,
            "labels": dict(self.labels),
            "preds": dict(self.preds),
            "accuracy": self.accuracy,
            "mean_map": self.mean_map,
            "examples": list(self.examples),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> ClusterInfo:
        return cls(
            id=int(d["id"]),
            size=int(d["size"]),
            share=float(d.get("share") or 0.0),
            mean_bg_mass=d.get("mean_bg_mass"),
            labels=dict(d.get("labels") or {}),
            preds=dict(d.get("preds") or {}),
            accuracy=d.get("accuracy"),
            mean_map=str(d.get("mean_map") or ""),
            examples=tuple(d.get("examples") or ()),
        )


def write_clusters(out: str | Path, clusters: Iterable[ClusterInfo]) -> Path:
    """Write ``clusters.json`` (a list, largest cluster first)."""
    path = Path(out) / CLUSTERS_FILE
    text = json.dumps(to_jsonable([c.to_dict() for c in clusters]), indent=1, ensure_ascii=False)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def read_clusters(out: str | Path) -> list[ClusterInfo]:
    """``clusters.json`` of a folder; [] when it has none (partial scan)."""
    path = Path(out) / CLUSTERS_FILE
    if not path.is_file():
        return []
    try:
        return [ClusterInfo.from_dict(d) for d in json.loads(path.read_text("utf-8"))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HookScopeError(f"Cannot read {path} ({exc}).") from exc


# -- reading a finished (or partial) folder ---------------------------------------------------
@dataclass(frozen=True)
class ScanOutputs:
    """A scan folder opened for viewing.

    Attributes:
        folder: The output folder.
        settings: ``scan.json`` (``identity`` holds model, layer, method, target, map_size,
            input_spec, images, masks; ``state`` is "complete" or "partial").
        table: ``results.parquet`` as a pyarrow Table (rows in table order).
        maps: ``maps.npy``, memory-mapped float16 (rows, S, S).
        clusters: ``clusters.json`` entries, largest first ([] for a partial scan).
    """

    folder: Path
    settings: dict
    table: Any
    maps: np.ndarray
    clusters: tuple[ClusterInfo, ...]

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def complete(self) -> bool:
        return self.settings.get("state") == "complete"

    @property
    def images_root(self) -> Path:
        return Path(self.settings["identity"]["images"])

    @property
    def masks_root(self) -> Path | None:
        m = self.settings["identity"].get("masks")
        return Path(m) if m else None

    def column(self, name: str) -> np.ndarray:
        """A column as numpy: floats with NaN for null, ints with -1, bools/strings as objects
        (None for null)."""
        col = self.table.column(name)
        typ = str(col.type)
        if typ.startswith(("float", "double", "halffloat")):
            return col.to_numpy(zero_copy_only=False).astype(np.float32)
        if typ.startswith(("int", "uint")):
            return np.asarray(col.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        return np.asarray(col.to_pylist(), dtype=object)

    def image_path(self, row: int) -> Path:
        """Absolute path of the image of table row ``row``."""
        return self.images_root / self.table.column("path")[row].as_py()

    @property
    def input_spec(self) -> InputSpec:
        """The model's input spec the scan used."""
        return spec_from_dict(self.settings["identity"].get("input_spec") or {})

    def input_image(self, row: int, side: int | None = None) -> np.ndarray | None:
        """Row ``row``'s image as the model saw it (resized, cropped), uint8 RGB (H, W, 3), or
        ``side``×``side``; None when the file cannot be read (any more)."""
        try:
            img = preprocess(load_image(self.image_path(row)), self.input_spec).convert("RGB")
        except HookScopeError:
            return None
        if side is not None:
            img = img.resize((side, side), Image.BILINEAR)
        return np.asarray(img)

    def map(self, row: int) -> np.ndarray:
        """The map of row ``row`` as float32 (S, S)."""
        return np.asarray(self.maps[row], np.float32)

    def rows_of(self, cluster: int) -> np.ndarray:
        """Table rows of a cluster, in table order."""
        return np.flatnonzero(self.column("cluster") == cluster)

    def mean_map(self, cluster: int) -> np.ndarray:
        """Mean map of a cluster's rows, float32 (S, S)."""
        rows = self.rows_of(cluster)
        return mean_of(self.maps, rows)


def mean_of(maps: np.ndarray, rows: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Mean of ``maps[rows]`` in float64, ``chunk`` rows at a time (flat memory)."""
    acc = np.zeros(maps.shape[1:], np.float64)
    for a in range(0, len(rows), chunk):
        acc += np.asarray(maps[rows[a : a + chunk]], np.float64).sum(0)
    return (acc / max(1, len(rows))).astype(np.float32)


def open_scan(folder: str | Path) -> ScanOutputs:
    """Open a scan's output folder (finished, or partial after a cancel) without rerunning.

    Raises:
        HookScopeError: The folder has no scan results.
    """
    _, pq = _pa()
    folder = Path(folder)
    settings = read_settings(folder)
    if settings is None or not (folder / RESULTS_FILE).is_file():
        raise HookScopeError(
            f"{folder} holds no scan results (results.parquet and scan.json); run scan first."
        )
    table = pq.read_table(folder / RESULTS_FILE)
    maps = np.load(folder / MAPS_FILE, mmap_mode="r")
    if len(maps) != table.num_rows:
        raise HookScopeError(
            f"{folder}: maps.npy has {len(maps)} maps for {table.num_rows} rows; rerun the scan."
        )
    return ScanOutputs(folder, settings, table, maps, tuple(read_clusters(folder)))
