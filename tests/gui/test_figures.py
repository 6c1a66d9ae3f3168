"""Colouring and figure files (PNG decodes, SVG parses and embeds PNGs), headless."""

import base64
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.gui.figures import (
    COLORMAPS,
    ColorBar,
    Panel,
    attribution_panels,
    cam_panels,
    colorize,
    colorize_signed,
    figure_rgb,
    lut,
    overlay,
    save_figure,
)

SVG = "{http://www.w3.org/2000/svg}"


def gradient_image(h=40, w=50):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 5, yy * 6, np.full_like(xx, 90)], -1).astype(np.uint8)


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_every_colormap_resolves(name):
    table = lut(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert not np.array_equal(table[0], table[-1])


def test_colorize_uses_the_map_ends():
    rgb = colorize(np.array([[0.0, 1.0]]), "gray")
    np.testing.assert_array_equal(rgb[0, 0], lut("gray")[0])
    np.testing.assert_array_equal(rgb[0, 1], lut("gray")[-1])
    assert rgb[0, 0].sum() < 30 and rgb[0, 1].sum() > 700  # black to white
    signed = colorize_signed(np.array([[-1.0, 0.0, 1.0]]), "bwr")
    np.testing.assert_array_equal(signed[0, 1], lut("bwr")[128])  # zero → the centre colour
    with pytest.raises(HookScopeError, match="Unknown colour map 'rainbowz'"):
        lut("rainbowz")


def test_overlay_alpha_and_resize():
    img = gradient_image()
    m = np.random.default_rng(0).random((5, 5)).astype(np.float32)
    np.testing.assert_array_equal(overlay(img, m, "jet", 0.0), img)
    full = overlay(img, m, "jet", 1.0)
    assert full.shape == img.shape
    assert set(map(tuple, full.reshape(-1, 3))) <= set(map(tuple, lut("jet")))


def test_png_decodes_with_the_figure_size(tmp_path):
    img = gradient_image()
    panels, bar = cam_panels(img, {"layer4": np.eye(7, dtype=np.float32)}, method="gradcam")
    path = save_figure(tmp_path / "fig.png", panels, bar, title="gradcam on a test image")
    decoded = np.asarray(Image.open(path).convert("RGB"))
    expected = figure_rgb(panels, bar, title="gradcam on a test image")
    assert decoded.shape == expected.shape
    assert decoded.shape[0] > 40 and decoded.shape[1] > 2 * 50
    np.testing.assert_array_equal(decoded[30:70, 10:60], expected[30:70, 10:60])


def test_svg_parses_and_embeds_pngs(tmp_path):
    img = gradient_image()
    panels = [Panel("input", img), Panel("map <b>", colorize(np.eye(40, 50), "viridis"))]
    path = save_figure(tmp_path / "fig.svg", panels, ColorBar("viridis", -1.5, 2.5, "score"))
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    images = root.findall(f"{SVG}image")
    assert len(images) == 3  # two panels + the colour bar
    href = images[0].get("href")
    assert href.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), img)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "map <b>" in texts and "2.5" in texts and "-1.5" in texts


def test_svg_renders_with_qtsvg(tmp_path, qapp):
    from PySide6 import QtGui, QtSvg

    panels, bar = attribution_panels(
        gradient_image(), np.random.default_rng(1).normal(size=(3, 40, 50)), gradient_rgb=True
    )
    path = save_figure(tmp_path / "fig.svg", panels, bar)
    renderer = QtSvg.QSvgRenderer(str(path))
    assert renderer.isValid()
    size = renderer.defaultSize()
    png = figure_rgb(panels, bar)
    assert (size.height(), size.width()) == png.shape[:2]
    out = QtGui.QImage(size, QtGui.QImage.Format.Format_RGB32)
    out.fill(0)
    painter = QtGui.QPainter(out)
    renderer.render(painter)
    painter.end()
    assert out.pixelColor(size.width() // 2, size.height() // 2).name() != "#000000"


def test_bad_suffix_is_one_sentence(tmp_path):
    with pytest.raises(HookScopeError, match="use .png, .svg or .jpg"):
        save_figure(tmp_path / "fig.bmpx", [Panel("a", gradient_image())])
