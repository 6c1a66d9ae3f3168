"""Colouring and figures: pyqtgraph colour maps, overlays, colour bars, PNG and SVG files.

One renderer for the GUI docks and the CLI: a figure is a row of panels (title + RGB image)
with an optional colour bar. PNG is painted with QPainter; SVG is written as plain XML with
each image embedded as a base64 PNG, so it opens in any browser. Works headless with
``QT_QPA_PLATFORM=offscreen`` (the CLI sets it when there is no display).
"""

from __future__ import annotations

import base64
import io
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from core.display.render import blend, normalize, normalize_signed, upsample
from core.errors import HookScopeError

# Our names → pyqtgraph's bundled maps (no colour tables written here).
COLORMAPS: dict[str, str] = {
    "jet": "CET-R4",  # colorcet rainbow4: the jet look, perceptually evened out
    "turbo": "turbo",
    "viridis": "viridis",
    "inferno": "inferno",
    "magma": "magma",
    "plasma": "plasma",
    "cividis": "cividis",
    "gray": "CET-L1",
    "grey": "CET-L1",
    "bwr": "CET-D1",  # diverging blue-white-red: zero at the centre
    "coolwarm": "CET-D1A",
    "gwv": "CET-D3",
}
SIGNED_COLORMAPS = ("bwr", "coolwarm", "gwv")
DEFAULT_CMAP = "jet"
DEFAULT_SIGNED_CMAP = "bwr"

FONT_PX = 13
MARGIN = 10
GAP = 10
BAR_W = 16
BAR_TEXT_W = 64


@lru_cache(maxsize=32)
def lut(name: str = DEFAULT_CMAP, n: int = 256) -> np.ndarray:
    """Colour map ``name`` (a :data:`COLORMAPS` key or a pyqtgraph name) as (n, 3) uint8."""
    import pyqtgraph as pg

    key = COLORMAPS.get(str(name).lower(), name)
    try:
        cmap = pg.colormap.get(key)
    except (FileNotFoundError, KeyError, ValueError, OSError):
        raise HookScopeError(
            f"Unknown colour map '{name}': use one of {', '.join(COLORMAPS)}."
        ) from None
    table = np.asarray(cmap.getLookupTable(0.0, 1.0, n, alpha=False, mode="byte"))
    return np.ascontiguousarray(table[:, :3].astype(np.uint8))


