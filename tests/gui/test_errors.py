"""Bad input through the GUI: one sentence shown, the previous model and image kept."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog

from hookscope.gui.main_window import OpenModelDialog
from tests.gui.conftest import RUN_TIMEOUT_MS


def one_sentence(text: str) -> bool:
    return text.endswith(".") and "\n" not in text and "Traceback" not in text


def test_corrupt_model_file_keeps_the_current_model(window, qtbot, tmp_path, messages, monkeypatch):
    st = window.state
    before, before_snap = st.loaded, st.snapshot
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 this is not a model" * 20)

    def fake_exec(dialog):
        dialog.spec.setCurrentText(str(broken))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(OpenModelDialog, "exec", fake_exec)
    with qtbot.waitSignal(st.worker.failed, timeout=RUN_TIMEOUT_MS):
        window.open_model_action.trigger()
    assert len(messages) == 1 and "broken.pt" in messages[0] and one_sentence(messages[0])
    assert window.statusBar().currentMessage() == messages[0]
    assert st.loaded is before and st.snapshot is before_snap
    # Still usable: a run on the old model works.
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        window.run_action.trigger()


def test_text_file_as_image_keeps_the_current_image(window, tmp_path, messages, monkeypatch):
    st = window.state
    image, path = st.image, st.image_path
    notes = tmp_path / "notes.png"
    notes.write_text("just some text, not pixels\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(notes), ""))
    window.open_image_action.trigger()
    assert len(messages) == 1 and "notes.png" in messages[0] and one_sentence(messages[0])
    assert st.image is image and st.image_path == path
    assert not window.image_dock.original.pixmap().isNull()


def test_unknown_class_name_keeps_the_target(window, qtbot, messages):
    st, dock = window.state, window.predictions_dock
    target = st.target
    runs = []
    st.worker.started.connect(lambda *a: runs.append(a))
    dock.target_edit.setText("definitely not a class")
    qtbot.keyClick(dock.target_edit, Qt.Key.Key_Return)
    text = window.statusBar().currentMessage()
    assert text.startswith("Unknown class name 'definitely not a class'") and one_sentence(text)
    assert st.target == target and not runs and not messages
    dock.target_edit.setText("100000")
    qtbot.keyClick(dock.target_edit, Qt.Key.Key_Return)
    assert "out of range" in window.statusBar().currentMessage()
    assert st.target == target and not runs


FIXED_SIZE_MODEL = """
import torch.nn as nn

INPUT_SPEC = {"size": 8, "channels": 3}


def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
"""


def test_a_failing_run_shows_one_sentence_and_the_app_stays_usable(make_window, qtbot, tmp_path):
    path = tmp_path / "fixed.py"
    path.write_text(FIXED_SIZE_MODEL)
    window = make_window(f"{path}:build")
    st = window.state
    good = st.input_spec
    with qtbot.waitSignal(st.runFailed, timeout=RUN_TIMEOUT_MS) as blocker:
        st.set_input_size(9, 9)  # the Linear head only takes 8×8
    assert "(1, 3, 9, 9)" in blocker.args[0] and one_sentence(blocker.args[0])
    assert window.statusBar().currentMessage() == blocker.args[0]
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        st.set_input_spec(good)
    assert blocker.args[0].probs.shape == (3,)
