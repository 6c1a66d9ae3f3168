"""Numpy layout for the channel views: fast tiling, channel order, stats, histograms.

Everything here takes and returns numpy (no torch, no Qt), so the Activations and Gradients
docks can lay out 2048 channels in one vectorised step and tests can check the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SORT_KEYS = ("index", "mean", "max", "std")
"""How channels can be ordered in a mosaic (all but ``index`` descending)."""


@dataclass(frozen=True)
class Tiles:
    """Channels tiled into one image.

    Attributes:
        image: (H, W) float32; gaps and empty tiles are NaN (drawn transparent).
        rows: Tile rows.
        cols: Tile columns.
        tile: (h, w) of one tile.
        pad: Pixels between tiles.
        order: Channel shown in each tile, row-major.
        levels: (low, high) display levels for ``image``.
    """

    image: np.ndarray
    rows: int
    cols: int
    tile: tuple[int, int]
    pad: int
    order: np.ndarray
    levels: tuple[float, float]

    def slot_at(self, y: float, x: float) -> int | None:
        """Tile index under pixel (y, x), or None on a gap or outside."""
        if y < 0 or x < 0:
            return None
        h, w = self.tile
        r, dy = divmod(int(y), h + self.pad)
        c, dx = divmod(int(x), w + self.pad)
        if dy >= h or dx >= w or r >= self.rows or c >= self.cols:
            return None
        i = r * self.cols + c
        return i if i < len(self.order) else None

    def channel_at(self, y: float, x: float) -> int | None:
        """Channel under pixel (y, x), or None."""
        i = self.slot_at(y, x)
        return None if i is None else int(self.order[i])

    def origin(self, channel: int) -> tuple[int, int] | None:
        """Top-left pixel (y, x) of ``channel``'s tile, or None when it is not shown."""
        hits = np.flatnonzero(self.order == channel)
        if not hits.size:
            return None
        r, c = divmod(int(hits[0]), self.cols)
        return r * (self.tile[0] + self.pad), c * (self.tile[1] + self.pad)


def as_maps(a: np.ndarray) -> np.ndarray | None:
    """View an activation as (C, h, w) maps, or None when it is a vector (bar plot).

    (C, h, w) stays; (h, w) becomes one map; higher ranks fold the trailing dims into w.
    """
    a = np.asarray(a)
    if a.ndim <= 1:
        return None
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    return a.reshape(a.shape[0], a.shape[1], -1)


def channel_order(maps: np.ndarray, by: str = "index") -> np.ndarray:
    """Channel indices sorted by ``by`` (one of :data:`SORT_KEYS`), largest first."""
    maps = np.asarray(maps, dtype=np.float32)
    n = maps.shape[0]
    if by == "index" or n == 0:
        return np.arange(n)
    flat = np.nan_to_num(maps.reshape(n, -1))
    key = {"mean": flat.mean, "max": flat.max, "std": flat.std}[by](axis=1)
    return np.argsort(-key, kind="stable")


def grid_cols(n: int, tile: tuple[int, int], area: tuple[float, float], pad: int = 1) -> int:
    """Columns that show ``n`` tiles of ``tile`` (h, w) largest in an ``area`` (height, width).

    The mosaic then fills its panel whatever the panel's shape, instead of a square block.
    """
    n = max(int(n), 1)
    th, tw = tile[0] + pad, tile[1] + pad
    height, width = max(area[0], 1.0), max(area[1], 1.0)
    cols = np.arange(1, n + 1)
    rows = np.ceil(n / cols)
    scale = np.minimum(width / (cols * tw - pad), height / (rows * th - pad))
    return int(cols[int(np.argmax(scale))])  # first best: the fewest columns at that scale


def tile(
    maps: np.ndarray,
    order: np.ndarray | None = None,
    *,
    signed: bool = False,
    per_channel: bool = True,
    pad: int = 1,
    cols: int | None = None,
) -> Tiles:
    """Tile (C, h, w) maps into one near-square image in a single vectorised step.

    Args:
        maps: Feature maps of one sample.
        order: Channel per tile (default: all channels by index).
        signed: Keep the sign: tiles are scaled by their max |value| and levels are
            symmetric around 0 (gradients). Otherwise tiles are min-max scaled to [0, 1].
        per_channel: Scale each tile on its own; False keeps raw values with shared levels.
        pad: Gap in pixels between tiles.
        cols: Grid columns (default ceil(sqrt(n))).
    """
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32))
    order = np.arange(maps.shape[0]) if order is None else np.asarray(order, dtype=np.int64)
    n = len(order)
    h, w = maps.shape[1:]
    cols = max(1, cols or math.ceil(math.sqrt(max(n, 1))))
    rows = max(1, math.ceil(n / cols))
    t = maps[order]
    if per_channel and n:
        flat = t.reshape(n, -1)
        if signed:
            m = np.abs(flat).max(axis=1)
            t = t / np.where(m > 0, m, 1.0)[:, None, None]
        else:
            lo, hi = flat.min(axis=1), flat.max(axis=1)
            span = hi - lo
            t = (t - lo[:, None, None]) / np.where(span > 0, span, 1.0)[:, None, None]
    grid = np.full((rows * cols, h + pad, w + pad), np.nan, np.float32)
    grid[:n, :h, :w] = t
    image = grid.reshape(rows, cols, h + pad, w + pad).transpose(0, 2, 1, 3)
    image = image.reshape(rows * (h + pad), cols * (w + pad))[: -pad or None, : -pad or None]
    if per_channel:
        levels = (-1.0, 1.0) if signed else (0.0, 1.0)
    else:
        levels = signed_levels(t) if signed else value_levels(t)
    return Tiles(np.ascontiguousarray(image), rows, cols, (h, w), pad, order, levels)


def value_levels(a: np.ndarray) -> tuple[float, float]:
    """(min, max) of ``a`` ignoring NaN, widened when flat so a colour map still works."""
    a = np.asarray(a, dtype=np.float32)
    if not a.size or not np.isfinite(a).any():
        return 0.0, 1.0
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def signed_levels(a: np.ndarray) -> tuple[float, float]:
    """(-m, m) with m = max |a|, so zero sits in the middle of a diverging map."""
    a = np.abs(np.asarray(a, dtype=np.float32))
    m = float(np.nanmax(a)) if a.size and np.isfinite(a).any() else 0.0
    m = m if m > 0 else 1.0
    return -m, m


def stats(a: np.ndarray) -> dict[str, float]:
    """Mean, std, min, max and the fraction of exact zeros."""
    a = np.asarray(a, dtype=np.float32)
    if not a.size:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "zeros": 0.0}
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "zeros": float((a == 0).mean()),
    }


def histogram(a: np.ndarray, bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the finite values of ``a``."""
    a = np.asarray(a, dtype=np.float32).ravel()
    a = a[np.isfinite(a)]
    if not a.size:
        return np.zeros(bins), np.linspace(0, 1, bins + 1)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.histogram(a, bins=bins, range=(lo, hi))


INPUT_GRAD_MODES = ("max |grad| over channels", "signed mean over channels")


def input_gradient_map(grad: np.ndarray, mode: str = INPUT_GRAD_MODES[0]) -> np.ndarray:
    """Collapse an input gradient (C, H, W) to (H, W).

    ``max |grad|`` is the usual saliency view (Simonyan et al.); the signed mean keeps the
    direction, for a diverging map.
    """
    g = np.nan_to_num(np.asarray(grad, dtype=np.float32))
    if g.ndim == 2:
        g = g[None]
    if mode == INPUT_GRAD_MODES[1]:
        return g.mean(axis=0)
    return np.abs(g).max(axis=0)
