"""What a panel shows is what its controls say; the layout holds at 1000×700 (issue 16)."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTabBar

from hookscope.gui.docks.base import LAYOUT_VERSION
from tests.gui.conftest import RUN_TIMEOUT_MS


def dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def shown_layer(window, name):
    """(Layer box text, layer in the dock's title) of an analysis dock."""
    d = dock(window, name)
    return d.picker.combo.currentText(), d.view.title.split(" ")[0].removeprefix("∂score/∂")


def test_unticking_the_shown_layer_moves_every_dock_to_a_recorded_one(make_window, qtbot):
    window = make_window()
    st = window.state
    gone = st.selected_layer
    assert gone in st.snapshot.layers
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.set_layer_ticked(gone, False)
    assert st.selected_layer != gone and st.selected_layer in st.snapshot.layers
    for name in ("ActivationsDock", "GradientsDock"):
        dock(window, name).flush()
        box, title = shown_layer(window, name)
        assert box == title == st.selected_layer, name
    # The same without a rerun: the docks still show a layer the last run recorded.
    st.set_auto_run(False)
    now = st.selected_layer
    st.set_layer_ticked(now, False)
    assert st.selected_layer in st.recorded_layers() and st.selected_layer != now
    box, title = shown_layer(window, "ActivationsDock")
    assert box == title == st.selected_layer


def test_selecting_an_unticked_module_keeps_the_shown_layer_and_says_why(make_window, qtbot):
    window = make_window()
    st = window.state
    before = st.selected_layer
    unticked = next(n.name for n in st.tree.nodes() if n.name and n.name not in st.layers)
    with qtbot.waitSignal(st.statusMessage, timeout=1000) as msg:
        st.select(unticked, 0)
    assert unticked in msg.args[0] and "tick" in msg.args[0]
    assert st.selected_layer == before
    box, title = shown_layer(window, "ActivationsDock")
    assert box == title == before


def test_cancelled_cam_run_puts_the_method_box_back_on_the_shown_map(make_window, qtbot):
    window = make_window()
    st, cam = window.state, dock(window, "CamDock")
    shown = st.snapshot.cam_method
    assert cam.method_combo.currentText() == shown == "gradcam"
    gate = threading.Event()

    def hold(reporter):
        while not gate.wait(0.01):
            reporter.check()

    st.worker.submit(hold, kind="gate")  # the probe below waits behind it: cancel is certain
    st.set_cam(method="scorecam")
    assert cam.method_combo.currentText() == "scorecam"
    with qtbot.waitSignal(st.runCancelled, timeout=RUN_TIMEOUT_MS):
        st.cancel()
    gate.set()
    st.worker.wait(10_000)
    assert st.cam_method == st.snapshot.cam_method == "gradcam"
    assert cam.method_combo.currentText() == "gradcam"
    assert all(p.full_title.endswith("gradcam") for p in cam.panes.values())


def test_no_dock_paints_outside_itself_at_1000x700(make_window, qtbot):
    window = make_window()
    window.resize(1000, 700)
    qtbot.wait(100)
    assert window.width() == 1000 and window.height() == 700
    docks = [d for d in window.docks if d.isVisible() and not d.visibleRegion().isEmpty()]
    assert len(docks) >= 4
    frame = window.rect()
    for d in docks:
        g = d.geometry()
        assert frame.contains(g), d.objectName()
        # The content never sticks out of its dock: below its minimum it scrolls.
        assert d.scroll.viewport().width() <= g.width(), d.objectName()
    for i, a in enumerate(docks):
        for b in docks[i + 1 :]:
            assert not a.geometry().intersects(b.geometry()), (a.objectName(), b.objectName())


def test_side_columns_keep_their_width_and_the_plots_get_the_space(make_window, qtbot):
    window = make_window(run=False)
    window.resize(1280, 800)
    qtbot.wait(50)
    tree, image, plots = window.tree_dock.width(), window.image_dock.width(), None
    plots = window.analysis_docks[0].width()
    window.resize(1600, 1000)
    qtbot.wait(50)
    # The side columns get back what a narrower window took (up to their starting widths at
    # 1600 px: 300 and 399), never more; the plots get the rest of the 320 px.
    grown = (window.tree_dock.width(), window.image_dock.width())
    assert grown == (max(tree, 300), max(image, 399)) == window._side_widths(1600)
    gained = grown[0] - tree + grown[1] - image
    assert gained < 100 and window.analysis_docks[0].width() == plots + 320 - gained


def test_every_panel_is_one_click_away_and_no_tab_title_is_cut(make_window, qtbot):
    window = make_window(run=False)
    saved = window.saveState(LAYOUT_VERSION)
    window.restoreState(saved, LAYOUT_VERSION)  # what opening a session does
    qtbot.wait(50)
    for bar in window.findChildren(QTabBar):
        assert bar.elideMode() == Qt.TextElideMode.ElideNone
    for d in window.docks:
        action = window.panel_actions[d.objectName()]
        action.trigger()
        qtbot.wait(10)
        assert d.isVisible() and not d.visibleRegion().isEmpty(), d.objectName()
        assert action.isChecked()


def test_random_weights_are_named_in_the_title_and_the_status_bar(make_window):
    window = make_window(spec="torchvision:resnet18", layers=["layer4", "fc"])
    assert "random weights" in window.windowTitle()
    assert "random weights" in window.model_label.text()
    demo = make_window(run=True)
    assert "random" not in demo.windowTitle() and "random" not in demo.model_label.text()


def test_session_reopens_in_a_fresh_window_with_the_same_numbers(make_window, qtbot, tmp_path):
    import numpy as np

    from hookscope.core.loading.spec import InputSpec
    from hookscope.gui import session_io

    def run(state, action):
        with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
            action()
        qtbot.waitUntil(lambda: not state.busy, timeout=RUN_TIMEOUT_MS)

    first = make_window()
    st = first.state
    mean = InputSpec.from_dict(dict(st.input_spec.to_dict(), size=[80, 80], mean=[0.4, 0.5, 0.6]))
    run(st, lambda: st.set_input_spec(mean))
    compare = dock(first, "CompareDock")
    assert compare.pin()
    # Two edits of one layer: their order changes the numbers.
    scale = {"kind": "act", "layer": "features.block3", "op": "scale", "on": "output"}
    scale.update(channels=[1, 2], value=3.0)
    zero = {"kind": "act", "layer": "features.block3", "op": "zero", "on": "output"}
    zero.update(channels=[2])
    grad = {"kind": "grad", "layer": "features.block2", "op": "scale", "value": 2.0}
    run(st, lambda: st.set_edits([zero, grad, scale]))
    run(st, lambda: st.set_target(2))
    path = session_io.save_session(first, tmp_path / "s.json")

    second = make_window()  # a fresh window on the model's defaults
    s2, compare2 = second.state, dock(second, "CompareDock")
    assert s2.input_spec != st.input_spec
    assert session_io.open_session(second, path)
    qtbot.waitUntil(
        lambda: compare2.baseline is not None and s2.edits and not s2.busy,
        timeout=RUN_TIMEOUT_MS,
    )
    assert s2.input_spec == st.input_spec and s2.edits == [zero, grad, scale]
    assert s2.target == 2 and s2.snapshot.target == 2
    np.testing.assert_array_equal(s2.snapshot.probs, st.snapshot.probs)  # to the last digit
    np.testing.assert_array_equal(compare2.baseline.probs, compare.baseline.probs)
    assert compare2.comparison.classes == compare.comparison.classes
    for layer, diff in compare.comparison.activations.items():
        np.testing.assert_array_equal(compare2.comparison.activations[layer], diff)
    assert compare2.baseline.label == compare.baseline.label


def test_tree_shapes_follow_the_input_size_of_the_last_run(make_window, qtbot):
    from hookscope.gui.tree_model import COLUMNS

    window = make_window()
    st, model = window.state, window.tree_dock.model
    layer = "features.block3"
    before = st.tree.find(layer).out_shape
    with qtbot.waitSignal(st.shapesChanged, timeout=RUN_TIMEOUT_MS):
        st.set_input_size(160, 160)
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)
    act = st.snapshot.call(layer).activation
    shape = st.tree.find(layer).out_shape
    assert shape[1:] == act.shape and shape != before
    text = model.index_of(layer, COLUMNS.index("Output")).data()
    assert text == "×".join(map(str, act.shape))


