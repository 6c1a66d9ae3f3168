"""attnlrp: equal to lxt 2.1's own torchvision-ViT recipe run in a separate process (lxt patches
torch classes for its whole process), the same rules on timm's ViT, and the rules scoped to the
one explained model: a second model, torch's classes and the model itself are left as they were."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from hookscope.core.errors import HookScopeError
from hookscope.core.methods import explainers
from hookscope.core.methods.transformers.attnlrp import (
    CONV_GAMMA,
    LINEAR_GAMMA,
    attnlrp,
    relevance_map,
)

timm = pytest.importorskip("timm")

CONFIG = dict(
    image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=7
)
GAMMAS = [(CONV_GAMMA, LINEAR_GAMMA), (0.25, 0.05), (0.1, 1.0)]  # from lxt's own grid
TARGET = 3


@pytest.fixture(scope="module")
def tv_vit():
    torch.manual_seed(0)
    vit = VisionTransformer(**CONFIG).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.5)  # torchvision starts the head at 0
    return vit


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def lxt_relevance(tv_vit, x, tmp_path_factory):
    """lxt's input relevance per gamma pair, computed by its recipe in another process."""
    if importlib.util.find_spec("lxt") is None or importlib.util.find_spec("zennit") is None:
        pytest.skip("lxt 2.1 and zennit are the reference (pip install -e '.[dev]')")
    blob = dict(config=CONFIG, state=tv_vit.state_dict(), x=x, target=TARGET, gammas=GAMMAS)
    return _run_lxt(blob, tmp_path_factory.mktemp("lxt"))


def test_equals_lxt_in_a_separate_process(tv_vit, x, lxt_relevance):
    assert lxt_relevance.shape == (len(GAMMAS), 3, 32, 32)
    for (conv_gamma, linear_gamma), ref in zip(GAMMAS, lxt_relevance):
        ours = attnlrp(tv_vit, x, TARGET, conv_gamma=conv_gamma, linear_gamma=linear_gamma)
        assert np.abs(ref).max() > 1e-2  # a real map, not zeros
        assert np.abs(ours - ref).max() <= 1e-4, (conv_gamma, linear_gamma)
    # the gammas matter: the three references differ
    assert np.abs(lxt_relevance[0] - lxt_relevance[1]).max() > 1e-2


def _patch_map(relevance: np.ndarray, patch: int) -> np.ndarray:
    """Written here from the docstring: sum over channels and over each patch, positive part,
    bilinear (align_corners=False) to the input, min-max."""
    c, h, w = relevance.shape
    per_patch = relevance.sum(0).reshape(h // patch, patch, w // patch, patch).sum((1, 3))
    t = torch.from_numpy(np.clip(per_patch, 0, None).astype(np.float32))[None, None]
    up = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    up = up - up.min()
    return up / up.max()


def _run_lxt(blob: dict, tmp) -> np.ndarray:
    torch.save(blob, tmp / "in.pt")
    script = Path(__file__).with_name("lxt_vit_reference.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(script), str(tmp / "in.pt"), str(tmp / "out.npy")],
        check=True,
        timeout=900,
        env=env,
        capture_output=True,
    )
    return np.load(tmp / "out.npy")


@pytest.mark.slow
def test_equals_lxt_on_vit_b_16(lxt_relevance, tmp_path):
    """lxt's example model, vit_b_16 at 224², random-init from a seed in both processes."""
    config = dict(
        image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072
    )
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    blob = dict(config=config, seed=0, head_std=0.02, x=x, target=7, gammas=[GAMMAS[0]])
    ref = _run_lxt(blob, tmp_path)[0]
    torch.manual_seed(0)
    vit = VisionTransformer(**config).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.02)
    ours = attnlrp(vit, x, 7)
    peak = np.abs(ref).max()  # random init: small relevance (3.2e-4), so also relative
    assert peak > 1e-5 and np.abs(ours).sum() > 0
    assert np.abs(ours - ref).max() <= 1e-4 and np.abs(ours - ref).max() / peak <= 1e-4


