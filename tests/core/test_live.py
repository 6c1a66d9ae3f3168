"""A live module wrapped as a LoadedModel: untouched, native size, fingerprint, description."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.live import (
    NATIVE_NOTE,
    describe_module,
    fingerprint,
    wrap_model,
)
from hookscope.core.loading.models import load_model
from hookscope.core.loading.spec import InputSpec


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = Net().train()
    m.conv.weight.requires_grad_(False)
    m.double()
    return m


def test_wrap_leaves_the_module_as_it_is(net):
    before = fingerprint(net)
    lm = wrap_model(net, class_names=["a", "b"])
    assert lm.model is net and net.training and net.bn.training
    assert lm.device == torch.device("cpu") and lm.weights_source == "model"
    assert lm.spec.endswith(".Net")
    assert lm.spec.startswith("live:") and lm.name == "Net" and lm.class_names == ["a", "b"]
    assert next(net.parameters()).dtype == torch.float64
    assert fingerprint(net) == before


def test_native_size_unnormalised(net):
    lm = wrap_model(net)
    assert lm.native_size and lm.note == NATIVE_NOTE
    assert lm.input_spec.mean == (0.0, 0.0, 0.0) and lm.input_spec.std == (1.0, 1.0, 1.0)
    arr = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    x = to_tensor(Image.fromarray(arr), lm.input_spec)
    assert x.shape == (1, 3, 5, 7)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), arr / 255.0, atol=1e-7)
    concrete = lm.input_spec.for_image(7, 5)
    assert concrete.size == (5, 7) and concrete.native
    assert InputSpec.from_dict(lm.input_spec.to_dict()) == lm.input_spec


def test_given_size_and_norm_and_input_spec_attribute(net):
    lm = wrap_model(net, input_size=32, mean=[0.5], std=(0.25, 0.25, 0.25))
    assert not lm.native_size and lm.note == ""
    assert lm.input_spec.size == (32, 32) and lm.input_spec.mean == (0.5, 0.5, 0.5)
    assert lm.input_spec.std == (0.25,) * 3
    net.input_spec = {"size": (20, 30), "mean": (0.1, 0.2, 0.3), "std": (1, 2, 3)}
    lm = wrap_model(net)
    assert lm.input_spec.size == (20, 30) and lm.input_spec.std == (1, 2, 3) and lm.note == ""
    with pytest.raises(HookScopeError, match="std must give 3 positive"):
        wrap_model(net, std=(1, 0, 1))
    with pytest.raises(HookScopeError, match="needs a torch.nn.Module"):
        wrap_model(lambda x: x)


def test_live_spec_is_not_loadable():
    with pytest.raises(HookScopeError, match="live module"):
        load_model("live:foo.Net")


def test_fingerprint_sees_every_kind_of_change(net):
    base = fingerprint(net)
    changes = {
        "weights": lambda m: m.fc.bias.data.add_(1e-6),
        "buffer": lambda m: m.bn.running_mean.add_(1),
        "requires_grad": lambda m: m.fc.weight.requires_grad_(False),
        "mode": lambda m: m.bn.eval(),
        "hook": lambda m: m.fc.register_forward_hook(lambda *a: None),
        "tensor hook": lambda m: m.fc.weight.register_hook(lambda g: g),
        "grad": lambda m: m(torch.ones(1, 3, 4, 4, dtype=torch.float64)).sum().backward(),
        "dtype": lambda m: m.float(),
    }
    for what, change in changes.items():
        m = Net().train()
        m.load_state_dict(net.state_dict())
        m.conv.weight.requires_grad_(False)
        m.double()
        assert fingerprint(m) == base, what
        change(m)
        after = fingerprint(m)
        assert after != base, what
        assert base.differences(after), what
    assert base.differences(base) == []


def test_describe_module(net):
    d = describe_module(net)
    assert d["class"].endswith("test_live.Net")
    other = Net().double()
    other.load_state_dict(net.state_dict())
    assert describe_module(other)["state_hash"] == d["state_hash"]
    with torch.no_grad():
        other.fc.bias[0] += 1
    assert describe_module(other)["state_hash"] != d["state_hash"]
    assert len(d["state_hash"]) == 64
