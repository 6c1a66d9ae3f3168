"""rollout, chefer, legrad and attnlrp on the other vision transformers people ask about: Hugging
Face CLIP and SigLIP vision towers (and their classifiers), DINOv2 (HF, and timm with registers),
EVA / EVA-02 (timm), BEiT (timm and HF) and DeiT distilled (timm), each random-init from a
small config, offline.

Each method gives a finite, non-constant map (the patch grid for the attention methods, the input
for attnlrp's relevance), or one clear sentence where it cannot explain the model."""

import numpy as np
import pytest
import torch
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods import explainers
from hookscope.core.methods.transformers.legrad import score_projection

timm = pytest.importorskip("timm")
T = pytest.importorskip("transformers")

METHODS = ("rollout", "chefer", "legrad", "attnlrp")
SMALL = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
DINO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    mlp_ratio=2,
    image_size=32,
    patch_size=8,
    num_labels=5,
)


def _hf(config, cls):
    torch.manual_seed(0)
    return cls(config).eval()


def _timm(name, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=5, **kw).eval()


BUILDS = {
    "hf-clip-tower": lambda: _hf(
        T.CLIPVisionConfig(projection_dim=16, **SMALL), T.CLIPVisionModelWithProjection
    ),
    "hf-clip-classifier": lambda: _hf(
        T.CLIPConfig(vision_config=SMALL, text_config=TEXT, num_labels=5),
        T.CLIPForImageClassification,
    ),
    "hf-siglip-tower": lambda: _hf(T.SiglipVisionConfig(**SMALL), T.SiglipVisionModel),
    "hf-siglip-classifier": lambda: _hf(
        T.SiglipConfig(vision_config=SMALL, text_config=TEXT, num_labels=5),
        T.SiglipForImageClassification,
    ),
    "hf-dinov2": lambda: _hf(T.Dinov2Config(**DINO), T.Dinov2ForImageClassification),
    "hf-dinov2-registers": lambda: _hf(
        T.Dinov2WithRegistersConfig(num_register_tokens=4, **DINO),
        T.Dinov2WithRegistersForImageClassification,
    ),
    "hf-beit": lambda: _hf(
        T.BeitConfig(use_relative_position_bias=True, num_labels=5, **SMALL),
        T.BeitForImageClassification,
    ),
    "timm-dinov2-registers": lambda: _timm(
        "vit_small_patch14_reg4_dinov2",
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
    ),
    "timm-eva": lambda: _timm(
        "eva_giant_patch14_224",
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
    ),
    "timm-eva02": lambda: _timm("eva02_tiny_patch14_224", img_size=28, depth=2),
    "timm-deit-distilled": lambda: _timm(
        "deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2
    ),
    "timm-beit": lambda: _timm(
        "beit_base_patch16_224",
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
    ),
}
REFUSED: dict = {}  # (case, method) -> what the one sentence says (every case maps now)


def _embedding(output):
    return (
        output.image_embeds
        if getattr(output, "image_embeds", None) is not None
        else (output.pooler_output)
    )


def _target(case):
    """A class for the classifiers; for a tower, similarity to a fixed random embedding."""
    if "tower" not in case:
        return 1
    direction = torch.randn(64, generator=torch.Generator().manual_seed(4))

    def similarity(output):
        emb = _embedding(output)
        return torch.nn.functional.cosine_similarity(emb, direction[: emb.shape[-1]][None], 1)

    return similarity


def _check_map(e, method, size, grid):
    assert np.isfinite(e.raw).all() and np.isfinite(e.map).all()
    assert e.map.shape == (size, size) and 0 <= e.map.min() and e.map.max() <= 1
    assert e.map.std() > 1e-3, "constant map"
    if method == "attnlrp":
        assert e.raw.shape == (3, size, size) and np.abs(e.raw).max() > 0
    else:
        assert e.raw.shape == grid and e.raw.std() > 1e-3


@pytest.mark.parametrize("case", list(BUILDS))
def test_every_method_maps_or_says_why(case):
    model = BUILDS[case]()
    size = 28 if case == "timm-eva02" else 32
    grid = (2, 2) if case == "timm-eva02" else (4, 4)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    for method in METHODS:
        if (case, method) in REFUSED:
            with pytest.raises(HookScopeError, match=REFUSED[case, method]) as err:
                explainers.explain(model, x, method, target=_target(case))
            text = str(err.value)
            assert "\n" not in text and text.endswith(".") and text.count(". ") == 0, text
            continue
        e = explainers.explain(model, x, method, target=_target(case))
        _check_map(e, method, size, grid)


