"""What the Training dock shows, computed from a run folder without Qt (tested headless)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hookscope.core.display.colormaps import colorize
from hookscope.core.training.diagnose import Finding, diagnose, series
from hookscope.core.training.store import RunData, read_run

ACT_STATS = ("act_mean", "act_std", "act_zero", "act_saturated")
STRIP_TILE = 64
"""Side of one probe map in the strip, in pixels."""


@dataclass(frozen=True)
class TrainingView:
    """A run as pictures and curves.

    Attributes:
        path: The run folder.
        info: Its ``run.json``.
        layers: Layers with parameters, in model order (rows of ``grad_log``).
        steps: Recorded steps (columns of ``grad_log``).
        act_steps: Recorded steps of the activation statistics.
        grad_log: log10 of each layer's gradient norm (NaN: none), (layers, steps).
        loss_steps, loss: Every step's loss.
        act_layers: Layers with activation statistics.
        act: Layer → statistic (``ACT_STATS``) → values over ``steps``.
        findings: The diagnosis.
        probe_steps: Steps of the probe maps.
        probe_strip: The probe images' maps (rows) over steps (columns), uint8 RGB, or None.
        probe_layer: The layer the probe maps explain.
        probe_rows: How many probe images the strip shows (its rows).
        notes: Sentences about what could not be read.
        files: The run's chunk and probe files when read (a live run adds more).
    """

    path: str
    info: dict
    layers: tuple[str, ...]
    steps: np.ndarray
    act_steps: np.ndarray
    grad_log: np.ndarray
    loss_steps: np.ndarray
    loss: np.ndarray
    act_layers: tuple[str, ...]
    act: dict[str, dict[str, np.ndarray]]
    findings: tuple[Finding, ...]
    probe_steps: tuple[int, ...] = ()
    probe_strip: np.ndarray | None = None
    probe_layer: str = ""
    probe_rows: int = 0
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())

    def layer_index(self, layer: str) -> int | None:
        return self.layers.index(layer) if layer in self.layers else None


def training_view(data: RunData, path: str = "", colormap: str = "viridis") -> TrainingView:
    """The dock's view of ``data``."""
    steps, layers, grads = series(data, "param", "grad_norm", combine="norm")
    with np.errstate(divide="ignore", invalid="ignore"):
        grad_log = np.where(grads > 0, np.log10(grads), np.nan)
    act_steps, act_layers, _ = series(data, "module", "act_mean")
    act = {name: {} for name in act_layers}
    for stat in ACT_STATS:
        _, names, values = series(data, "module", stat)
        for i, name in enumerate(names):
            act[name][stat] = values[i]
    loss = data.rows("loss")
    order = np.argsort(loss["step"], kind="stable")
    strip, probe_steps, probe_layer, probe_rows = _probe_strip(data, colormap)
    return TrainingView(
        path=str(path),
        info=data.info,
        layers=tuple(layers),
        steps=steps,
        act_steps=act_steps,
        grad_log=grad_log,
        loss_steps=loss["step"][order].astype(int),
        loss=loss["loss"][order],
        act_layers=tuple(act_layers),
        act=act,
        findings=tuple(diagnose(data)),
        probe_steps=probe_steps,
        probe_strip=strip,
        probe_layer=probe_layer,
        probe_rows=probe_rows,
        notes=tuple(data.notes),
        files=run_files(path) if path else (),
    )


def _probe_strip(data: RunData, colormap: str, rows: int = 4):
    """The probe images' maps (rows: up to ``rows`` images) at every probe step (columns)."""
    if not data.probes:
        return None, (), "", 0
    from PIL import Image

    def tile(m: np.ndarray) -> np.ndarray:
        img = Image.fromarray(np.nan_to_num(m.astype(np.float32)))
        img = img.resize((STRIP_TILE, STRIP_TILE), Image.Resampling.BILINEAR)
        return colorize(np.asarray(img), colormap)

    n = min(rows, min(len(maps) for _, maps, _ in data.probes))
    gap_v = np.full((STRIP_TILE, 2, 3), 255, np.uint8)
    lines = []
    for i in range(n):
        tiles = [tile(maps[i]) for _, maps, _ in data.probes]
        lines.append(np.concatenate([t for x in tiles for t in (x, gap_v)][:-1], axis=1))
    gap_h = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    strip = np.concatenate([r for line in lines for r in (line, gap_h)][:-1], axis=0)
    steps = tuple(int(s) for s, _, _ in data.probes)
    return strip, steps, data.probes[0][2], n


def run_files(path: str | Path) -> tuple[str, ...]:
    """The names of a run's chunks and probes: a change means there is something new."""
    path = Path(path)
    found = [*(path / "stats").glob("part-*.parquet"), *(path / "probe").glob("step-*.npz")]
    return tuple(sorted(p.name for p in found))


def read_view(path: str | Path, known: tuple[str, ...] | None = None) -> TrainingView | None:
    """Read the run at ``path``; None when its files are still ``known`` (nothing new)."""
    if known is not None and run_files(path) == tuple(known):
        return None
    return training_view(read_run(path), str(path))
