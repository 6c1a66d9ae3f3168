"""A watched run's folder: ``run.json``, ``stats/part-*.parquet`` chunks, ``probe/step-*.npz``.

Every file appears whole or not at all (written under a temporary name, fsynced, renamed), so
a run killed at any moment leaves every finished chunk readable. Under ``torch.distributed``
each rank writes its own chunks (``part-r{rank}-*``); rank 0 writes ``run.json`` and probes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hookscope.core.errors import HookScopeError
from hookscope.core.training.stats import MODULE_COLUMNS, PARAM_COLUMNS

COLUMNS = (
    "step",
    "rank",
    "kind",  # "module" (activations, output gradient), "param" (one parameter) or "loss"
    "module",
    "param",
    "loss",
    *MODULE_COLUMNS,
    *PARAM_COLUMNS,
)
TEXT = {"kind", "module", "param"}
INTS = {"step", "rank"}


def _arrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise HookScopeError(
            "Watching a training run needs pyarrow: pip install 'hookscope[watch]'."
        ) from exc
    return pa, pq


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path`` (whole or absent)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HookScopeError(f"Could not write {path}: {exc.strerror or exc}.") from exc


def write_run_json(out: Path, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "run.json", lambda p: p.write_text(json.dumps(info, indent=2)))


def write_chunk(out: Path, rank: int, seq: int, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with some of :data:`COLUMNS`) as one Parquet chunk."""
    pa, pq = _arrow()
    folder = out / "stats"
    folder.mkdir(parents=True, exist_ok=True)
    cols = {}
    for c in COLUMNS:
        values = [r.get(c) for r in rows]
        if c in TEXT:
            cols[c] = pa.array([v or "" for v in values], pa.string())
        elif c in INTS:
            cols[c] = pa.array([int(v or 0) for v in values], pa.int64())
        else:
            cols[c] = pa.array([np.nan if v is None else float(v) for v in values], pa.float64())
    path = folder / f"part-r{rank}-{seq:06d}.parquet"
    atomic_write(path, lambda p: pq.write_table(pa.table(cols), p))
    return path


def write_probe(out: Path, step: int, maps: np.ndarray, **extra) -> Path:
    folder = out / "probe"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.npz"

    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez_compressed(fh, maps=maps.astype(np.float32), step=step, **extra)

    atomic_write(path, write)
    return path


@dataclass
class RunData:
    """Everything a run folder holds, as numpy columns.

    Attributes:
        info: ``run.json``.
        columns: Column name → array over every stats row of every rank.
        probes: ``(step, maps (P, H, W), layer)`` in step order.
        notes: Sentences about chunks that could not be read (skipped).
        chunks: The chunk files read (a live run adds more: read again to follow it).
    """

    info: dict
    columns: dict[str, np.ndarray]
    probes: list[tuple[int, np.ndarray, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chunks: tuple[str, ...] = ()

    def rows(self, kind: str) -> dict[str, np.ndarray]:
        keep = self.columns["kind"] == kind
        return {c: v[keep] for c, v in self.columns.items()}


def read_run(out: str | Path) -> RunData:
    """Read a run folder; an unreadable chunk is skipped with a note, never a traceback."""
    out = Path(out)
    if not (out / "run.json").is_file():
        raise HookScopeError(f"{out} is not a watched run: it has no run.json.")
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise HookScopeError(f"{out / 'run.json'} cannot be read: {exc}.") from exc
    pa, pq = _arrow()
    tables, notes, chunks = [], [], []
    for path in sorted((out / "stats").glob("part-*.parquet")):
        try:
            tables.append(pq.read_table(path))
            chunks.append(path.name)
        except Exception as exc:  # pyarrow raises its own types for torn files
            notes.append(f"Skipped {path.name}: it cannot be read ({type(exc).__name__}).")
    if tables:
        table = pa.concat_tables(tables)
        columns = {c: table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}
        for c in TEXT:
            columns[c] = columns[c].astype(str)
    else:
        columns = {c: np.array([], dtype=str if c in TEXT else float) for c in COLUMNS}
    return RunData(info, columns, _read_probes(out, notes), notes, tuple(chunks))


def _read_probes(out: Path, notes: list[str]) -> list[tuple[int, np.ndarray, str]]:
    probes = []
    for path in sorted((out / "probe").glob("step-*.npz")):
        try:
            with np.load(path) as z:
                probes.append((int(z["step"]), z["maps"], str(z["layer"]) if "layer" in z else ""))
        except Exception as exc:
            notes.append(f"Skipped {path.name}: it cannot be read ({type(exc).__name__}).")
    return probes
