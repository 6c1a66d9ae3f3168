"""lrp: zennit's EpsilonPlusFlat with the BatchNorm / ResNet canonizers, equal to zennit's own
Gradient attributor, scoped to the call, and one sentence when zennit is missing."""

import sys

import numpy as np
import pytest
import torch
from torchvision.models import resnet18

from hookscope.core.errors import HookScopeError
from hookscope.core.methods import explainers

zennit = pytest.importorskip("zennit")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = resnet18(num_classes=5).eval()
    for m in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def zennit_reference(model, x, target, canonizer):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat

    composite = EpsilonPlusFlat(canonizers=[canonizer])
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x.clone(), torch.eye(5)[[target]])
    return relevance[0].numpy()


def test_lrp_equals_zennit_on_a_resnet(net, x):
    from zennit.torchvision import ResNetCanonizer

    want = zennit_reference(net, x, 2, ResNetCanonizer())
    with torch.no_grad():  # works inside the caller's no_grad, and leaves it on
        e = explainers.explain(net, x, "lrp", target=2)
        assert not torch.is_grad_enabled()
    assert e.raw.shape == (3, 64, 64) and e.signed
    assert np.abs(e.raw - want).max() / np.abs(want).max() < 1e-5
    assert np.abs(want).max() > 0
    assert e.map.shape == (64, 64) and e.map.dtype == np.float32
    assert e.map.min() == 0.0 and abs(e.map.max() - 1.0) < 1e-6
    # the rules matter: LRP is not the plain gradient
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(xg)[0, 2], xg)
    assert np.corrcoef(grad[0].flatten().numpy(), e.raw.flatten())[0, 1] < 0.99


def test_lrp_equals_zennit_on_a_plain_cnn(x):
    from zennit.canonizers import SequentialMergeBatchNorm

    torch.manual_seed(2)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()
    cnn[1].running_var.fill_(2.0)
    want = zennit_reference(cnn, x, 4, SequentialMergeBatchNorm())
    got = explainers.explain(cnn, x, "lrp", target=4).raw
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_lrp_is_scoped_to_the_call(net, x):
    torch.manual_seed(3)
    other = resnet18(num_classes=5).eval()
    net.layer2.train()  # a mixed-mode model keeps its modes
    try:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        fwd = {n: type(m).forward for n, m in net.named_modules()}
        with torch.no_grad():
            before = net.eval()(x), other(x)
        net.layer2.train()
        explainers.explain(net, x, "lrp", target=1)
        assert net.layer2.training and not net.layer1.training
    finally:
        net.layer2.eval()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert set(dict(net.named_modules())) == set(fwd)  # no module added (a Sum) left behind
    assert all("forward" not in vars(m) for m in net.modules())  # no patched forward left
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())
    assert hooks == 0 and all(p.grad is None for p in net.parameters())
    with torch.no_grad():
        torch.testing.assert_close(net(x), before[0], rtol=0, atol=0)
        torch.testing.assert_close(other(x), before[1], rtol=0, atol=0)


def test_lrp_without_zennit_is_one_sentence(net, x, monkeypatch):
    for name in [n for n in sys.modules if n == "zennit" or n.startswith("zennit.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "zennit", None)
    with pytest.raises(HookScopeError, match=r"lrp needs zennit.*hookscope\[lrp\]") as err:
        explainers.explain(net, x, "lrp", target=0)
    assert str(err.value).count(". ") == 0


def test_lrp_refuses_a_transformer(x):
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(64, 16, 1, 2, 8, 16, num_classes=5).eval()
    with pytest.raises(HookScopeError, match="no rules for attention"):
        explainers.explain(vit, x, "lrp", target=0)