def colorize(
    map2d: np.ndarray,
    cmap: str = DEFAULT_CMAP,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Colour a 2-D map: values in [0, 1] (or scaled from ``vmin``..``vmax``) → uint8 RGB."""
    m = np.asarray(map2d, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"colorize expects a 2-D map, got shape {m.shape}")
    if vmin is not None or vmax is not None:
        m = normalize(m, vmin, vmax)
    table = lut(cmap)
    idx = np.clip(np.nan_to_num(m, nan=0.0) * (len(table) - 1) + 0.5, 0, len(table) - 1)
    return table[idx.astype(np.intp)]


def colorize_signed(
    arr2d: np.ndarray, cmap: str = DEFAULT_SIGNED_CMAP, limit: float | None = None
) -> np.ndarray:
    """Colour a signed 2-D map with a diverging map, 0 at the centre colour, ±limit at the ends."""
    return colorize(normalize_signed(arr2d, limit), cmap)


def overlay(
    image_rgb: np.ndarray, map2d: np.ndarray, cmap: str = DEFAULT_CMAP, alpha: float = 0.5
) -> np.ndarray:
    """Blend a coloured [0, 1] map over an RGB image; the map is resized to the image.

    Args:
        image_rgb: uint8 (H, W, 3).
        map2d: Map in [0, 1], any size.
        cmap: Colour map name.
        alpha: Weight of the map (0 = image only, 1 = map only).
    """
    img = np.asarray(image_rgb)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.uint8)
    m = np.asarray(map2d, dtype=np.float32)
    if m.shape != img.shape[:2]:
        m = np.clip(upsample(m, img.shape[:2]), 0, 1)
    return blend(img, colorize(m, cmap), alpha)


def colorbar_image(cmap: str, height: int = 224, width: int = BAR_W) -> np.ndarray:
    """A vertical colour bar, high values on top, uint8 (height, width, 3)."""
    ramp = np.linspace(1.0, 0.0, max(2, int(height)), dtype=np.float32)
    return np.ascontiguousarray(np.repeat(colorize(ramp[:, None], cmap), int(width), axis=1))


# -- figures -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """One picture of a figure: a title over a uint8 RGB image (H, W, 3)."""

    title: str
    rgb: np.ndarray


@dataclass(frozen=True)
class ColorBar:
    """A colour bar at the right of a figure, labelled from ``vmin`` (bottom) to ``vmax``."""

    cmap: str = DEFAULT_CMAP
    vmin: float = 0.0
    vmax: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class _Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    title_y: int | None
    panels: list[tuple[_Box, int]]  # image box, title baseline y
    bar: _Box | None
    ticks: list[tuple[int, str]]  # (y, text) at the bar's right
    bar_label_y: int


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _text_w(text: str) -> int:
    """Generous width estimate of a line of text (the SVG has no font metrics)."""
    return int(len(text) * FONT_PX * 0.62)


def _elide(text: str, width: int) -> str:
    if _text_w(text) <= width:
        return text
    keep = max(1, int(width / (FONT_PX * 0.62)) - 1)
    return text[:keep] + "…"


def auto_scale(panels, min_side: int = 192) -> int:
    """Integer magnification that makes small panels (e.g. 64 px maps) readable."""
    tallest = max((int(np.asarray(p.rgb).shape[0]) for p in panels), default=min_side)
    return max(1, -(-min_side // max(tallest, 1)))


def _layout(panels, colorbar, title, scale: float) -> _Layout:
    line = int(FONT_PX * 1.6)
    top = MARGIN + (line if title else 0)
    sizes = [
        (int(round(p.rgb.shape[1] * scale)), int(round(p.rgb.shape[0] * scale))) for p in panels
    ]
    has_titles = any(p.title for p in panels)
    img_top = top + (line if has_titles else 0)
    tallest = max((h for _, h in sizes), default=0)
    x = MARGIN
    boxes = []
    for w, h in sizes:
        boxes.append((_Box(x, img_top, w, h), img_top - int(FONT_PX * 0.5)))
        x += w + GAP
    bar, ticks = None, []
    if colorbar is not None:
        bar_h = max(tallest, 64)
        bar = _Box(x, img_top, BAR_W, bar_h)
        vals = np.linspace(colorbar.vmax, colorbar.vmin, 3)
        ys = [img_top + int(round(i * (bar_h - 1) / 2)) for i in range(3)]
        ticks = [(y, _fmt(v)) for y, v in zip(ys, vals)]
        label_w = int(len(colorbar.label) * FONT_PX * 0.62)  # generous estimate, no Qt needed
        x += max(BAR_W + BAR_TEXT_W, label_w + 4)
    else:
        x -= GAP
    width = max(x + MARGIN, 2 * MARGIN + 1, _text_w(title or "") + 2 * MARGIN)
    height = img_top + max(tallest, bar.h if bar else 0) + MARGIN
    return _Layout(
        width, height, MARGIN + FONT_PX if title else None, boxes, bar, ticks, img_top - 6
    )


def _tick_baseline(y: int, bar: _Box) -> int:
    """Baseline of a tick label: centred on the tick, kept within the bar's height."""
    return min(max(y + FONT_PX // 2 - 1, bar.y + FONT_PX - 3), bar.y + bar.h)


def _check_panels(panels) -> list[Panel]:
    panels = list(panels)
    if not panels:
        raise HookScopeError("A figure needs at least one panel.")
    out = []
    for p in panels:
        rgb = np.asarray(p.rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"panel '{p.title}' must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
            )
        out.append(Panel(p.title, np.ascontiguousarray(rgb[..., :3])))
    return out


def ensure_qt() -> None:
    """Make sure a QGuiApplication exists (offscreen when there is no display)."""
    from PySide6 import QtGui

    if QtGui.QGuiApplication.instance() is None:
        headless = sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        if headless:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        ensure_qt.app = QtGui.QGuiApplication([])  # keep a reference for the process


def render_figure(
    panels: list[Panel],
    colorbar: ColorBar | None = None,
    *,
    title: str | None = None,
    scale: float | None = None,
):
    """Paint a figure into a ``QImage`` (white background); ``scale`` None = :func:`auto_scale`."""
    from PySide6 import QtCore, QtGui

    from gui.qtutil import rgb_to_qimage

    ensure_qt()
    panels = _check_panels(panels)
    scale = scale or auto_scale(panels)
    lay = _layout(panels, colorbar, title, scale)
    img = QtGui.QImage(lay.width, lay.height, QtGui.QImage.Format.Format_RGB32)
    img.fill(QtGui.QColor("white"))
    p = QtGui.QPainter(img)
    try:
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
        p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, scale != int(scale))
        font = QtGui.QFont()
        font.setPixelSize(FONT_PX)
        p.setFont(font)
        p.setPen(QtGui.QColor(20, 20, 20))
        fm = QtGui.QFontMetrics(font)
        if title:
            p.drawText(MARGIN, lay.title_y, title)
        for panel, (box, ty) in zip(panels, lay.panels):
            p.drawImage(QtCore.QRect(box.x, box.y, box.w, box.h), rgb_to_qimage(panel.rgb))
            text = fm.elidedText(panel.title, QtCore.Qt.TextElideMode.ElideRight, box.w)
            p.drawText(box.x + (box.w - fm.horizontalAdvance(text)) // 2, ty, text)
        if colorbar is not None and lay.bar is not None:
            b = lay.bar
            p.drawImage(
                QtCore.QRect(b.x, b.y, b.w, b.h), rgb_to_qimage(colorbar_image(colorbar.cmap, b.h))
            )
            p.setPen(QtGui.QColor(90, 90, 90))
            p.drawRect(b.x, b.y, b.w - 1, b.h - 1)
            p.setPen(QtGui.QColor(20, 20, 20))
            for y, text in lay.ticks:
                p.drawLine(b.x + b.w, y, b.x + b.w + 3, y)
                p.drawText(b.x + b.w + 6, _tick_baseline(y, b), text)
            if colorbar.label:
                p.drawText(b.x, lay.bar_label_y, colorbar.label)
    finally:
        p.end()
    return img


def figure_rgb(
    panels: list[Panel], colorbar: ColorBar | None = None, *, title=None, scale=None
) -> np.ndarray:
    """The figure as a uint8 RGB array (H, W, 3), e.g. to show or test it."""
    from gui.qtutil import qimage_to_rgb

    return qimage_to_rgb(render_figure(panels, colorbar, title=title, scale=scale))


def _png_b64(rgb: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def figure_svg(
    panels: list[Panel], colorbar: ColorBar | None = None, *, title=None, scale=None
) -> str:
    """The figure as SVG text: images embedded as base64 PNG, titles and ticks as text."""
    panels = _check_panels(panels)
    scale = scale or auto_scale(panels)
    lay = _layout(panels, colorbar, title, scale)
    font = f'font-family="DejaVu Sans, Arial, sans-serif" font-size="{FONT_PX}" fill="#141414"'
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'version="1.1" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}">',
        f'<rect width="{lay.width}" height="{lay.height}" fill="white"/>',
    ]

    def image(box: _Box, rgb: np.ndarray, label: str) -> str:
        data = f"data:image/png;base64,{_png_b64(rgb)}"
        smooth = "auto" if scale != int(scale) else "pixelated"
        return (
            f'<image x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" '
            f'preserveAspectRatio="none" style="image-rendering:{smooth}" '
            f'href="{data}" xlink:href="{data}"><title>{escape(label)}</title></image>'
        )

    if title:
        out.append(f'<text x="{MARGIN}" y="{lay.title_y}" {font}>{escape(title)}</text>')
    for panel, (box, ty) in zip(panels, lay.panels):
        out.append(image(box, panel.rgb, panel.title))
        if panel.title:
            cx = box.x + box.w / 2
            text = escape(_elide(panel.title, box.w))
            out.append(f'<text x="{cx:g}" y="{ty}" text-anchor="middle" {font}>{text}</text>')
    if colorbar is not None and lay.bar is not None:
        b = lay.bar
        out.append(image(b, colorbar_image(colorbar.cmap, b.h), f"colour map {colorbar.cmap}"))
        out.append(
            f'<rect x="{b.x + 0.5}" y="{b.y + 0.5}" width="{b.w - 1}" height="{b.h - 1}" '
            'fill="none" stroke="#5a5a5a"/>'
        )
        for y, text in lay.ticks:
            out.append(
                f'<line x1="{b.x + b.w}" y1="{y + 0.5}" x2="{b.x + b.w + 3}" y2="{y + 0.5}" '
                'stroke="#141414"/>'
            )
            out.append(
                f'<text x="{b.x + b.w + 6}" y="{_tick_baseline(y, b)}" {font}>{escape(text)}</text>'
            )
        if colorbar.label:
            out.append(
                f'<text x="{b.x}" y="{lay.bar_label_y}" {font}>{escape(colorbar.label)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def save_figure(
    path: str | Path,
    panels: list[Panel],
    colorbar: ColorBar | None = None,
    *,
    title: str | None = None,
    scale: float | None = None,
) -> Path:
    """Save a figure as ``.png`` (QPainter) or ``.svg`` (XML with embedded PNGs).

    Args:
        path: Output file; the suffix picks the format (``.png``, ``.svg``, ``.jpg``).
        panels: Pictures shown left to right.
        colorbar: Optional colour bar at the right.
        title: Optional line of text above the panels.
        scale: Panel magnification; None picks an integer one so panels are >= 192 px tall.

    Returns:
        The path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".svg":
            path.write_text(figure_svg(panels, colorbar, title=title, scale=scale), "utf-8")
            return path
        if suffix not in (".png", ".jpg", ".jpeg"):
            raise HookScopeError(
                f"Cannot save a figure as '{suffix or path.name}': use .png, .svg or .jpg."
            )
        img = render_figure(panels, colorbar, title=title, scale=scale)
        if not img.save(str(path)):
            raise HookScopeError(f"Could not write the image {path}; check the folder exists.")
    except OSError as exc:
        raise HookScopeError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    return path


# -- ready-made panel sets (CLI and docks) -----------------------------------------------------
def cam_panels(
    image_rgb: np.ndarray,
    maps: dict[str, np.ndarray],
    *,
    method: str = "",
    cmap: str = DEFAULT_CMAP,
    alpha: float = 0.5,
    show_input: bool = True,
) -> tuple[list[Panel], ColorBar]:
    """The input plus one overlay per layer, and the [0, 1] colour bar."""
    panels = [Panel("input", image_rgb)] if show_input else []
    label = f"{method} " if method else ""
    panels += [
        Panel(f"{label}{name}", overlay(image_rgb, m, cmap, alpha)) for name, m in maps.items()
    ]
    return panels, ColorBar(cmap, 0.0, 1.0, method or "CAM")


def attribution_panels(
    image_rgb: np.ndarray,
    attr: np.ndarray,
    *,
    title: str = "attribution",
    signed: bool = True,
    cmap: str | None = None,
    gradient_rgb: bool = False,
    show_input: bool = True,
) -> tuple[list[Panel], ColorBar]:
    """Panels for a (C, H, W) attribution: the channel sum coloured, plus its colour bar.

    Signed maps use a diverging map centred on 0 with limits at the 99.5th percentile of |sum|
    (outliers clip); unsigned maps (saliency) use the max over channels from 0.

    Args:
        image_rgb: The input as uint8 (H, W, 3).
        attr: Attribution (C, H, W) or (H, W).
        title: Panel title of the map.
        signed: Colour with a diverging map.
        cmap: Colour map (default bwr when signed, inferno otherwise).
        gradient_rgb: Also show the gradient as an RGB picture (guided backprop style).
        show_input: Start with the input image.
    """
    from core.display.render import gradient_to_rgb, robust_limit

    a = np.asarray(attr, dtype=np.float32)
    a3 = a[None] if a.ndim == 2 else a
    panels = [Panel("input", image_rgb)] if show_input else []
    if gradient_rgb:
        panels.append(Panel(f"{title} (RGB)", gradient_to_rgb(a3)))
    if signed:
        cmap = cmap if cmap in SIGNED_COLORMAPS else DEFAULT_SIGNED_CMAP
        m = a3.sum(axis=0)
        lim = robust_limit(m) or float(np.abs(m).max())
        panels.append(Panel(title, colorize_signed(m, cmap, lim)))
        return panels, ColorBar(cmap, -lim, lim, "channel sum")
    cmap = cmap or "inferno"
    m = np.abs(a3).max(axis=0)
    hi = float(m.max())
    panels.append(Panel(title, colorize(m, cmap, vmin=0.0, vmax=hi if hi > 0 else 1.0)))
    return panels, ColorBar(cmap, 0.0, hi, "channel max")
