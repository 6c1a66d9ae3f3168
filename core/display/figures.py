"""The one renderer: overlays, colour bars and figures (PNG, SVG) as numpy / PIL, no Qt.

Every coloured picture HookScope shows or writes comes from here and from
:mod:`core.display.colormaps`: the docks colour their maps with ``colorize`` / :func:`overlay`
(or hand the raw values to a ``pg.ImageItem`` with ``lut``, which maps values to colours
exactly as ``colorize`` does), and Save, Copy, File ▸ Export all and the CLI's ``cam`` /
``attribute`` figures paint the same arrays with :func:`figure_rgb` / :func:`save_figure`.
A figure is a row of panels (title + RGB image), each with an optional colour bar at its
right. PNG is painted with PIL (DejaVu Sans when installed, else Pillow's own font); SVG is
plain XML with each image embedded as a base64 PNG.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hookscope.core.display.colormaps import (
    DEFAULT_CMAP,
    DEFAULT_SIGNED_CMAP,
    SIGNED_COLORMAPS,
    UNSIGNED_CMAP,
    check_colormap,
    colorize,
)
from hookscope.core.display.mosaic import signed_levels, value_levels
from hookscope.core.display.render import (
    attribution_heat,
    attribution_map,
    blend,
    gradient_to_rgb,
    upsample,
)
from hookscope.core.errors import HookScopeError

HEAT_MIN_ALPHA = 0.35
"""An attribution overlay never fades below this, so a low alpha still shows where it looked."""

FONT_PX = 13
MARGIN = 10
GAP = 10
BAR_W = 16
BAR_TEXT_W = 64
MIN_SIDE = 192
MAX_SIDE = 2048
INK = (20, 20, 20)
BAR_EDGE = (90, 90, 90)


# -- colours -----------------------------------------------------------------------------------
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
class ColorBar:
    """A colour bar, labelled from ``vmin`` (bottom) to ``vmax`` (top)."""

    cmap: str = DEFAULT_CMAP
    vmin: float = 0.0
    vmax: float = 1.0
    label: str = ""

    @property
    def levels(self) -> tuple[float, float]:
        return (self.vmin, self.vmax)


class Panel(NamedTuple):
    """One picture of a figure: a title over a uint8 RGB image (H, W, 3), maybe a colour bar.

    A plain ``(title, rgb)`` tuple is a panel without a bar.
    """

    title: str
    rgb: np.ndarray
    bar: ColorBar | None = None


@dataclass(frozen=True)
class Box:
    """A rectangle of a figure, in figure pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    """Where everything of a figure goes (see :func:`layout`).

    Attributes:
        panels: Per panel: its image box, its title baseline y, its colour bar box or None.
        ticks: Per colour bar: (y, text) tick labels at the bar's right.
    """

    width: int
    height: int
    title_y: int | None
    panels: list[tuple[Box, int, Box | None]]
    ticks: list[list[tuple[int, str]]]
    bar_label_y: int


def tick_text(v: float) -> str:
    """A colour-bar label: three significant digits (panes and saved figures alike)."""
    return f"{v:.3g}"


def _text_w(text: str) -> int:
    """Generous width estimate of a line of text (the SVG has no font metrics)."""
    return int(len(text) * FONT_PX * 0.62)