@pytest.mark.parametrize(
    "case",
    ["hf-clip-classifier", "hf-siglip-classifier", "hf-dinov2", "hf-dinov2-registers", "hf-beit"],
)
def test_legrad_projects_through_the_models_own_head(case):
    """The last block's tokens through legrad's projection are the model's own logits."""
    model = BUILDS[case]()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    blocks = [m for n, m in model.named_modules() if n.endswith(("layers.1", "layer.1"))]
    seen = []
    handle = blocks[-1].register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        with torch.no_grad():
            logits = model(x).logits
            projected = score_projection(model)(seen[0])
    finally:
        handle.remove()
    torch.testing.assert_close(projected, logits, atol=1e-5, rtol=1e-5)


def test_clip_tower_with_a_similar_image_target(tmp_path):
    model = BUILDS["hf-clip-tower"]()
    spec = InputSpec(size=(32, 32))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "r.png")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for method in ("rollout", "chefer", "legrad", "attnlrp"):
        e = explainers.explain(
            model, x, method, target=f"similar:{tmp_path / 'r.png'}", input_spec=spec
        )
        _check_map(e, method, 32, (4, 4))


def _legrad_by_hand(model, x, embed, reference, prefix):
    """LeGrad from the paper on HF's own eager outputs: per block l, d cos(embed(z_l), ref)/dA_l."""
    model.config._attn_implementation = "eager"  # its returned weights are the A multiplied in
    out = model(x.clone().requires_grad_(True), output_attentions=True, output_hidden_states=True)
    maps = []
    for z, a in zip(out.hidden_states[1:], out.attentions):
        s = torch.nn.functional.cosine_similarity(embed(z), reference[None], 1).sum()
        (g,) = torch.autograd.grad(s, a, retain_graph=True)
        maps.append(g.relu().mean(dim=(1, 2))[0, prefix:])
    m = torch.stack(maps).mean(0).reshape(4, 4).detach()
    m = m - m.min()
    return (m / (m.max() + 1e-8)).numpy()


@pytest.mark.parametrize("case", ["hf-clip-tower", "hf-siglip-tower"])
def test_legrad_on_a_tower_scores_similarity_to_the_reference(case, tmp_path):
    """legrad with similar:IMAGE: each block's embedding (the tower's own pooling) scored by the
    cosine similarity to the reference's embedding, equal to the formula run by hand."""
    model = BUILDS[case]()
    spec = InputSpec(size=(32, 32))
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = []
    for seed in (0, 1):
        path = tmp_path / f"r{seed}.png"
        rng = np.random.default_rng(seed)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        e = explainers.explain(model, x, "legrad", target=f"similar:{path}", input_spec=spec)
        maps.append(e.raw)
    inner = getattr(model, "vision_model", model)
    if case == "hf-clip-tower":  # the class token, normed, projected
        embed, prefix = lambda z: model.visual_projection(inner.post_layernorm(z[:, 0])), 1
    else:  # SigLIP: the attention-pooling head over every normed token
        embed, prefix = lambda z: inner.head(inner.post_layernorm(z)), 0
    with torch.no_grad():  # the reference image's embedding, preprocessed as the input's spec
        ref = _embedding(model(to_tensor(Image.open(tmp_path / "r0.png"), spec)))[0]
    want = _legrad_by_hand(model, x, embed, ref, prefix)
    assert want.std() > 0.1
    assert np.abs(maps[0] - want).max() < 1e-5
    assert np.abs(maps[0] - maps[1]).max() > 0.1  # the reference image matters


def test_legrad_on_a_headless_timm_vit_projects_to_its_embedding(tmp_path):
    """A timm ViT without a classifier: forward_head(norm(tokens)) of the last block is the
    model's own embedding, and similar:IMAGE gives a map that depends on the reference."""
    model = _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)
    model.reset_classifier(0)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    seen = []
    handle = model.blocks[-1].register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        with torch.no_grad():
            emb = model(x)
            projected = score_projection(model)(seen[0])
    finally:
        handle.remove()
    assert emb.shape == (1, 192)
    torch.testing.assert_close(projected, emb, atol=1e-6, rtol=1e-6)
    maps = []
    for seed in (0, 1):
        path = tmp_path / f"r{seed}.png"
        rng = np.random.default_rng(seed)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        spec = InputSpec(size=(32, 32))
        e = explainers.explain(model, x, "legrad", target=f"similar:{path}", input_spec=spec)
        _check_map(e, "legrad", 32, (4, 4))
        maps.append(e.raw)
    assert np.abs(maps[0] - maps[1]).max() > 0.1
