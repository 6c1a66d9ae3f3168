"""The main window as a user drives it: first run, ticking layers, picking a target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt

from hookscope.gui.tree_model import NAME_ROLE
from tests.gui.conftest import RUN_TIMEOUT_MS


def count_rows(model, parent=None) -> int:
    """Rows at every depth, walked through the item model API only."""
    parent = parent if parent is not None else QModelIndex()
    total = 0
    for row in range(model.rowCount(parent)):
        total += 1 + count_rows(model, model.index(row, 0, parent))
    return total


def test_first_run_fills_every_dock(window):
    st = window.state
    snap = st.snapshot
    assert snap is not None and st.loaded is not None

    # Model tree: one row per named module (the model itself on top).
    n_modules = len(list(st.loaded.model.named_modules()))
    assert count_rows(window.tree_dock.model) == n_modules
    assert count_rows(window.tree_dock.proxy) == n_modules

    # Predictions: k rows, best first, probabilities that are a part of one.
    rows = window.predictions_dock.rows()
    assert len(rows) == min(st.topk, len(snap.probs)) == len(snap.topk)
    probs = [p for _, _, p in rows]
    assert probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1 + 1e-6
    assert rows[0][0] == int(np.argmax(snap.probs))
    assert window.predictions_dock.table.selectedItems()  # the explained class is highlighted

    # Image: original and model input shown; model input at the spec size.
    assert not window.image_dock.original.pixmap().isNull()
    assert not window.image_dock.model_input.pixmap().isNull()
    h, w = st.input_spec.size
    assert snap.input_image.shape == (h, w, 3) and snap.input_image.dtype == np.uint8

    # Layer stats (a tab behind Activations: look at it first): one row per recorded call.
    window.stats_dock.raise_()
    n_calls = sum(len(c) for c in snap.layers.values())
    assert window.stats_dock.table.rowCount() == n_calls > 0

    # Status bar tells the model and the run time.
    assert st.loaded.name in window.model_label.text()
    assert "ms" in window.time_label.text()


def test_tick_two_layers_through_the_item_model(window, qtbot):
    st, model = window.state, window.tree_dock.model
    st.set_auto_run(False)
    convs = [n for n in st.tree.nodes() if n.type == "Conv2d" and n.calls][:2]
    assert len(convs) == 2
    for node in convs:
        idx = model.index_of(node.name)
        assert idx.data(NAME_ROLE) == node.name
        assert model.setData(idx, Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole)
        assert idx.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert all(n.name in st.layers for n in convs)

    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        st.run()
    snap = blocker.args[0]
    for node in convs:
        call = snap.call(node.name)
        assert call is not None, node.name
        assert call.activation.shape == node.out_shape[1:]  # (C, h, w), batch dropped
        assert call.gradient is not None and call.gradient.shape == call.activation.shape

    # Unticking through the model removes the layer from the next run.
    model.setData(model.index_of(convs[0].name), Qt.CheckState.Unchecked.value,
                  Qt.ItemDataRole.CheckStateRole)  # fmt: skip
    assert convs[0].name not in st.layers
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        st.run()
    assert convs[0].name not in blocker.args[0].layers
    assert convs[1].name in blocker.args[0].layers


def test_tick_all_of_type_and_filter(window, qtbot):
    st, dock = window.state, window.tree_dock
    st.set_auto_run(False)
    convs = [n.name for n in st.tree.nodes() if n.type == "Conv2d" and n.calls]
    dock.tick_type("Conv2d")
    assert set(convs) <= set(st.layers)

    dock.filter_edit.setText("Conv2d")
    visible = []

    def walk(parent=None):
        parent = parent if parent is not None else QModelIndex()
        for row in range(dock.proxy.rowCount(parent)):
            idx = dock.proxy.index(row, 0, parent)
            visible.append(idx.data(NAME_ROLE))
            walk(idx)

    walk()
    matches = [n for n in visible if n and st.tree.find(n).type == "Conv2d"]
    assert sorted(matches) == sorted(n.name for n in st.tree.nodes() if n.type == "Conv2d")
    # Ancestors stay so the matches keep their place; nothing else does.
    assert all(st.tree.find(n).type == "Conv2d" or any(m.startswith(n) for m in matches)
               for n in visible)  # fmt: skip


def test_clicking_a_prediction_row_sets_the_target_and_reruns(window, qtbot):
    st, table = window.state, window.predictions_dock.table
    row = 2
    index = int(table.item(row, 0).data(Qt.ItemDataRole.UserRole))
    rect = table.visualItemRect(table.item(row, 0))
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert st.target == index
    assert blocker.args[0].target == index
    role = Qt.ItemDataRole.UserRole
    selected = {table.item(i.row(), 0).data(role) for i in table.selectedIndexes()}
    assert selected == {index}


def test_typed_target_by_name_and_index(window, qtbot):
    st, dock = window.state, window.predictions_dock
    name = st.snapshot.topk[1][1] or str(st.snapshot.topk[1][0])
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        dock.target_edit.setText(name.upper())  # names match case-insensitively
        qtbot.keyClick(dock.target_edit, Qt.Key.Key_Return)
    assert blocker.args[0].target == st.snapshot.topk[1][0] == st.target
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        dock.target_edit.setText("0")
        qtbot.keyClick(dock.target_edit, Qt.Key.Key_Return)
    assert blocker.args[0].target == 0


def test_changing_the_input_size_reruns_at_that_size(window, qtbot):
    st, dock = window.state, window.image_dock
    h, w = st.input_spec.size
    dock.height_box.setValue(h + 32)
    dock.width_box.setValue(w + 16)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        assert dock.apply_spec()
    assert blocker.args[0].input_image.shape == (h + 32, w + 16, 3)
    # A bad std is refused with one sentence and no rerun.
    dock.std_edit.setText("0.2, 0")
    assert not dock.apply_spec()
    assert "std" in window.statusBar().currentMessage()
    assert st.input_spec.size == (h + 32, w + 16)


def test_export_all_writes_figures_arrays_and_settings(window, tmp_path):
    import json

    written = window.export_all(tmp_path)
    names = {p.name for p in written}
    assert {"arrays.npz", "arrays.json", "settings.json", "predictions.png", "image.png"} <= names
    data = np.load(tmp_path / "arrays.npz")
    snap = window.state.snapshot
    np.testing.assert_allclose(data["probs"], snap.probs)
    layer = next(iter(snap.layers))
    np.testing.assert_array_equal(data[f"{layer}/call0/activation"], snap.call(layer).activation)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["layers"] == window.state.layers
    assert settings["target"] == snap.target
    sidecar = json.loads((tmp_path / "arrays.json").read_text())
    assert sidecar["settings"]["layers"] == window.state.layers
    assert sidecar["arrays"]["probs"]["shape"] == list(snap.probs.shape)
    with Image.open(tmp_path / "predictions.png") as img:
        assert img.width > 100 and img.height > 50


def test_save_figure_png_and_svg(window, tmp_path):
    dock = window.predictions_dock
    png = dock.save_figure(tmp_path / "p.png")
    svg = dock.save_figure(tmp_path / "p.svg")
    with Image.open(png) as img:
        assert img.width >= dock.figure_panels()[0][1].shape[1]
    assert svg.read_text().lstrip().startswith("<?xml") and "<image" in svg.read_text()
    assert "Saved" in window.statusBar().currentMessage()


def test_ticking_with_auto_run_reruns(window, qtbot):
    st, model = window.state, window.tree_dock.model
    assert st.auto_run
    node = next(n for n in st.tree.nodes() if n.type == "Conv2d" and n.name not in st.layers)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        model.setData(
            model.index_of(node.name), Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole
        )
    assert blocker.args[0].call(node.name).activation.shape[0] == node.out_shape[1]


def test_command_line_model_image_and_layers(qtbot, cached_loads, tmp_path):
    from argparse import Namespace

    from hookscope.gui.app import start
    from hookscope.gui.main_window import MainWindow
    from hookscope.gui.state import AppState

    path = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(path)
    st = AppState()
    window = MainWindow(st, restore=False)
    qtbot.addWidget(window)
    args = Namespace(
        model="torchvision:resnet18", weights=None, trust_pickle=False, device="cpu",
        image=str(path), layers=["layer1.0.conv1", "fc", "nope"], screenshot=None,
    )  # fmt: skip
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        start(st, window, args)
    assert st.layers == ["layer1.0.conv1", "fc"]
    assert st.image_path == str(path)
    assert blocker.args[0].call("layer1.0.conv1").activation.shape == (64, 56, 56)
    assert "nope" in window.statusBar().currentMessage()


def test_menus_shortcuts_and_recent_files(window):
    text = window.shortcuts_text()
    for key in ("Ctrl+O", "Ctrl+I", "Ctrl+S", "Ctrl+R", "Esc", "Ctrl+Q"):
        assert key in text, key
    assert window.auto_run_action.isCheckable() and window.auto_run_action.isChecked()
    window.auto_run_action.setChecked(False)
    assert window.state.auto_run is False
    window._fill_recent_models()
    window._fill_recent_images()
    models = [a.text() for a in window.recent_models_menu.actions()]
    images = [a.text() for a in window.recent_images_menu.actions()]
    assert models and models[0].startswith(window.state.model_args["spec"])
    assert images and images[0].endswith(Path(window.state.image_path).name)


def test_recent_lists_keep_whole_entries(window, tmp_path):
    # After a restart QSettings gives a one-item list back as a plain string; iterating it
    # split the path into single characters when the next entry was pushed.
    from hookscope.gui.main_window import settings

    paths = [str(tmp_path / f"{name}.png") for name in ("a", "b", "c")]
    settings().setValue("recent/test", paths[0])  # as read back from the file
    for path in paths[1:]:
        window._push_recent("recent/test", path)
    assert window._recent("recent/test") == paths[::-1]
    window._push_recent("recent/test", paths[0])
    assert window._recent("recent/test") == [paths[0], paths[2], paths[1]]


def test_recent_images_offer_only_files_that_exist(window, tmp_path):
    from hookscope.gui.main_window import settings

    there = tmp_path / "there.png"
    there.write_bytes(b"")
    settings().setValue("recent/images", [str(tmp_path / "gone.png"), str(there), "/"])
    window._fill_recent_images()
    assert [a.text() for a in window.recent_images_menu.actions()] == [str(there)]
