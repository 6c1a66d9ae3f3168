"""run_probe: targets, top-k, gradients, parameter-gradient norms, user state untouched."""

import pytest
import torch
import torchvision
from torch import nn

from hookscope.core.engine.probe import run_probe, tensor_stats
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.models import load_model
from tests.core.test_hooks import golden_model


def test_golden_example_through_probe():
    r = run_probe(golden_model(), torch.ones(1, 3), ["0", "1"])
    assert r.logits.tolist() == [[89.0]] and r.target == 0
    assert r.input_grad.tolist() == [[[22.0, 26.0, 30.0]]][0]
    assert r.records["0"][0].grad_output.tolist() == [[1.0, 0.0, 3.0, 0.0]]
    # fc1 weight grad = outer([1,0,3,0], [1,1,1]); bias grad = [1,0,3,0]
    assert r.param_grad_norms["0"] == pytest.approx((3 * 1 + 3 * 9 + 1 + 9) ** 0.5)
    assert r.param_grad_norms["1"] is None  # ReLU has no parameters


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return load_model("torchvision:resnet18")


def test_targets_none_int_name_callable(r18):
    x = torch.randn(1, 3, 64, 64)
    top = run_probe(r18.model, x, ["layer4"], class_names=r18.class_names)
    assert top.target == top.topk[0][0]
    by_name = run_probe(r18.model, x, ["layer4"], "goldfish", class_names=r18.class_names)
    assert by_name.target == 1 and by_name.target_name == "goldfish"
    by_index = run_probe(r18.model, x, ["layer4"], 1, class_names=r18.class_names)
    assert torch.equal(by_index.input_grad, by_name.input_grad)
    two = run_probe(r18.model, x, ["layer4"], lambda out: out[:, 1] * 2)
    assert two.target is None
    assert torch.allclose(two.input_grad, 2 * by_index.input_grad, atol=1e-6)


def test_topk_sorted_and_named(r18):
    r = run_probe(r18.model, torch.randn(1, 3, 64, 64), ["fc"], k=7, class_names=r18.class_names)
    probs = [p for _, _, p in r.topk]
    assert len(r.topk) == 7 and probs == sorted(probs, reverse=True)
    assert r.topk[0][1] == r18.class_names[r.topk[0][0]]
    assert float(r.probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_bad_targets_are_sentences(r18):
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(
        HookScopeError,
        match=r"Target class 1000 is out of range: the model has 1000 classes \(0 to 999\)",
    ):
        run_probe(r18.model, x, [], 1000, class_names=r18.class_names)
    with pytest.raises(HookScopeError, match="Unknown class name 'unicorn'"):
        run_probe(r18.model, x, [], "unicorn", class_names=r18.class_names)


def test_user_grads_and_requires_grad_untouched():
    model = torchvision.models.resnet18()
    run_probe(model, torch.randn(1, 3, 32, 32), ["layer1", "fc"])
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_nan_output_is_a_sentence():
    model = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(HookScopeError, match="NaN or Inf"):
        run_probe(model, torch.ones(1, 2), ["0"])


def test_wrong_channel_count_is_a_sentence():
    with pytest.raises(HookScopeError, match=r"rejected an input of shape \(1, 1, 32, 32\)"):
        run_probe(torchvision.models.resnet18(), torch.randn(1, 1, 32, 32), ["fc"])


def test_tensor_stats():
    s = tensor_stats(torch.tensor([0.0, 0.0, 1.0, 3.0]))
    assert s == pytest.approx({"mean": 1.0, "std": 1.4142135, "min": 0.0, "max": 3.0, "zeros": 0.5})
