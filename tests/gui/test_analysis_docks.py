"""The four analysis docks: Activations, Gradients, CAM, Attribution (pytest-qt, offscreen)."""

from __future__ import annotations

import base64
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from hookscope.core.display.render import normalize
from hookscope.core.engine.hooks import hook_count
from hookscope.core.methods.cam import CAM_METHODS
from tests.gui.conftest import RUN_TIMEOUT_MS


def dock(window, name):
    """The dock, brought to the front as a user would by clicking its tab."""
    found = next(d for d in window.analysis_docks if d.objectName() == name)
    found.raise_()
    return found


def first_layer(snap, *, vector: bool):
    """A recorded layer whose output is a vector (or a feature map)."""
    for name, calls in snap.layers.items():
        if (calls[0].activation.ndim == 1) == vector and calls[0].activation.ndim in (1, 3):
            return name
    pytest.fail("the start model has no such layer; the demo should have both kinds")


def run_and_wait(qtbot, state, action):
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
        action()
    return state.snapshot


@pytest.fixture(scope="module")
def _r18():
    return "torchvision:resnet18"


def test_all_four_docks_are_present(window):
    names = [d.objectName() for d in window.analysis_docks]
    assert names == ["ActivationsDock", "GradientsDock", "CamDock", "AttributionDock"]


def test_activation_mosaic_is_one_image_of_every_channel(window):
    state, acts = window.state, dock(window, "ActivationsDock")
    layer = first_layer(state.snapshot, vector=False)
    state.select(layer, 0)
    act = state.snapshot.call(layer, 0).activation
    c, h, w = act.shape
    tiles = acts.view.tiles
    assert tiles.rows * tiles.cols >= c > (tiles.rows - 1) * tiles.cols
    assert tiles.tile == (h, w)
    assert tiles.image.shape == (tiles.rows * (h + 1) - 1, tiles.cols * (w + 1) - 1)
    np.testing.assert_array_equal(acts.view.mosaic_item.image, tiles.image)  # one ImageItem
    # Tile k holds channel k, each scaled to [0, 1] on its own.
    last = c - 1
    y, x = tiles.origin(last)
    np.testing.assert_allclose(tiles.image[y : y + h, x : x + w], normalize(act[last]), atol=1e-6)
    # "shared" keeps the raw values.
    acts.view.scale_combo.setCurrentText("shared")
    y, x = acts.view.tiles.origin(3)
    np.testing.assert_array_equal(acts.view.tiles.image[y : y + h, x : x + w], act[3])
    assert "channel 3" in acts.view.describe(y + 0.5, x + 0.5)
    # Click on channel 3 → close-up with its stats.
    acts.view._on_click(y + 0.5, x + 0.5)
    assert acts.view.selected == 3
    np.testing.assert_array_equal(acts.view.channel_pane.image.image, act[3])
    assert f"max {act[3].max():.4g}" in acts.view.stats_label.text()


def test_vector_layer_is_a_bar_plot(window):
    state, acts = window.state, dock(window, "ActivationsDock")
    layer = first_layer(state.snapshot, vector=True)
    state.select(layer, 0)
    k = state.snapshot.call(layer, 0).activation.shape[0]
    assert acts.view.tiles is None
    assert len(acts.view.bars.opts["x"]) == k
    np.testing.assert_array_equal(
        acts.view.bars.opts["height"], state.snapshot.call(layer).activation
    )


def test_sort_by_mean_puts_the_highest_mean_channel_first(window):
    state, acts = window.state, dock(window, "ActivationsDock")
    layer = first_layer(state.snapshot, vector=False)
    state.select(layer, 0)
    act = state.snapshot.call(layer, 0).activation
    acts.view.sort_combo.setCurrentText("mean")
    means = act.reshape(act.shape[0], -1).mean(1)
    order = acts.view.order
    assert order[0] == int(np.argmax(means))
    assert np.all(np.diff(means[order]) <= 1e-7)
    assert sorted(order.tolist()) == list(range(act.shape[0]))
    acts.view.sort_combo.setCurrentText("max")
    assert acts.view.order[0] == int(np.argmax(act.reshape(act.shape[0], -1).max(1)))


def test_gradients_dock_symmetric_levels_input_gradient_and_param_table(window):
    state, grads = window.state, dock(window, "GradientsDock")
    snap = state.snapshot
    layer = first_layer(snap, vector=False)
    state.select(layer, 0)
    for scale in ("per channel", "shared"):
        grads.view.scale_combo.setCurrentText(scale)
        lo, hi = grads.view.tiles.levels
        assert lo == -hi and hi > 0
        lo, hi = grads.view.mosaic_item.getLevels()
        assert lo == pytest.approx(-hi)
    lo, hi = grads.view.channel_pane.image.getLevels()
    assert lo == pytest.approx(-hi)
    h, w = snap.input_image.shape[:2]
    assert grads.input_map.shape == (h, w)
    np.testing.assert_allclose(grads.input_map, np.abs(snap.input_grad).max(0))
    grads.input_mode.setCurrentIndex(1)  # signed mean: diverging, symmetric
    assert grads.input_levels[0] == -grads.input_levels[1]
    assert grads.table.rowCount() == len(snap.layers)
    assert [grads.table.item(r, 0).text() for r in range(grads.table.rowCount())] == list(
        snap.layers
    )


