"""Panels say what is on screen (issue 23): Compare's zero Δ, importance signs, the CAM title."""

import numpy as np

from tests.gui.conftest import RUN_TIMEOUT_MS


def dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def rerun(qtbot, state):
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
        state.run()
    qtbot.waitUntil(lambda: not state.worker.lane_busy("interactive"), timeout=RUN_TIMEOUT_MS)


def test_an_all_zero_difference_has_no_colour_scale(window, qtbot):
    state, compare = window.state, dock(window, "CompareDock")
    window.show_panel(compare)
    assert compare.pin()
    rerun(qtbot, state)  # the same run again: every difference is exactly zero
    assert set(compare.maps) >= {"activation", "gradient", "cam", "input_grad"}
    for key, pane in (("cam", compare.cam_pane), ("activation", compare.act_pane)):
        assert float(np.abs(compare.maps[key]).max()) == 0.0
        assert compare.levels[key] == 0.0  # before: ±0.494, the maps' own magnitude
        assert not pane.bar.isVisible() and pane.full_title.endswith("no change: all 0")
    panels = compare.make_panels()
    deltas = [p for p in panels if p[0].startswith("Δ")]
    assert len(deltas) == 4 and all(len(p) == 2 or p.bar is None for p in deltas)
    assert all(p[0].endswith("no change: all 0") for p in deltas)


def test_channel_importance_list_has_the_sign_of_its_bars(window, qtbot):
    imp = dock(window, "ImportanceDock")
    imp.run("features.block3")
    qtbot.waitUntil(lambda: imp.result is not None, timeout=RUN_TIMEOUT_MS)
    r = imp.result
    first = imp.top_list.item(0).text()
    # The first bar is the largest drop; its list row gives that very number with its sign.
    drop = float(imp.heights[0])
    assert drop > 0 and f"(drop {drop:+.3f})" in first
    assert f"channel {int(r.ranking[0])}:" in first and "Δ" not in first


def test_the_cam_title_names_the_map_on_screen_and_what_computes(window, qtbot, monkeypatch):
    state, cam = window.state, dock(window, "CamDock")
    window.show_panel(cam)
    state.set_auto_run(False)
    layer = state.cam_layers[0]
    assert cam.panes[layer].full_title == f"{layer} — gradcam"
    cam.method_combo.setCurrentText("scorecam")
    assert state.cam_method == "scorecam"
    monkeypatch.setattr(cam, "_running", lambda: True)  # ScoreCAM's run is on its way
    state.busyChanged.emit(True)
    assert cam.panes[layer].full_title == f"{layer} — gradcam (scorecam computing…)"
    monkeypatch.undo()
    rerun(qtbot, state)
    assert state.snapshot.cam_method == "scorecam"
    assert cam.panes[layer].full_title == f"{layer} — scorecam"
