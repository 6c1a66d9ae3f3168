"""Colour tables live in core as numpy arrays equal to pyqtgraph's, and the CLI needs no Qt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hookscope.core.demo import sample_path
from hookscope.core.display.colormaps import COLORMAPS, NAN_RGB, colorize, lut
from hookscope.core.display.figures import cam_panels, figure_rgb, save_figure

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_every_table_equals_the_map_pyqtgraph_shows(name):
    pg = pytest.importorskip("pyqtgraph")
    shown = pg.colormap.get(COLORMAPS[name]).getLookupTable(0.0, 1.0, 256, alpha=False, mode="byte")
    np.testing.assert_array_equal(lut(name), np.asarray(shown)[:, :3])
    assert lut(name).dtype == np.uint8 and not lut(name).flags.writeable


@pytest.mark.parametrize("cmap", ["jet", "bwr", "gray"])
def test_colorize_maps_values_as_pyqtgraph_rescales_them(cmap):
    from pyqtgraph.functions import rescaleData

    lo, hi = -1.3, 2.1
    a = np.random.default_rng(0).normal(size=(40, 64)).astype(np.float32)
    a[0, :6] = [-10.0, 10.0, lo, hi, 0.0, 0.4]  # clipped ends and the level values themselves
    a[1] = lo + np.arange(64) * 4 * (hi - lo) / 256  # on the boundaries between colours
    a[2, 0] = np.nan
    safe = np.where(np.isnan(a), np.float32(lo), a)
    idx = rescaleData(safe, 256 / (hi - lo), lo, dtype=np.uint8, clip=(0, 255))
    expected = lut(cmap)[idx]
    expected[2, 0] = NAN_RGB
    np.testing.assert_array_equal(colorize(a, cmap, (lo, hi)), expected)


def test_a_figure_is_painted_without_qt(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    panels, bar = cam_panels(img, {"layer4": np.eye(5, dtype=np.float32)}, method="gradcam")
    path = save_figure(tmp_path / "f.png", panels, bar, title="t")
    saved = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(saved, figure_rgb(panels, bar, title="t"))


SCRIPT = """
import json, sys
from hookscope.gui.command import main
image, out, images = sys.argv[1:4]
codes = [
    main(["cam", "--model", "demo", "--image", image, "--out", out + "/cam.png"]),
    main(["attribute", "--model", "demo", "--image", image, "--method", "saliency",
          "--out", out + "/att.svg"]),
    main(["scan", "--model", "demo", "--images", images, "--out", out + "/scan",
          "--workers", "0", "--clusters", "2", "--colormap", "viridis"]),
]
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6"))
print(json.dumps({"codes": codes, "qt": qt}))
"""


def test_cam_attribute_and_scan_commands_run_without_qt(tmp_path):
    from hookscope.core.demo.scenes import make_dataset

    images = tmp_path / "images"
    images.mkdir()
    for k, img in enumerate(make_dataset("clean", 6, seed=3)[0]):
        Image.fromarray(img).save(images / f"s{k}.png")
    image = str(sample_path("car_on_sky.png"))
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, image, str(tmp_path), str(images)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0, 0], "qt": []}
    cam = np.asarray(Image.open(tmp_path / "cam.png").convert("RGB"))
    assert cam.shape[0] > 200 and len(np.unique(cam.reshape(-1, 3), axis=0)) > 1000
    assert (tmp_path / "att.svg").read_text().count("<image ") == 5  # input, map + bar, heat + bar
    # The cluster PNGs are coloured with the viridis table (no GUI callback any more).
    mean = np.asarray(Image.open(next((tmp_path / "scan" / "clusters").glob("*.png"))))
    assert set(map(tuple, mean.reshape(-1, 3))) <= set(map(tuple, lut("viridis")))