def test_cam_dock_lists_the_registry_and_follows_the_target(qtbot, window):
    state, cam = window.state, dock(window, "CamDock")
    combo = [cam.method_combo.itemText(i) for i in range(cam.method_combo.count())]
    assert combo == list(CAM_METHODS)
    assert cam.overlays, "the first run computes a CAM"
    name = next(iter(cam.maps))
    assert cam.overlays[name].std() > 0
    assert cam.overlays[name].shape == state.snapshot.input_image.shape
    before = cam.maps[name].copy()
    other = next(i for i in range(len(state.snapshot.probs)) if i != state.snapshot.target)
    snap = run_and_wait(qtbot, state, lambda: state.set_target(other))
    assert snap.target == other
    assert not np.allclose(cam.maps[name], before)
    assert str(other) in cam.status.text()
    # Colour map and alpha only redraw: no new run.
    state.set_display(colormap="inferno", alpha=0.8)
    assert not state.busy
    assert cam.cmap_combo.currentText() == "inferno" and cam.alpha_slider.value() == 80


def test_guided_backprop_runs_in_the_worker(qtbot, window):
    state, att = window.state, dock(window, "AttributionDock")
    att.set_method("guided-backprop")
    with qtbot.waitSignal(state.worker.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        job = att.run()
    assert blocker.args[0] == job and blocker.args[1] == "attribution"
    h, w = state.snapshot.input_image.shape[:2]
    assert att.signed_map.shape == (h, w)
    assert att.signed_map.std() > 0
    assert att.heat_map.min() >= 0 and att.heat_map.max() == pytest.approx(1.0)
    assert att.result.target == state.snapshot.target


def test_attribution_form_follows_the_method(window):
    att = dock(window, "AttributionDock")
    att.set_method("smoothgrad")
    assert {"samples", "noise"} <= set(att.form.editors)
    att.set_method("ig")
    assert {"steps", "baseline"} <= set(att.form.editors)
    att.set_method("occlusion")
    att.form.set_value("window", 24)
    assert att.params()["window"] == 24 and "stride" in att.params()


def test_save_figure_png_svg_and_export_parts(window, tmp_path):
    acts = dock(window, "ActivationsDock")
    png = acts.save_figure(tmp_path / "acts.png")
    from hookscope.gui.docks.base import figure_items
    from hookscope.gui.figures import figure_rgb

    expected = figure_rgb(figure_items(acts.figure_panels()))
    img = Image.open(png)
    assert img.size[0] >= expected.shape[1] * 0.9 and img.size[1] >= expected.shape[0] * 0.9
    svg = acts.save_figure(tmp_path / "acts.svg")
    root = ET.parse(svg).getroot()
    hrefs = [v for el in root.iter() for k, v in el.attrib.items() if k.endswith("href")]
    data = next(h for h in hrefs if h.startswith("data:image/png;base64,"))
    Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).verify()
    for d in window.analysis_docks:
        arrays = d.export_arrays()
        assert all(isinstance(a, np.ndarray) for a in arrays.values())
        json.dumps(d.settings())
    np.savez(tmp_path / "cam.npz", **dock(window, "CamDock").export_arrays())
    assert any(k.endswith("/map") for k in np.load(tmp_path / "cam.npz").files)


def test_cancel_scorecam_leaves_no_hooks_and_the_app_usable(qtbot, make_window, _r18):
    window = make_window(_r18, layers=["layer3", "layer4", "fc"])
    state, cam = window.state, dock(window, "CamDock")
    run_and_wait(qtbot, state, lambda: state.set_input_size(128, 128))
    with qtbot.waitSignal(
        state.progress,
        timeout=RUN_TIMEOUT_MS,
        check_params_cb=lambda d, t, m: "scorecam" in m and d > 0,
    ):
        state.set_cam(method="scorecam", layers=["layer4"])
    with qtbot.waitSignal(state.worker.cancelled, timeout=RUN_TIMEOUT_MS):
        state.cancel()
    assert not state.busy
    assert hook_count(state.loaded.model) == 0
    assert state.snapshot.cam_method == "gradcam"  # the cancelled run left the last result alone
    snap = run_and_wait(qtbot, state, lambda: state.set_cam(method="gradcam++"))
    assert snap.cam_method == "gradcam++" and cam.maps["layer4"].std() > 0
    assert hook_count(state.loaded.model) == 0
