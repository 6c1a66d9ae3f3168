"""Issue 22 §1 in the app: code from a file runs only when the person says so, in this run.

A session never carries trust (a factory or a pickle it names is asked about, showing the
path), the worker survives SystemExit / KeyboardInterrupt from user code, and layers or
edits a session names that the model lacks are dropped before they reach a hook or the Hook
code panel.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import QApplication

from hookscope.gui import session_io
from hookscope.gui.worker import Worker
from tests.catalogue import SESSION_CASES, Payload
from tests.gui.conftest import RUN_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]

MARKER_FACTORY = """
import pathlib
pathlib.Path(__file__).with_name("ran-factory").write_text("ran")
from torch import nn

def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()], ids=repr)
def test_user_code_that_exits_leaves_the_worker_free(qtbot, raised):
    worker = Worker()

    def job(reporter):
        raise raised

    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.submit(job, kind="load")
    message = blocker.args[2]
    assert type(raised).__name__ in message and "\n" not in message and message.endswith(".")
    if isinstance(raised, SystemExit):
        assert "(3)" in message
    # The next job runs: the worker is not stuck busy.
    with qtbot.waitSignal(worker.finished, timeout=5000) as blocker:
        worker.submit(lambda reporter: 7, kind="load")
    assert blocker.args[2] == 7
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)


def _session(path, **fields):
    data = {"model": "demo", "version": 1, **fields}
    path.write_text(json.dumps(data))
    return path


def test_a_session_factory_asks_and_runs_nothing_on_no(
    window, qtbot, tmp_path, monkeypatch, messages
):
    factory = tmp_path / "net.py"
    factory.write_text(MARKER_FACTORY)
    path = _session(tmp_path / "s.json", model=f"{factory}:build")
    asked = []
    monkeypatch.setattr(session_io, "ask", lambda _w, text: asked.append(text) or False)
    before = window.state.loaded
    assert not session_io.open_session(window, path)
    assert len(asked) == 1 and str(factory) in asked[0]
    assert not (tmp_path / "ran-factory").exists() and window.state.loaded is before
    # From the command line the flag decides, and the refusal is one sentence.
    seen = []
    window.state.errorRaised.connect(seen.append)
    assert not session_io.open_session(window, path, trust={"factory": False})
    assert len(asked) == 1 and "--trust-factory" in seen[-1]
    assert not (tmp_path / "ran-factory").exists()
    # Yes runs it: the person agreed, in this run, knowing which file.
    monkeypatch.setattr(session_io, "ask", lambda _w, text: True)
    assert session_io.open_session(window, path)
    qtbot.waitUntil(lambda: window.state.loaded is not before, timeout=RUN_TIMEOUT_MS)
    assert (tmp_path / "ran-factory").exists()


def test_a_session_cannot_tick_trust_pickle_itself(window, qtbot, tmp_path, monkeypatch, messages):
    model = tmp_path / "model.pt"
    torch.save(Payload(tmp_path / "pwned"), model)
    path = _session(tmp_path / "s.json", model=str(model), gui={"trust_pickle": True})
    asked = []
    monkeypatch.setattr(session_io, "ask", lambda _w, text: asked.append(text) or False)
    seen = []
    window.state.errorRaised.connect(seen.append)
    before = window.state.loaded
    assert session_io.open_session(window, path)
    qtbot.waitUntil(lambda: bool(asked), timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.state.busy, timeout=RUN_TIMEOUT_MS)
    assert str(model) in asked[0] and "runs code" in asked[0]
    assert any("refuses it" in m for m in seen) and not messages  # a question, no warning
    assert not (tmp_path / "pwned").exists() and window.state.loaded is before
    # Yes, in this run, knowing the file: now it is unpickled (and its payload runs).
    monkeypatch.setattr(session_io, "ask", lambda _w, text: True)
    assert session_io.open_session(window, path)
    qtbot.waitUntil((tmp_path / "pwned").exists, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.state.busy, timeout=RUN_TIMEOUT_MS)


