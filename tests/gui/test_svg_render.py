"""Saved SVGs render in viewers other than Qt: resvg (pip's resvg-py) draws the same picture."""

from __future__ import annotations

import io

import numpy as np
import resvg_py
from PIL import Image


def test_saved_svg_renders_in_resvg_like_the_png(window, tmp_path):
    cam = next(d for d in window.docks if d.objectName() == "CamDock")
    png = cam.save_figure(tmp_path / "cam.png")
    svg = cam.save_figure(tmp_path / "cam.svg")
    text = svg.read_text()
    assert 'xlink:href="data:image/png;base64,' in text  # what librsvg and ImageMagick read
    # A renderer with its own SVG parser (Rust resvg), installed by pip with [dev].
    data = bytes(resvg_py.svg_to_bytes(svg_path=str(svg), background="white"))
    qt = np.asarray(Image.open(png).convert("RGB"), np.float32)
    lib = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
    assert lib.shape == qt.shape
    ink = (lib < 235).any(axis=2).mean()
    assert ink > 0.2, f"the SVG renders almost blank ({ink:.1%} non-white pixels)"
    # Same pictures in the same places (text is drawn by another engine: small differences).
    diff = np.abs(lib - qt).mean()
    assert diff < 12, f"the resvg render differs from the PNG by {diff:.1f} grey levels"


def test_long_panel_titles_are_whole_in_saved_figures(tmp_path):
    from hookscope.gui import figures

    title = "features.block2 · scorecam · airplane"
    small = np.zeros((12, 12, 3), np.uint8)
    panels = [figures.Panel(title, small), figures.Panel("input", small)]
    svg = figures.figure_svg(panels)
    assert f">{title}</text>" in svg and "…" not in svg
    lay = figures.layout(figures.check_panels(panels))
    (first, _, _), (second, _, _) = lay.panels
    # The slot grew around the image: the next panel starts after the whole title.
    assert second.x - first.x >= figures._text_w(title) // 2 + first.w // 2
