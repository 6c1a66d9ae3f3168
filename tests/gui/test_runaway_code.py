"""Issue 22 §1: model building and user code run where they can be stopped.

A factory that loops forever is abandoned after the load timeout, a forward that loops forever
is abandoned on Cancel (or after a run timeout), the app stays usable, and quitting while such
code runs ends the process. The policy is ``core.jobs.stopping.StopPolicy``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hookscope.core.jobs.stopping import StopPolicy
from hookscope.gui.worker import Worker
from tests.gui.conftest import RUN_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]

LOOPING_BUILD = """
import pathlib
from torch import nn

def build():
    pathlib.Path(__file__).with_name("looping").write_text("")
    while True:
        pass
"""

SMALL_BUILD = """
from torch import nn

def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))
"""

# A model whose forward loops forever while the file "loop" sits next to it.
LOOPING_FORWARD = """
import pathlib
import torch
from torch import nn

HERE = pathlib.Path(__file__).parent


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        y = torch.relu(self.conv(x))
        if (HERE / "loop").exists():
            (HERE / "looping").write_text("")
            while True:
                pass
        return self.head(y)


def build():
    return Net()
"""


def _hooks(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_a_looping_factory_is_abandoned_after_the_load_timeout(window, qtbot, tmp_path, messages):
    (tmp_path / "loop.py").write_text(LOOPING_BUILD)
    (tmp_path / "small.py").write_text(SMALL_BUILD)
    st = window.state
    st.worker.policy = StopPolicy(load_timeout_s=1.0)
    before = st.loaded
    said = []
    st.errorRaised.connect(said.append)
    started = time.perf_counter()
    with qtbot.waitSignal(st.loadFailed, timeout=RUN_TIMEOUT_MS) as blocker:
        st.load_model(f"{tmp_path / 'loop.py'}:build", device="cpu")
    waited = time.perf_counter() - started
    message = blocker.args[0]
    assert (tmp_path / "looping").exists()  # it really ran the loop
    assert "1 s load timeout" in message and "loaded nothing" in message
    assert message.endswith(".") and "\n" not in message and said == [message]
    assert messages == [message]  # the failed open is a dialog, as any failed load
    assert 1.0 <= waited < 10.0, waited
    assert st.loaded is before and not st.busy
    # The interrupt ended the loop: no thread is left burning a core.
    qtbot.waitUntil(lambda: st.worker.left_behind == 0, timeout=5000)
    # The app goes on: a later load of a small model succeeds and runs.
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.load_model(f"{tmp_path / 'small.py'}:build", device="cpu")
    assert st.loaded is not before and st.snapshot.probs.shape[-1] == 3


@pytest.fixture
def looping_model(window, qtbot, tmp_path, messages):
    (tmp_path / "net.py").write_text(LOOPING_FORWARD)
    st = window.state
    st.worker.policy = StopPolicy(grace_s=0.5)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.load_model(f"{tmp_path / 'net.py'}:build", device="cpu")
    st.set_auto_run(False)
    st.set_layers(["conv", "head.2"])
    return st


def _start_looping_run(st, qtbot, folder: Path) -> None:
    (folder / "loop").write_text("")
    st.run()
    qtbot.waitUntil((folder / "looping").exists, timeout=RUN_TIMEOUT_MS)


def test_a_forward_that_loops_forever_is_abandoned_on_cancel(looping_model, qtbot, tmp_path):
    st = looping_model
    model, shown = st.loaded.model, st.snapshot
    said = []
    st.statusMessage.connect(said.append)
    _start_looping_run(st, qtbot, tmp_path)
    started = time.perf_counter()
    with qtbot.waitSignal(st.worker.abandoned, timeout=RUN_TIMEOUT_MS) as blocker:
        st.cancel()
    waited = time.perf_counter() - started
    assert "run did not stop when cancelled" in blocker.args[2]
    assert blocker.args[2] in said and 0.5 <= waited < 10.0, waited
    assert not st.busy and st.snapshot is shown  # the last result stays
    # Interrupted in its own thread: the loop ended, its finally blocks removed the hooks
    # and gave the model back in the user's mode, and the model gate is free again.
    qtbot.waitUntil(lambda: st.worker.left_behind == 0, timeout=5000)
    assert _hooks(model) == 0 and not model.training
    (tmp_path / "loop").unlink()
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.run()
    assert st.snapshot is not shown and st.snapshot.probs.shape[-1] == 3


def test_a_forward_that_loops_forever_fails_after_a_run_timeout(looping_model, qtbot, tmp_path):
    st = looping_model
    st.worker.policy = replace(st.worker.policy, run_timeout_s=1.0)
    _start_looping_run(st, qtbot, tmp_path)
    with qtbot.waitSignal(st.runFailed, timeout=RUN_TIMEOUT_MS) as blocker:
        pass
    assert "1 s run timeout" in blocker.args[0] and "no new result" in blocker.args[0]
    qtbot.waitUntil(lambda: st.worker.left_behind == 0, timeout=5000)
    assert _hooks(st.loaded.model) == 0


def test_a_run_that_swallows_the_interrupt_frees_the_model_gate(qtbot):
    """Code that ignores even the interrupt stays behind, but later runs get the model."""
    worker = Worker(policy=StopPolicy(grace_s=0.3))
    release = threading.Event()

    def stubborn(reporter):
        while not release.is_set():
            try:
                time.sleep(0.01)
            except BaseException:  # noqa: BLE001, S110 - what a hostile model could do
                pass
        return "late"

    try:
        worker.submit(stubborn, kind="probe")
        qtbot.wait(100)
        with qtbot.waitSignal(worker.abandoned, timeout=5000):
            worker.cancel()
        assert worker.left_behind == 1
        # The next run needs the model gate the stubborn thread still holds.
        with qtbot.waitSignal(worker.finished, timeout=5000) as blocker:
            worker.submit(lambda reporter: "next", kind="probe")
        assert blocker.args[2] == "next"
    finally:
        release.set()
    qtbot.waitUntil(lambda: worker.left_behind == 0, timeout=5000)


QUIT_WHILE_LOADING = """
import sys
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from hookscope.gui.app import AppOptions, make_app, run
from hookscope.gui.main_window import MainWindow
import pathlib

app = make_app()
LOOPING = pathlib.Path(sys.argv[1].rpartition(":")[0]).with_name("looping")

def close():
    if not LOOPING.exists():
        QTimer.singleShot(100, close)
        return
    print("closing", time.perf_counter(), flush=True)
    next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)).close()

QTimer.singleShot(100, close)
code = run(AppOptions(model=sys.argv[1], device="cpu", restore_layout=False))
print("run returned", code, time.perf_counter(), flush=True)
"""


def test_quitting_while_a_looping_factory_loads_ends_the_process(tmp_path):
    (tmp_path / "loop.py").write_text(LOOPING_BUILD)
    script = tmp_path / "quit.py"
    script.write_text(QUIT_WHILE_LOADING)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), f"{tmp_path / 'loop.py'}:build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    closing = float(out.split("closing ")[1].split()[0])
    returned = float(out.split("run returned 0 ")[1].split()[0])
    # The window waits one grace period, interrupts the loop, and the process ends.
    assert returned - closing < 10.0, out


def test_a_bad_load_timeout_setting_is_one_sentence(qapp, monkeypatch, capsys):
    from hookscope.gui.command import main

    monkeypatch.setenv("HOOKSCOPE_LOAD_TIMEOUT", "soon")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "hookscope: HOOKSCOPE_LOAD_TIMEOUT must be a number of seconds (or 0 for none), not 'soon'."
    ]