def test_unknown_edit_layers_in_a_session_are_dropped(window, qtbot, tmp_path):
    evil = "features.block3\nimport os; os.system('touch MARKER')"
    path = _session(
        tmp_path / "s.json",
        layers=["features.block3", evil],
        grad_edits=[
            {"kind": "grad", "layer": evil, "op": "scale", "value": 2.0},
            {"kind": "grad", "layer": "features.block3", "op": "scale", "value": 2.0},
        ],
    )
    seen = []
    window.state.errorRaised.connect(seen.append)
    with qtbot.waitSignal(window.state.resultChanged, timeout=RUN_TIMEOUT_MS):
        assert session_io.open_session(window, path)
    st = window.state
    assert [d["layer"] for d in st.edits] == ["features.block3"]
    assert evil not in st.layers
    dropped = [m for m in seen if "dropped" in m]
    assert len(dropped) == 2 and all("\n" not in m for m in dropped)
    dock = next(d for d in window.docks if d.objectName() == "HookCodeDock")
    code = dock.code()
    compile(code, "hook_code.py", "exec")
    assert "os.system" not in code and "gradient ×2" in code


# -- the catalogue's session cases, through the app and through --session ----------------------
@pytest.mark.parametrize("case", SESSION_CASES, ids=lambda c: c.id)
def test_session_case_in_the_app(case, window, qtbot, tmp_path, monkeypatch, messages):
    fields = case.make(tmp_path)
    shown = []
    monkeypatch.setattr(session_io, "ask", lambda _w, text: shown.append(text) and False)
    st = window.state
    st.errorRaised.connect(shown.append)
    before = st.loaded
    session_io.open_session(window, fields["session"])
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)
    text = " | ".join(shown + messages)
    assert re.search(case.message, text), text
    assert st.loaded is before and st.target is None  # nothing of the file was taken
    if case.marker:
        assert not (tmp_path / case.marker).exists()


@pytest.mark.parametrize("case", SESSION_CASES, ids=lambda c: c.id)
def test_session_case_from_the_command_line(case, qapp, tmp_path, capsys, messages):
    from hookscope.gui.command import main
    from hookscope.gui.main_window import MainWindow

    fields = case.make(tmp_path)
    before = set(QApplication.topLevelWidgets())
    try:
        code = main(["--session", fields["session"], "--screenshot", str(tmp_path / "s.png")])
    finally:
        for w in set(QApplication.topLevelWidgets()) - before:
            if isinstance(w, MainWindow):
                # The screenshot's 180 s timeout stopped with the app: it would fire later.
                waiting = [t for t in w.findChildren(QTimer) if t.interval() == 180_000]
                assert len(waiting) == 1 and not waiting[0].isActive()
                w.state.cancel()
                w.state.worker.wait(30_000)
                w.close()
        # The app's quit after its one sentence may still be queued: it would end the next
        # test's event loop at once.
        QApplication.removePostedEvents(None, QEvent.Type.Quit)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hookscope: ")]
    assert code == 2 and len(lines) == 1, err
    assert re.search(case.message, lines[0]), lines[0]
    assert not (tmp_path / "s.png").exists()
    if case.marker:
        assert not (tmp_path / case.marker).exists()


