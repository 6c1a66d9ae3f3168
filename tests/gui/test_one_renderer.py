"""One renderer: a dock shows what Save, Copy, Export all and the CLI write, pixel for pixel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication, QImage

from hookscope.core.errors import HookScopeError
from hookscope.gui import figures
from hookscope.gui.docks.base import figure_items
from hookscope.gui.qtutil import qimage_to_rgb
from hookscope.gui.widgets.panes import ImagePane
from tests.gui.conftest import RUN_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]


def dock(window, name):
    found = next(d for d in window.analysis_docks if d.objectName() == name)
    found.raise_()
    return found


def shown(pane: ImagePane) -> np.ndarray:
    """The RGB picture pyqtgraph paints for the pane's image (values through LUT and levels).

    NaN pixels are transparent: the view's background shows through them.
    """
    pane.image.render()
    img = pane.image.qimage.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = img.height(), img.width()
    rgba = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    rgba = rgba.reshape(h, -1)[:, : w * 4].reshape(h, w, 4)
    rgb = rgba[..., :3].copy()
    background = pane.view.background.brush().color().getRgb()[:3]
    rgb[rgba[..., 3] == 0] = background
    return rgb


def panel_region(saved: np.ndarray, panels, index: int, title: str | None, like: np.ndarray):
    """Panel ``index`` of a saved figure, sampled back to the size of ``like``."""
    lay = figures.layout(figures.check_panels(panels), title)
    box = lay.panels[index][0]
    k = box.h // like.shape[0]
    assert box.w == k * like.shape[1]  # whole-pixel magnification: no resampling
    return saved[box.y : box.y + box.h : k, box.x : box.x + box.w : k]


@pytest.mark.parametrize("cmap", ["viridis", "bwr", "jet", "gray"])
def test_a_pane_colours_values_exactly_as_the_renderer(qtbot, cmap):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(23, 31)).astype(np.float32)
    a[0, :6] = [-10.0, 10.0, -1.3, 2.1, 0.0, 0.4]  # clipped ends and the exact level values
    a[1] = -1.3 + np.arange(31) * 8 * 3.4 / 256  # on the boundaries between colours
    a[2] = np.linspace(-1.3, 2.1, 31)
    a[5, 5] = np.nan
    levels = (-1.3, 2.1)
    pane = ImagePane(colorbar=True)
    qtbot.addWidget(pane)
    pane.set_values(a, cmap, levels)
    expected = figures.colorize(a, cmap, levels)
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(shown(pane)[ok], expected[ok])
    assert tuple(expected[5, 5]) == figures.NAN_RGB
    # The pane's colour bar: the same map (high values on top) and a saved figure's labels.
    strip = qimage_to_rgb(pane.bar.strip)[:, 0]
    np.testing.assert_array_equal(strip, figures.lut(cmap)[::-1])
    assert pane.bar.labels() == ["2.1", "0.4", "-1.3"]


def test_cam_dock_shows_what_save_and_copy_write(window, tmp_path):
    cam = dock(window, "CamDock")
    panels = cam.figure_panels()
    assert cam.overlays, "the first run computes a CAM"
    path = cam.save_figure(tmp_path / "cam.png")
    saved = np.asarray(Image.open(path).convert("RGB"))
    for i, (name, overlay) in enumerate(cam.overlays.items(), start=1):
        on_screen = shown(cam.panes[name])
        np.testing.assert_array_equal(on_screen, overlay)
        np.testing.assert_array_equal(panel_region(saved, panels, i, cam.TITLE, overlay), overlay)
    assert panels[-1].bar == figures.ColorBar(
        window.state.colormap, 0.0, 1.0, window.state.snapshot.cam_method
    )
    cam.copy_to_clipboard()
    copied = qimage_to_rgb(QGuiApplication.clipboard().image())
    np.testing.assert_array_equal(copied, saved)
    exported = window.export_all(tmp_path / "all")
    png = next(p for p in exported if p.name == f"{cam.figure_name()}.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), saved)


def test_the_cli_cam_figure_shows_the_cam_docks_pixels(window, tmp_path):
    from hookscope.gui.app import default_image

    state, cam = window.state, dock(window, "CamDock")
    snap = state.snapshot
    assert cam.overlays and state.loaded.name.startswith("demo")
    out = tmp_path / "cli.png"
    r = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "cam", "--model", "demo",
         "--image", default_image(), "--layers", ",".join(snap.cams),
         "--method", snap.cam_method, "--colormap", state.colormap,
         "--alpha", str(state.alpha), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    saved = np.asarray(Image.open(out).convert("RGB"))
    panels = cam.figure_panels()
    input_image = snap.input_image
    np.testing.assert_array_equal(panel_region(saved, panels, 0, "t", input_image), input_image)
    for i, name in enumerate(cam.overlays, start=1):
        picture = shown(cam.panes[name])
        np.testing.assert_array_equal(panel_region(saved, panels, i, "t", picture), picture)


def test_attribution_and_mosaic_docks_show_what_save_writes(qtbot, window, tmp_path):
    state, att = window.state, dock(window, "AttributionDock")
    att.set_method("saliency")
    with qtbot.waitSignal(state.worker.finished, timeout=RUN_TIMEOUT_MS):
        att.run()
    panels = att.figure_panels()
    saved = np.asarray(Image.open(att.save_figure(tmp_path / "att.png")).convert("RGB"))
    signed, heat = shown(att.signed_pane), shown(att.heat_pane)
    np.testing.assert_array_equal(panel_region(saved, panels, 1, att.TITLE, signed), signed)
    np.testing.assert_array_equal(panel_region(saved, panels, 2, att.TITLE, heat), heat)
    assert panels[1].bar.levels == att.signed_levels and panels[1].bar.cmap == "inferno"

    acts = dock(window, "ActivationsDock")
    layer = next(n for n, c in state.snapshot.layers.items() if c[0].activation.ndim == 3)
    state.select(layer, 0)
    panels = acts.figure_panels()
    saved = np.asarray(Image.open(acts.save_figure(tmp_path / "acts.png")).convert("RGB"))
    for i, pane in enumerate((acts.view.mosaic_pane, acts.view.channel_pane)):
        picture = shown(pane)
        np.testing.assert_array_equal(figure_items(panels)[i].rgb, picture)
        np.testing.assert_array_equal(panel_region(saved, panels, i, acts.TITLE, picture), picture)


def test_an_unknown_colour_map_is_one_sentence_everywhere(window):
    with pytest.raises(HookScopeError, match=r"^Unknown colour map 'rainbowz': use one of jet, "):
        figures.cam_panels(np.zeros((4, 4, 3), np.uint8), {"a": np.zeros((4, 4))}, cmap="rainbowz")
    with pytest.raises(HookScopeError, match="Unknown colour map"):
        figures.colorize(np.zeros((2, 2)), "rainbowz")
    state, seen = window.state, []
    state.errorRaised.connect(seen.append)
    before = state.colormap
    state.set_display(colormap="rainbowz")
    assert state.colormap == before
    assert len(seen) == 1 and seen[0].startswith("Unknown colour map 'rainbowz'")
    assert seen[0].count(".") == 1 and seen[0].endswith(".")
