"""AttnLRP / CP-LRP for vision transformers (Achtibat et al., ICML 2024, "AttnLRP:
Attention-Aware Layer-Wise Relevance Propagation for Transformers"), as lxt 2.1 computes it.

One forward and one backward of the target score in lxt's gradient × input form: every layer's
rule is a backward replacing its gradient, and the input relevance is ``x ⊙ ∂S/∂x`` (C, H, W).
The rules are lxt's torchvision-ViT recipe (``cp_LRP`` with zennit's Gamma rule,
``examples/vit_torch.py``):

- LayerNorm: identity rule on the normalisation (the standard deviation is a constant);
- attention: CP-LRP, the attention probabilities are constants (no relevance through the
  softmax), so relevance flows through the values only;
- GELU (any element-wise activation): identity rule, ``∂ = f(x) / (x + 1e-10)``;
- timm's gated MLPs (``SwiGLU``, ``GluMlp``: EVA-02): lxt's ``gated_mlp_forward``, the uniform
  rule on the product (half the relevance to each factor);
- Linear and Conv2d outside the attention: zennit's generalised Gamma rule (``linear_gamma``,
  ``conv_gamma``), in lxt's form (output relevance ``g ⊙ y``, input gradient ``R / x``); the
  attention's own projections keep the plain gradient, as in torchvision's functional attention.

lxt patches torch classes for the whole process; here every rule is a hook on the one model's
own modules (fused attention off for timm's blocks), all removed and restored in ``finally``.

The map (:func:`relevance_map`) is lxt's heatmap, the relevance summed over channels, positive
part (the evidence for the target): by default summed over each patch, on the patch grid every
other transformer method and Grad-CAM on tokens use; ``pixels`` keeps lxt's pixel resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import target_scores
from hookscope.core.errors import HookScopeError
from hookscope.core.methods.transformers.attention import (
    HF,
    TIMM,
    TORCHVISION,
    Patches,
    find_blocks,
    token_grid,
)
from hookscope.core.methods.transformers.common import to_input

CONV_GAMMA, LINEAR_GAMMA = 100.0, 0.01
"""Defaults from lxt's own gamma grid (conv 0.1/0.25/100, linear 0/0.01/0.05/0.1/1), chosen by
RISE insertion − deletion of the patch map on 96 demo:vit airplanes kept apart from the
benchmark's (``bench_demo_vit.py --tune``, seed 1234): linear 0 / 0.01 / 0.05 / 1 score 0.3644 /
0.3639 / 0.3629 / 0.3377 and the conv gamma moves the fourth decimal only (it shapes the pixels
inside a patch: conv 100 is the best per-pixel map, 0.252 against 0.206). Linear 0.01 rather
than 0: its stabiliser keeps a 12-block vit_b_16 within 1e-4 of lxt (0 drifts to 1.05e-4 of the
peak on one thread)."""

RESOLUTIONS = ("patches", "pixels")
"""Resolutions of the map: the patch grid (default) or the input's pixels."""


class _GammaRule(torch.autograd.Function):
    """Passes ``y`` forward; backward is zennit's ``Gamma(gamma)`` under lxt's gradient × input.

    zennit's rule, with ``W⁺ = W + γ·max(W, 0)``, ``W⁻ = W + γ·min(W, 0)`` (biases likewise,
    ``b⁺``, ``b⁻``) and lxt's output relevance ``r = g ⊙ y``:
    ``c⁺ = [y > 0] r / (W⁺x⁺ + W⁻x⁻ + b⁺)``, ``c⁻ = [y < 0] r / (W⁻x⁺ + W⁺x⁻ + b⁻)``,
    ``R = x⁺ ⊙ (W⁺ᵀc⁺ + W⁻ᵀc⁻) + x⁻ ⊙ (W⁻ᵀc⁺ + W⁺ᵀc⁻)``; the gradient is ``R / x``.
    Since ``max(W,0)x⁺ + min(W,0)x⁻ = (Wx + |W||x|) / 2``, both denominators are one
    ``(1 + γ/2)·y + sign(y)·γ/2·(|W||x| + |b|)`` (only the one of ``y``'s sign is used), and
    ``R = x ⊙ Wᵀs + γ/2·|x| ⊙ |W|ᵀ(sign(y)·s)`` with ``s = (1 + γ/2)·r / den``: one
    ``|W||x|`` forward and two transposed products, not zennit's eight. The factors of ``g``
    (``s / g``, the sign) are made in the forward, so the backward is two products.
    """

    @staticmethod
    def forward(ctx, x, y, layer, gamma):
        scale = 1 + gamma / 2
        sign = torch.ones((), dtype=y.dtype, device=y.device).copysign(y)
        num = y * scale
        if gamma:
            x_abs = x.abs()
            spread = layer.spread(x_abs)  # |W||x| + |b| + 2e-6/γ (the stabiliser)
            ratio = num.div_(torch.addcmul(num, sign, spread, value=gamma / 2))
            ctx.save_for_backward(x, ratio, x_abs)
            ctx.sign = sign
        else:  # den = y + sign(y)·1e-6
            ctx.save_for_backward(x, num.div_(torch.add(y, sign, alpha=1e-6)), x)
        ctx.layer, ctx.kappa = layer, gamma / 2 / scale
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        x, ratio, x_abs = ctx.saved_tensors
        s = g * ratio
        relevance = x * ctx.layer.transposed(s, x)
        if ctx.kappa:
            s.mul_(ctx.sign)
            spread = ctx.layer.transposed(s, x, absolute=True)
            relevance.addcmul_(x_abs, spread, value=ctx.kappa)
        stable = x + torch.full((), 1e-10, dtype=x.dtype, device=x.device).copysign(x)
        return relevance.div_(stable), None, None, None