def test_session_subprocess_runs_no_code_unless_the_flag_says_so(tmp_path):
    """The real command a file manager would run: no payload runs, then the flag decides."""
    cases = {c.id: c for c in SESSION_CASES}
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}

    def run(case_id: str, *flags: str):
        folder = tmp_path / f"{case_id}{len(flags)}"
        folder.mkdir()
        session = cases[case_id].make(folder)["session"]
        cmd = [sys.executable, str(ROOT / "main.py"), "--session", session, *flags]
        done = subprocess.run(
            [*cmd, "--screenshot", str(folder / "out.png")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        return folder, done

    for case_id in ("session-pickle-trusts-itself", "session-factory"):
        folder, done = run(case_id)
        said = [line for line in done.stderr.splitlines() if line.startswith("hookscope: ")]
        assert done.returncode == 2 and len(said) == 1, done.stderr
        assert re.search(cases[case_id].message, said[0])
        assert not (folder / "pwned").exists() and not (folder / "out.png").exists()
    # Given in this run, knowing which file: the factory runs and the window is saved.
    folder, done = run("session-factory", "--trust-factory")
    assert done.returncode == 0, done.stderr
    assert (folder / "pwned").exists() and (folder / "out.png").is_file()


# -- a factory that never returns and cannot be interrupted (tests/gui/test_runaway_code.py has
# the plain `while True: pass` one, which the app's interrupt ends) ----------------------------
LOOPING_FACTORY = """
import pathlib
import time

from torch import nn

STOP = pathlib.Path(__file__).with_name("stop")


def build():
    STOP.with_name("looping").write_text("")
    while True:  # "forever", until the test lets it go; it even swallows the app's interrupt
        try:
            while not STOP.exists():
                time.sleep(0.01)
            break
        except BaseException:
            pass
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""


def test_cancel_leaves_a_looping_factory_behind_and_the_app_goes_on(
    window, qtbot, tmp_path, messages
):
    (tmp_path / "loop.py").write_text(LOOPING_FACTORY)
    try:
        _leave_a_looping_load_behind(window, qtbot, tmp_path)
    finally:  # let the thread go whatever happened: a pool waits for it when destroyed
        (tmp_path / "stop").write_text("")


def _leave_a_looping_load_behind(window, qtbot, tmp_path):
    st = window.state
    before = st.loaded
    said = []
    st.statusMessage.connect(said.append)
    st.load_model(f"{tmp_path / 'loop.py'}:build", device="cpu")
    # Cancelled before the factory runs, a load just stops (no test of leaving behind).
    qtbot.waitUntil((tmp_path / "looping").exists, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(st.worker.abandoned, timeout=RUN_TIMEOUT_MS):
        st.cancel()
    assert any("left it behind" in m and "fresh worker thread" in m for m in said), said
    assert not st.busy and st.loaded is before and st.worker.left_behind == 1
    # The app goes on: a run on the current model and a new load both work.
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.run()
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.load_model("torchvision:resnet18", device="cpu")
    assert st.loaded.name == "resnet18"
    # When the code returns at last, its result is dropped and its thread let go.
    (tmp_path / "stop").write_text("")
    qtbot.waitUntil(lambda: st.worker.left_behind == 0, timeout=RUN_TIMEOUT_MS)
    assert st.loaded.name == "resnet18"


QUIT_SCRIPT = """
import pathlib
import sys
from PySide6.QtCore import QTimer
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication
from hookscope.gui.app import AppOptions, make_app, run
from hookscope.gui.main_window import MainWindow

app = make_app()
LOOPING = pathlib.Path(sys.argv[1].rpartition(":")[0]).with_name("looping")

def window():
    return next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))

def cancel():
    state = window().state
    if not LOOPING.exists():  # the factory is not looping yet (a busy machine): look again
        QTimer.singleShot(200, cancel)
        return
    state.worker.abandoned.connect(lambda *_: QTimer.singleShot(100, window().close))
    state.cancel()

QTimer.singleShot(200, cancel)
code = run(AppOptions(model=sys.argv[1], device="cpu", restore_layout=False))
print("run returned", code)  # only without a thread left behind
"""


def test_quitting_ends_the_process_even_with_a_load_left_behind(tmp_path):
    (tmp_path / "loop.py").write_text(LOOPING_FACTORY)  # no stop file: it loops for ever
    script = tmp_path / "quit.py"
    script.write_text(QUIT_SCRIPT)
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), f"{tmp_path / 'loop.py'}:build"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "run returned" not in done.stdout  # ended by os._exit, not by joining the thread
