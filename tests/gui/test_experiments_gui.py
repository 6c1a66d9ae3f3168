"""Experiments in the app: edits, the pasted car, channel importance, sanity, hook code, sessions.

pytest-qt, offscreen, on the built-in demo (the shortcut model: "blue sky ⇒ airplane").
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hookscope.core.demo import sample_path
from hookscope.core.engine.guard import state_checksum
from tests.gui.conftest import RUN_TIMEOUT_MS

SKY = str(sample_path("sky.png"))
CAR_ROAD = str(sample_path("car_road.png"))
CAR_XY = (17, 52)  # where the car sits in car_road.png (top-left of its mask's box)


def dock(window, name):
    """The dock, brought to the front as a user would by clicking its tab."""
    found = next(d for d in window.docks if d.objectName() == name)
    found.raise_()
    return found


def wait_run(qtbot, state, action):
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
        action()
    return state.snapshot


def wait_idle(qtbot, state):
    qtbot.waitUntil(lambda: not state.busy, timeout=RUN_TIMEOUT_MS)


def test_gradient_x2_edit_from_the_edits_dock_doubles_the_input_gradient(make_window, qtbot):
    window = make_window(layers=["features.res", "features.block3", "fc"])
    state, edits = window.state, dock(window, "EditsDock")
    plain, plain_probs = state.snapshot.input_grad, state.snapshot.probs
    edits.grad_layer.setCurrentText("features.res")
    edits.grad_op.setCurrentIndex(edits.grad_op.findData("scale"))
    edits.grad_value.setValue(2.0)
    snap = wait_run(qtbot, state, edits.grad_add.click)

    assert state.edits == [{"kind": "grad", "layer": "features.res", "op": "scale", "value": 2.0}]
    assert edits.list.count() == 1 and "×2" in edits.list.item(0).text()
    ratio = np.linalg.norm(snap.input_grad) / np.linalg.norm(plain)
    assert ratio == pytest.approx(2.0, abs=1e-4)
    np.testing.assert_allclose(snap.input_grad, 2 * plain, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(snap.probs, plain_probs, atol=1e-6)  # the forward is unchanged

    snap = wait_run(qtbot, state, edits.clear_button.click)
    np.testing.assert_allclose(snap.input_grad, plain, rtol=1e-5, atol=1e-8)


def test_car_pasted_onto_sky_becomes_an_airplane_and_compare_shows_it(make_window, qtbot):
    window = make_window(image=CAR_ROAD)
    state = window.state
    compare, lab = dock(window, "CompareDock"), dock(window, "ImageLabDock")
    assert state.snapshot.topk[0][1] == "car"
    assert compare.pin()

    wait_run(qtbot, state, lambda: state.load_image(SKY))
    assert lab.set_patch(CAR_ROAD)  # car_road_mask.png is found next to it
    assert lab.mask_path.endswith("car_road_mask.png")
    lab.set_patch_position(*CAR_XY)
    snap = wait_run(qtbot, state, lab.apply_paste)
    wait_idle(qtbot, state)

    assert snap.topk[0][1] == "airplane"
    assert state.image_path == SKY
    assert state.image_edits == [
        {"op": "paste", "patch": CAR_ROAD, "mask": lab.mask_path, "xy": [0, 0]}
    ]
    assert lab.result is not None and lab.result.after[0][1] == "airplane"
    assert lab.table.rowCount() == 4
    delta = compare.comparison.delta(0)  # airplane
    assert delta > 0.5
    assert compare.rows()[0][0] == "airplane" and compare.rows()[0][3] == pytest.approx(delta)
    # Difference maps are drawn on a symmetric scale: zero is the middle colour.
    lo, hi = compare.cam_pane.image.getLevels()
    assert lo == pytest.approx(-hi) and hi > 0


def test_channel_importance_bars_are_every_channel_sorted_and_a_click_ablates(window, qtbot):
    state, imp = window.state, dock(window, "ImportanceDock")
    layer = "features.block3"
    imp.run(layer)
    qtbot.waitUntil(lambda: imp.result is not None, timeout=RUN_TIMEOUT_MS)
    channels = state.snapshot.call(layer).activation.shape[0]

    assert len(imp.heights) == channels == len(imp.bars.opts["height"])
    assert np.all(np.diff(imp.heights) <= 0)
    assert imp.top_list.count() == min(channels, 50)

    top = imp.channel_at_bar(0)
    before = state.snapshot.probs[imp.result.target]
    wait_run(qtbot, state, lambda: imp.ablate([top]))
    assert state.edits == [
        {"kind": "act", "layer": layer, "op": "zero", "on": "output", "channels": [top]}
    ]
    after = state.snapshot.probs[imp.result.target]
    assert after == pytest.approx(imp.result.probs[top], abs=1e-4)
    assert after < before


def test_sanity_curve_has_a_point_per_step_and_the_weights_come_back(window, qtbot):
    state, sanity = window.state, dock(window, "SanityDock")
    before = state_checksum(state.loaded.model)
    sanity.run()
    qtbot.waitUntil(lambda: sanity.report is not None, timeout=RUN_TIMEOUT_MS)

    report = sanity.report
    assert set(sanity.curves) == {"gradcam", "guided-backprop"}
    for curve in sanity.curves.values():
        assert len(curve) == len(report.result.steps) > 5
    assert len(sanity.plot.getPlotItem().listDataItems()) == 2
    assert report.restored and state_checksum(state.loaded.model) == before
    assert "restored" in sanity.note.text()
    for m in report.methods:  # a verdict per method, in one sentence
        assert report.result.verdict(m) in sanity.note.text()


def test_hook_code_compiles_and_reproduces_the_edited_run(window, qtbot):
    state, code = window.state, dock(window, "HookCodeDock")
    snap = wait_run(
        qtbot,
        state,
        lambda: state.add_edit(
            {"kind": "grad", "layer": "features.block3", "op": "scale", "value": 3.0}
        ),
    )
    text = code.text()
    compile(text, "<hook>", "exec")
    assert "register_forward_hook" in text and "register_hook" in text
    namespace: dict = {}
    exec(compile(text, "<hook>", "exec"), namespace)  # the demo is small: run it
    np.testing.assert_allclose(
        namespace["input_grad"][0].numpy(), snap.input_grad, rtol=1e-4, atol=1e-6
    )


def test_session_round_trip_and_moved_image(make_window, qtbot, tmp_path, messages):
    from hookscope.gui import session_io

    first = make_window(image=SKY, layers=["features.res", "features.block3", "fc"])
    st = first.state
    lab = dock(first, "ImageLabDock")
    lab.set_patch(CAR_ROAD)
    wait_run(qtbot, st, lab.apply_paste)
    wait_run(qtbot, st, lambda: st.set_target(1))
    grad = {"kind": "grad", "layer": "features.res", "op": "clip", "value": 0.5}
    act = {"kind": "act", "layer": "features.block3", "op": "zero", "on": "output", "channels": [3]}
    wait_run(qtbot, st, lambda: st.set_edits([act, grad]))
    wait_idle(qtbot, st)
    path = session_io.save_session(first, tmp_path / "s.json")

    second = make_window()
    s2 = second.state
    with qtbot.waitSignal(s2.resultChanged, timeout=RUN_TIMEOUT_MS):
        assert session_io.open_session(second, path)
    wait_idle(qtbot, s2)
    assert s2.model_args["spec"] == "demo"
    assert s2.image_path == SKY and s2.image_edits == st.image_edits
    np.testing.assert_array_equal(np.asarray(s2.image), np.asarray(st.image))
    assert s2.layers == st.layers and s2.target == 1
    assert s2.edits == [act, grad]
    np.testing.assert_allclose(s2.snapshot.probs, st.snapshot.probs, atol=1e-6)

    # The image moves away: one sentence in a dialog, the window keeps what it had.
    elsewhere = tmp_path / "pics"
    elsewhere.mkdir()
    moved = elsewhere / "sky_copy.png"
    shutil.copy(SKY, moved)
    wait_run(qtbot, st, lambda: st.load_image(moved))
    session_io.save_session(first, tmp_path / "moved.json")
    moved.unlink()
    kept = (s2.image_path, list(s2.edits), s2.target)
    assert not session_io.open_session(second, tmp_path / "moved.json")
    assert len(messages) == 1 and "missing" in messages[0] and "sky_copy.png" in messages[0]
    assert (s2.image_path, s2.edits, s2.target) == kept


def test_lab_canvas_patch_follows_a_drag_and_a_box_can_be_drawn(qtbot):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from hookscope.gui.widgets.lab_canvas import LabCanvas

    canvas = LabCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_base(np.zeros((96, 96, 3), np.uint8))
    canvas.set_patch(np.full((10, 20, 4), 255, np.uint8), (10, 10))
    view = canvas.viewport()
    left = Qt.MouseButton.LeftButton
    none = Qt.KeyboardModifier.NoModifier

    def drag(a, b):
        start, end = canvas.mapFromScene(QPointF(*a)), canvas.mapFromScene(QPointF(*b))
        QTest.mousePress(view, left, none, start)
        for t in (0.25, 0.5, 0.75, 1.0):
            p = QPointF(start + (end - start) * t)
            move = QMouseEvent(
                QEvent.Type.MouseMove, p, view.mapToGlobal(p), Qt.MouseButton.NoButton, left, none
            )
            QApplication.sendEvent(view, move)
        QTest.mouseRelease(view, left, none, end)

    drag((15, 15), (45, 35))  # grab the patch and move it by (+30, +20)
    assert canvas.patch_pos() == (40, 30)
    canvas.set_mode("box")
    drag((5, 5), (30, 40))
    assert canvas.box() == (5, 5, 30, 40)
