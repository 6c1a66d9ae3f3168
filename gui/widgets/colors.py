"""Colour maps for the analysis docks: pyqtgraph lookup tables, colourised arrays, colour bars.

Uses ``gui.figures.COLORMAPS`` for the list of names when that module is present, so the CAM
dock offers the same maps as the CLI figures; the lookup tables always come from pyqtgraph.
"""

from __future__ import annotations

import functools

import numpy as np
import pyqtgraph as pg
from PIL import Image, ImageDraw

SEQUENTIAL = ("viridis", "inferno", "magma", "plasma", "turbo", "cividis", "CET-L1")
DIVERGING = "bwr"
"""Blue-white-red: zero in the middle, for gradients and signed attributions."""
_ALIASES = {"bwr": "CET-D1", "coolwarm": "CET-D1A", "jet": "CET-R4", "gray": "CET-L1"}


def colormap_names() -> list[str]:
    """Names for a colour map combo (gui.figures' list when it exists)."""
    try:
        from gui.figures import COLORMAPS
    except ImportError:
        return list(SEQUENTIAL)
    names = list(COLORMAPS)
    return names or list(SEQUENTIAL)


@functools.cache
def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table: gui.figures' names first, then pyqtgraph's, else viridis."""
    try:
        from gui.figures import lut as figures_lut

        return figures_lut(name)
    except Exception:  # figures missing or an unknown name: fall back below
        pass
    try:
        cmap = pg.colormap.get(_ALIASES.get(name, name))
    except (FileNotFoundError, KeyError, ValueError, OSError):
        cmap = pg.colormap.get("viridis")
    table = np.asarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=False), dtype=np.uint8)
    table.setflags(write=False)
    return table


def colorize(a: np.ndarray, name: str, levels: tuple[float, float] | None = None) -> np.ndarray:
    """Map values to uint8 RGB (H, W, 3); NaN becomes light grey (tile gaps)."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = levels if levels is not None else (np.nanmin(a), np.nanmax(a))
    span = float(hi - lo) or 1.0
    t = np.clip((a - lo) / span, 0.0, 1.0)
    idx = np.nan_to_num(t * 255.0 + 0.5, nan=0.0).astype(np.uint8)
    rgb = lut(name)[idx]
    rgb[~np.isfinite(a)] = 200
    return rgb


def overlay(base: np.ndarray, heat01: np.ndarray, name: str, alpha: float) -> np.ndarray:
    """A [0, 1] map coloured with ``name`` and blended over a uint8 RGB image."""
    top = colorize(heat01, name, (0.0, 1.0))
    if top.shape != base.shape:
        top = np.asarray(Image.fromarray(top).resize(base.shape[1::-1], Image.BILINEAR))
    a = float(np.clip(alpha, 0.0, 1.0))
    out = (1.0 - a) * base.astype(np.float32) + a * top.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def enlarge(rgb: np.ndarray, min_side: int = 256, max_side: int = 2048) -> np.ndarray:
    """Nearest-neighbour upscale so small maps stay crisp (and readable) in saved figures."""
    h, w = rgb.shape[:2]
    k = max(1, min(min_side // max(1, min(h, w)), max_side // max(1, max(h, w))))
    return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1) if k > 1 else rgb


def colorbar(
    name: str, levels: tuple[float, float], height: int = 256, label: str = ""
) -> np.ndarray:
    """A vertical colour bar with its low / middle / high values, uint8 RGB."""
    bar_w, text_w = 18, 70
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    canvas = Image.new("RGB", (bar_w + text_w, height + 16), "white")
    canvas.paste(Image.fromarray(colorize(ramp, name, (0.0, 1.0))), (0, 8))
    draw = ImageDraw.Draw(canvas)
    lo, hi = float(levels[0]), float(levels[1])
    for frac, value in ((0.0, hi), (0.5, (lo + hi) / 2), (1.0, lo)):
        y = 8 + int(frac * (height - 1))
        draw.line([(bar_w, y), (bar_w + 4, y)], fill=(30, 30, 30))
        draw.text((bar_w + 6, max(0, y - 6)), f"{value:.3g}", fill=(30, 30, 30))
    if label:
        draw.text((bar_w + 6, height // 4), label, fill=(90, 90, 90))
    return np.asarray(canvas)


@functools.cache
def qt_colormap(name: str) -> pg.ColorMap:
    """The pyqtgraph ColorMap for ``name`` (for pg.ColorBarItem); built once per name.

    Building one converts 256 colours through pg.mkColor, which was a third of every redraw.
    """
    return pg.ColorMap(np.linspace(0.0, 1.0, 256), lut(name))