def test_registry_record(tv_vit, x, lxt_relevance):
    e = explainers.explain(tv_vit, x, "attnlrp", target=TARGET)
    rec = explainers.get("attnlrp")
    assert rec.kind == explainers.TRANSFORMER and rec.signed
    assert [p.name for p in rec.params] == ["conv_gamma", "linear_gamma", "resolution"]
    assert (CONV_GAMMA, LINEAR_GAMMA) == (100.0, 0.01)
    assert e.raw.shape == (3, 32, 32) and np.abs(e.raw - lxt_relevance[0]).max() <= 1e-4
    assert e.map.shape == (32, 32) and e.map.min() == 0.0 and e.map.max() == pytest.approx(1.0)
    assert e.layer is None and e.maps == {}
    np.testing.assert_allclose(e.map, _patch_map(e.raw, 8), atol=1e-6)
    px = explainers.explain(tv_vit, x, "attnlrp", target=TARGET, resolution="pixels")
    np.testing.assert_array_equal(px.raw, e.raw)
    summed = e.raw.sum(0).clip(min=0)
    np.testing.assert_allclose(px.map, summed / summed.max(), atol=1e-6)
    assert np.abs(px.map - e.map).mean() > 0.05  # two different pictures of one relevance
    with pytest.raises(HookScopeError, match="resolution"):
        explainers.explain(tv_vit, x, "attnlrp", target=TARGET, resolution="tokens")
    with pytest.raises(HookScopeError, match="does not take"):
        explainers.explain(tv_vit, x, "attnlrp", target=TARGET, fusion="max")
    blocks = explainers.explain(tv_vit, x, "attnlrp", target=TARGET, layers=["encoder.ln"])
    assert [n.kind for n in blocks.notes] == [explainers.INFO]
    np.testing.assert_array_equal(blocks.raw, e.raw)


def _timm_twin(tv: VisionTransformer):
    """A timm ViT with the torchvision ViT's weights (same function, other modules)."""
    t = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=3,
        num_heads=2,
        mlp_ratio=2.0,
        num_classes=7,
    ).eval()
    sd = {
        "cls_token": tv.class_token,
        "pos_embed": tv.encoder.pos_embedding,
        "patch_embed.proj.weight": tv.conv_proj.weight,
        "patch_embed.proj.bias": tv.conv_proj.bias,
        "norm.weight": tv.encoder.ln.weight,
        "norm.bias": tv.encoder.ln.bias,
        "head.weight": tv.heads.head.weight,
        "head.bias": tv.heads.head.bias,
    }
    for i, blk in enumerate(tv.encoder.layers):
        att, p = blk.self_attention, f"blocks.{i}."
        pairs = {
            "norm1": blk.ln_1,
            "norm2": blk.ln_2,
            "attn.proj": att.out_proj,
            "mlp.fc1": blk.mlp[0],
            "mlp.fc2": blk.mlp[3],
        }
        for name, mod in pairs.items():
            sd[p + name + ".weight"], sd[p + name + ".bias"] = mod.weight, mod.bias
        sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"] = att.in_proj_weight, att.in_proj_bias
    t.load_state_dict({k: v.detach().clone() for k, v in sd.items()})
    for m in t.modules():  # the twin's LayerNorms share torchvision's eps
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-6
    return t


def test_timm_vit_gets_the_same_rules(tv_vit, x, lxt_relevance):
    twin = _timm_twin(tv_vit)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), tv_vit(x), atol=1e-5, rtol=1e-5)
    ours = attnlrp(twin, x, TARGET)  # fused attention on: switched off for the pass only
    assert np.abs(ours - lxt_relevance[0]).max() <= 1e-4
    assert all(b.attn.fused_attn == timm.layers.use_fused_attn() for b in twin.blocks)


