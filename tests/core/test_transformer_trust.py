"""Trust's evaluate ranks the transformer methods beside Grad-CAM and the baselines on a timm
ViT and a Hugging Face CLIP vision model (issue 24; demo:vit is in test_demo_vit.py).

Random weights: the point is that every method is scored (finite numbers, one ranking), not
which method wins."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from hookscope.core.demo import sample_path
from hookscope.core.engine.outputs import output_kind
from hookscope.core.engine.targets import SimilarityTarget, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.evaluate import EvaluateSettings, evaluate_job
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.live import wrap_model
from hookscope.core.reporting import Reporter
from tests.core.test_transformer_zoo import SMALL, TEXT  # the same tiny configs

timm = pytest.importorskip("timm")
T = pytest.importorskip("transformers")

METHODS = ("gradcam", "rollout", "chefer", "legrad", "attnlrp", "random")


def _check(report, methods):
    assert set(report.methods) == set(methods)
    for name, m in report.methods.items():
        assert math.isfinite(m.score) and math.isfinite(m.deletion), name
        assert math.isfinite(m.insertion), name
    assert report.best() in methods


def test_evaluate_ranks_the_transformer_methods_on_a_timm_vit():
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        depth=2,
        num_classes=5,
    ).eval()
    lm = wrap_model(vit, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    settings = EvaluateSettings(METHODS, "blocks.1.norm1", steps=8)
    report = evaluate_job(Reporter(), lm, load_image(sample_path("airplane_sky.png")), settings)
    _check(report, METHODS)


CLIP_LAYER = "vision_model.encoder.layers.1.layer_norm1"


def test_evaluate_ranks_the_transformer_methods_on_a_clip_vision_classifier():
    torch.manual_seed(0)
    config = T.CLIPConfig(vision_config=SMALL, text_config=TEXT, num_labels=5)
    clip = T.CLIPForImageClassification(config).eval()
    lm = wrap_model(clip, input_size=32)
    settings = EvaluateSettings(METHODS, CLIP_LAYER, steps=8)
    report = evaluate_job(Reporter(), lm, load_image(sample_path("airplane_sky.png")), settings)
    _check(report, METHODS)


def test_an_unnamed_2d_output_takes_the_similar_target_its_note_suggests(tmp_path):
    torch.manual_seed(0)
    embedder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 16),
    ).eval()
    lm = wrap_model(embedder, input_size=32)
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((32, 32, 3), (40, 90, 200), np.uint8)).save(ref)
    x = to_tensor(load_image(sample_path("airplane_sky.png")), lm.input_spec)
    out = embedder(x)
    # (1, 16) without class names: read as scores with a note that says to use similar:IMAGE,
    # which must then be taken, not refused as "not a class".
    assert "similar:IMAGE" in output_kind(out).note
    target = resolve_target(f"similar:{ref}", out, None, model=embedder, spec=lm.input_spec)
    assert isinstance(target, SimilarityTarget)
    want = torch.nn.functional.cosine_similarity(
        out, embedder(to_tensor(load_image(ref), lm.input_spec))
    )
    assert float(target(out)) == pytest.approx(float(want), abs=1e-6)


def test_trust_on_a_clip_tower_says_it_needs_a_class_target(tmp_path):
    torch.manual_seed(0)
    tower = T.CLIPVisionModelWithProjection(T.CLIPVisionConfig(projection_dim=16, **SMALL))
    lm = wrap_model(tower.eval(), input_size=32)
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((32, 32, 3), (40, 90, 200), np.uint8)).save(ref)
    settings = EvaluateSettings(("chefer", "random"), CLIP_LAYER, target=f"similar:{ref}")
    with pytest.raises(HookScopeError, match="Trust metrics need a class target"):
        evaluate_job(Reporter(), lm, load_image(sample_path("airplane_sky.png")), settings)
