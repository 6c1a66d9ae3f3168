"""The workbench without Qt: default layers, target checks, region clicks in memory, events,
the probe request, typed results (cam_error, note kinds, stages) and the resolved target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from hookscope.core.engine.targets import RegionTarget, region_target
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs import probe as jobs
from hookscope.core.jobs.probe import ProbeRequest
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.models import LoadedModel
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods.cam import compute_cam, suggest_layer
from hookscope.core.reporting import CAM, DONE, PROBING, VIEWS, Note, Reporter
from hookscope.core.workbench import EVENTS, Workbench

KINDS = Path(__file__).parents[1] / "gui" / "kind_models.py"


def photo(size=(48, 40), seed=0) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(size[1], size[0], 3) * 255).astype(np.uint8))


def recording(wb: Workbench) -> list[tuple]:
    """Every event the workbench sends, with its arguments, in order."""
    seen: list[tuple] = []
    for name in EVENTS:
        wb.events.connect(name, lambda *args, name=name: seen.append((name, *args)))
    return seen


@pytest.fixture(scope="module")
def demo() -> Workbench:
    wb = Workbench()
    wb.load("demo")
    return wb


def test_demo_opens_on_the_default_layers_and_says_so_in_events():
    wb = Workbench()
    seen = recording(wb)
    wb.load("demo")
    assert wb.layers == ["features.block2", "features.block3", "fc"]
    assert wb.cam_layers == ["features.block3"] and wb.selected_layer == "features.block3"
    assert [e[0] for e in seen] == ["model", "spec", "layers", "target", "selection", "cam", "run"]
    assert seen[2] == ("layers", ["features.block2", "features.block3", "fc"])
    assert seen[4] == ("selection", "features.block3", 0)
    assert wb.model_args == {
        "spec": "demo",
        "weights": None,
        "trust_pickle": False,
        "device": "cpu",
    }
    # Asked layers: the known ones, the CAM layer among them, a sentence for the others.
    seen.clear()
    wb.load("demo", layers=["features.block1", "nope", "fc"])
    assert wb.layers == ["features.block1", "fc"] and wb.cam_layers == ["features.block1"]
    assert ("status", "demo has no layer named 'nope'; hooking features.block1, fc instead.") in [
        (e[0], e[1].replace(wb.loaded.name, "demo")) for e in seen if e[0] == "status"
    ]


def test_resnet18_default_layers_and_untick_rule():
    model = torchvision.models.resnet18(num_classes=7).eval()
    spec = InputSpec(size=(64, 64))
    lm = LoadedModel(model, "r18", None, spec)
    wb = Workbench()
    wb.set_model(lm, build_tree(model, spec))
    assert (wb.layers, wb.cam_layers) == (["layer3", "layer4", "fc"], ["layer4"])
    assert wb.model_args["live"]["class"] == "torchvision.models.resnet.ResNet"
    seen = recording(wb)
    wb.set_layers(["layer3", "fc"])  # the CAM layer unticked: the last map left takes over
    assert wb.cam_layers == ["layer3"]
    assert seen == [
        ("layers", ["layer3", "fc"]),
        ("cam",),
        ("selection", "layer3", 0),  # the selection follows the CAM layer
        ("run",),
    ]
    wb.set_layers(["fc"])  # no map left: no CAM layer, nothing added behind the user's back
    assert (wb.layers, wb.cam_layers) == (["fc"], [])


def test_a_token_model_opens_on_a_layer_whose_map_is_not_flat():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=5,
    ).eval()
    spec = InputSpec(size=(32, 32))
    wb = Workbench()
    wb.load(LoadedModel(vit, "tiny-vit", None, spec))  # one door: a wrapped live module
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    checked = suggest_layer(vit, x, input_spec=spec)
    assert wb.cam_layers == [checked] and checked in wb.layers and wb.layers[-1] == "heads"
    assert wb.tree.layouts.layouts[checked].kind == "tokens"


def test_target_checks_are_one_sentence_and_keep_the_target(demo):
    errors: list[str] = []
    demo.events.connect("error", errors.append)
    demo.auto_run = False
    n = len(demo.loaded.class_names)
    assert demo.set_target_text("airplane") and demo.target == 0
    assert not demo.set_target_text("box:0")
    assert not demo.set_target_text(str(n))
    assert not demo.set_target_text("zebra")
    assert demo.target == 0
    assert errors[0] == (
        f"The target 'box:0' does not fit this model, whose output is classes (1, {n}); "
        "use a class index or name."
    )
    assert errors[1] == (
        f"Target class {n} is out of range: the model has {n} classes (0 to {n - 1})."
    )
    assert errors[2].startswith("Unknown class name 'zebra'")
    assert demo.set_target_text("") and demo.target is None
    demo.events.disconnect("error", errors.append)


def test_a_run_gives_stages_typed_notes_and_a_cam_error_field(demo):
    demo.set_image(photo())
    stages = []
    snap = demo.run_now(Reporter(on_update=lambda p: stages.append(p.stage)))
    assert [s for s in dict.fromkeys(stages)] == [PROBING, CAM, VIEWS, DONE]
    assert snap.cam_error is None and set(snap.cams) == {"features.block3"}
    assert all(isinstance(n, Note) for n in snap.notes)
    # A CAM on a layer with no map: the probe's numbers stay, the error is a field and a note.
    request = demo.request().replace(cam_layers=("fc",))
    bad = jobs.probe_job(Reporter(), demo.loaded, demo.image, request)
    assert bad.cams == {} and bad.cam_error and bad.cam_error.endswith(".")
    assert [n.kind for n in bad.cam_notes] == ["cam-error"] and bad.cam_notes[0] == bad.cam_error
    np.testing.assert_allclose(bad.probs, snap.probs, atol=1e-6)


def test_probe_request_validates_and_round_trips(demo):
    req = demo.request()
    assert req.layers == tuple(demo.layers) and req.cam_method == "gradcam"
    again = ProbeRequest.from_dict(json.loads(json.dumps(req.to_dict())))
    assert again == req
    with pytest.raises(HookScopeError, match="Unknown CAM method 'gradcom'"):
        req.replace(cam_method="gradcom")
    with pytest.raises(HookScopeError, match="k must be a whole number of at least 1"):
        req.replace(k=0)
    with pytest.raises(HookScopeError, match="Bad target 'box:x'"):
        req.replace(target="box:x")
    with pytest.raises(HookScopeError, match="Unknown probe setting 'colour'"):
        ProbeRequest.from_dict({"colour": "red"})
    # The same numbers through the request as through the old options.
    img = photo()
    a = jobs.probe_job(Reporter(), demo.loaded, img, req.replace(target=3))
    b = jobs.probe_job(
        Reporter(), demo.loaded, img, list(req.layers), 3, "gradcam", list(req.cam_layers)
    )
    np.testing.assert_array_equal(a.cams["features.block3"], b.cams["features.block3"])


def test_a_region_click_stays_in_memory_and_reruns_exactly(monkeypatch):
    wb = Workbench()
    wb.load(f"{KINDS}:build_seg")
    wb.set_image(photo((64, 64), seed=3))
    snap = wb.run_now()
    assert snap.kind.kind == "dense" and snap.mask.shape == (32, 32)
    other = 1 if snap.target == 2 else 2
    rs, cs = np.nonzero(snap.mask == other)
    r, c = int(rs[len(rs) // 2]), int(cs[len(cs) // 2])
    h, w = snap.input_image.shape[:2]

    def no_disk(*args, **kwargs):
        raise AssertionError("a click must not write a file")

    monkeypatch.setattr(Image.Image, "save", no_disk)
    seen = recording(wb)
    assert wb.set_target_region(r * h // 32, c * w // 32)
    target = wb.target
    assert isinstance(target, RegionTarget) and target == f"{other}@({r},{c})"
    assert [e[0] for e in seen] == ["target", "run"] and seen[0][1] is target
    expect_region = region_target(snap.mask, r, c)
    np.testing.assert_array_equal(target.mask, expect_region.mask.numpy() > 0)
    after = wb.run_now()
    assert after.target == other and after.target_text == str(target)
    x = to_tensor(wb.image, wb.input_spec)
    expect = compute_cam(wb.loaded.model, x, wb.cam_layers, "gradcam", expect_region)
    np.testing.assert_allclose(after.cams[wb.cam_layers[0]], expect[wb.cam_layers[0]], atol=1e-6)
    # The text alone (a script, the CLI) finds the same region on the same prediction.
    text = jobs.probe_job(Reporter(), wb.loaded, wb.image, wb.request().replace(target=str(target)))
    assert text.target_text == str(target)
    np.testing.assert_array_equal(text.cams[wb.cam_layers[0]], after.cams[wb.cam_layers[0]])
    # Typing back the text it shows keeps the region; the request saves it compactly.
    assert wb.set_target_text(str(target)) and wb.target is target
    data = json.loads(json.dumps(wb.request().to_dict()))
    assert len(data["target"]["region"]["bits"]) <= 32 * 32 // 6 + 4
    back = ProbeRequest.from_dict(data).target
    assert back == target and np.array_equal(back.mask, target.mask)


def test_similar_reference_is_embedded_once_and_not_recorded(tmp_path, monkeypatch):
    from hookscope.core.engine import targets

    wb = Workbench()
    wb.load(f"{KINDS}:build_emb")
    wb.set_image(photo((32, 32), seed=1))
    ref = tmp_path / "ref.png"
    photo((32, 32), seed=2).save(ref)
    calls = []
    real = targets.embed_image
    monkeypatch.setattr(targets, "embed_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    wb.run_now()
    assert wb.set_target_text(f"similar:{ref}")
    first = wb.run_now()
    second = wb.run_now()
    assert len(calls) == 1  # once per model and reference file
    assert first.target_score == pytest.approx(second.target_score, abs=1e-7)
    # The reference pass is not a recorded call of the input's probe.
    assert all(len(calls_) == 1 for calls_ in first.layers.values())
    assert first.resolved_target is not None and first.cams  # the CAM reused that target


@pytest.mark.parametrize("name, target", [("build_det", "box:1"), ("build_emb", None)])
def test_a_box_or_embedding_cam_reuses_the_probe(name, target, monkeypatch):
    """The probe's resolved target stands for the CAM: no second forward/backward."""
    wb = Workbench()
    wb.load(f"{KINDS}:{name}")
    wb.set_image(photo((32, 32), seed=4))
    wb.set_target(target)
    passes = []
    real = jobs.compute_cam
    monkeypatch.setattr(jobs, "compute_cam", lambda *a, **k: passes.append(1) or real(*a, **k))
    snap = wb.run_now()
    assert passes == [] and snap.cam_error is None
    layer = wb.cam_layers[0]
    x = to_tensor(wb.image, wb.input_spec)
    expect = real(wb.loaded.model, x, [layer], "gradcam", snap.resolved_target)
    np.testing.assert_allclose(snap.cams[layer], expect[layer], atol=1e-6)
    assert float(snap.cams[layer].std()) > 0.01


def test_a_clicked_region_text_names_no_file_in_a_session(tmp_path):
    from hookscope.core.io.session import Session

    mask = tmp_path / "m.png"
    assert Session(model="demo", target="2@(4,5)").files() == []
    assert Session(model="demo", target=f"2@{mask}").files() == [
        ("target mask", "target", str(mask))
    ]


def test_shown_methods_are_the_side_by_side_ones_when_on(demo):
    # The Sanity dock checks what the CAM panel shows, through this one rule.
    assert demo.cam_layers and demo.shown_methods() == [demo.cam_method]
    try:
        assert demo.set_compare(["gradcam++", "layercam"])
        assert demo.shown_methods() == ["gradcam++", "layercam"]
    finally:
        demo.set_compare([])
    layers = demo.cam_layers
    try:
        demo.set_cam(layers=[])  # a CAM with no layer to run at shows nothing
        assert demo.shown_methods() == []
    finally:
        demo.set_cam(layers=layers)
    assert demo.shown_methods() == [demo.cam_method]
