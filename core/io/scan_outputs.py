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
    .scan.lock       held (``flock``) by the one scan writing the folder

Rows reach disk in chunks (:class:`ScanWriter`): a chunk's maps are appended to ``maps.f16``
and synced first, then its rows are written to a temporary file, synced and renamed to the
part's name, so a part never names maps that are not on disk and never exists half written.
A crash or Ctrl+C loses at most the rows not yet in a part; a rerun with the same settings
reads the parts (and a finished folder's tables) and skips those images whose file is
unchanged (same size and modification time, ``file_stamp``); a part that cannot be read is
set aside and its images are computed again. One scan at a time writes a folder
(:func:`lock_folder`), and a failed write is one sentence (:func:`disk_errors`).
:func:`finalize` turns the parts into ``results.parquet`` and ``maps.npy`` streaming the maps
through ``np.lib.format.open_memmap``, so memory stays flat.
:func:`open_scan` reopens a folder (finished or partial) without rerunning anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "file_stamp": "string",  # "size:mtime_ns" of the image when scanned; resume redoes others
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


# -- before anything is written ---------------------------------------------------------------
def check_extras(ray: bool = False) -> None:
    """Refuse a scan whose optional packages are missing before it creates anything.

    Raises:
        HookScopeError: pyarrow or scikit-learn (or Ray, when asked for) is not installed.
    """
    missing = []
    for module, name in (("pyarrow.parquet", "pyarrow"), ("sklearn.manifold", "scikit-learn")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(name)
    if missing:
        raise HookScopeError(
            f"The dataset scan needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install 'hookscope[scan]'."
        )
    if ray:
        try:
            found = importlib.util.find_spec("ray") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise HookScopeError(
                "--ray needs Ray, which is not installed: pip install 'hookscope[scale]'."
            )


def file_stamp(path: str | Path) -> str | None:
    """``"size:mtime_ns"`` of a file, or None when it cannot be read.

    Part of a row's identity: an image replaced after it was scanned has another stamp, so a
    rerun computes it again instead of keeping the old row.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def disk_error(exc: OSError, out: str | Path) -> HookScopeError:
    """One sentence for a failed write into the output folder ``out``.

    An error on a file outside ``out`` (the decoding workers' shared memory, say) names that
    file instead of blaming the output folder.
    """
    where = exc.filename or out
    if not Path(os.path.abspath(where)).is_relative_to(os.path.abspath(out)):
        return HookScopeError(
            f"The scan stopped on {where}: {exc.strerror or exc}; running it again resumes it."
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HookScopeError(
            f"The disk holding {out} is full; free some space or pick another --out folder "
            "(running the scan again resumes it)."
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return HookScopeError(
            f"{where} cannot be written (a read-only folder or no permission); pick another "
            "--out folder."
        )
    return HookScopeError(f"Writing the scan to {out} failed: {exc.strerror or exc} ({where}).")


@contextlib.contextmanager
def disk_errors(out: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised inside (a full disk, a read-only folder) into one sentence."""
    try:
        yield
    except OSError as exc:
        raise disk_error(exc, out) from exc


def _writes(fn):
    """Run ``fn(out, ...)`` under :func:`disk_errors` ``(out)``."""

    @functools.wraps(fn)
    def wrapper(out, *args, **kwargs):
        with disk_errors(out):
            return fn(out, *args, **kwargs)

    return wrapper


LOCK_FILE = ".scan.lock"


class FolderLock:
    """An exclusive, non-blocking ``flock`` on ``OUT/.scan.lock``; see :func:`lock_folder`."""

    def __init__(self, out: Path, created: bool, fh):
        self.out, self.created, self._fh = out, created, fh

    def release(self, discard: bool = False) -> None:
        """Unlock. ``discard``: also remove the lock file (and the folder when this lock
        created it and nothing else is in it), for a scan refused before writing anything."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            if discard:
                with contextlib.suppress(OSError):
                    (self.out / LOCK_FILE).unlink()
                if self.created:
                    with contextlib.suppress(OSError):
                        self.out.rmdir()  # only when empty
        finally:
            fh.close()  # closing the descriptor drops the lock

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.release()


def lock_folder(out: str | Path) -> FolderLock:
    """Create the output folder if needed and take its lock (one scan per folder).

    Two scans writing one folder would interleave their parts, and rows would carry another
    image's map. The lock is an ``flock`` on a file inside the folder, so the system drops it
    when the process ends, however it ends.

    Raises:
        HookScopeError: Another scan holds the folder, or it cannot be created or written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HookScopeError(f"--out {out} is a file; give a folder.")
    created = not out.exists()
    with disk_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        fh = open(out / LOCK_FILE, "a+b")  # noqa: SIM115 - held until release()
    try:
        _try_lock(fh)
    except OSError as exc:
        if exc.errno in _NO_LOCKS:  # a file system without locks (some network shares)
            return FolderLock(out, created, fh)
        fh.close()
        if exc.errno in (errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK):
            raise HookScopeError(
                f"Another scan is writing to {out}; wait for it to finish or pick another "
                "--out folder."
            ) from exc
        raise disk_error(exc, out) from exc
    return FolderLock(out, created, fh)


def take_folder(out: Path, identity: dict, read, what: str) -> FolderLock:
    """Lock ``out`` (:func:`lock_folder`) for a job writing it, and check what it holds.

    The lock is taken before the folder is judged, so two runs cannot both find it free.

    Args:
        identity: What makes this job's output what it is (model, weights, settings).
        read: ``read(out)``: the folder's record of an earlier run (with its ``identity``),
            or None.
        what: The job's output in sentences: ``"scan"``, ``"atlas"``.

    Raises:
        HookScopeError: The folder holds other files, or this output made with another
            identity (resume needs the same one), or another run holds it.
    """
    lock = lock_folder(out)
    article = "an" if what[0] in "aeiou" else "a"
    try:
        info = read(out)
        if info is None:
            if any(p.name != LOCK_FILE for p in out.iterdir()):
                raise HookScopeError(
                    f"The output folder {out} is not empty and holds no {what}; pick a new or "
                    "empty one."
                )
            return lock
        before = info.get("identity", {})
        diff = [k for k in identity if before.get(k) != identity[k]]
        if diff:
            raise HookScopeError(
                f"{out} holds {article} {what} made with another {diff[0].replace('_', ' ')}; "
                "pick another --out folder or delete that one to start over."
            )
    except HookScopeError:
        lock.release(discard=True)
        raise
    return lock


# flock errors that mean "this file system has no locks", not "someone holds it".
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def _try_lock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the file's first byte
        import msvcrt

        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


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


@_writes
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
        images_root: The image folder. When given, rows are stamped with their file's
            :func:`file_stamp` and only images whose file is unchanged count as done.

    Attributes:
        done_paths: Images with a committed row that need no new computation.
        notes: Sentences about what resuming had to redo (unreadable parts, changed images).
    """

    def __init__(
        self,
        out: str | Path,
        map_size: int,
        chunk_rows: int = 256,
        images_root: str | Path | None = None,
    ):
        self.out = Path(out)
        self.parts = self.out / PARTS_DIR
        self.map_size = int(map_size)
        self.chunk_rows = max(1, int(chunk_rows))
        self.images_root = Path(images_root) if images_root is not None else None
        self.notes: list[str] = []
        self._raw_path = self.parts / RAW_MAPS
        self._rows: list[dict] = []
        self._row_bytes = self.map_size * self.map_size * 2
        with disk_errors(self.out):
            if not self.parts.is_dir() and (self.out / RESULTS_FILE).is_file():
                self.notes += seed_parts_from_results(self.out, self.map_size)
            self.parts.mkdir(parents=True, exist_ok=True)
            for tmp in self.parts.glob("part-*.tmp"):  # torn writes of a killed run
                tmp.unlink()
            self._raw_path.touch()
            stamps, committed = self._committed()
            self.done_paths = self._unchanged(stamps)
            # Maps past the last committed part belong to rows that never reached a part.
            with open(self._raw_path, "r+b") as fh:
                fh.truncate(committed * self._row_bytes)
            self._raw = open(self._raw_path, "ab")  # noqa: SIM115 - closed in close()
        self._next_map = committed
        self._next_part = 1 + max(
            (int(p.stem.split("-")[1]) for p in self._part_files()), default=-1
        )

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def _committed(self) -> tuple[dict[str, str | None], int]:
        """Path → stamp of the committed rows (a later part wins) and the maps they use.

        A part that cannot be read, or that names maps beyond ``maps.f16``, is renamed to
        ``*.unreadable``: its images are computed again.
        """
        stamps: dict[str, str | None] = {}
        maps = 0
        n_raw = self._raw_path.stat().st_size // self._row_bytes
        for p in self._part_files():
            t = _read_part(p, ["path", "map_row", "file_stamp"])
            rows = None if t is None else t.column("map_row").to_numpy()
            if t is None or (len(rows) and int(rows.max()) >= n_raw):
                p.replace(p.with_name(p.name + ".unreadable"))
                self.notes.append(
                    f"{p.name} of an earlier run could not be read (a write cut short); "
                    "its images are computed again."
                )
                continue
            stamps.update(zip(t.column("path").to_pylist(), t.column("file_stamp").to_pylist()))
            if len(rows):
                maps = max(maps, int(rows.max()) + 1)
        return stamps, maps

    def _unchanged(self, stamps: Mapping[str, str | None]) -> set[str]:
        """Committed paths whose file still has the stamp of its row."""
        if self.images_root is None:
            return set(stamps)
        done = {p for p, s in stamps.items() if s and file_stamp(self.images_root / p) == s}
        unknown = sum(1 for s in stamps.values() if not s)
        if unknown:
            self.notes.append(
                f"{unknown} row{'s' if unknown != 1 else ''} of the earlier run carry no file "
                "stamp (an older HookScope); their images are computed again."
            )
        changed = [
            p for p, s in stamps.items() if s and p not in done and (self.images_root / p).exists()
        ]
        if changed:
            self.notes.append(
                f"{len(changed)} image{'s' if len(changed) != 1 else ''} changed since the "
                f"earlier run (e.g. {changed[0]}) and {'are' if len(changed) != 1 else 'is'} "
                "computed again."
            )
        return done

    def add(self, rows: Sequence[Mapping[str, Any]], maps: np.ndarray) -> None:
        """Queue rows (dicts with :data:`ROW_COLUMNS` keys) and their (N, S, S) maps."""
        maps = np.asarray(maps, dtype=np.float16)
        if maps.shape != (len(rows), self.map_size, self.map_size):
            raise ValueError(f"maps of shape {maps.shape} for {len(rows)} rows")
        with disk_errors(self.out):
            self._raw.write(np.ascontiguousarray(maps).tobytes())
        for r in rows:
            row = {k: r.get(k) for k in ROW_COLUMNS}
            if row["file_stamp"] is None and self.images_root is not None:
                row["file_stamp"] = file_stamp(self.images_root / row["path"])
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
        pa, _ = _pa()
        with disk_errors(self.out):
            self._raw.flush()
            os.fsync(self._raw.fileno())
            table = pa.Table.from_pylist(self._rows, schema=_part_schema())
            write_atomic(table, self.parts / f"part-{self._next_part:06d}.parquet")
        self._next_part += 1
        self._rows = []

    def close(self) -> None:
        """Flush and close the raw map file (a second call does nothing)."""
        if self._raw.closed:
            return
        try:
            self.flush()
        finally:
            self._raw.close()

    def __enter__(self) -> ScanWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _part_schema():
    return _schema(ROW_COLUMNS | {"map_row": "int64"})


def write_atomic(table, final: str | Path) -> Path:
    """Write a Parquet table so that ``final`` never exists half written.

    The table goes to ``final`` with a ``.tmp`` suffix, is synced to the disk, renamed over
    ``final`` and the folder entry is synced: a kill or power cut at any moment leaves either
    no ``final`` or the whole file.
    """
    _, pq = _pa()
    final = Path(final)
    tmp = final.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_dir(final.parent)
    return final


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_part(path: Path, columns: Sequence[str] | None = None):
    """A part file as a table in :func:`_part_schema` (``file_stamp`` null in parts written
    before stamps existed), or None when it cannot be read."""
    pa, pq = _pa()
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException):
        return None
    schema = _part_schema()
    if "file_stamp" not in table.column_names:
        table = table.append_column("file_stamp", pa.nulls(table.num_rows, pa.string()))
    try:
        table = table.select(schema.names).cast(schema)
    except (KeyError, ValueError, pa.ArrowException):
        return None
    return table.select(list(columns)) if columns else table


def seed_parts_from_results(out: str | Path, map_size: int) -> list[str]:
    """Turn a finished folder's ``results.parquet`` + ``maps.npy`` back into parts.

    Used when a finished scan is rerun on a folder that has new images: the old rows are kept
    and only the new images are computed. Finished tables that cannot be read are left
    alone (every image is then computed again).

    Returns:
        Notes: one sentence when the finished tables could not be used.
    """
    pa, pq = _pa()
    out = Path(out)
    parts = out / PARTS_DIR
    try:
        table = pq.read_table(out / RESULTS_FILE)
        maps = np.load(out / MAPS_FILE, mmap_mode="r")
    except (OSError, ValueError, pa.ArrowException) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
            raise
        return [f"The earlier results in {out} could not be read; every image is scanned again."]
    if maps.shape[1:] != (map_size, map_size) or len(maps) != table.num_rows:
        return [f"The earlier maps in {out} do not match its table; every image is scanned again."]
    if "file_stamp" not in table.column_names:
        table = table.append_column("file_stamp", pa.nulls(table.num_rows, pa.string()))
    table = table.select(list(ROW_COLUMNS))
    parts.mkdir(parents=True, exist_ok=True)
    with open(parts / RAW_MAPS, "wb") as fh:
        for a in range(0, len(maps), 1024):
            fh.write(np.ascontiguousarray(maps[a : a + 1024], dtype=np.float16).tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    table = table.append_column("map_row", pa.array(np.arange(table.num_rows), pa.int64()))
    write_atomic(table.cast(_part_schema()), parts / "part-000000.parquet")
    return []


def read_parts(out: str | Path):
    """All committed rows of ``OUT/parts`` as one Arrow table sorted by path.

    A path written twice (an image computed again after it changed) keeps its last row;
    unreadable parts are skipped (:class:`ScanWriter` sets them aside when it opens).
    """
    pa, _ = _pa()
    files = sorted((Path(out) / PARTS_DIR).glob("part-*.parquet"))
    tables = [t for t in (_read_part(f) for f in files) if t is not None]
    if not tables:
        return _part_schema().empty_table()
    table = pa.concat_tables(tables)
    keep: dict[str, int] = {}
    for k, p in enumerate(table.column("path").to_pylist()):
        keep[p] = k  # later rows win
    return table.take(pa.array([keep[p] for p in sorted(keep)], pa.int64()))


@_writes
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


@_writes
def write_results(out: str | Path, table, clusters: Mapping[str, np.ndarray] | None) -> Path:
    """Write ``results.parquet``: the row columns plus ``cluster``, ``x``, ``y``.

    Args:
        out: Folder.
        table: Arrow table with :data:`ROW_COLUMNS`.
        clusters: ``{"cluster": int (N,), "x": (N,), "y": (N,)}`` with -1 / NaN for rows
            without one, or None for all null.
    """
    pa, _ = _pa()
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
    return write_atomic(table, Path(out) / RESULTS_FILE)


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


@_writes
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
    pa, pq = _pa()
    folder = Path(folder)
    settings = read_settings(folder)
    if settings is None or not (folder / RESULTS_FILE).is_file():
        raise HookScopeError(
            f"{folder} holds no scan results (results.parquet and scan.json); run scan first."
        )
    try:
        table = pq.read_table(folder / RESULTS_FILE)
        maps = np.load(folder / MAPS_FILE, mmap_mode="r")
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise HookScopeError(
            f"{folder} holds scan results that cannot be read ({type(exc).__name__}); run the "
            "scan again into a new --out folder."
        ) from exc
    if len(maps) != table.num_rows:
        raise HookScopeError(
            f"{folder}: maps.npy has {len(maps)} maps for {table.num_rows} rows; rerun the scan."
        )
    return ScanOutputs(folder, settings, table, maps, tuple(read_clusters(folder)))
