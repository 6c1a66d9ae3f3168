"""The module tree: names, parameter counts, shapes from the dry run, call counts."""

import torch
import torchvision
from torch import nn

from hookscope.core.engine.hooks import hook_count
from hookscope.core.engine.tree import build_tree
from hookscope.core.loading.spec import InputSpec


def test_resnet18_tree():
    model = torchvision.models.resnet18()
    model.train()
    tree = build_tree(model, InputSpec())
    nodes = {n.name: n for n in tree.nodes()}
    assert len(nodes) == len(dict(model.named_modules()))
    assert tree.root.total_params == 11_689_512 and tree.error is None
    assert nodes["conv1"].out_shape == (1, 64, 112, 112) and nodes["conv1"].own_params == 9408
    assert nodes["layer4"].out_shape == (1, 512, 7, 7)
    assert nodes["fc"].out_shape == (1, 1000) and nodes["fc"].own_params == 513_000
    assert nodes["layer1.0.relu"].calls == 2 and nodes["relu"].calls == 1
    assert nodes["layer1"].own_params == 0 and nodes["layer1"].total_params == 147_968
    assert [c.name for c in nodes["layer1"].children] == ["layer1.0", "layer1.1"]
    assert model.training and hook_count(model) == 0  # mode restored, hooks gone
    assert nodes["conv1"].to_dict() == {
        "name": "conv1",
        "type": "Conv2d",
        "out_shape": [1, 64, 112, 112],
        "params": 9408,
        "own_params": 9408,
        "trainable": True,
        "calls": 1,
        "layout": "nchw 112x112",
    }


def test_frozen_flag_and_structured_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return {"a": self.lin(x), "b": (x, x.sum(1))}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.two = Two()
            self.head = nn.Linear(2, 1)

        def forward(self, x):
            return self.head(self.two(x)["a"])

    model = Net()
    model.head.requires_grad_(False)
    tree = build_tree(model, example=torch.zeros(4, 3))
    two = tree.find("two")
    assert two.out_shapes == {"a": (4, 2), "b.0": (4, 3), "b.1": (4,)}
    assert tree.find("head").trainable is False and tree.find("two.lin").trainable is True


def test_dry_run_failure_is_reported_not_raised():
    model = nn.Sequential(nn.Linear(5, 2))
    tree = build_tree(model, InputSpec(size=(8, 8)))
    assert tree.error.startswith("The dry run on a zero input failed (RuntimeError")
    assert tree.find("0").out_shape is None and tree.find("0").own_params == 12
    assert hook_count(model) == 0


def test_macs_estimate_matches_the_convolutions_and_linear_layers():
    model = torchvision.models.resnet18()
    exact = 0

    def count(module, args, out):
        nonlocal exact
        positions = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
        exact += module.weight.numel() * positions

    handles = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    assert exact == 1_814_073_344  # torchvision lists resnet18 at 1.81 GFLOPS
    macs = build_tree(model, InputSpec()).macs()
    assert exact <= macs <= exact * 1.01  # norms add a little
