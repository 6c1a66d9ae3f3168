"""hookscope.explain: the registry's maps for a live module, any image form, batches, untouched."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import hookscope
import hookscope.core.demo
from hookscope.core.display.render import magnitude_map
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.live import NATIVE_NOTE, fingerprint, wrap_model
from hookscope.core.loading.models import load_model
from hookscope.core.methods.attribution import ATTRIBUTION_METHODS, attribute
from hookscope.core.methods.cam import CAM_METHODS, compute_cam
from hookscope.core.methods.explainers import INFO

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
CAR = SAMPLES / "car_road.png"
LAYER = hookscope.core.demo.CAM_LAYER
FAST = {"smoothgrad": {"samples": 4}, "ig": {"steps": 8}, "occlusion": {"stride": 16}}


@pytest.fixture(scope="module")
def demo():
    lm = load_model("demo")
    return lm, to_tensor(load_image(CAR), lm.input_spec)


@pytest.fixture(scope="module")
def resnet():
    """A live random-init resnet18 in train mode with a frozen stem, as a user might hold it."""
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=5).train()
    m.conv1.weight.requires_grad_(False)
    x = torch.randn(1, 3, 64, 64)
    return m, x


def test_demo_maps_equal_compute_cam_and_the_attributions(demo):
    lm, x = demo
    for name in CAM_METHODS:
        e = hookscope.explain(lm, CAR, name, layer=LAYER)
        ref = compute_cam(lm.model, x, [LAYER], name, e.target)[LAYER]
        np.testing.assert_allclose(e.map, ref, atol=1e-6, err_msg=name)
        assert e.target == 1 and e.layer == LAYER
    for name in ATTRIBUTION_METHODS:
        opts = FAST.get(name, {})
        e = hookscope.explain(lm, CAR, name, layer=LAYER, **opts)
        raw = attribute(name, lm.model, x, 1, spec=lm.input_spec, layer=LAYER, **opts)
        np.testing.assert_allclose(e.map, magnitude_map(raw), atol=1e-6, err_msg=name)


def test_live_resnet18_maps_and_the_model_is_untouched(resnet):
    model, x = resnet
    before = fingerprint(model)
    for name in CAM_METHODS:
        e = hookscope.explain(model, x, name)
        assert e.layer == "layer4", name  # the app's default layer
        ref = compute_cam(model, x, ["layer4"], name, e.target)["layer4"]
        np.testing.assert_allclose(e.map, ref, atol=1e-6, err_msg=name)
        assert e.map.shape == (64, 64) and e.map.dtype == np.float32
    for name in ATTRIBUTION_METHODS:
        opts = FAST.get(name, {})
        e = hookscope.explain(model, x, name, **opts)
        spec = wrap_model(model).input_spec  # no input size given: unnormalised, black = 0
        raw = attribute(name, model, x, e.target, spec=spec, layer="layer4", **opts)
        np.testing.assert_allclose(e.map, magnitude_map(raw), atol=1e-6, err_msg=name)
    after = fingerprint(model)
    assert after == before, before.differences(after)
    assert model.training and model.conv1.weight.grad is None


def test_probs_target_and_notes(resnet):
    model, x = resnet
    e = hookscope.explain(model, x, target=3, class_names=list("abcde"))
    with torch.no_grad():
        model.eval()
        ref = torch.softmax(model(x), 1)[0].numpy()
        model.train()
    np.testing.assert_allclose(e.probs, ref, atol=1e-6)
    assert e.target == 3 and e.target_label == "class 3 (d)"
    assert [(n.kind, n.text) for n in e.notes][:1] == [(INFO, NATIVE_NOTE)]
    frame = e.to_frame()
    assert list(frame.columns) == ["class", "name", "prob"]
    assert frame["prob"].sum() == pytest.approx(1) and frame["prob"].is_monotonic_decreasing
    assert frame["name"].iloc[0] == "abcde"[int(ref.argmax())]
    png = e._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (64, 64)


def test_a_batch_equals_one_image_at_a_time(resnet):
    model, _ = resnet
    xs = torch.randn(6, 3, 64, 64)
    batch = hookscope.explain(model, xs, "layercam", batch_size=4)
    assert isinstance(batch, list) and len(batch) == 6
    for i, b in enumerate(batch):
        one = hookscope.explain(model, xs[i : i + 1], "layercam")
        np.testing.assert_allclose(b.map, one.map, atol=1e-5)
        np.testing.assert_allclose(b.probs, one.probs, atol=1e-6)
        assert b.target == one.target and b.layer == one.layer == "layer4"
    # A method without a batched form runs image by image, with the same maps too.
    sal = hookscope.explain(model, [xs[0], xs[1]], "saliency", target=[1, 2])
    assert [s.target for s in sal] == [1, 2]
    one = hookscope.explain(model, xs[1:2], "saliency", target=2)
    np.testing.assert_allclose(sal[1].map, one.map, atol=1e-6)


def test_every_image_form_gives_the_same_map(demo):
    lm, x = demo
    model = lm.model  # live module: the demo's preprocessing given by hand
    kw = dict(input_size=96, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layer=LAYER)
    pil = load_image(CAR)
    maps = [
        hookscope.explain(model, CAR, **kw).map,
        hookscope.explain(model, str(CAR), **kw).map,
        hookscope.explain(model, pil, **kw).map,
        hookscope.explain(model, np.asarray(pil), **kw).map,
        hookscope.explain(model, x, layer=LAYER).map,  # a tensor goes in as it is
        hookscope.explain("demo", CAR, layer=LAYER).map,
    ]
    for m in maps[1:]:
        np.testing.assert_array_equal(m, maps[0])
    with pytest.raises(HookScopeError, match="numpy image must be uint8"):
        hookscope.explain(model, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(HookScopeError, match="Unknown method 'gradkam'"):
        hookscope.explain(model, CAR, "gradkam")


def test_the_default_layer_is_checked_once_per_model_and_input_shape(monkeypatch):
    import hookscope.core.api as api

    calls = []
    real = api.checked_cam_layer
    monkeypatch.setattr(
        api, "checked_cam_layer", lambda lm, tree: calls.append(1) or real(lm, tree)
    )
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    x = torch.rand(1, 3, 48, 48)
    first, again = hookscope.explain(model, x), hookscope.explain(model, x)
    assert len(calls) == 1 and first.layer == again.layer == "layer4"
    np.testing.assert_array_equal(first.map, again.map)
    hookscope.explain(model, torch.rand(1, 3, 64, 64))  # another shape: checked again
    assert len(calls) == 2
