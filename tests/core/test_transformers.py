"""Transformer-native explanations: rollout and chefer against the papers' formulas written
out here on a hand-run forward, legrad against torchcam 0.5.0, and the model left as it was."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer

from hookscope.core.errors import HookScopeError
from hookscope.core.methods import explainers

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def tv_vit():
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=5,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
        num_classes=7,
    ).eval()
    torch.nn.init.normal_(vit.heads.head.weight, std=0.5)  # torchvision starts the head at 0
    return vit


@pytest.fixture(scope="module")
def timm_vit():
    torch.manual_seed(1)
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=64, depth=4, num_classes=5
    ).eval()


@pytest.fixture(scope="module")
def x32():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def x64():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))


# -- an independent forward that exposes A (softmax(q k^T / sqrt(d))) in the graph -------------
def _heads(t, h):
    b, n, c = t.shape
    return t.reshape(b, n, h, c // h).transpose(1, 2)


def _merge(t):
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def tv_manual(vit, x):
    """torchvision ViT by hand: (logits, [A per block])."""
    t = vit._process_input(x)
    t = torch.cat([vit.class_token.expand(t.shape[0], -1, -1), t], 1)
    t = t + vit.encoder.pos_embedding
    attns = []
    for blk in vit.encoder.layers:
        att = blk.self_attention
        q, k, v = F.linear(blk.ln_1(t), att.in_proj_weight, att.in_proj_bias).chunk(3, -1)
        q, k, v = (_heads(z, att.num_heads) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
        attns.append(a)
        t = t + att.out_proj(_merge(a @ v))
        t = t + blk.mlp(blk.ln_2(t))
    return vit.heads(vit.encoder.ln(t)[:, 0]), attns


def timm_manual(model, x):
    """timm ViT by hand: (logits, [A per block])."""
    t = model._pos_embed(model.patch_embed(x))
    attns = []
    for blk in model.blocks:
        att = blk.attn
        q, k, v = att.qkv(blk.norm1(t)).chunk(3, -1)
        q, k, v = (_heads(z, att.num_heads) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) * att.scale, -1)
        attns.append(a)
        t = t + blk.ls1(att.proj(_merge(a @ v)))
        t = t + blk.ls2(blk.mlp(blk.norm2(t)))
    return model.forward_head(model.norm(t)), attns


def paper_rollout(attns, prefix, fusion="mean"):
    fuse = {"mean": lambda a: a.mean(0), "max": lambda a: a.max(0)[0], "min": lambda a: a.min(0)[0]}
    r = None
    for a in attns:
        a_hat = fuse[fusion](a[0].double()) + torch.eye(a.shape[-1], dtype=torch.float64)
        a_hat = a_hat / a_hat.sum(-1, keepdim=True)
        r = a_hat if r is None else a_hat @ r
    return r[0, prefix:] if prefix else r.mean(0)


def paper_chefer(attns, score, prefix):
    grads = torch.autograd.grad(score, attns)
    r = torch.eye(attns[0].shape[-1], dtype=torch.float64)
    for a, g in zip(attns, grads):
        r = r + (g[0] * a[0]).clamp(min=0).mean(0).double() @ r
    return r[0, prefix:]


def minmax(v, side):
    v = v.detach().reshape(side, side).double()
    v = v - v.min()
    return (v / (v.max() + 1e-8)).numpy()


def test_manual_forwards_are_the_models(tv_vit, timm_vit, x32, x64):
    torch.testing.assert_close(tv_manual(tv_vit, x32)[0], tv_vit(x32), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(timm_manual(timm_vit, x64)[0], timm_vit(x64), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_equals_the_paper_torchvision(tv_vit, x32, fusion):
    with torch.no_grad():
        _, attns = tv_manual(tv_vit, x32)
    want = minmax(paper_rollout(attns, 1, fusion), 4)
    e = explainers.explain(tv_vit, x32, "rollout", target=0, fusion=fusion)
    assert e.raw.shape == (4, 4) and e.map.shape == (32, 32) and e.map.dtype == np.float32
    assert np.abs(e.raw - want).max() < 1e-5
    assert e.map.min() == 0.0 and abs(e.map.max() - 1.0) < 1e-6
    assert want.std() > 0.05  # a real map, not a constant


def test_rollout_timm_and_no_class_token(timm_vit, x64):
    with torch.no_grad():
        _, attns = timm_manual(timm_vit, x64)
    e = explainers.explain(timm_vit, x64, "rollout", target=0)
    assert np.abs(e.raw - minmax(paper_rollout(attns, 1), 4)).max() < 1e-5
    torch.manual_seed(4)
    avg = timm.create_model(
        "vit_tiny_patch16_224", img_size=64, depth=2, class_token=False, global_pool="avg"
    ).eval()
    with torch.no_grad():
        _, attns = timm_manual(avg, x64)
    e = explainers.explain(avg, x64, "rollout", target=0)
    assert np.abs(e.raw - minmax(paper_rollout(attns, 0), 4)).max() < 1e-5


def test_chefer_equals_the_paper(tv_vit, timm_vit, x32, x64):
    logits, attns = tv_manual(tv_vit, x32.clone().requires_grad_(True))
    want = minmax(paper_chefer(attns, logits[0, 3], 1), 4)
    e = explainers.explain(tv_vit, x32, "chefer", target=3)
    assert want.std() > 0.05
    assert np.abs(e.raw - want).max() < 1e-4
    other = explainers.explain(tv_vit, x32, "chefer", target=5).raw
    assert np.abs(other - e.raw).max() > 0.05  # the class matters
    logits, attns = timm_manual(timm_vit, x64.clone().requires_grad_(True))
    want = minmax(paper_chefer(attns, logits[0, 2], 1), 4)
    e = explainers.explain(timm_vit, x64, "chefer", target=2)
    assert np.abs(e.raw - want).max() < 1e-4


def _torchcam_legrad(vit, x, blocks, target):
    from torchcam.methods import LeGrad

    with LeGrad(vit, blocks) as extractor:
        vit(x)
        return extractor(target)[0][0].numpy()


def test_legrad_equals_torchcam(tv_vit, x32):
    pytest.importorskip("torchcam")
    want = _torchcam_legrad(tv_vit, x32, list(tv_vit.encoder.layers)[-4:], 3)
    e = explainers.explain(tv_vit, x32, "legrad", target=3)  # default: the last four blocks
    assert want.std() > 0.05
    assert np.abs(e.raw - want).max() < 1e-4
    names = ["encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_3"]
    want = _torchcam_legrad(tv_vit, x32, names, 6)
    e = explainers.explain(tv_vit, x32, "legrad", target=6, layers=names)
    assert np.abs(e.raw - want).max() < 1e-4
    assert e.layer == names[0]


@pytest.mark.slow
def test_legrad_equals_torchcam_vit_b_16():
    pytest.importorskip("torchcam")
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    vit = vit_b_16().eval()
    torch.nn.init.normal_(vit.heads.head.weight, std=0.02)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    want = _torchcam_legrad(vit, x, list(vit.encoder.layers)[-4:], 7)
    got = explainers.explain(vit, x, "legrad", target=7).raw
    assert np.abs(got - want).max() < 1e-4


def test_legrad_timm_uses_its_head(timm_vit, x64):
    e = explainers.explain(timm_vit, x64, "legrad", target=1)
    assert e.layer == "blocks.0" and e.raw.shape == (4, 4) and e.raw.std() > 0.05


def _state(model):
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )
    flags = [(n, getattr(m, "fused_attn", None), m.training) for n, m in model.named_modules()]
    attrs = [sorted(vars(m)) for m in model.modules()]
    return hooks, flags, attrs


def test_model_left_as_it_was_and_others_untouched(tv_vit, timm_vit, x32, x64):
    torch.manual_seed(5)
    bystander = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2).eval()
    timm_vit.blocks[1].train()  # a mixed-mode model keeps its modes
    before = [_state(m) for m in (tv_vit, timm_vit, bystander)]
    assert before[1][1][0][1] is None and any(f[1] is True for f in before[1][1])
    with torch.no_grad():
        ref = bystander(x64), tv_vit(x32)
    try:
        for method in ("rollout", "chefer", "legrad"):
            explainers.explain(timm_vit, x64, method, target=0)
            explainers.explain(tv_vit, x32, method, target=0)
            assert all(b.attn.fused_attn for b in bystander.blocks)
        for method in ("chefer", "legrad"):
            with torch.no_grad():  # the caller's grad mode survives the pass
                got = explainers.explain(tv_vit, x32, method, target=0).raw
                assert not torch.is_grad_enabled()
            assert np.abs(got - explainers.explain(tv_vit, x32, method, target=0).raw).max() == 0
    finally:
        timm_vit.blocks[1].eval()
    after = [_state(m) for m in (tv_vit, timm_vit, bystander)]
    after[1][1][:] = [(n, f, t) for n, f, t in after[1][1]]
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1][0] == before[1][0] and after[1][2] == before[1][2]
    assert [f[:2] for f in after[1][1]] == [f[:2] for f in before[1][1]]
    with torch.no_grad():
        torch.testing.assert_close(bystander(x64), ref[0], rtol=0, atol=0)
        torch.testing.assert_close(tv_vit(x32), ref[1], rtol=0, atol=0)


def test_refusals_are_one_sentence(x32):
    from torchvision.models.swin_transformer import SwinTransformer

    swin = SwinTransformer([4, 4], 8, [1, 1], [1, 1], [2, 2], num_classes=3).eval()
    with pytest.raises(HookScopeError, match="windowed attention") as err:
        explainers.explain(swin, x32, "rollout", target=0)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    with pytest.raises(HookScopeError, match="cannot read this model's attention"):
        explainers.explain(cnn, x32, "chefer", target=0)


def test_bad_options(tv_vit, x32):
    with pytest.raises(HookScopeError, match="fuses heads"):
        explainers.explain(tv_vit, x32, "rollout", fusion="median")
    with pytest.raises(HookScopeError, match="is not one"):
        explainers.explain(tv_vit, x32, "legrad", layers=["conv_proj"], target=0)


def test_registered_as_transformer_kind():
    assert explainers.names(explainers.TRANSFORMER) == ["rollout", "chefer", "legrad", "attnlrp"]


def test_cli_cam_takes_the_transformer_names(tmp_path, capsys):
    from hookscope.core.loading.images import load_image, to_tensor
    from hookscope.core.loading.models import load_model
    from hookscope.gui.command import main

    spec = "timm:vit_tiny_patch16_224?img_size=64&depth=3&num_classes=5"
    image = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "m.npz"
    args = ["cam", "--model", spec, "--image", str(image), "--target", "1", "--out", str(out)]
    assert main([*args, "--method", "legrad", "--layers", "blocks.1,blocks.2"]) == 0
    lm = load_model(spec)
    x = to_tensor(load_image(image), lm.input_spec)
    want = explainers.explain(lm.model, x, "legrad", target=1, layers=["blocks.1", "blocks.2"])
    got = np.load(out)
    assert np.abs(got["map"] - want.map).max() < 1e-6 and got["patch_map"].shape == (4, 4)
    assert want.map.std() > 0.05
    assert main([*args, "--method", "chefer", "--fusion", "max"]) == 2
    assert "--fusion applies to rollout" in capsys.readouterr().err


def test_scan_maps_with_a_transformer_method(timm_vit, x64):
    from hookscope.core.experiments.scan import scan_batch
    from hookscope.core.experiments.scan_settings import SCAN_METHODS

    assert {"rollout", "chefer", "legrad", "lrp"} <= set(SCAN_METHODS)
    xs = torch.cat([x64, x64.flip(-1)])
    masks = np.zeros((2, 64, 64), bool)
    masks[:, 16:48, 16:48] = True
    b = scan_batch(timm_vit, xs, "blocks.3", "chefer", target=2, masks=masks, map_size=32)
    for k in range(2):
        e = explainers.explain(timm_vit, xs[k : k + 1], "chefer", target=2)
        small = F.interpolate(torch.from_numpy(e.map)[None, None], size=(32, 32), mode="bilinear")
        assert np.abs(b.maps[k] - small[0, 0].clamp(0, 1).numpy()).max() < 1e-5
        want_bg = e.map[~masks[k]].sum() / e.map.sum()
        assert abs(b.bg_mass[k] - want_bg) < 1e-5
    assert list(b.target) == [2, 2]


def test_deit_distilled_two_prefix_tokens(x64):
    torch.manual_seed(6)
    deit = timm.create_model(
        "deit_tiny_distilled_patch16_224", img_size=64, depth=2, num_classes=4
    ).eval()
    assert deit.num_prefix_tokens == 2
    logits, attns = timm_manual(deit, x64.clone().requires_grad_(True))
    e = explainers.explain(deit, x64, "rollout", target=0)
    assert np.abs(e.raw - minmax(paper_rollout([a.detach() for a in attns], 2), 4)).max() < 1e-5
    want = minmax(paper_chefer(attns, logits[0, 3], 2), 4)
    assert np.abs(explainers.explain(deit, x64, "chefer", target=3).raw - want).max() < 1e-4


def hf_manual(model, x, scores=None):
    """Hugging Face ViT by hand: (logits, [A per block]); each block's class scores into
    ``scores``."""
    scores = [] if scores is None else scores
    t = model.vit.embeddings(x)
    attns = []
    for layer in model.vit.layers:
        att = layer.attention
        h = layer.layernorm_before(t)
        q, k, v = (
            _heads(p(h), model.config.num_attention_heads)
            for p in (att.q_proj, att.k_proj, att.v_proj)
        )
        a = torch.softmax(q @ k.transpose(-2, -1) * att.scaling, -1)
        attns.append(a)
        t = t + att.o_proj(_merge(a @ v))
        t = t + layer.mlp(layer.layernorm_after(t))
        scores.append(model.classifier(model.vit.layernorm(t)[:, 0]))  # LeGrad's s^l
    return model.classifier(model.vit.layernorm(t)[:, 0]), attns


def test_hugging_face_vit_eager_for_the_pass_only(x32):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=5,
    )
    torch.manual_seed(7)
    model = transformers.ViTForImageClassification(cfg).eval()
    bystander = transformers.ViTForImageClassification(cfg).eval()
    impl = model.config._attn_implementation, bystander.config._attn_implementation
    assert impl[0] != "eager"
    logits, attns = hf_manual(model, x32.clone().requires_grad_(True))
    torch.testing.assert_close(logits, model(x32).logits, atol=1e-5, rtol=1e-4)
    e = explainers.explain(model, x32, "rollout", target=0)
    assert np.abs(e.raw - minmax(paper_rollout([a.detach() for a in attns], 1), 4)).max() < 1e-5
    want = minmax(paper_chefer(attns, logits[0, 4], 1), 4)
    assert want.std() > 0.05
    assert np.abs(explainers.explain(model, x32, "chefer", target=4).raw - want).max() < 1e-4
    scores = []
    _, attns = hf_manual(model, x32.clone().requires_grad_(True), scores)
    per_block = [  # LeGrad: d s^l_c / d A^l, positive part, mean over heads and queries
        torch.autograd.grad(s[0, 4], a)[0].relu().mean(dim=(1, 2))[0, 1:]
        for s, a in zip(scores, attns)
    ]
    want = minmax(torch.stack(per_block).mean(0), 4)
    got = explainers.explain(model, x32, "legrad", target=4).raw  # 3 blocks: all of them
    assert want.std() > 0.05 and np.abs(got - want).max() < 1e-4
    assert (model.config._attn_implementation, bystander.config._attn_implementation) == impl
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