def panel_scale(rgb: np.ndarray) -> int:
    """Integer magnification that makes a small panel (e.g. a 7×7 map) readable.

    Whole pixels become blocks (nearest neighbour), so a saved figure holds exactly what the
    dock shows, only bigger.
    """
    h, w = np.asarray(rgb).shape[:2]
    k = -(-MIN_SIDE // max(1, h))
    return max(1, min(k, MAX_SIDE // max(1, h, w)))


def layout(panels: list[Panel], title: str | None = None, scale: float | None = None) -> Layout:
    """Place the panels, their titles and colour bars left to right.

    Args:
        panels: Checked panels (see :func:`check_panels`).
        title: Optional line of text above the panels.
        scale: Magnification of every panel; None: :func:`panel_scale` per panel.
    """
    line = int(FONT_PX * 1.6)
    top = MARGIN + (line if title else 0)
    has_titles = any(p.title for p in panels) or any(p.bar and p.bar.label for p in panels)
    img_top = top + (line if has_titles else 0)
    x, bottom, boxes, ticks = MARGIN, img_top, [], []
    for p in panels:
        k = scale or panel_scale(p.rgb)
        w, h = int(round(p.rgb.shape[1] * k)), int(round(p.rgb.shape[0] * k))
        # A title wider than its image widens the panel's slot (image centred): never cut.
        extra = max(0, _text_w(p.title) - w) if p.title else 0
        box = Box(x + extra // 2, img_top, w, h)
        x += w + extra + GAP
        bar = None
        if p.bar is not None:
            bar = Box(x - GAP // 2, img_top, BAR_W, max(h, 64))
            vals = np.linspace(p.bar.vmax, p.bar.vmin, 3)
            ys = [img_top + int(round(i * (bar.h - 1) / 2)) for i in range(3)]
            ticks.append([(y, tick_text(v)) for y, v in zip(ys, vals)])
            x += max(BAR_W + BAR_TEXT_W, _text_w(p.bar.label) + 4) - GAP // 2 + GAP
        bottom = max(bottom, img_top + max(h, bar.h if bar else 0))
        boxes.append((box, img_top - int(FONT_PX * 0.5), bar))
    x -= GAP
    width = max(x + MARGIN, 2 * MARGIN + 1, _text_w(title or "") + 2 * MARGIN)
    return Layout(
        width, bottom + MARGIN, MARGIN + FONT_PX if title else None, boxes, ticks, img_top - 6
    )


def _tick_baseline(y: int, bar: Box) -> int:
    """Baseline of a tick label: centred on the tick, kept within the bar's height."""
    return min(max(y + FONT_PX // 2 - 1, bar.y + FONT_PX - 3), bar.y + bar.h)


def check_panels(panels, colorbar: ColorBar | None = None) -> list[Panel]:
    """Panels (or ``(title, rgb)`` tuples) as :class:`Panel` with uint8 (H, W, 3) images.

    ``colorbar`` goes at the right of the last panel, unless that panel has its own.
    """
    panels = list(panels)
    if not panels:
        raise HookScopeError("A figure needs at least one panel.")
    out = []
    for p in panels:
        p = Panel(*p)
        rgb = np.asarray(p.rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"panel '{p.title}' must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
            )
        if p.bar is not None:
            check_colormap(p.bar.cmap)
        out.append(Panel(p.title, np.ascontiguousarray(rgb[..., :3]), p.bar))
    if colorbar is not None and out[-1].bar is None:
        check_colormap(colorbar.cmap)
        out[-1] = out[-1]._replace(bar=colorbar)
    return out


@cache
def _font() -> ImageFont.ImageFont:
    """The figure font: DejaVu Sans (what the SVG asks for first), else Pillow's own."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", FONT_PX)
    except OSError:
        return ImageFont.load_default(size=FONT_PX)


def _picture(rgb: np.ndarray, box: Box, smooth: bool) -> Image.Image:
    """A panel image at its box size: whole-pixel blocks, or bilinear for odd scales."""
    h, w = rgb.shape[:2]
    if not smooth and box.h % h == 0 and box.w % w == 0 and box.h // h == box.w // w:
        k = box.h // h  # the dock's pixels, bigger: exact blocks
        return Image.fromarray(np.repeat(np.repeat(rgb, k, axis=0), k, axis=1))
    method = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    return Image.fromarray(rgb).resize((box.w, box.h), method)


def figure_rgb(
    panels: list[Panel], colorbar: ColorBar | None = None, *, title=None, scale=None
) -> np.ndarray:
    """Paint a figure (white background) as a uint8 RGB array (H, W, 3).

    Args:
        panels: :class:`Panel` items or ``(title, rgb)`` tuples, left to right.
        colorbar: A colour bar for the last panel, unless it carries its own.
        title: Optional line of text above the panels.
        scale: Magnification of every panel; None: :func:`panel_scale` per panel.
    """
    panels = check_panels(panels, colorbar)
    lay = layout(panels, title, scale)
    img = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(img)
    font = _font()
    smooth = scale is not None and scale != int(scale)
    if title:  # text positions are baselines ("ls": left, "ms": middle), as in the SVG
        draw.text((MARGIN, lay.title_y), title, fill=INK, font=font, anchor="ls")
    bars = iter(lay.ticks)
    for panel, (box, ty, b) in zip(panels, lay.panels):
        img.paste(_picture(panel.rgb, box, smooth), (box.x, box.y))
        if panel.title:  # layout() made room for it: whole, centred on the image
            draw.text((box.x + box.w / 2, ty), panel.title, fill=INK, font=font, anchor="ms")
        if b is None:
            continue
        strip = colorbar_image(panel.bar.cmap, b.h, b.w)
        img.paste(Image.fromarray(strip), (b.x, b.y))
        draw.rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), outline=BAR_EDGE)
        for y, text in next(bars):
            draw.line(((b.x + b.w, y), (b.x + b.w + 3, y)), fill=INK)
            draw.text((b.x + b.w + 6, _tick_baseline(y, b)), text, fill=INK, font=font, anchor="ls")
        if panel.bar.label:
            draw.text((b.x, lay.bar_label_y), panel.bar.label, fill=INK, font=font, anchor="ls")
    return np.array(img)


def _png_b64(rgb: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def figure_svg(
    panels: list[Panel], colorbar: ColorBar | None = None, *, title=None, scale=None
) -> str:
    """The figure as SVG text: images embedded as base64 PNG, titles and ticks as text."""
    panels = check_panels(panels, colorbar)
    lay = layout(panels, title, scale)
    smooth = "auto" if scale is not None and scale != int(scale) else "pixelated"
    font = f'font-family="DejaVu Sans, Arial, sans-serif" font-size="{FONT_PX}" fill="#141414"'
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'version="1.1" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}">',
        f'<rect width="{lay.width}" height="{lay.height}" fill="white"/>',
    ]

    def image(box: Box, rgb: np.ndarray, label: str) -> str:
        data = f"data:image/png;base64,{_png_b64(rgb)}"
        return (
            f'<image x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" '
            f'preserveAspectRatio="none" style="image-rendering:{smooth}" '
            f'href="{data}" xlink:href="{data}"><title>{escape(label)}</title></image>'
        )

    if title:
        out.append(f'<text x="{MARGIN}" y="{lay.title_y}" {font}>{escape(title)}</text>')
    bars = iter(lay.ticks)
    for panel, (box, ty, b) in zip(panels, lay.panels):
        out.append(image(box, panel.rgb, panel.title))
        if panel.title:
            cx = box.x + box.w / 2
            text = escape(panel.title)
            out.append(f'<text x="{cx:g}" y="{ty}" text-anchor="middle" {font}>{text}</text>')
        if b is None:
            continue
        bar = panel.bar
        out.append(image(b, colorbar_image(bar.cmap, b.h), f"colour map {bar.cmap}"))
        out.append(
            f'<rect x="{b.x + 0.5}" y="{b.y + 0.5}" width="{b.w - 1}" height="{b.h - 1}" '
            'fill="none" stroke="#5a5a5a"/>'
        )
        for y, text in next(bars):
            out.append(
                f'<line x1="{b.x + b.w}" y1="{y + 0.5}" x2="{b.x + b.w + 3}" y2="{y + 0.5}" '
                'stroke="#141414"/>'
            )
            out.append(
                f'<text x="{b.x + b.w + 6}" y="{_tick_baseline(y, b)}" {font}>{escape(text)}</text>'
            )
        if bar.label:
            out.append(f'<text x="{b.x}" y="{lay.bar_label_y}" {font}>{escape(bar.label)}</text>')
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
    """Save a figure as ``.png`` (PIL) or ``.svg`` (XML with embedded PNGs).

    Args:
        path: Output file; the suffix picks the format (``.png``, ``.svg``, ``.jpg``).
        panels: Pictures shown left to right (:class:`Panel` or ``(title, rgb)``).
        colorbar: Optional colour bar at the right of the last panel (unless it has one).
        title: Optional line of text above the panels.
        scale: Panel magnification; None: :func:`panel_scale` per panel.

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
        rgb = figure_rgb(panels, colorbar, title=title, scale=scale)
        Image.fromarray(rgb).save(path)
    except OSError as exc:
        raise HookScopeError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    return path


# -- ready-made panel sets (docks and CLI) -----------------------------------------------------
def cam_panels(
    image_rgb: np.ndarray,
    maps: dict[str, np.ndarray],
    *,
    method: str = "",
    target: str | int | None = None,
    cmap: str = DEFAULT_CMAP,
    alpha: float = 0.5,
    show_input: bool = True,
) -> tuple[list[Panel], ColorBar]:
    """The input plus one overlay per layer, and the [0, 1] colour bar.

    The CAM dock shows exactly these overlays; its Save and the CLI's ``cam`` write them.
    """
    check_colormap(cmap)
    panels = [Panel("input", image_rgb)] if show_input else []
    tail = "".join(f" · {t}" for t in (method, target) if t not in ("", None))
    panels += [
        Panel(f"{name}{tail}", overlay(image_rgb, m, cmap, alpha)) for name, m in maps.items()
    ]
    return panels, ColorBar(cmap, 0.0, 1.0, method or "CAM")


def attribution_bar(map2d: np.ndarray, signed: bool, cmap: str | None = None) -> ColorBar:
    """Colour map and levels of an attribution map (see ``core.display.render.attribution_map``).

    Signed maps: a diverging map, ±max |map| (zero at the centre); magnitudes: from 0 to the max.
    """
    if signed:
        cmap = cmap if cmap in SIGNED_COLORMAPS else DEFAULT_SIGNED_CMAP
        lo, hi = signed_levels(map2d)
        return ColorBar(cmap, lo, hi, "channel sum")
    return ColorBar(check_colormap(cmap or UNSIGNED_CMAP), 0.0, value_levels(map2d)[1], "|max|")


def attribution_panels(
    image_rgb: np.ndarray,
    attr: np.ndarray,
    *,
    title: str = "attribution",
    signed: bool = True,
    cmap: str | None = None,
    gradient_rgb: bool = False,
    show_input: bool = True,
    heat_cmap: str | None = None,
    alpha: float = 0.5,
) -> tuple[list[Panel], ColorBar]:
    """Panels for a (C, H, W) attribution; the Attribution dock shows these, the CLI saves them.

    Args:
        image_rgb: The input as uint8 (H, W, 3).
        attr: Attribution (C, H, W) or (H, W).
        title: Panel title of the map.
        signed: Colour the channel sum with a diverging map (else max |a| from 0).
        cmap: Colour map of the map (default bwr when signed, inferno otherwise).
        gradient_rgb: Also show the gradient as an RGB picture (guided backprop style).
        show_input: Start with the input image.
        heat_cmap: Also show |attribution| (relative to its 99.5th percentile) over the
            input in this colour map.
        alpha: Opacity of that overlay (at least :data:`HEAT_MIN_ALPHA`).

    Returns:
        The panels and the colour bar of the map panel (each panel carries its own bar).
    """
    a = np.asarray(attr, dtype=np.float32)
    panels = [Panel("input", image_rgb)] if show_input else []
    if gradient_rgb:
        panels.append(Panel(f"{title} (RGB)", gradient_to_rgb(a[None] if a.ndim == 2 else a)))
    m = attribution_map(a, signed)
    bar = attribution_bar(m, signed, cmap)
    panels.append(Panel(title, colorize(m, bar.cmap, bar.levels), bar))
    if heat_cmap is not None:
        heat = overlay(image_rgb, attribution_heat(a), heat_cmap, max(alpha, HEAT_MIN_ALPHA))
        panels.append(Panel(f"{title} |attribution|", heat, ColorBar(heat_cmap, 0.0, 1.0, "rel.")))
    return panels, bar


def cam_figure(snapshot, cmap: str = DEFAULT_CMAP, alpha: float = 0.5) -> list[Panel]:
    """The CAM figure of a ``core.display.snapshot.Snapshot``: the CAM dock and ``cam`` CLI."""
    panels, bar = cam_panels(
        snapshot.input_image,
        snapshot.cams,
        method=snapshot.cam_method or "",
        target=cam_target(snapshot),
        cmap=cmap,
        alpha=alpha,
    )
    return [*panels[:-1], panels[-1]._replace(bar=bar)]


def cam_target(snapshot):
    """The class for class scores; for other kinds the target's phrase ("detection 2 (cat)")."""
    kind = getattr(snapshot.kind, "kind", "classes")
    if kind == "classes" or not snapshot.target_label:
        return snapshot.target_name or snapshot.target
    return snapshot.target_label


def _attribution_target(result):
    """The class, or for a region / box / similarity target its phrase."""
    if result.target is None and getattr(result, "target_label", ""):
        return result.target_label
    return result.target_name or result.target


def attribution_figure(result, heat_cmap: str = "viridis", alpha: float = 0.5) -> list[Panel]:
    """The figure of a ``core.jobs.attribution.AttributionResult``: the dock and ``attribute``.

    The input, the attribution map with its colour bar, and |attribution| over the input.
    """
    panels, _ = attribution_panels(
        result.input_image,
        result.attribution,
        title=f"{result.title} · {_attribution_target(result)}",
        signed=result.signed,
        heat_cmap=heat_cmap,
        alpha=alpha,
    )
    return panels
