"""Restricted (concept-conditional) CAM maps: over all channels (or all concepts plus the NMF
residual) they add up to the method's own map, and the HiResCAM concept map sums to the
concept's importance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hookscope.core.demo.scenes import make_dataset
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.concepts import decompose, fit_nmf, patches
from hookscope.core.loading.models import load_model
from hookscope.core.methods.cam import compute_cam
from hookscope.core.methods.conditional import channel_maps, concept_maps, layer_pass, to_input

LAYER = "features.block3"
AIRPLANE = 0


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def x(demo):
    from PIL import Image

    from hookscope.core.loading.images import to_tensor

    images, _, _ = make_dataset("shortcut", 4, seed=3)
    return torch.cat([to_tensor(Image.fromarray(a), demo.input_spec) for a in images])


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "layercam", "gradcam++", "xgradcam"])
def test_channel_maps_sum_to_the_cam(demo, x, method):
    p = layer_pass(demo.model, x[:1], LAYER, method, AIRPLANE)
    m = channel_maps(p)
    assert m.shape == (128, 12, 12)
    total = m.sum(0)
    scale = np.abs(m).sum(0).max()
    # Σ_c α_c·A_c is the method's own pre-ReLU map (float32 sums: relative 1e-6 of the terms)
    assert np.abs(total - p.cam).max() <= 1e-5 * scale
    want = compute_cam(demo.model, x[:1], [LAYER], method, AIRPLANE)[LAYER]
    np.testing.assert_allclose(to_input(total, p.input_size), want, atol=1e-4)
    one = channel_maps(p, [5])[0]
    np.testing.assert_allclose(one, m[5])


def test_concept_maps_plus_residual_are_the_cam_and_sum_to_importance(demo, x):
    p = layer_pass(demo.model, x[1:2], LAYER, "hirescam", AIRPLANE)
    a = p.acts[None]
    acts = [layer_pass(demo.model, x[i : i + 1], LAYER, "gradcam", 0).acts for i in range(4)]
    nmf, k, _ = fit_nmf(patches(np.stack(acts)), 3)
    shift = np.zeros(128, np.float32)
    u = nmf.transform(patches(a) + shift).reshape(12, 12, k).transpose(2, 0, 1)
    w = nmf.components_
    mk = concept_maps(p, u, w)
    resid = (a[0] + shift[:, None, None]) - np.einsum("khw,kc->chw", u, w)
    rest = (p.field * (resid - shift[:, None, None])).sum(0)
    np.testing.assert_allclose(mk.sum(0) + rest, p.cam, atol=1e-5 * np.abs(p.cam).max())
    d = decompose(a, p.grads[None], nmf, shift)
    np.testing.assert_allclose(mk.sum((1, 2)), d["importance"][0], rtol=1e-5, atol=1e-6)
    # the score of a pool + linear head: concepts + residual = y − bias
    bias = float(demo.model.fc.bias.detach()[AIRPLANE])
    assert mk.sum() + rest.sum() == pytest.approx(p.score - bias, abs=1e-4)


def test_gradcam_channel_maps_sum_to_the_gradcam_at_every_position(demo, x):
    p = layer_pass(demo.model, x[2:3], LAYER, "gradcam", 1)
    alpha = p.grads.mean((1, 2))
    np.testing.assert_allclose(p.field[:, 0, 0], alpha, rtol=1e-6)
    np.testing.assert_allclose(channel_maps(p)[7], alpha[7] * p.acts[7], rtol=1e-6)


def test_eigencam_has_no_restricted_map(demo, x):
    with pytest.raises(HookScopeError, match="not a weighted sum"):
        layer_pass(demo.model, x[:1], LAYER, "eigencam", AIRPLANE)
    p = layer_pass(demo.model, x[:1], LAYER, "gradcam", AIRPLANE)
    with pytest.raises(HookScopeError, match="channels 0 to 127"):
        channel_maps(p, [128])


def test_channel_maps_of_vit_tokens_sum_to_the_cam():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    p = layer_pass(vit, x, "blocks.10", "gradcam", 3)
    assert p.acts.shape == (192, 14, 14)  # tokens as a grid, the class token left out
    m = channel_maps(p)
    assert np.abs(m.sum(0) - p.cam).max() <= 1e-6 * np.abs(m).sum(0).max()
    want = compute_cam(vit, x, ["blocks.10"], "gradcam", 3)["blocks.10"]
    np.testing.assert_allclose(to_input(m.sum(0), p.input_size), want, atol=1e-4)
