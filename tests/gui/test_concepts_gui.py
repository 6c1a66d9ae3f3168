"""Concepts in the app (issue 25): a scan's concepts in the Dataset dock (per cluster, with top
patches) and the CAM dock (the current image's concept stack), Find concepts… in the long lane,
and CAM maps restricted to a clicked concept or channel."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.gui.command as main
from hookscope.core.demo.scenes import make_dataset
from hookscope.core.io.scan_outputs import open_scan
from hookscope.core.jobs.concept_view import concepts_for, forget_concepts
from hookscope.core.loading.images import to_tensor
from hookscope.gui.widgets.concept_panel import pct
from hookscope.gui.worker import LONG, lane_of

LAYER = "features.block3"
WAIT_MS = 60_000


def dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


@pytest.fixture(autouse=True)
def forget(_model_cache):
    """The session's cached demo model is shared: later tests must not see these concepts."""
    yield
    for value in list(_model_cache.values()):  # (LoadedModel, tree) per spec
        forget_concepts(value[0].model)


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("concepts_gui")
    images, _, _ = make_dataset("shortcut", 12, seed=9)
    (root / "images").mkdir()
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(root / "images" / f"s{i:02d}.png")
    out = root / "scan"
    args = ["scan", "--model", "demo", "--images", str(root / "images"), "--layer", LAYER]
    args += ["--out", str(out), "--workers", "0", "--clusters", "2", "--concepts", "3"]
    assert main.main(args) == 0
    return out


def test_opened_concepts_in_the_dataset_and_cam_docks(make_window, qtbot, scan_dir):
    window = make_window(layers=[LAYER])
    st = window.state
    assert st.cam_layers == [LAYER]  # the demo's default CAM layer
    data, cam, acts = (dock(window, n) for n in ("DatasetDock", "CamDock", "ActivationsDock"))
    panel = cam.concepts
    assert panel.isHidden()  # no concepts, no click: nothing to show
    with qtbot.waitSignal(panel.shown, timeout=WAIT_MS):
        assert data.open_folder(scan_dir)
    assert concepts_for(st.loaded.model, LAYER).folder == scan_dir
    # Dataset dock: the cluster's concepts ranked as in clusters.json, each with a patch strip
    clusters = json.loads((scan_dir / "clusters.json").read_text())
    data.pick_cluster(clusters[0]["id"])
    assert data.concept_list.count() == 3
    first = clusters[0]["concepts"][0]
    assert data.concept_list.item(0).text().startswith(f"concept {first['id']}\n")
    assert not data.concept_list.item(0).icon().isNull()
    assert f"<b>concept {first['id']}</b> carries" in data.composition.text()
    # CAM dock: the current image's 3 concepts, highest importance first
    v = panel.view
    assert panel.stack.count() == 3 and v.layer == LAYER
    assert v.importance.sum() + v.residual == pytest.approx(v.total, abs=1e-6)
    # pool + linear head: Σ A·∂y/∂A = y − bias, y the centred logit z_t − mean_j z_j the
    # concepts are scored on (core.experiments.concepts), the bias centred alike
    b = st.loaded.model.fc.bias.detach().numpy()
    with torch.no_grad():
        z = st.loaded.model(to_tensor(st.image, st.input_spec))[0].numpy()
    assert v.total == pytest.approx((z[v.target] - z.mean()) - (b[v.target] - b.mean()), abs=1e-4)
    top = panel.order()[0]
    assert panel.stack.item(0).text() == f"concept {top}\n{pct(v.share()[top])}"
    assert "Concepts of features.block3" in panel.label.text()
    assert v.restricted is None and panel.restricted.isHidden()

    # a click on a concept: the Grad-CAM restricted to it; on the demo's pool + linear head
    # Grad-CAM = HiResCAM, so its sum is that concept's importance
    with qtbot.waitSignal(panel.shown, timeout=WAIT_MS):
        panel._on_item(panel.stack.item(0))
    assert st.condition == (LAYER, "concept", top)
    r = panel.view
    assert r.restricted_label == f"concept {top}" and not panel.restricted.isHidden()
    assert r.restricted_sum == pytest.approx(float(r.importance[top]), rel=1e-4, abs=1e-7)
    assert panel.stack.item(0).isSelected() and not panel.stack.item(1).isSelected()
    assert "Restricted to concept" in panel.label.text() and pct(0.004) == pct(-0.004) == "0%"
    # a click on a channel in the Activations dock: the map restricted to that channel
    st.select(LAYER)
    with qtbot.waitSignal(panel.shown, timeout=WAIT_MS):
        acts.restrict(5)
    assert st.condition == (LAYER, "channel", 5)
    assert panel.view.restricted_label == "channel 5" and panel.view.restricted.shape == (96, 96)
    assert "Restricted to channel 5 of features.block3" in panel.label.text()
    figure = cam.make_panels()
    titles = [p.title for p in figure[-4:]]  # after the CAM's own panels
    assert titles[-1] == "gradcam · channel 5"
    assert [t.split(" (")[0] for t in titles[:3]] == [f"concept {k}" for k in panel.order()]
    arrays = cam.make_arrays()
    np.testing.assert_array_equal(arrays[f"cam/{LAYER}/concepts/importance"], v.importance)
    assert arrays[f"cam/{LAYER}/restricted/channel_5"].shape == (96, 96)
    assert cam.settings()["restricted_to"] == [LAYER, "channel", 5]
    # Esc (cancel everything) while it computes: the panel says so
    panel.update_view()
    st.cancel()
    qtbot.waitUntil(lambda: not st.worker.busy, timeout=WAIT_MS)
    assert panel.label.text().startswith("Cancelled: run again")
    with qtbot.waitSignal(panel.shown, timeout=WAIT_MS):
        panel.clear_button.click()
    assert st.condition is None and panel.view.restricted is None


def test_find_concepts_runs_in_the_long_lane(make_window, qtbot, scan_dir, tmp_path):
    folder = tmp_path / "scan"
    shutil.copytree(scan_dir, folder)
    window = make_window(layers=[LAYER])
    data = dock(window, "DatasetDock")
    assert data.find_concepts() is None and "Open or finish a scan" in data.status.text()
    assert data.open_folder(folder)
    assert lane_of("concepts") == LONG
    data.k_combo.setCurrentText("2")
    assert data.find_concepts() is not None
    assert not data.concepts_button.isEnabled()
    qtbot.waitUntil(lambda: data.concepts_button.isEnabled(), timeout=WAIT_MS)
    assert data.status.text().startswith("2 concepts over 12 images"), data.status.text()
    assert len(json.loads((folder / "concepts.json").read_text())) == 2
    html = (folder / "report.html").read_text()
    assert html.count("<div class='concepts'>") == len(open_scan(folder).clusters)
    assert data.concept_list.count() == 2 or data.selected_cluster() is None
    # cancel: the job stops, the dock says so and the button comes back
    data.find_concepts()
    data.cancel_button.click()
    qtbot.waitUntil(lambda: data.concepts_button.isEnabled(), timeout=WAIT_MS)
    assert data.status.text() == "Cancelled."
    assert np.load(folder / "concept_importance.npy").shape == (12, 2)