def _hf_twin(tv: VisionTransformer):
    """A Hugging Face ViT with the torchvision ViT's weights."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        num_labels=7,
        layer_norm_eps=1e-6,
    )
    hf = transformers.ViTForImageClassification(cfg).eval()
    emb = "vit.embeddings."
    sd = {
        emb + "cls_token": tv.class_token,
        emb + "position_embeddings": tv.encoder.pos_embedding,
        emb + "patch_embeddings.projection.weight": tv.conv_proj.weight,
        emb + "patch_embeddings.projection.bias": tv.conv_proj.bias,
        "vit.layernorm.weight": tv.encoder.ln.weight,
        "vit.layernorm.bias": tv.encoder.ln.bias,
        "classifier.weight": tv.heads.head.weight,
        "classifier.bias": tv.heads.head.bias,
    }
    for i, blk in enumerate(tv.encoder.layers):
        att, p = blk.self_attention, f"vit.layers.{i}."
        q, k, v = att.in_proj_weight.chunk(3)
        qb, kb, vb = att.in_proj_bias.chunk(3)
        sd |= {p + "attention.q_proj.weight": q, p + "attention.q_proj.bias": qb}
        sd |= {p + "attention.k_proj.weight": k, p + "attention.k_proj.bias": kb}
        sd |= {p + "attention.v_proj.weight": v, p + "attention.v_proj.bias": vb}
        pairs = {
            "attention.o_proj": att.out_proj,
            "layernorm_before": blk.ln_1,
            "layernorm_after": blk.ln_2,
            "mlp.fc1": blk.mlp[0],
            "mlp.fc2": blk.mlp[3],
        }
        for name, mod in pairs.items():
            sd[p + name + ".weight"], sd[p + name + ".bias"] = mod.weight, mod.bias
    hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()})
    return hf


def test_hugging_face_vit_gets_the_same_rules(tv_vit, x, lxt_relevance):
    twin = _hf_twin(tv_vit)
    with torch.no_grad():
        torch.testing.assert_close(twin(x).logits, tv_vit(x), atol=1e-5, rtol=1e-5)
    ours = attnlrp(twin, x, TARGET)
    assert np.abs(ours - lxt_relevance[0]).max() <= 1e-4
    assert twin.config._attn_implementation == "sdpa"  # q, k detached: no eager switch needed


def _hooks(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


TORCH_SURFACE = [
    (nn.LayerNorm, "forward"),
    (nn.GELU, "forward"),
    (nn.Linear, "forward"),
    (nn.Conv2d, "forward"),
    (nn.MultiheadAttention, "forward"),
    (F, "layer_norm"),
    (F, "gelu"),
    (F, "linear"),
    (F, "multi_head_attention_forward"),
    (F, "scaled_dot_product_attention"),
    (torch, "matmul"),
]


def test_one_model_only_and_everything_restored(tv_vit, x):
    torch.manual_seed(5)
    other = VisionTransformer(**CONFIG).eval()  # the same classes, not explained
    nn.init.normal_(other.heads.head.weight, std=0.5)
    x2 = x.flip(-1).clone().requires_grad_(True)
    before = other(x2)
    (plain_grad,) = torch.autograd.grad(before[0, 1], x2)
    surface = [getattr(owner, name) for owner, name in TORCH_SURFACE]
    state = {k: v.clone() for k, v in tv_vit.state_dict().items()}
    with torch.no_grad():
        out_before = tv_vit(x)
    tv_vit.train()  # the user's mode, restored after
    seen = {}

    def target(output):  # runs while the rules are on: the other model must not see them
        y = other(x2)
        seen["out"] = y.detach()
        (seen["grad"],) = torch.autograd.grad(y[0, 1], x2)
        return output[:, TARGET]

    try:
        attnlrp(tv_vit, x, target)
    finally:
        tv_vit.eval()
    torch.testing.assert_close(seen["out"], before.detach(), rtol=0, atol=0)
    torch.testing.assert_close(seen["grad"], plain_grad, rtol=0, atol=0)
    assert [getattr(owner, name) for owner, name in TORCH_SURFACE] == surface
    assert _hooks(tv_vit) == 0 and _hooks(other) == 0
    assert all(torch.equal(v, state[k]) for k, v in tv_vit.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(tv_vit(x), out_before, rtol=0, atol=0)


def test_train_mode_and_no_grad_left_as_they_were(tv_vit, x, lxt_relevance):
    tv_vit.train()
    try:
        with torch.no_grad():
            r = attnlrp(tv_vit, x, TARGET)
            assert not torch.is_grad_enabled()
        assert all(m.training for m in tv_vit.modules())
    finally:
        tv_vit.eval()
    assert np.abs(r - lxt_relevance[0]).max() <= 1e-4  # explained in eval mode


def test_refusals_are_one_sentence(x):
    transformers = pytest.importorskip("transformers")
    swin = transformers.SwinModel(
        transformers.SwinConfig(
            image_size=32, patch_size=4, embed_dim=8, depths=[1], num_heads=[1], window_size=4
        )
    )
    with pytest.raises(HookScopeError, match="Swin-like windowed attention") as err:
        attnlrp(swin, x, lambda out: out.last_hidden_state.sum())
    assert "\n" not in str(err.value)
    dinov2 = transformers.Dinov2Model(
        transformers.Dinov2Config(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            use_swiglu_ffn=True,
        )
    )
    with pytest.raises(HookScopeError, match="gated") as err:
        attnlrp(dinov2, x, lambda out: out.pooler_output.sum())
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")


def test_cli_cam_writes_the_relevance(tmp_path):
    from PIL import Image

    from hookscope.core.loading.images import load_image, to_tensor
    from hookscope.core.loading.models import load_model
    from hookscope.gui.command import main

    spec = "timm:vit_tiny_patch16_224?img_size=32&patch_size=8&depth=2&num_classes=5"
    image = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "r.npz"
    args = ["cam", "--model", spec, "--image", str(image), "--target", "1", "--out", str(out)]
    assert main([*args, "--method", "attnlrp"]) == 0
    lm = load_model(spec)
    want = attnlrp(lm.model, to_tensor(load_image(image), lm.input_spec), 1)
    got = np.load(out)
    assert got["relevance"].shape == (3, 32, 32) and got["map"].shape == (32, 32)
    assert np.abs(got["relevance"] - want).max() <= 1e-6 * max(1e-12, np.abs(want).max())
    np.testing.assert_allclose(got["map"], _patch_map(want, 8), atol=1e-5)


def test_scan_maps_with_attnlrp(tv_vit, x):
    from hookscope.core.experiments.scan import scan_batch
    from hookscope.core.experiments.scan_settings import SCAN_METHODS

    assert "attnlrp" in SCAN_METHODS
    xs = torch.cat([x, x.flip(-1)])
    masks = np.zeros((2, 32, 32), bool)
    masks[:, 8:24, 8:24] = True
    b = scan_batch(tv_vit, xs, "encoder.ln", "attnlrp", target=TARGET, masks=masks, map_size=32)
    for k in range(2):
        m = relevance_map(tv_vit, xs[k : k + 1], attnlrp(tv_vit, xs[k : k + 1], TARGET))
        assert np.abs(b.maps[k] - m).max() < 1e-5
        assert abs(b.bg_mass[k] - m[~masks[k]].sum() / m.sum()) < 1e-5


def _no_biases(model):
    """Every bias, position embedding and class token zeroed: nothing absorbs relevance."""
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point() and name.endswith(("bias", "pos_embed", "cls_token")):
                t.zero_()
    nn.init.normal_(model.head.weight, std=1.0)
    return model


def test_relevance_is_conserved_with_the_gated_rule(monkeypatch):
    """With gamma 0 and no biases every rule is conservative (LayerNorm's identity rule, the
    constant attention, GELU/SiLU's identity rule, the uniform rule on SwiGLU's product), so the
    input relevance sums to the logit; without the uniform rule EVA-02's sum is off."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    kw = dict(pretrained=False, num_classes=5, img_size=28, depth=2)
    eva02 = _no_biases(timm.create_model("eva02_tiny_patch14_224", **kw).eval())
    vit = _no_biases(timm.create_model("vit_tiny_patch16_224", patch_size=14, **kw).eval())
    for model in (eva02, vit):
        with torch.no_grad():
            logit = model(x)[0, 2].item()
        total = attnlrp(model, x, 2, conv_gamma=0.0, linear_gamma=0.0).sum()
        assert abs(logit) > 1 and abs(total - logit) <= 1e-4 * abs(logit), (total, logit)
    import hookscope.core.methods.transformers.attnlrp as rules

    monkeypatch.setattr(rules, "_uniform_hook", lambda module, args, output: output)
    with torch.no_grad():
        logit = eva02(x)[0, 2].item()
    total = attnlrp(eva02, x, 2, conv_gamma=0.0, linear_gamma=0.0).sum()
    assert abs(total - logit) > 1e-3 * abs(logit)


@pytest.mark.parametrize(
    "conv, size",
    [
        (nn.Conv2d(3, 6, 8, stride=8), 35),  # patch embedding, 3 pixels past the last patch
        (nn.Conv2d(3, 6, 3, stride=2, padding=1), 17),  # any other conv: torch's own transpose
    ],
)
def test_conv_transpose_products_equal_autograd(conv, size):
    """The Gamma rule's ``Wᵀc`` and ``|W|ᵀc`` (a matmul for patch embeddings) equal autograd's."""
    import hookscope.core.methods.transformers.attnlrp as rules

    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size, requires_grad=True)
    layer = rules._GammaLayer(conv, 0.25, rules._Scratch())
    for absolute in (False, True):
        w = conv.weight.detach().abs() if absolute else conv.weight.detach()
        y = conv._conv_forward(x, w, None)
        c = torch.randn_like(y)
        (want,) = torch.autograd.grad(y, x, c)
        got = layer.transposed(c, x.detach(), absolute=absolute)
        assert got.shape == x.shape and want.abs().max() > 0.1
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
