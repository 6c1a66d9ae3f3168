"""`python main.py --screenshot F.png` opens the app offscreen, runs once, saves, exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_screenshot_command_writes_the_window(tmp_path):
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "main.py", "--screenshot", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        w, h = img.size
        small = np.asarray(img.convert("RGB").resize((160, 100))).reshape(-1, 3)
    colours = len(np.unique(small, axis=0))
    assert abs(w - 1440) <= 40 and abs(h - 900) <= 40
    assert colours > 50  # panels with content, not a blank window


def test_cli_subcommands_do_not_load_qt():
    code = "import sys, hookscope.gui.command as c; c.main(['inspect', '--model', 'demo']);" \
        "print('QT' if {'PySide6', 'pyqtgraph'} & set(sys.modules) else 'NOQT')"  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NOQT")