class _Scratch:
    """One buffer per call for every layer's ``|W|``, refilled at each use: a fresh weight-sized
    tensor per layer costs several times the ``abs`` itself (new pages), and this holds no copy
    of the weights beyond the call."""

    def __init__(self):
        self._bufs: dict = {}

    def absolute(self, w: torch.Tensor) -> torch.Tensor:
        key = (w.dtype, w.device)
        buf = self._bufs.get(key)
        if buf is None or buf.numel() < w.numel():
            buf = self._bufs[key] = torch.empty(w.numel(), dtype=w.dtype, device=w.device)
        return torch.abs(w, out=buf[: w.numel()].view(w.shape))


class _GammaLayer:
    """One Linear or Conv2d's products for the Gamma rule."""

    def __init__(self, layer: nn.Module, gamma: float, scratch: _Scratch):
        self.layer, self.gamma, self.scratch = layer, gamma, scratch
        self.conv = isinstance(layer, nn.Conv2d)
        self._bias: torch.Tensor | None = None

    def spread(self, x_abs: torch.Tensor) -> torch.Tensor:
        """``|W||x| + |b| + 2e-6/γ`` (the stabiliser ``1e-6`` before the ``γ/2`` scale)."""
        w, b = self.layer.weight.detach(), self.layer.bias
        if self._bias is None:
            b = w.new_zeros(w.shape[0]) if b is None else b.detach().abs()
            self._bias = b + 2e-6 / self.gamma
        w_abs = self.scratch.absolute(w)
        if self.conv:
            return self.layer._conv_forward(x_abs, w_abs, self._bias)
        return F.linear(x_abs, w_abs, self._bias)

    def transposed(self, c: torch.Tensor, x: torch.Tensor, absolute=False) -> torch.Tensor:
        """``Wᵀc`` (``|W|ᵀc``): the input gradient of the layer for output gradient ``c``."""
        w = self.layer.weight.detach()
        w = self.scratch.absolute(w) if absolute else w
        if not self.conv:
            return c @ w
        if _patchify(self.layer):
            return _patch_transposed(c, w, x.shape)
        with torch.enable_grad():
            leaf = torch.zeros_like(x).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.layer._conv_forward(leaf, w, None), leaf, c)
        return grad


def _patchify(conv: nn.Conv2d) -> bool:
    """A ViT's patch embedding (stride = kernel, no padding): its transpose is one matmul."""
    return (
        tuple(conv.stride) == tuple(conv.kernel_size)
        and tuple(conv.padding) == (0, 0)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
    )


def _patch_transposed(c: torch.Tensor, w: torch.Tensor, shape) -> torch.Tensor:
    """``Wᵀc`` of a patch embedding as one matmul (torch's convolution backward is ~8× slower)."""
    n, out, h, wd = c.shape
    cin, kh, kw = w.shape[1:]
    patches = c.flatten(2).transpose(1, 2) @ w.reshape(out, -1)  # (n, h·w, cin·kh·kw)
    grid = patches.reshape(n, h, wd, cin, kh, kw).permute(0, 3, 1, 4, 2, 5)
    grid = grid.reshape(n, cin, h * kh, wd * kw)  # pixels past the last patch get no gradient
    return F.pad(grid, (0, shape[3] - wd * kw, 0, shape[2] - h * kh))


class _UniformRule(torch.autograd.Function):
    """lxt's ``divide_gradient``: the uniform rule after a product of two factors (½ each)."""

    @staticmethod
    def forward(ctx, z):
        return z.clone()

    @staticmethod
    def backward(ctx, g):
        return g / 2


