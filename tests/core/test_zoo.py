"""Models people bring: timm, Hugging Face, torchvision segmentation and detection (issue 13).

One model per parametrised fixture (built once, random weights from seed 0, small inputs), and
for each: the tree's layouts, output kind and default layer; the probe's kind-specific
predictions; Grad-CAM on a real photo equal to pytorch-grad-cam given the right reshape and
target by hand; the CLI ``cam`` with no extra flags; a one-sentence error for a wrong target.
Set HOOKSCOPE_ZOO_TABLE=file.md to write the zoo table (architecture | layout | default layer |
max diff vs pytorch-grad-cam).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import hookscope.core.cli
from hookscope.core.engine.hooks import hook_count
from hookscope.core.engine.layouts import analyse
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.methods.cam import compute_cam
from hookscope.gui.command import main

ROWS: dict[str, dict] = {}


@dataclass
class Case:
    """One architecture of the zoo.

    Attributes:
        id: Test id.
        spec: Spec string (``{tmp}`` is replaced by a folder the fixture fills).
        photo: scikit-image photo name.
        kind: Expected output kind.
        layers: Layer → expected layout string, checked in the tree.
        default: Expected default CAM layer (structure + the not-constant check).
        ref: How pytorch-grad-cam reads the default layer: ``nchw``, ``nhwc`` or ``tokens:K``.
        target: Our target for the comparison (None: the kind's default).
        size: Input size override (None: the spec's).
        slow: Heavy model.
        extra: Additional layers to compare with pytorch-grad-cam (name → ref layout).
        init_head: Re-initialise a zero-initialised head (timm's Mixer) from seed 0 and pass
            the weights with --weights: with a zero head every gradient is zero (which
            HookScope reports, see test_a_zero_head_is_reported).
        compare: Layers compared with pytorch-grad-cam for ``target`` when not the default
            layer and ``extra``.
    """

    id: str
    spec: str
    photo: str
    kind: str
    layers: dict[str, str]
    default: str
    ref: str
    target: str | None = None
    size: int | None = None
    slow: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    init_head: bool = False
    compare: dict[str, str] | None = None


CASES = [
    Case(
        "timm-resnet50",
        "timm:resnet50?img_size=64",
        "chelsea",
        "classes",
        {"layer4": "nchw 2x2", "layer4.2": "nchw 2x2", "global_pool.pool": "nchw 1x1"},
        "layer4.2",
        "nchw",
    ),
    Case(
        "timm-convnext_tiny",
        "timm:convnext_tiny?img_size=64",
        "chelsea",
        "classes",
        {"stem.1": "nchw 16x16", "stages.3": "nchw 2x2", "head.norm": "nchw 1x1"},
        "stages.3.blocks.2",
        "nchw",
        extra={"stem.1": "nchw"},
    ),
    Case(
        "timm-swin_tiny",
        "timm:swin_tiny_patch4_window7_224?img_size=64&window_size=2",
        "chelsea",
        "classes",
        {
            "layers.3": "nhwc 2x2",
            "layers.3.blocks.1.norm1": "nhwc 2x2",
            "layers.3.blocks.1.norm2": "tokens:0 2x2",
            "norm": "nhwc 2x2",
        },
        "norm",
        "nhwc",
        extra={"layers.3": "nhwc", "layers.3.blocks.1.norm1": "nhwc"},
    ),
    Case(
        "timm-vit_small",
        "timm:vit_small_patch16_224?img_size=64",
        "chelsea",
        "classes",
        {"blocks.11.norm1": "tokens:1 4x4", "norm": "tokens:1 4x4", "patch_embed": "tokens:0 4x4"},
        "blocks.11.attn.qkv",
        "tokens:1",
        extra={"blocks.11.norm1": "tokens:1"},
    ),
    Case(
        "timm-deit_small_distilled",
        "timm:deit_small_distilled_patch16_224?img_size=64",
        "chelsea",
        "classes",
        {"blocks.11.norm1": "tokens:2 4x4", "norm": "tokens:2 4x4"},
        "blocks.11.attn.qkv",
        "tokens:2",
        extra={"blocks.11.norm1": "tokens:2"},
    ),
    Case(
        "timm-mobilenetv3_large_100",
        "timm:mobilenetv3_large_100?img_size=64",
        "coffee",
        "classes",
        {"conv_head": "nchw 1x1", "blocks.6": "nchw 2x2", "global_pool.pool": "nchw 1x1"},
        "blocks.6.0",
        "nchw",
    ),
    Case(
        "timm-mixer_b16",
        "timm:mixer_b16_224?img_size=64",
        "chelsea",
        "classes",
        {"stem": "tokens:0 4x4", "blocks.11": "tokens:0 4x4", "norm": "tokens:0 4x4"},
        "norm",
        "tokens:0",
        init_head=True,
    ),
    Case(
        "hf-vit",
        "hf:{tmp}/vit",
        "chelsea",
        "classes",
        {"vit.layers.1.layernorm_before": "tokens:1 8x8", "vit.layernorm": "tokens:1 8x8"},
        "vit.layers.1.attention.v_proj",
        "tokens:1",
        slow=False,
        extra={"vit.layers.1.layernorm_before": "tokens:1"},
    ),
    Case(
        "hf-convnext",
        "hf:{tmp}/convnext",
        "coffee",
        "classes",
        {
            "convnext.embeddings.layernorm": "nchw 16x16",  # HF's channels_first LayerNorm
            "convnext.encoder.stages.0.layers.0.layernorm": "nhwc 16x16",
            "convnext.encoder.stages.3": "nchw 2x2",
            "convnext.layernorm": "-",
        },
        "convnext.encoder.stages.3.layers.0",
        "nchw",
        slow=False,
    ),
    Case(
        "hf-swin",
        "hf:{tmp}/swin",
        "chelsea",
        "classes",
        {"swin.layernorm": "tokens:0 4x4", "swin.embeddings.norm": "tokens:0 16x16"},
        "swin.layernorm",
        "tokens:0",
        slow=False,
    ),
    Case(
        "hf-clip-vision-projection",
        "hf:{tmp}/clip",
        "chelsea",
        "embedding",
        {"vision_model.post_layernorm": "-", "vision_model.pre_layrnorm": "tokens:1 8x8"},
        "vision_model.encoder.layers.1.self_attn.v_proj",
        "tokens:1",
        target="similar:{tmp}/coffee.png",
        slow=False,
    ),
    Case(
        "torchvision-deeplabv3",
        "{tmp}/seg.py:build",
        "astronaut",
        "dense",
        {"backbone.layer4": "nchw 12x12", "classifier.4": "nchw 12x12"},
        "classifier",
        "nchw",
        extra={"backbone.layer4": "nchw"},
    ),
    Case(
        "torchvision-fasterrcnn",
        "{tmp}/det.py:build",
        "coffee",
        "detections",
        {"backbone.body.layer4": "nchw 4x4", "backbone.fpn.layer_blocks.0": "nchw 32x32"},
        "backbone.fpn.layer_blocks.1",  # box 0 is pooled from level 1: level 0 is flat
        "nchw",
        target="box:1",
        # Box 1 is pooled from level 0, so compare there (level 1 is flat for it: a note).
        compare={"backbone.fpn.layer_blocks.0": "nchw", "backbone.body.layer3": "nchw"},
    ),
]

SEG = """
import torch, torchvision

def build():
    torch.manual_seed(0)
    return torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=5
    )

INPUT_SPEC = {"size": 96}
CLASS_NAMES = ["__background__", "sky", "person", "rocket", "flag"]
"""

DET = """
import torch, torchvision

def build():
    torch.manual_seed(0)
    return torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=128, max_size=128,
        box_score_thresh=0.0, box_detections_per_img=8, rpn_post_nms_top_n_test=64,
    )

INPUT_SPEC = {"size": 128, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
"""


def _write_models(folder: Path) -> None:
    """Tiny Hugging Face models saved with save_pretrained, and torchvision factories."""
    transformers = pytest.importorskip("transformers")
    labels = {i: f"thing{i}" for i in range(5)}
    cls = dict(num_labels=5, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    models = {
        "vit": transformers.ViTForImageClassification(
            transformers.ViTConfig(
                image_size=64,
                patch_size=8,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                **cls,
            )
        ),
        "convnext": transformers.ConvNextForImageClassification(
            transformers.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], **cls)
        ),
        "swin": transformers.SwinForImageClassification(
            transformers.SwinConfig(
                image_size=64,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1, 1],
                num_heads=[1, 2, 4],
                window_size=4,
                **cls,
            )
        ),
        "clip": transformers.CLIPVisionModelWithProjection(
            transformers.CLIPVisionConfig(
                image_size=64,
                patch_size=8,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                projection_dim=16,
            )
        ),
    }
    pre = {"size": {"height": 64, "width": 64}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    for name, model in models.items():
        model.save_pretrained(folder / name)
        (folder / name / "preprocessor_config.json").write_text(json.dumps(pre))
    (folder / "seg.py").write_text(SEG)
    (folder / "det.py").write_text(DET)
    for photo in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(_skimage(), photo)()).save(folder / f"{photo}.png")


def _skimage():
    return pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo")
    _write_models(path)
    return path


@dataclass
class Built:
    case: Case
    lm: object
    x: torch.Tensor
    folder: Path
    tree: object = None
    weights: Path | None = None

    def fill(self, text: str | None) -> str | None:
        return text.replace("{tmp}", str(self.folder)) if text else text


@pytest.fixture(
    scope="module",
    params=[pytest.param(c, marks=[pytest.mark.slow] if c.slow else [], id=c.id) for c in CASES],
)
def zoo(request, folder):
    pytest.importorskip("timm")
    case = request.param
    lm = load_model(case.spec.replace("{tmp}", str(folder)))
    weights = None
    if case.init_head:
        torch.manual_seed(0)
        nn.init.normal_(lm.model.head.weight, std=0.02)
        weights = folder / f"{case.id}.pt"
        torch.save(lm.model.state_dict(), weights)
    img = Image.open(folder / f"{case.photo}.png").convert("RGB")
    spec = lm.input_spec if case.size is None else replace(lm.input_spec, size=(case.size,) * 2)
    built = Built(case, lm, to_tensor(img, spec), folder, weights=weights)
    built.tree = build_tree(lm.model, spec, class_names=lm.class_names)
    yield built
    assert hook_count(lm.model) == 0


def test_tree_reads_layouts_kind_and_default_layer(zoo):
    tree, case = zoo.tree, zoo.case
    assert tree.error is None and tree.output_kind.kind == case.kind
    found = {name: str(tree.find(name).layout) for name in case.layers}
    assert found == case.layers
    # Structure alone never offers a 1x1 layer.
    default = tree.default_cam_layer()
    assert tree.layouts.layouts[default].spatial
    ROWS.setdefault(case.id, {})["layouts"] = ", ".join(f"{k}: {v}" for k, v in found.items())


def test_probe_lists_what_fits_the_kind(zoo):
    lm, case = zoo.lm, zoo.case
    r = run_probe(lm.model, zoo.x, [], class_names=lm.class_names, input_spec=lm.input_spec)
    assert r.kind.kind == case.kind
    if case.kind == "classes":
        assert (
            len(r.topk) == 5
            and abs(sum(p for *_, p in r.topk) - r.probs[0].topk(5)[0].sum()) < 1e-6
        )
        assert r.target == r.topk[0][0]
    elif case.kind == "dense":
        shares = [p.score for p in r.predictions]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-6
        assert r.mask is not None and r.mask.shape == zoo.x.shape[-2:]
        counts = np.bincount(r.mask.numpy().ravel(), minlength=5)
        order = np.argsort(-counts, kind="stable")
        # The most-predicted class, unless that is the background and another class shows.
        expected = order[1] if order[0] == 0 and counts[order[1]] > 0 else order[0]
        assert r.target == int(expected) and r.target_text == str(expected)
    elif case.kind == "detections":
        assert r.topk == [] and len(r.predictions) == 8
        assert r.target_text == "box:0" and r.predictions[0].box is not None
        assert r.predictions[0].score == pytest.approx(float(r.probs[0, 0]))
    else:  # an embedding is never softmaxed
        assert r.topk == [] and r.predictions == () and r.probs.shape[1] == 0
        assert r.embedding.shape == (16,)


def _pgc_model(case: Case, model: nn.Module) -> nn.Module:
    """What pytorch-grad-cam needs: a module returning class scores, dense scores or boxes."""

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            if isinstance(out, dict) and "out" in out:
                return out["out"]
            for key in ("logits", "image_embeds"):
                if getattr(out, key, None) is not None:
                    return getattr(out, key)
            return out

    return Wrap(model).eval()


def _reshape(ref: str):
    if ref == "nchw":
        return None
    if ref == "nhwc":
        return lambda t: t.permute(0, 3, 1, 2)
    k = int(ref.split(":")[1])

    def tokens(t):
        side = int(round((t.shape[1] - k) ** 0.5))
        return t[:, k:].reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    return tokens


class SimilarityToConceptTarget:
    """pytorch-grad-cam's embedding target, verbatim from its tutorial "Pixel Attribution
    for embeddings" (the 1.5.7 package does not ship it)."""

    def __init__(self, features):
        self.features = features

    def __call__(self, model_output):
        cos = torch.nn.CosineSimilarity(dim=0)
        return cos(model_output, self.features)


def _pgc_target(zoo: Built, ours):
    from pytorch_grad_cam.utils.model_targets import (
        ClassifierOutputTarget,
        SemanticSegmentationTarget,
    )

    case, lm = zoo.case, zoo.lm
    with torch.no_grad():
        out = lm.model(zoo.x)
    if case.kind == "classes":
        logits = out if isinstance(out, torch.Tensor) else out.logits
        return ClassifierOutputTarget(int(logits.argmax()))
    if case.kind == "dense":
        pred = out["out"][0].argmax(0)
        return SemanticSegmentationTarget(ours.index, (pred == ours.index).float().numpy())
    if case.kind == "detections":
        i = int(case.target.split(":")[1])
        return lambda det: det["scores"][i]
    ref_img = Image.open(zoo.folder / "coffee.png").convert("RGB")
    with torch.no_grad():
        ref = lm.model(to_tensor(ref_img, lm.input_spec)).image_embeds[0]
    return SimilarityToConceptTarget(ref)


def test_gradcam_equals_pytorch_grad_cam(zoo):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from hookscope.core.engine.targets import resolve_target

    case, lm, x = zoo.case, zoo.lm, zoo.x
    kw = dict(class_names=lm.class_names, input_spec=lm.input_spec)
    # The default layer, for the kind's default target (what the CLI's cam picks).
    default = compute_cam(lm.model, x, None, "gradcam", **kw)
    assert list(default) == [case.default] and not default.notes
    assert str(default.layouts[case.default]) == str(zoo.tree.layouts.layouts[case.default])
    target = zoo.fill(case.target)
    with torch.no_grad():
        ours_target = resolve_target(
            target, lm.model(x), lm.class_names, model=lm.model, spec=lm.input_spec
        )
    refs = case.compare or {case.default: case.ref, **case.extra}
    maps = compute_cam(lm.model, x, list(refs), "gradcam", target, **kw)
    assert not maps.notes
    wrapped = _pgc_model(case, lm.model)
    theirs_target = _pgc_target(zoo, ours_target)
    worst = 0.0
    for layer, ref in refs.items():
        module = lm.model.get_submodule(layer)
        with pgc.GradCAM(wrapped, [module], reshape_transform=_reshape(ref)) as cam:
            theirs = cam(x, [theirs_target])[0]
        assert float(maps[layer].std()) > 0.01  # not flat
        diff = float(np.abs(maps[layer] - theirs).max())
        assert diff <= 1e-4, (layer, diff)
        worst = max(worst, diff)
    if case.kind == "dense":  # C@mask.png: a region, SemanticSegmentationTarget semantics
        from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

        mask = np.zeros(x.shape[-2:], np.uint8)
        mask[20:60, 30:80] = 255
        Image.fromarray(mask).save(zoo.folder / "region.png")
        region = compute_cam(
            lm.model, x, [case.default], "gradcam", f"2@{zoo.folder / 'region.png'}", **kw
        )[case.default]
        module = lm.model.get_submodule(case.default)
        with pgc.GradCAM(wrapped, [module]) as cam:
            theirs = cam(x, [SemanticSegmentationTarget(2, (mask > 127).astype(np.float32))])[0]
        diff = float(np.abs(region - theirs).max())
        assert diff <= 1e-4 and float(region.std()) > 0.01
        worst = max(worst, diff)
    ROWS.setdefault(case.id, {}).update(default=case.default, diff=worst)
    assert hook_count(lm.model) == 0


def test_cli_cam_with_no_extra_flags(zoo, tmp_path, capsys, monkeypatch):
    case = zoo.case
    spec = zoo.fill(case.spec)
    loaded = []

    def same_model(text, weights=None, **kw):  # the fixture built this very spec already
        assert text == spec and (weights is None) == (zoo.weights is None)
        loaded.append(text)
        return zoo.lm

    monkeypatch.setattr(hookscope.core.cli, "load_model", same_model)
    out = tmp_path / "cam.npz"
    argv = ["cam", "--model", spec, "--image", str(zoo.folder / f"{case.photo}.png")]
    argv += ["--weights", str(zoo.weights)] if zoo.weights else []
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    settings = json.loads(out.with_suffix(".json").read_text())["settings"]
    assert settings["layers"] == [case.default] and settings["output_kind"] == case.kind
    arr = np.load(out)[case.default]
    assert arr.shape == tuple(zoo.x.shape[-2:]) and float(arr.std()) > 0.01
    assert "note:" not in err and loaded == [spec]


WRONG = {
    "classes": ("box:0", "use a class index or name"),
    "dense": ("similar:x.png", "C@mask.png"),
    "detections": ("3", "box:i for detection i"),
    "embedding": ("box:0", "similar:IMAGE"),
}


def test_a_target_that_does_not_fit_the_kind_is_one_sentence(zoo):
    lm, case = zoo.lm, zoo.case
    text, hint = WRONG[case.kind]
    with pytest.raises(HookScopeError) as err:
        compute_cam(lm.model, zoo.x, [case.default], "gradcam", text, class_names=lm.class_names)
    msg = str(err.value)
    assert hint in msg and msg.count(". ") == 0 and msg.endswith(".")
    with pytest.raises(HookScopeError, match="--reshape|not 4-D|not tokens|no .* grid"):
        bad = "nchw" if case.ref.startswith("tokens") else "tokens:1"
        compute_cam(lm.model, zoo.x, [case.default], "gradcam", reshape=bad)
    assert hook_count(lm.model) == 0


def test_specs_read_names_and_preprocessing_and_fail_in_one_sentence(folder, monkeypatch):
    lm = load_model(f"hf:{folder}/vit")
    assert lm.class_names == [f"thing{i}" for i in range(5)]
    assert lm.input_spec.size == (64, 64) and lm.input_spec.mean == (0.5, 0.5, 0.5)
    assert load_model(f"hf:{folder}/clip").class_names is None  # no labels, no names
    factory = folder / "hf_factory.py"
    factory.write_text(
        "import transformers\n"
        f"def build():\n    return transformers.ViTForImageClassification.from_pretrained("
        f"{str(folder / 'vit')!r})\n"
    )
    assert load_model(f"{factory}:build").class_names[4] == "thing4"  # from config.id2label
    errors = {
        "timm:resnet5O": "timm has no model named 'resnet5O'; try one of resnet50",
        "timm:resnet18?pretrained=True": "not in the local cache and HookScope does not download",
        "timm:resnet18?img_size": "Bad option 'img_size' in the spec: write key=value.",
        f"hf:{folder}/nowhere": "is not a folder; give a folder written by save_pretrained",
        f"hf:{folder}": "has no config.json, so it is not a save_pretrained folder.",
    }
    for spec, text in errors.items():
        with pytest.raises(HookScopeError) as err:
            load_model(spec)
        assert text in str(err.value) and str(err.value).endswith(".")
    import hookscope.core.loading.models as models

    real = models.importlib.import_module

    def no_timm(name, *a, **kw):
        if name.split(".")[0] in ("timm", "transformers"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(models.importlib, "import_module", no_timm)
    for spec, extra in (("timm:resnet18", "timm"), (f"hf:{folder}/vit", "hf")):
        with pytest.raises(HookScopeError, match=rf"pip install hookscope\[{extra}\]\.$"):
            load_model(spec)


def test_a_zero_head_is_reported():
    """A model whose head is all zeros (timm's Mixer at init) gives zero gradients: a note."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    nn.init.zeros_(model[4].weight)
    maps = compute_cam(model, torch.rand(1, 3, 16, 16), ["0"], "gradcam", 1)
    assert maps.notes == (
        "The gradient at 0 is zero everywhere: the target does not depend on this layer's "
        "output (e.g. only the class token reaches the head, or the head's weights are zero), "
        "so its map is empty.",
    )
    assert float(maps["0"].max()) == 0.0


@pytest.mark.slow
def test_convnext_at_384_reads_layernorm2d_as_channels_first():
    """At 384 px ConvNeXt's stem is 96 channels on a 96x96 grid: only behaviour can tell."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("convnext_tiny").eval()
    report = analyse(model, torch.zeros(1, 3, 384, 384))
    assert str(report.layouts["stem.1"]) == "nchw 96x96"
    assert report.layouts["stem.1"].evidence == "layer norm over axis 1"
    assert str(report.layouts["stages.0.blocks.0.norm"]) == "nhwc 96x96"  # nn.LayerNorm, permuted
    assert str(report.layouts["stages.0.blocks.0"]) == "nchw 96x96"


def teardown_module():
    path = os.environ.get("HOOKSCOPE_ZOO_TABLE")
    if not path or not ROWS:
        return
    lines = [
        "| architecture | layout found | default layer | max diff vs pytorch-grad-cam |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        row = ROWS.get(case.id)
        if row:
            diff = f"{row['diff']:.1e}" if "diff" in row else "-"
            lines.append(
                f"| {case.id} | {row.get('layouts', '-')} | {row.get('default', '-')} | {diff} |"
            )
    Path(path).write_text("\n".join(lines) + "\n")
