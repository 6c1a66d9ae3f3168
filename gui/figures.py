"""The app's side of the one renderer: core's colour tables and figures, plus a ``QImage``.

Colour tables, colouring, overlays, figure layout and the PNG / SVG writers live in core
(:mod:`core.display.colormaps`, :mod:`core.display.figures`), so the CLI writes the same
figures without Qt. The docks import them from here; :func:`render_figure` is the only
Qt-specific part (the clipboard wants a ``QImage``) and paints exactly the saved PNG's pixels.
"""

from __future__ import annotations

import os
import sys

from hookscope.core.display.colormaps import (
    COLORMAPS,
    DEFAULT_CMAP,
    DEFAULT_SIGNED_CMAP,
    DIVERGING,
    NAN_RGB,
    SIGNED_COLORMAPS,
    UNSIGNED_CMAP,
    check_colormap,
    colorize,
    colorize_signed,
    colormap_names,
    lut,
)
from hookscope.core.display.figures import (
    BAR_W,
    FONT_PX,
    HEAT_MIN_ALPHA,
    Box,
    ColorBar,
    Layout,
    Panel,
    _text_w,
    attribution_bar,
    attribution_figure,
    attribution_panels,
    cam_figure,
    cam_panels,
    check_panels,
    colorbar_image,
    figure_rgb,
    figure_svg,
    layout,
    overlay,
    panel_scale,
    save_figure,
    tick_text,
)

__all__ = [
    "BAR_W",
    "COLORMAPS",
    "DEFAULT_CMAP",
    "DEFAULT_SIGNED_CMAP",
    "DIVERGING",
    "FONT_PX",
    "HEAT_MIN_ALPHA",
    "NAN_RGB",
    "SIGNED_COLORMAPS",
    "UNSIGNED_CMAP",
    "Box",
    "ColorBar",
    "Layout",
    "Panel",
    "_text_w",
    "attribution_bar",
    "attribution_figure",
    "attribution_panels",
    "cam_figure",
    "cam_panels",
    "check_colormap",
    "check_panels",
    "colorbar_image",
    "colorize",
    "colorize_signed",
    "colormap_names",
    "ensure_qt",
    "figure_rgb",
    "figure_svg",
    "layout",
    "lut",
    "overlay",
    "panel_scale",
    "render_figure",
    "save_figure",
    "tick_text",
]


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


def render_figure(panels, colorbar: ColorBar | None = None, *, title=None, scale=None):
    """The figure as a ``QImage`` (for the clipboard): the saved PNG's pixels."""
    from hookscope.gui.qtutil import rgb_to_qimage

    ensure_qt()
    return rgb_to_qimage(figure_rgb(panels, colorbar, title=title, scale=scale))
