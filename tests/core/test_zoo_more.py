"""More of the zoo (issue 22 §4): flat maps, default layers, DETR detections, fixed sizes.

Random weights from seed 0, models built from small configs (no network). The heavy
torchvision detectors are marked ``slow``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.probe import load_job
from hookscope.core.loading.models import LoadedModel
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods.cam import compute_cam, normalize, suggest_layer
from hookscope.core.reporting import quiet


# -- flat maps ---------------------------------------------------------------------------------
class Offset(nn.Module):
    """Adds a large constant to a tiny signal. Class 0's head weights (+1, -1, +1, -1) cancel
    the constant in the Grad-CAM sum, leaving a map of about 1e-6 of its terms, where float32
    rounding is as large as the signal: min-max would stretch that noise to [0, 1]."""

    def forward(self, x):
        signal = x.abs() * torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 4, 1, 1)
        return 1000.0 + 1e-3 * signal


class FlatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.flat = Offset()
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.head.weight[0] = torch.tensor([1.0, -1.0, 1.0, -1.0])

    def forward(self, x):
        return self.head(self.flat(self.conv(x)).mean((2, 3)))


def test_a_map_flat_to_rounding_is_zero_with_a_note():
    torch.manual_seed(0)
    model = FlatNet().eval()
    x = torch.randn(1, 3, 16, 16)
    maps = compute_cam(model, x, ["conv", "flat"], "gradcam", target=0)
    assert float(np.abs(maps["flat"]).max()) == 0.0  # not min-max stretched noise
    assert float(maps["conv"].max()) == pytest.approx(1.0)  # the real map is untouched
    (note,) = maps.notes
    assert note.startswith("The gradcam map of flat is flat: its spread (")
    spread, terms = (float(v) for v in re.findall(r"\(([-+.e\d]+)\)", note)[:2])
    assert 0 < spread <= 1e-4 * terms


def test_levit_defaults_to_a_stage_output_and_notes_its_noise():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("levit_128s", pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    pick = suggest_layer(model, x)
    # Not stages.2.downsample.attn_downsample.q.ln (the old default): a stage's output.
    assert re.fullmatch(r"stages\.\d\.blocks\.\d+", pick), pick
    maps = compute_cam(
        model,
        x,
        ["stages.2.downsample.attn_downsample.q.ln", "stages.2.downsample.attn_downsample.kv"],
        "gradcam",
    )
    qln, kv = maps.notes
    assert "stages.2.downsample.attn_downsample.q.ln barely feeds the target" in qln
    assert "map of stages.2.downsample.attn_downsample.kv is flat" in kv
    assert all(float(m.max()) == 0.0 for m in maps.values())


def test_hf_levit_defaults_to_a_stage_output():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LevitConfig(
        hidden_sizes=[32, 48, 64],
        num_attention_heads=[1, 2, 2],
        depths=[1, 1, 1],
        key_dim=[8, 8, 8],
        num_labels=5,
    )
    model = transformers.LevitForImageClassification(config).eval()
    x = torch.randn(1, 3, 224, 224)
    pick = suggest_layer(model, x)
    assert re.fullmatch(r"levit\.encoder\.stages\.\d\.layers\.\d+", pick), pick
    maps = compute_cam(model, x, ["levit.encoder.stages.0.layers.2.queries"], "gradcam")
    assert "barely feeds the target" in maps.notes[0]
    assert float(maps["levit.encoder.stages.0.layers.2.queries"].max()) == 0.0


def _hf_mobilevit():
    """HF MobileViT from a small config, re-initialised so its activations are O(1).

    HF's own init (BatchNorm weights ~ N(0, 0.02)) shrinks the signal to exactly zero by
    ``conv_1x1_exp``, which made the reference's 8e-28 map an all-zero one here.
    """
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.MobileViTConfig(
        image_size=128,
        hidden_sizes=[32, 40, 48],
        neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
        num_attention_heads=2,
        num_labels=5,
    )
    model = transformers.MobileViTForImageClassification(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
    return model


def test_hf_mobilevit_map_of_1e28_is_a_note_not_stretched_noise():
    """Issue 22 §4: the reference's map at ``conv_1x1_exp`` spans 8e-28; min-max made a picture.

    The layer after it (the classifier) is scaled by 1e-26 and given a bias, so the score is
    O(1) while activations × gradients at ``conv_1x1_exp`` are ~1e-28: a real but meaningless
    map, flat relative to the score it should explain.
    """
    layer = "mobilevit.conv_1x1_exp"
    model = _hf_mobilevit()
    x = torch.randn(1, 3, 128, 128)
    control = compute_cam(model, x, [layer], "gradcam")  # the same layer, unscaled: a real map
    assert not control.notes and float(control[layer].std()) > 0.1
    with torch.no_grad():
        model.classifier.weight.mul_(1e-26)
        model.classifier.bias.copy_(torch.tensor([0.5, 2.0, -1.0, 0.3, 1.0]))
    probe = run_probe(model, x, [layer])
    assert probe.target == 1  # the bias decides the class
    rec = probe.records[layer][0]
    a, g = rec.output[0], rec.grad_output[0]
    raw = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp(min=0)  # Grad-CAM by hand
    spread = float(raw.max() - raw.min())
    assert raw.shape == (4, 4) and 1e-30 < spread < 1e-26  # not zero: min-max would stretch it
    assert float(normalize(raw.numpy()).std()) > 0.1  # ...into a picture of noise
    maps = compute_cam(model, x, [layer], "gradcam")
    (note,) = maps.notes
    assert note.startswith(f"Layer {layer} barely feeds the target: its activations × gradients")
    total, score = (
        float(v) for v in re.findall(r"sum to ([-+.e\d]+) against a score of ([\d.]+)", note)[0]
    )
    assert total == pytest.approx(float((a * g).abs().sum()), rel=0.05) and total < 1e-25
    assert score == pytest.approx(float(probe.logits[0, 1]), rel=0.01)
    assert float(np.abs(maps[layer]).max()) == 0.0  # shown as zero, not stretched to [0, 1]


# -- the default layer is checked at load --------------------------------------------------------
class DeadEnd(nn.Module):
    """The last convolution runs but feeds nothing: its gradient is zero for every target."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3))
        self.side = nn.Conv2d(8, 8, 3)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        feats = self.body(x)
        self.side(feats)  # e.g. an FPN level no detection uses
        return self.head(feats.mean((2, 3)))