class _IdentityRule(torch.autograd.Function):
    """lxt's ``identity_rule_implicit``: forward ``y = f(x)``, backward ``g ⊙ y / (x + 1e-10)``."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(y / (x + 1e-10))
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        (ratio,) = ctx.saved_tensors
        return ratio * g, None


class _LayerNormRule(torch.autograd.Function):
    """lxt's ``layer_norm_forward``: ``y = (x − mean) / std · w + b`` with the std a constant,
    so the input gradient is ``(w g − mean(w g)) / std``."""

    @staticmethod
    def forward(ctx, x, y, weight, rstd):
        ctx.save_for_backward(weight, rstd)
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        weight, rstd = ctx.saved_tensors
        c = g * weight
        return (c - c.mean(dim=-1, keepdim=True)).mul_(rstd), None, None, None


def _layer_norm_rule(name: str):
    """The LayerNorm rule on the module's own output, checked to normalise the last dimension."""

    def hook(module, args, output):
        x = args[0].detach()
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        rstd = (var + module.eps).rsqrt()
        one = torch.ones((), dtype=x.dtype, device=x.device)
        weight = one if module.weight is None else module.weight.detach()
        bias = 0 * one if module.bias is None else module.bias.detach()
        rows = slice(0, 64)  # a sample of rows tells which dimension it normalises
        check = (_rows(x, rows) - _rows(mean, rows)) * _rows(rstd, rows) * weight + bias
        if x.shape != output.shape or not torch.allclose(
            check, _rows(output.detach(), rows), atol=1e-4, rtol=1e-3
        ):
            raise HookScopeError(
                f"attnlrp's LayerNorm rule normalises the last dimension, but '{name}' "
                "normalises another; this model cannot be explained with attnlrp."
            )
        return _LayerNormRule.apply(args[0], output.detach(), weight, rstd)

    return hook


def _rows(t: torch.Tensor, rows: slice) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])[rows]


def _identity_hook(module, args, output):
    # y detached: its own graph (e.g. GELU's backward) is never walked
    return _IdentityRule.apply(args[0], output.detach())


def _gamma_hook(layer: nn.Module, gamma: float, scratch: _Scratch):
    rule = _GammaLayer(layer, gamma, scratch)

    def hook(module, args, output):
        return _GammaRule.apply(args[0], output.detach(), rule, gamma)

    return hook


def _uniform_hook(module, args, output):
    return _UniformRule.apply(output)


def _timm_glu(m: nn.Module) -> bool:
    """timm's ``SwiGLU`` / ``GluMlp``: ``drop1`` follows the product ``act(gate) · value``."""
    return (
        type(m).__name__ in ("SwiGLU", "GluMlp")
        and isinstance(getattr(m, "drop1", None), nn.Module)
        and _is_activation(getattr(m, "act", nn.Identity()))
    )


def _detach_query_key(module, args, kwargs):
    """CP-LRP on ``nn.MultiheadAttention``: lxt's ``cp_multi_head_attention_forward``."""
    args, kwargs = list(args), dict(kwargs)
    for i, key in enumerate(("query", "key")):
        if len(args) > i:
            args[i] = args[i].detach()
        elif key in kwargs:
            kwargs[key] = kwargs[key].detach()
    return tuple(args), kwargs


def _detach_output(module, args, output):
    return output.detach()


_ACTIVATIONS = (nn.GELU, nn.SiLU, nn.Mish, nn.ReLU, nn.Tanh, nn.Sigmoid)
_ACTIVATION_HOMES = ("transformers.activations", "timm.layers.activations")


def _is_activation(m: nn.Module) -> bool:
    """An element-wise activation module (torch's, Hugging Face's ``ACT2FN``, timm's)."""
    if isinstance(m, _ACTIVATIONS):
        return True
    home = type(m).__module__
    leaf = not list(m.children()) and not list(m.parameters(recurse=False))
    return leaf and any(home.startswith(h) for h in _ACTIVATION_HOMES)


def _attention_modules(blocks) -> set[int]:
    """ids of every module inside an attention (its projections keep the plain gradient)."""
    inside: set[int] = set()
    for b in blocks:
        roots = [b.attention]
        if b.style == HF and type(b.module).__name__.endswith("Attention"):
            roots.append(b.module)  # HF ViT-style wrapper: self-attention + output projection
        inside.update(id(m) for r in roots for m in r.modules())
    return inside


