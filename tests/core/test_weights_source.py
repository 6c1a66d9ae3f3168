"""LoadedModel says where its weights come from, so the app can flag random ones (issue 16)."""

from __future__ import annotations

import torch

from hookscope.core.loading.models import load_model


def test_torchvision_without_weights_is_random_and_says_so():
    lm = load_model("torchvision:resnet18")
    assert lm.weights_source == "random" and lm.random_weights


def test_demo_is_bundled_and_a_weights_file_is_a_file(tmp_path):
    lm = load_model("demo")
    assert lm.weights_source == "bundled" and not lm.random_weights
    path = tmp_path / "demo.pt"
    torch.save(lm.model.state_dict(), path)
    again = load_model("demo", weights=path)
    assert again.weights_source == "file" and again.weights == str(path)


def test_a_weights_file_is_named_in_the_models_label(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(load_model("demo").model.state_dict(), path)
    assert load_model("demo").name == "demo (shortcut)"
    assert load_model("demo", weights=path).name == "demo (shortcut) + weights w.pt"
    assert load_model("demo:clean", weights=str(path)).name == "demo (clean) + weights w.pt"