def test_load_replaces_a_default_layer_with_zero_gradient():
    torch.manual_seed(0)
    lm = LoadedModel(DeadEnd().eval(), "dead-end", None, InputSpec((24, 24), 3, (0.5,) * 3))
    tree = build_tree(lm.model, lm.input_spec)
    assert tree.layouts.default_layer() == "side"  # the structural pick
    _, tree = load_job(quiet(), lm)
    assert tree.default_cam_layer() == "body"  # the checked one: its gradient is not zero
    x = torch.randn(1, 3, 24, 24)
    maps = compute_cam(lm.model, x, ["side", "body"], "gradcam", target=0)
    assert "The gradient at side is zero everywhere" in maps.notes[0]
    assert float(maps["body"].max()) == pytest.approx(1.0)


@pytest.mark.slow
def test_ssdlite_defaults_to_its_backbone_not_a_head_branch():
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    model.eval()
    pick = suggest_layer(model, torch.rand(1, 3, 320, 320))
    assert pick.startswith("backbone.") and "head" not in pick, pick


@pytest.mark.slow
def test_faster_rcnn_default_layer_is_in_its_backbone_and_has_a_gradient():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=5
    ).eval()
    x = torch.rand(1, 3, 320, 320)
    pick = suggest_layer(model, x)
    assert pick.startswith("backbone."), pick
    maps = compute_cam(model, x, [pick], "gradcam")
    assert not any("gradient at" in n for n in maps.notes), maps.notes


# -- DETR: logits + pred_boxes are detections ---------------------------------------------------
def _detr(conditional: bool):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    backbone = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], out_features=["stage4"]
    )
    kw = dict(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=20,
        num_labels=5,
    )
    if conditional:
        config = transformers.ConditionalDetrConfig(**kw)
        return transformers.ConditionalDetrForObjectDetection(config).eval()
    return transformers.DetrForObjectDetection(transformers.DetrConfig(**kw)).eval()


STAGE = "model.backbone.model.encoder.stages.3"  # the backbone's last stage


@pytest.mark.parametrize("conditional", [False, True], ids=["detr", "conditional-detr"])
def test_detr_outputs_are_read_as_detections(conditional):
    model = _detr(conditional)
    layer = STAGE
    x = torch.randn(1, 3, 64, 64)
    r = run_probe(model, x, [layer], "box:0")
    assert r.kind.kind == "detections" and r.kind.scoring == (
        "sigmoid" if conditional else "softmax"
    )
    with torch.no_grad():
        out = model(x)
    if conditional:  # no no-object class: the best sigmoid score, kept from 0.5
        scores, labels = out.logits[0].sigmoid().max(-1)
        keep = scores >= 0.5
    else:  # softmax with the last class meaning "no object"
        scores, labels = out.logits[0].softmax(-1)[:, :-1].max(-1)
        keep = out.logits[0].argmax(-1) != out.logits.shape[-1] - 1
    order = scores[keep].argsort(descending=True)
    want = scores[keep][order]
    assert len(r.predictions) == int(keep.sum()) > 0
    got = torch.tensor([p.score for p in r.predictions])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert r.predictions[0].label == int(labels[keep][order][0])
    cx, cy, w, h = out.pred_boxes[0][keep][order][0].tolist()
    box = (64 * (cx - w / 2), 64 * (cy - h / 2), 64 * (cx + w / 2), 64 * (cy + h / 2))
    assert r.predictions[0].box == pytest.approx(box, abs=1e-3)  # input pixels
    assert r.target_text == "box:0" and r.target_score == pytest.approx(float(want[0]), rel=1e-5)
    maps = compute_cam(model, x, [layer], "gradcam", "box:0")
    assert maps[layer].shape == (64, 64) and float(maps[layer].max()) == pytest.approx(1.0)
    with pytest.raises(HookScopeError, match=r"There is no detection 99"):
        run_probe(model, x, [layer], "box:99")


# -- a fixed-size model names its size ---------------------------------------------------------
def test_efficientformer_at_another_size_names_its_native_size():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("efficientformer_l1", pretrained=False, num_classes=5).eval()
    with pytest.raises(HookScopeError) as err:
        run_probe(model, torch.randn(1, 3, 160, 160), ["stages.3"])
    text = str(err.value)
    assert "The model failed on a 160×160 input" in text
    assert text.endswith("it needs its native input size, 224×224; set the input size to 224×224.")
    r = run_probe(model, torch.randn(1, 3, 224, 224), ["stages.3"])  # the native size runs
    assert len(r.topk) == 5