def _refuse_gated(model: nn.Module) -> None:
    gated = [
        n
        for n, m in model.named_modules()
        if "glu" in type(m).__name__.lower() and not _timm_glu(m)
    ]
    if gated:
        raise HookScopeError(
            f"attnlrp has rules for GELU-style MLPs and timm's SwiGLU, and '{gated[0]}' is "
            "another gated (GLU) MLP with no rule here; use chefer or legrad on this model."
        )


class _Rules(Patches):
    """The AttnLRP rules as hooks on one model's modules; everything restored on exit."""

    def __init__(self, model: nn.Module, conv_gamma: float, linear_gamma: float):
        super().__init__()
        self.model, self.conv_gamma, self.linear_gamma = model, conv_gamma, linear_gamma
        self.blocks = find_blocks(model, "attnlrp")

    def __enter__(self) -> _Rules:
        try:
            self._attention()
            inside = _attention_modules(self.blocks)
            scratch = _Scratch()  # |W| of every Gamma layer, one at a time
            for name, m in self.model.named_modules():
                if _timm_glu(m):  # lxt's gated MLP: identity on act, uniform on the product
                    self._handles.append(m.drop1.register_forward_hook(_uniform_hook))
                if isinstance(m, nn.LayerNorm):
                    self._handles.append(m.register_forward_hook(_layer_norm_rule(name)))
                elif _is_activation(m):
                    self._handles.append(m.register_forward_hook(_identity_hook))
                elif isinstance(m, nn.Conv2d):
                    hook = _gamma_hook(m, self.conv_gamma, scratch)
                    self._handles.append(m.register_forward_hook(hook))
                elif isinstance(m, nn.Linear) and id(m) not in inside:
                    hook = _gamma_hook(m, self.linear_gamma, scratch)
                    self._handles.append(m.register_forward_hook(hook))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _attention(self) -> None:
        """CP-LRP: the attention probabilities become constants of the pass."""
        for b in self.blocks:
            att = b.attention
            if b.style == TORCHVISION:
                hook = att.register_forward_pre_hook(_detach_query_key, with_kwargs=True)
                self._handles.append(hook)
            elif b.style == TIMM:  # the unfused path multiplies attn_drop's output into v
                self._flags.append((att, "fused_attn", att.fused_attn))
                att.fused_attn = False
                self._handles.append(att.attn_drop.register_forward_hook(_detach_output))
            else:  # q and k constant: so is softmax(q kᵀ), in every attention implementation
                for proj in (att.q_proj, att.k_proj):
                    self._handles.append(proj.register_forward_hook(_detach_output))


def attnlrp(
    model: nn.Module,
    x: torch.Tensor,
    target,
    *,
    conv_gamma: float = CONV_GAMMA,
    linear_gamma: float = LINEAR_GAMMA,
) -> np.ndarray:
    """AttnLRP input relevance (C, H, W) of ``target`` for ``model`` on ``x`` (1, C, H, W).

    Raises:
        HookScopeError: Attention that cannot be read (Swin-like, custom), a gated MLP, a
            LayerNorm over another dimension, or a failing forward.
    """
    _refuse_gated(model)
    rules = _Rules(model, float(conv_gamma), float(linear_gamma))
    x = x.detach().to(model_device(model)).requires_grad_(True)
    with torch.enable_grad(), eval_mode(model), rules:
        output = forward_model(model, x)
        (grad,) = torch.autograd.grad(target_scores(target, output).sum(), x)
    return (x.detach() * grad)[0].float().cpu().numpy()


def relevance_map(model: nn.Module, x: torch.Tensor, relevance, resolution: str = "patches"):
    """AttnLRP's (H, W) map in [0, 1]: the positive part of ``relevance`` summed over channels.

    Args:
        relevance: :func:`attnlrp`'s input relevance (C, H, W) of ``x`` (1, C, H, W).
        resolution: ``patches``: summed over each patch of the model's patch grid, then the
            registry's map rule (:func:`~.common.to_input`), as the other transformer methods;
            ``pixels``: per pixel, min-max scaled.

    Raises:
        HookScopeError: An unknown resolution, or a patch grid that cannot be read.
    """
    if resolution not in RESOLUTIONS:
        raise HookScopeError(
            f"attnlrp's resolution is one of {', '.join(RESOLUTIONS)}, not '{resolution}'."
        )
    r = torch.as_tensor(np.asarray(relevance, np.float32)).sum(0)
    if resolution == "patches":
        _, grid = token_grid(model, x, find_blocks(model, "attnlrp")[0], "attnlrp")
        r = F.adaptive_avg_pool2d(r[None, None], grid)[0, 0]
        return to_input(r.clamp(min=0).numpy(), tuple(x.shape[-2:]))
    r = r.clamp(min=0)
    peak = r.max()
    return (r / peak if peak > 0 else r).numpy().astype(np.float32)