def test_file_dialogs_open_in_the_last_folder_and_export_all_makes_its_folder(
    make_window, qtbot, tmp_path, monkeypatch
):
    import shutil

    from PySide6.QtWidgets import QFileDialog

    from hookscope.gui.app import default_image

    window = make_window()
    photos = tmp_path / "photos"
    photos.mkdir()
    sky = shutil.copy(default_image(), photos / "sky.png")
    asked = []

    def fake_open(parent, caption, folder, filter=""):
        asked.append(folder)
        return str(sky), ""

    def fake_save(parent, caption, name, filter="", options=None):
        asked.append(name)
        return str(tmp_path / "new" / "export"), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", fake_open)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    with qtbot.waitSignal(window.state.resultChanged, timeout=RUN_TIMEOUT_MS):
        window.open_image_dialog()
    window.open_image_dialog()  # the next dialog starts where the last file came from
    assert asked[-1] == str(photos)
    qtbot.waitUntil(lambda: not window.state.busy, timeout=RUN_TIMEOUT_MS)
    window.export_all_dialog()
    assert asked[-1].startswith(str(photos))  # Export all starts there too
    out = tmp_path / "new" / "export"
    assert out.is_dir() and (out / "settings.json").is_file()


def test_mosaic_fills_its_panel_and_pages_thousands_of_channels(make_window, qtbot):
    import numpy as np

    from hookscope.core.display import mosaic as mz
    from hookscope.gui.widgets.mosaic import HINT

    window = make_window()
    view = dock(window, "ActivationsDock").view
    narrowest = view.minimumSizeHint().width()
    maps = np.random.default_rng(0).random((2048, 7, 7), dtype=np.float32)
    view.set_array(maps, "layer4")
    # The pager does not widen the panel past what a 1000-px window gives it.
    assert view.page_spin.isVisibleTo(view) and view.minimumSizeHint().width() == narrowest
    qtbot.wait(300)  # the fit timer after the page shows
    t = view.tiles
    assert len(t.order) == 256 and view.page_spin.maximum() == 8  # a page, not a moiré strip
    assert t.cols == mz.grid_cols(256, (7, 7), view._mosaic_area())
    view.sort_combo.setCurrentText("mean")  # the first page is the top 256 by mean
    means = maps.reshape(2048, -1).mean(1)
    assert set(view.tiles.order) == set(np.argsort(-means)[:256])
    view.page_spin.setValue(8)
    assert set(view.tiles.order) == set(np.argsort(-means)[-256:])
    assert "2048" in view.mosaic_pane.full_title and "1793–2048" in view.mosaic_pane.full_title
    assert view.hover_label.text() == HINT and "wheel zooms" in HINT.lower()


def test_a_flat_cam_says_why_in_the_cam_panel(make_window, qtbot):
    import numpy as np

    window = make_window()
    st, cam = window.state, dock(window, "CamDock")
    window.show_panel(cam)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.set_target(2)  # "ship" on the airplane photo: every channel weight is negative
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)
    flat = [name for name, m in st.snapshot.cams.items() if np.ptp(m) == 0]
    assert flat, "the demo's block3 Grad-CAM for ship should be flat"
    assert cam.notes_label.isVisible()
    assert all(name in cam.notes_label.text() for name in flat)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.set_target(None)  # the top class: a real map, no note
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)
    assert not cam.notes_label.isVisible()
