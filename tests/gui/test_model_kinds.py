"""The app with a segmentation, a detection and an embedding model (tiny factory models).

A click on the mask targets the class there over its region, a click on a box targets that
detection, a reference image makes an embedding's target its cosine similarity; the Predictions
dock lists what fits each kind, and a non-class target survives a saved session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from PySide6.QtCore import Qt

from tests.gui.conftest import RUN_TIMEOUT_MS

MODELS = Path(__file__).with_name("kind_models.py")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A real photo (the input) and another one (the embedding's reference), small."""
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("astronaut", "coffee"):
        img = Image.fromarray(getattr(skimage.data, name)()).resize((64, 64))
        out[name] = folder / f"{name}.png"
        img.save(out[name])
    return out


def wait_run(qtbot, state, action):
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
        action()
    return state.snapshot


def click(qtbot, view, row: float, col: float) -> None:
    """A left click on the model input at input pixel (row, col)."""
    pos = view.widget_point(row + 0.5, col + 0.5).toPoint()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)


def test_segmentation_mask_click_targets_that_region(make_window, qtbot, photos, tmp_path):
    from hookscope.core.engine.targets import RegionTarget, region_target
    from hookscope.core.loading.images import to_tensor
    from hookscope.core.methods.cam import compute_cam
    from hookscope.gui import session_io

    window = make_window(f"{MODELS}:build_seg", image=photos["astronaut"])
    st, view = window.state, window.image_dock.model_input
    snap = st.snapshot
    assert snap.kind.kind == "dense" and snap.mask.shape == (32, 32)
    # Predictions: classes by pixel share (the mask's own counts), coloured like the mask.
    share = np.bincount(snap.mask.ravel(), minlength=3) / snap.mask.size
    rows = window.predictions_dock.rows()
    assert [r[0] for r in rows] == list(np.argsort(-share)[: len(rows)])
    np.testing.assert_allclose([r[2] for r in rows], np.sort(share)[::-1][: len(rows)])
    table = window.predictions_dock.table
    colours = {
        table.item(i, 0).data(Qt.ItemDataRole.UserRole): table.item(i, 0).data(
            Qt.ItemDataRole.DecorationRole
        )
        for i in range(table.rowCount())
    }
    assert colours[0] is None and colours[1] is not None  # the background stays uncoloured
    assert {text.split()[0] for _, text in view.legend} == {"bright", "dark"}

    # Click a pixel of the class that is not explained now: its region there becomes the target.
    other = 1 if snap.target == 2 else 2
    rs, cs = np.nonzero(snap.mask == other)
    r, c = int(rs[len(rs) // 2]), int(cs[len(cs) // 2])
    before = snap.cams[st.cam_layers[0]]
    snap = wait_run(qtbot, st, lambda: click(qtbot, view, r, c))
    # The region stays in memory (no temp file): readable text, the mask on the target.
    assert isinstance(st.target, RegionTarget) and st.target.startswith(f"{other}@(")
    assert snap.target == other and snap.target_text == st.target
    assert snap.target_label.startswith(f"class {other} (")
    after = snap.cams[st.cam_layers[0]]
    assert np.abs(after - before).max() > 0.1  # the CAM explains the clicked class now
    # The same map as the core API with the clicked region as a callable target.
    loaded = st.loaded
    region = region_target(snap.mask, r, c, loaded.class_names)
    x = to_tensor(st.image, st.input_spec)
    expect = compute_cam(loaded.model, x, st.cam_layers, "gradcam", region)
    np.testing.assert_allclose(after, expect[st.cam_layers[0]], atol=1e-6)
    mask_png = st.target.mask
    np.testing.assert_array_equal(mask_png, region.mask.numpy() > 0)
    # ...which pytorch-grad-cam's SemanticSegmentationTarget gives too.
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    wrapped = _OutTensor(loaded.model)
    with pgc.GradCAM(wrapped, target_layers=[loaded.model.classifier]) as cam:
        peer = cam(x, targets=[SemanticSegmentationTarget(other, mask_png.astype(np.float32))])[0]
    np.testing.assert_allclose(after, peer, atol=1e-4)
    cam_dock = next(d for d in window.docks if d.objectName() == "CamDock")
    assert f"gradcam for class {other} (" in cam_dock.status.text()

    # A typed target in the grammar; a bad one is one sentence and keeps the target.
    errors = []
    st.errorRaised.connect(errors.append)
    kept = st.target
    assert not st.set_target_text("box:0")
    assert not st.set_target_text(f"1@{tmp_path / 'nope.png'}")
    assert st.target == kept and len(errors) == 2
    assert "does not fit this model, whose output is dense" in errors[0]
    assert "does not exist" in errors[1]

    # The region target survives a saved session (its mask is kept next to the file).
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)
    path = session_io.save_session(window, tmp_path / "seg.json")
    target = __import__("json").loads(path.read_text())["target"]
    assert target.startswith(f"{other}@") and Path(target.partition("@")[2]).parent == tmp_path
    second = make_window(f"{MODELS}:build_seg", image=photos["astronaut"])
    with qtbot.waitSignal(second.state.resultChanged, timeout=RUN_TIMEOUT_MS):
        assert session_io.open_session(second, path)
    qtbot.waitUntil(lambda: not second.state.busy, timeout=RUN_TIMEOUT_MS)
    s2 = second.state.snapshot
    assert second.state.target == target and s2.target == other
    np.testing.assert_allclose(s2.cams[st.cam_layers[0]], after, atol=1e-6)


class _OutTensor(torch.nn.Module):
    """The segmenter's ``out`` tensor alone, as pytorch-grad-cam wants it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def test_detection_box_click_targets_that_box(make_window, qtbot, photos):
    window = make_window(f"{MODELS}:build_det", image=photos["astronaut"])
    st, view, preds = window.state, window.image_dock.model_input, window.predictions_dock
    window.image_dock.score_spin.setValue(0.0)  # this toy scores below the default 0.5
    snap = st.snapshot
    assert snap.kind.kind == "detections" and snap.target_text == "box:0"
    # Predictions: every box with its label and score; the boxes drawn on the input.
    rows = preds.rows()
    assert [r[0] for r in rows] == ["box:0", "box:1", "box:2"]
    assert [r[1] for r in rows] == ["0: cat", "1: dog", "2: cat"]
    np.testing.assert_allclose([r[2] for r in rows], [p.score for p in snap.predictions])
    assert [b[1] for b in view.boxes] == [p.box for p in snap.predictions]
    assert view.current_box == 0

    # A click inside box 1 (x 16-30, y 4-20) explains detection 1.
    snap = wait_run(qtbot, st, lambda: click(qtbot, view, 12, 23))
    assert st.target == "box:1" and snap.target_text == "box:1"
    assert snap.target_label == "detection 1 (dog)"
    np.testing.assert_allclose(snap.target_score, snap.predictions[1].score, rtol=1e-6)
    assert view.current_box == 1
    assert "detection 1 (dog)" in preds.target_label.text()
    # A row click: detection 2.
    table = preds.table
    rect = table.visualItemRect(table.item(2, 0))
    snap = wait_run(
        qtbot,
        st,
        lambda: qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()),
    )
    assert st.target == "box:2" and snap.target_label == "detection 2 (cat)"
    # Outside every box: a sentence, no run; a class index does not fit detections.
    messages, errors = [], []
    st.statusMessage.connect(messages.append)
    st.errorRaised.connect(errors.append)
    click(qtbot, view, 28, 28)
    assert messages == ["No detection there: click inside a box."]
    assert not st.set_target_text("1") and not st.set_target_text("box:7")
    assert "use box:i, or a click on a box" in errors[0]
    assert errors[1] == "There is no detection 7: the model found 3 (box:0 to box:2)."
    assert st.target == "box:2"

    # A detector whose children output no plain map (torchvision's backbones give dicts) still
    # gets a CAM layer: the last one with a spatial grid.
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.load_model(f"{MODELS}:build_det_fpn", device="cpu")
    # (issue 22: the backbone's output, which feeds the head, not a layer of the head)
    assert st.cam_layers == ["backbone.body"] and "backbone.body" in st.layers
    assert list(st.snapshot.cams) == ["backbone.body"]

    # A model that detects nothing says so in the Predictions dock.
    with qtbot.waitSignal(st.runFailed, timeout=RUN_TIMEOUT_MS):
        st.load_model(f"{MODELS}:build_det_empty", device="cpu")
    assert "No detections" in preds.target_label.text()
    assert preds.rows() == []


def test_embedding_asks_for_a_reference_image(make_window, qtbot, photos, monkeypatch):
    from hookscope.core.engine.targets import embed_image

    window = make_window(f"{MODELS}:build_emb", image=photos["astronaut"])
    st, preds = window.state, window.predictions_dock
    snap = st.snapshot
    assert snap.kind.kind == "embedding" and snap.probs.shape == (0,)
    # No softmax top-k: no rows; the embedding's size and norm; a reference button.
    assert preds.rows() == [] and preds.table.isHidden()
    assert preds.reference_button.isVisibleTo(preds)
    norm = float(np.linalg.norm(snap.embedding))
    assert f"6 values, norm {norm:.4g}" in preds.target_label.text()
    assert "Reference image" in preds.target_label.text()

    monkeypatch.setattr(
        "hookscope.gui.filedialogs.open_file", lambda *a, **k: str(photos["coffee"])
    )
    snap = wait_run(qtbot, st, preds.reference_button.click)
    assert st.target == f"similar:{photos['coffee']}" == snap.target_text
    ref = embed_image(st.loaded.model, photos["coffee"], st.input_spec).numpy()
    cosine = float(ref @ snap.embedding / np.linalg.norm(ref) / np.linalg.norm(snap.embedding))
    np.testing.assert_allclose(snap.target_score, cosine, atol=1e-5)
    assert f"= {cosine:.4f} (cosine)" in preds.target_label.text()
    assert "similarity to coffee.png" in preds.target_label.text()
    errors = []
    st.errorRaised.connect(errors.append)
    assert not st.set_target_text("3")
    assert "similar:IMAGE" in errors[0]


def test_a_vit_opens_on_a_cam_layer_whose_map_is_not_flat(make_window, photos):
    """A ViT's last blocks have a grid, but only the class token reaches its head: the app
    must open on the last token layer whose map is not flat (as the CLI's default does)."""
    pytest.importorskip("timm")
    from hookscope.core.methods.cam import compute_cam, suggest_layer

    window = make_window("timm:vit_tiny_patch16_224?img_size=32", image=photos["astronaut"])
    st = window.state
    lm = st.loaded
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert st.cam_layers == [suggest_layer(lm.model, x, input_spec=lm.input_spec)]
    layer = st.cam_layers[0]
    cam = st.snapshot.cams[layer]
    assert float(cam.max() - cam.min()) > 0.5
    assert not [n for n in st.snapshot.notes if "flat" in n or "everywhere" in n]
    # The structural default (the final norm) has a grid, yet its gradient is zero.
    last = st.tree.layouts.default_layer()
    flat = compute_cam(lm.model, x, [last])
    assert float(flat[last].max()) == 0.0 and "zero everywhere" in flat.notes[0]
