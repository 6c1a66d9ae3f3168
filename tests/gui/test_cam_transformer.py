"""The CAM dock's Transformer group on demo:vit (issue 24): registry methods, worker runs."""

import numpy as np
from PIL import Image

from hookscope.core.demo import sample_path
from hookscope.core.experiments.shortcut import off_object_mass
from hookscope.core.jobs.probe import PATCH_MAP
from hookscope.core.methods import explainers
from hookscope.gui.docks.cam import CAM_CHOICE

SKY_MASK = np.asarray(Image.open(sample_path("airplane_sky_mask.png"))) > 0


def cam_dock(window):
    dock = next(d for d in window.analysis_docks if d.TITLE == "CAM")
    window.show_panel(dock)
    return dock


def pick(qtbot, dock, combo, text):
    with qtbot.waitSignal(dock.state.resultChanged, timeout=60_000):
        combo.setCurrentText(text)
    return dock.state.snapshot


def test_transformer_group_runs_the_registry_methods_on_demo_vit(make_window, qtbot):
    window = make_window("demo:vit")
    dock, st = cam_dock(window), window.state
    assert dock.tf_group.isVisibleTo(window)
    items = [dock.tf_combo.itemText(i) for i in range(dock.tf_combo.count())]
    # From the registry's kind, not a list in the dock: attnlrp appears once registered.
    assert items == [CAM_CHOICE, *explainers.names(explainers.TRANSFORMER)]
    assert {"rollout", "chefer", "legrad"} <= set(items)
    blocks = [a.text() for a in dock.blocks_button.menu().actions()]
    assert blocks == [f"encoder.layers.encoder_layer_{i}" for i in range(4)]

    mass = {}
    for method in ("rollout", "chefer", "legrad"):
        snap = pick(qtbot, dock, dock.tf_combo, method)
        assert snap.cam_method == method and list(snap.cams) == [PATCH_MAP]
        m = snap.cams[PATCH_MAP]
        assert m.shape == (96, 96) and m.min() == 0.0 and m.max() == 1.0
        # The dock shows what the worker computed, through the one renderer.
        assert list(dock.overlays) == [PATCH_MAP] and dock.overlays[PATCH_MAP].shape == (96, 96, 3)
        assert dock.status.text() == f"{method} for class 0 (airplane)."
        mass[method] = off_object_mass(m, SKY_MASK)
    # demo:vit learnt the sky: every transformer map lies mostly off the airplane.
    assert min(mass.values()) >= 0.8, mass

    # Head fusion (rollout's option) and blocks reach the run; the fusion changes the map.
    pick(qtbot, dock, dock.tf_combo, "rollout")
    mean_map = st.snapshot.cams[PATCH_MAP]
    assert dock.fusion_combo.isEnabled() and dock.fusion_combo.currentText() == "mean"
    snap = pick(qtbot, dock, dock.fusion_combo, "max")
    assert st.cam_params == {"fusion": "max"}
    assert float(np.abs(snap.cams[PATCH_MAP] - mean_map).max()) > 0.05
    with qtbot.waitSignal(st.resultChanged, timeout=60_000):
        dock.blocks_button.menu().actions()[3].setChecked(True)
    assert st.cam_blocks == ["encoder.layers.encoder_layer_3"]
    assert dock.blocks_button.text() == "Blocks: 1"

    # Sanity checks the current transformer method (no CAM layer needed); Trust lists them all.
    docks = {d.TITLE: d for d in window.experiment_docks}
    assert docks["Sanity check"].methods()[0] == "rollout"
    assert set(explainers.names(explainers.TRANSFORMER)) <= set(docks["Trust"].method_actions)
    for m in explainers.names(explainers.TRANSFORMER):  # scored by default on a ViT
        action = docks["Trust"].method_actions[m]
        assert action.isEnabled() and action.isChecked(), m

    # Back to the CAM above: Grad-CAM on its layer again, the CAM layers kept meanwhile.
    snap = pick(qtbot, dock, dock.tf_combo, CAM_CHOICE)
    assert snap.cam_method == dock.method_combo.currentText() == "gradcam"
    assert list(snap.cams) == st.cam_layers and PATCH_MAP not in snap.cams


def test_no_transformer_group_for_the_cnn_demo(window):
    dock = cam_dock(window)
    assert not dock.tf_group.isVisibleTo(window)
    trust = next(d for d in window.experiment_docks if d.TITLE == "Trust")
    for m in explainers.names(explainers.TRANSFORMER):  # nothing they could read: greyed
        action = trust.method_actions[m]
        assert not action.isEnabled() and not action.isChecked(), m
    assert dock.blocks_button.menu().actions() == []
