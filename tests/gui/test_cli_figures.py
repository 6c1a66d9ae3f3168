"""`python main.py cam|attribute`: files written, one-sentence errors, Ctrl+C stops cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from hookscope.core.demo import sample_path
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
IMAGE = sample_path("car_on_sky.png")
MODEL = ["--model", "torchvision:resnet18", "--device", "cpu", "--image", str(IMAGE)]
ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="2")


def hookscope(*args):
    return run_cli(*args, threads=2)


def assert_one_sentence_error(r):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hookscope: ") and lines[0].endswith(".")


def test_cam_npz_holds_one_unit_map_per_layer(tmp_path):
    out = tmp_path / "maps.npz"
    r = hookscope("cam", *MODEL, "--layers", "layer3,layer4", "--target", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert sorted(z.files) == ["layer3", "layer4"]
        for name in z.files:
            m = z[name]
            assert m.shape == (224, 224) and m.dtype == np.float32
            assert m.min() == 0.0 and m.max() == pytest.approx(1.0)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["settings"]["method"] == "gradcam" and meta["settings"]["target"] == 3
    assert meta["settings"]["layers"] == ["layer3", "layer4"]


def test_cam_svg_figure(tmp_path):
    out = tmp_path / "cam.svg"
    r = hookscope("cam", *MODEL, "--layers", "layer4", "--method", "layercam", "--out", str(out))
    assert r.returncode == 0, r.stderr
    root = ET.parse(out).getroot()
    hrefs = [e.get("href") for e in root.iter("{http://www.w3.org/2000/svg}image")]
    assert len(hrefs) == 3 and all(h.startswith("data:image/png;base64,") for h in hrefs)


def test_attribute_occlusion_npz(tmp_path):
    out = tmp_path / "occ.npz"
    r = hookscope(
        "attribute", *MODEL, "--method", "occlusion", "--window", "56", "--stride", "56",
        "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["attribution"].shape == (3, 224, 224) and z["map"].shape == (224, 224)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["settings"]["options"]["window"] == 56


def test_user_errors_are_one_sentence(tmp_path):
    r = hookscope("cam", *MODEL, "--layers", "fc", "--out", str(tmp_path / "x.png"))
    assert_one_sentence_error(r)
    assert "Layer 'fc' outputs shape (1, 1000)" in r.stderr
    r = hookscope("attribute", *MODEL, "--method", "saliency", "--steps", "5", "--out", "x.png")
    assert_one_sentence_error(r)
    assert "--steps does not apply to saliency" in r.stderr
    r = hookscope("cam", *MODEL, "--out", str(tmp_path / "x.gif"))
    assert_one_sentence_error(r)


def _read_some(fd) -> str:
    try:
        return os.read(fd, 65536).decode(errors="replace")
    except BlockingIOError:
        return ""


def test_ctrl_c_cancels_scorecam(tmp_path):
    out = tmp_path / "score.npz"
    args = ["cam", *MODEL, "--layers", "layer3", "--method", "scorecam", "--batch-size", "4"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args, "--out", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=ENV,
        cwd=ROOT,
    )
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    seen, deadline = "", time.monotonic() + 120
    while "fw" not in seen and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        seen += _read_some(fd)  # the tqdm bar shows up once scoring starts
    assert "fw" in seen, seen
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    os.set_blocking(fd, True)
    seen += proc.stderr.read().decode(errors="replace")
    assert proc.returncode == 130
    assert "cancelled (Ctrl+C); nothing was written." in seen and "Traceback" not in seen
    assert not out.exists()
