"""The hook pitfalls from DESIGN.md, one test each; no test leaves a hook behind."""

from collections import namedtuple

import pytest
import torch
import torchvision
from torch import nn

from hookscope.core.engine.hooks import HookSession, hook_count
from hookscope.core.engine.probe import run_probe
from hookscope.core.errors import HookScopeError

torch.manual_seed(0)


def conv_relu(inplace: bool):
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(8, 2, 1)
    )


def test_inplace_relu_does_not_corrupt_the_conv_record():
    model, twin = conv_relu(True), conv_relu(False)
    x = torch.randn(1, 3, 8, 8)
    with HookSession(model, ["0", "1"]) as s:
        out = model(x.requires_grad_())
        out.sum().backward()
    conv = s.records["0"][0]
    assert (conv.output < 0).sum() > 50  # negatives survived the in-place ReLU
    assert torch.equal(conv.output, twin[0](x))
    # Gradient wrt the conv output is the pre-ReLU one: zero where the conv output was negative.
    ref = twin[0](x)
    ref.retain_grad()
    twin[2](twin[1](ref)).sum().backward()
    assert torch.allclose(conv.grad_output, ref.grad)
    assert hook_count(model) == 0


def test_resnet_relu_called_several_times_keeps_one_record_per_call():
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64)
    with HookSession(model, ["layer1.0.relu", "layer1.0.bn1", "layer1.0.bn2"]) as s:
        model(x).sum().backward()
    relu = s.records["layer1.0.relu"]
    assert [r.call for r in relu] == [0, 1]
    bn1, bn2 = s.records["layer1.0.bn1"][0].output, s.records["layer1.0.bn2"][0].output
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    assert torch.equal(relu[0].output, torch.relu(bn1))
    assert torch.allclose(relu[1].output, torch.relu(bn2 + stem))
    assert (bn2 < 0).any()  # bn2 kept its negatives despite `out += identity` and relu_
    assert all(r.grad_output is not None for r in relu)
    assert hook_count(model) == 0


Pair = namedtuple("Pair", "left right")


class Multi(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        a, b = self.lin(x), self.lin(x) * 2
        if self.kind == "tuple":
            return a, [b, {"c": a + 1}]
        if self.kind == "dict":
            return {"a": a, "b": b}
        return Pair(a, b)


class Wrap(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.multi = Multi(kind)

    def forward(self, x):
        out = self.multi(x)
        parts = list(out.values()) if isinstance(out, dict) else [out[0], out[1]]
        b = parts[1][0] if isinstance(parts[1], list) else parts[1]
        return parts[0].sum(1, keepdim=True) + b.sum(1, keepdim=True)


@pytest.mark.parametrize(
    "kind, names",
    [("tuple", ["0", "1.0", "1.1.c"]), ("dict", ["a", "b"]), ("namedtuple", ["left", "right"])],
)
def test_structured_outputs_are_recorded_part_by_part(kind, names):
    model = Wrap(kind)
    x = torch.randn(2, 4)
    with HookSession(model, ["multi"]) as s:
        model(x).sum().backward()
    rec = s.records["multi"][0]
    assert list(rec.outputs) == names
    a = model.multi.lin(x)
    assert torch.allclose(rec.outputs[names[0]], a)
    assert torch.allclose(rec.outputs[names[1]], 2 * a)
    assert torch.allclose(rec.grads[names[0]], torch.ones(2, 4))  # d(sum)/d(a) = 1
    assert hook_count(model) == 0


def test_frozen_model_still_gives_input_and_activation_grads():
    model = conv_relu(False)
    for p in model.parameters():
        p.requires_grad_(False)
    r = run_probe(model, torch.randn(1, 3, 8, 8), ["0"], target=lambda out: out.sum())
    assert r.input_grad is not None and r.input_grad.abs().sum() > 0
    assert r.records["0"][0].grad_output.abs().sum() > 0
    assert r.param_grad_norms == {"0": None}
    assert all(p.grad is None for p in model.parameters())


def test_model_built_under_no_grad_still_gives_gradients():
    with torch.no_grad():
        model = conv_relu(False)
    r = run_probe(model, torch.randn(1, 3, 8, 8), ["0"], target=lambda out: out.sum())
    assert r.input_grad.abs().sum() > 0 and r.param_grad_norms["0"] > 0


def bn_dropout():
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(3)
    )


def test_train_mode_model_runs_in_eval_mode_and_mode_is_restored():
    model = bn_dropout()
    x = torch.randn(2, 3, 6, 6)
    model(x)  # materialise the lazy layer
    model.train()
    model[2].eval()  # a mixed mode the user chose must survive too
    stats = model[1].running_mean.clone()
    r_train = run_probe(model, x, ["1"])
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, stats)  # no BatchNorm statistics update
    model.eval()
    r_eval = run_probe(model, x, ["1"])
    assert torch.equal(r_train.logits, r_eval.logits)
    assert torch.equal(r_train.input_grad, r_eval.input_grad)


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        self.lin(x)
        raise ValueError("bad shape somewhere")


def test_forward_that_raises_leaves_no_hook():
    model = Raises()
    with pytest.raises(HookScopeError, match="forward pass failed with ValueError"):
        run_probe(model, torch.randn(1, 2), ["lin"])
    assert hook_count(model) == 0


def test_torchscript_model_explains_why_layers_cannot_be_hooked():
    scripted = torch.jit.script(conv_relu(False).eval())
    with pytest.raises(HookScopeError, match="TorchScript does not run Python hooks"):
        run_probe(scripted, torch.randn(1, 3, 8, 8), ["0"])
    r = run_probe(scripted, torch.randn(1, 3, 8, 8), [], target=lambda o: o.sum())
    assert r.input_grad.shape == (1, 3, 8, 8)  # the whole model still explains


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_one_channel_lenet_28x28():
    torch.manual_seed(3)
    model = LeNet().eval()
    r = run_probe(model, torch.randn(1, 1, 28, 28), ["conv1", "conv2", "fc1"], target=7)
    assert r.records["conv1"][0].output.shape == (1, 6, 24, 24)
    assert r.records["conv2"][0].output.shape == (1, 16, 8, 8)
    assert r.input_grad.shape == (1, 1, 28, 28)
    assert r.target == 7 and len(r.topk) == 5


def test_non_square_input():
    model = torchvision.models.resnet18().eval()
    r = run_probe(model, torch.randn(1, 3, 96, 160), ["layer4", "layer1.0.conv1"])
    assert r.records["layer4"][0].output.shape == (1, 512, 3, 5)
    assert r.records["layer4"][0].grad_output.shape == (1, 512, 3, 5)
    assert r.input_grad.shape == (1, 3, 96, 160)
    assert hook_count(model) == 0


def test_model_called_twice_in_one_session_keeps_both_calls():
    model = conv_relu(False)
    x1, x2 = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    with HookSession(model, ["0"]) as s:
        (model(x1).sum() + model(x2).sum()).backward()
    recs = s.records["0"]
    assert [r.call for r in recs] == [0, 1]
    assert torch.equal(recs[0].output, model[0](x1)) and torch.equal(recs[1].output, model[0](x2))
    assert recs[0].grad_output is not None and recs[1].grad_output is not None
    assert hook_count(model) == 0
