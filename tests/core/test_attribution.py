"""Attributions: agreement with captum, functional ReLUs guided, model left untouched."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.engine.hooks import hook_count
from hookscope.core.errors import HookScopeError
from hookscope.core.methods.attribution import (
    ATTRIBUTION_METHODS,
    attribute,
    guided_backprop,
    guided_gradcam,
    integrated_gradients,
    make_baseline,
    occlusion,
    saliency,
    smoothgrad,
)
from hookscope.core.methods.cam import compute_cam
from hookscope.core.reporting import Cancelled, Reporter
from tests.core.conftest import image


def test_registry_names():
    assert list(ATTRIBUTION_METHODS) == [
        "guided-backprop",
        "guided-gradcam",
        "saliency",
        "smoothgrad",
        "ig",
        "occlusion",
    ]


def test_guided_backprop_matches_captum_with_inplace_relus(resnet):
    captum_attr = pytest.importorskip("captum.attr")
    x = image(224)
    mine = guided_backprop(resnet, x, target=7)
    ref = captum_attr.GuidedBackprop(resnet).attribute(x, target=7)[0].detach().numpy()
    scale = float(np.abs(ref).max())
    assert mine.shape == (3, 224, 224) and scale > 0
    assert float(np.abs(mine - ref).max()) <= 1e-5 * scale
    plain = saliency(resnet, x, target=7, absolute=False)
    assert float(np.abs(mine - plain).max()) > 0.1 * scale  # the guidance changed something
    assert hook_count(resnet) == 0


class TwinNet(nn.Module):
    """The same small CNN with ReLUs as modules, F.relu, torch.relu_ or Tensor.relu."""

    def __init__(self, style: str):
        super().__init__()
        self.style = style
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 4)

    def relu(self, t):
        if self.style == "module":
            return self.act(t)
        if self.style == "functional":
            return F.relu(t)
        if self.style == "inplace":
            torch.relu_(t)  # result ignored on purpose: in-place semantics must hold
            return t
        return t.relu()

    def forward(self, x):
        h = self.relu(self.c1(x))
        h = self.relu(self.c2(h))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("style", ["functional", "inplace", "method"])
def test_functional_relus_are_guided_too(style):
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    module_net = TwinNet("module").eval()
    other = TwinNet(style).eval()
    other.load_state_dict(module_net.state_dict())
    x = image(16)
    ref = guided_backprop(module_net, x, target=2)
    got = guided_backprop(other, x, target=2)
    np.testing.assert_allclose(got, ref, atol=1e-7)
    captum_ref = captum_attr.GuidedBackprop(module_net).attribute(x, target=2)[0].detach().numpy()
    np.testing.assert_allclose(ref, captum_ref, atol=1e-7)
    assert not np.allclose(got, saliency(other, x, target=2, absolute=False))


@pytest.mark.parametrize("rule", ["riemann_trapezoid", "gausslegendre"])
def test_integrated_gradients_match_captum(resnet, rule):
    captum_attr = pytest.importorskip("captum.attr")
    x = image(64)
    base = make_baseline(x, "black")
    mine = integrated_gradients(resnet, x, 7, steps=20, baseline="black", rule=rule, batch_size=8)
    ig = captum_attr.IntegratedGradients(resnet)
    ref = ig.attribute(x, base, target=7, n_steps=20, method=rule)[0].detach().numpy()
    assert float(np.abs(mine - ref).max()) <= 1e-4 * float(np.abs(ref).max())


def test_integrated_gradients_complete_on_a_small_net():
    torch.manual_seed(0)
    net = TwinNet("module").eval()
    x = image(16)
    attr = integrated_gradients(net, x, 1, steps=200, baseline="zeros", rule="riemann_middle")
    with torch.no_grad():
        gap = float(net(x)[0, 1] - net(torch.zeros_like(x))[0, 1])
    assert attr.sum() == pytest.approx(gap, rel=1e-2, abs=1e-4)


def test_occlusion_matches_captum(resnet):
    captum_attr = pytest.importorskip("captum.attr")
    x = image(64)
    mine = occlusion(resnet, x, 7, window=12, stride=8, fill=0.0, batch_size=16)
    ref = captum_attr.Occlusion(resnet).attribute(
        x,
        target=7,
        sliding_window_shapes=(3, 12, 12),
        strides=(3, 8, 8),
        baselines=0.0,
        perturbations_per_eval=16,
    )
    assert float(np.abs(mine - ref[0].numpy()).max()) <= 1e-5


def test_saliency_matches_captum(resnet):
    captum_attr = pytest.importorskip("captum.attr")
    x = image(64)
    ref = captum_attr.Saliency(resnet).attribute(x, target=4)[0].numpy()
    np.testing.assert_allclose(saliency(resnet, x, target=4), ref, atol=1e-7)


def test_smoothgrad_without_noise_is_the_gradient_and_reports(resnet):
    x = image(48)
    seen = []
    reporter = Reporter(lambda done, total, msg: seen.append((done, total)))
    # batch 1 like saliency: conv kernels differ by batch size, and max-pool ties then flip
    got = smoothgrad(resnet, x, 3, samples=3, noise=0.0, batch_size=1, reporter=reporter)
    np.testing.assert_allclose(got, saliency(resnet, x, 3, absolute=False), atol=1e-7)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    noisy = smoothgrad(resnet, x, 3, samples=4, noise=0.2, seed=1)
    np.testing.assert_array_equal(noisy, smoothgrad(resnet, x, 3, samples=4, noise=0.2, seed=1))
    assert not np.allclose(noisy, got)


def test_guided_gradcam_is_guided_backprop_times_gradcam(resnet):
    x = image(96)
    got = guided_gradcam(resnet, x, 5, layer="layer4")
    cam = compute_cam(resnet, x, ["layer4"], "gradcam", 5)["layer4"]
    np.testing.assert_allclose(got, guided_backprop(resnet, x, 5) * cam[None], atol=1e-8)


def test_attributions_leave_the_model_as_it_was(resnet):
    model = copy.deepcopy(resnet).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    x = image(32)
    for name in ATTRIBUTION_METHODS:
        opts = {"steps": 4, "samples": 2, "window": 16, "stride": 16}
        out = attribute(name, model, x, 0, **opts)
        assert out.shape == (3, 32, 32) and np.isfinite(out).all(), name
    assert model.training and [type(m) for m in model.modules()] == types
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_long_methods_cancel(resnet):
    reporter = Reporter(lambda *a: reporter.cancel())
    with pytest.raises(Cancelled):
        integrated_gradients(resnet, image(32), 0, steps=40, batch_size=4, reporter=reporter)
    with pytest.raises(Cancelled):
        occlusion(
            resnet,
            image(32),
            0,
            window=8,
            stride=4,
            batch_size=4,
            reporter=Reporter(lambda *a: (_ for _ in ()).throw(Cancelled("stop"))),
        )
    assert hook_count(resnet) == 0


def test_bad_options_are_one_sentence(resnet):
    with pytest.raises(HookScopeError, match="Unknown attribution method 'lime'"):
        attribute("lime", resnet, image(32))
    with pytest.raises(HookScopeError, match="window 64x64 must fit"):
        occlusion(resnet, image(32), 0, window=64)
    with pytest.raises(HookScopeError, match="Unknown baseline 'grey'"):
        integrated_gradients(resnet, image(32), 0, baseline="grey")
    with pytest.raises(HookScopeError, match=r"\(1, C, H, W\)"):
        saliency(resnet, torch.zeros(2, 3, 32, 32))
