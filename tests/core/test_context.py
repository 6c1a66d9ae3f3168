"""One model context (core.engine.context): each module's own training flag survives every run."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hookscope.core.engine import context, layouts, outputs, probe, targets, tree
from hookscope.core.engine.context import eval_mode, forward_model, main_tensor, model_device
from hookscope.core.engine.layouts import analyse
from hookscope.core.engine.outputs import OutputKind
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.targets import embed_image
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments import importance, interventions
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods import cam
from hookscope.core.methods.cam import compute_cam
from hookscope.core.training import watch


def mixed_model() -> nn.Module:
    """A model whose submodules train and eval in a mix the user chose on purpose."""
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 6, 3, padding=1),
            bn1=nn.BatchNorm2d(6),
            drop=nn.Dropout(0.5),
            block=nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(8, 4),
        )
    )
    model.train()
    model.bn1.eval()  # frozen statistics inside a training model
    model.block.eval()
    model.block[1].train()  # and a training BatchNorm inside an eval block
    return model


def flags(model: nn.Module) -> list[tuple[str, bool]]:
    return [(name, m.training) for name, m in model.named_modules()]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctx") / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


def test_every_engine_run_gives_each_module_back_its_own_flag(photo):
    model = mixed_model()
    before = flags(model)
    assert {m for _, m in before} == {True, False}  # really mixed
    stats = model.block[1].running_mean.clone()
    x = torch.randn(1, 3, 16, 16)

    analyse(model, x)  # layout analysis first: nothing cached for this model yet
    assert flags(model) == before
    build_tree(model, InputSpec(size=(16, 16)))
    assert flags(model) == before
    r = run_probe(model, x, ["block.0"])
    assert flags(model) == before
    maps = compute_cam(model, x, ["block.0"], method="gradcam")
    assert flags(model) == before
    emb = embed_image(model, photo, InputSpec(size=(16, 16)))
    assert flags(model) == before

    # Everything ran in eval mode: the training BatchNorm's statistics never moved, and the
    # outputs equal an eval-mode forward.
    assert torch.equal(model.block[1].running_mean, stats)
    ref = mixed_model().eval()
    with torch.no_grad():
        expected = ref(x)
    assert torch.allclose(r.logits, expected, atol=1e-6)
    assert maps["block.0"].shape == (16, 16) and maps["block.0"].max() == pytest.approx(1.0)
    assert emb.shape == (4,)


def test_eval_mode_restores_flags_even_after_an_error():
    model = mixed_model()
    before = flags(model)
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert flags(model) == before


def test_one_copy_of_each_helper():
    # Every module that uses a helper uses context's object, not a copy of its own.
    for mod in (probe, targets, layouts, tree, cam, importance):
        for name in ("eval_mode", "model_device", "forward_model", "main_tensor"):
            if hasattr(mod, name):
                assert getattr(mod, name) is getattr(context, name), (mod.__name__, name)
    assert outputs.main_tensor is context.main_tensor
    assert interventions.main_tensor is context.main_tensor
    assert watch.main_tensor is context.main_tensor
    assert not hasattr(cam, "_call")


def test_model_device_and_main_tensor():
    assert model_device(nn.ReLU()) == torch.device("cpu")
    a, b = torch.ones(2), torch.zeros(3)
    assert main_tensor((a, b)) is a
    assert main_tensor({"x": [b, a]}) is b
    assert main_tensor("no tensor") is None
    assert main_tensor({"logits": b, "h": a}, OutputKind("classes", (1, 3), "logits")) is b
    assert main_tensor((a, b), OutputKind("classes", (1, 2), "0")) is a
    with pytest.raises(HookScopeError, match="no 'logits' tensor"):
        main_tensor({"h": a}, OutputKind("classes", (1, 3), "logits"))


def test_forward_model_says_one_sentence():
    with pytest.raises(HookScopeError, match=r"rejected an input of shape \(1, 2\)"):
        forward_model(nn.Linear(3, 1), torch.zeros(1, 2))
