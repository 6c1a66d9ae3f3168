"""Reading a vision transformer's attention probabilities, for one explained pass only.

Fused attention kernels (``scaled_dot_product_attention``) never build the probability matrix,
so the pass that is explained switches them off and everything is put back in ``finally``:

- torchvision ``EncoderBlock.self_attention`` (``nn.MultiheadAttention``): a pre-hook asks for
  ``need_weights=True, average_attn_weights=False``; the caller still gets what it asked for.
  The probabilities it returns are a view the output does not depend on, so their gradient is
  read from the gradient at the attention's output: ``dS/dA_h = (g W_out)_h v_h^T``.
- timm ``Attention`` (ViT, DeiT, ...): ``fused_attn`` is set to False and the probabilities are
  the output of ``attn_drop``, the very tensor multiplied into the values.
- Hugging Face ViT-style attention (``q_proj``/``k_proj``/``v_proj`` and a config): the
  config's ``_attn_implementation`` is set to ``"eager"``, whose returned weights are the
  tensor multiplied into the values.

Swin-like windowed attention has no token-to-token matrix over the image and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.engine.layouts import TOKENS, analyse
from hookscope.core.errors import HookScopeError

TORCHVISION, TIMM, HF = "torchvision", "timm", "hf"


@dataclass(frozen=True)
class Block:
    """One transformer block whose attention can be read.

    Attributes:
        name: The block's module name (what ``layers=[...]`` takes).
        module: The block.
        attention: Its attention module.
        style: :data:`TORCHVISION`, :data:`TIMM` or :data:`HF`.
    """

    name: str
    module: nn.Module
    attention: nn.Module
    style: str


def _is_timm_attention(m: nn.Module) -> bool:
    return (
        hasattr(m, "fused_attn")
        and isinstance(getattr(m, "attn_drop", None), nn.Module)
        and hasattr(m, "qkv")
    )


def _is_hf_attention(m: nn.Module) -> bool:
    return all(hasattr(m, k) for k in ("q_proj", "k_proj", "v_proj")) and hasattr(
        getattr(m, "config", None), "_attn_implementation"
    )


def _windowed(model: nn.Module) -> bool:
    # Swin's blocks (timm, torchvision, Hugging Face) shift their windows; BEiT also has a
    # relative position bias table and a "window_size", but its window is the whole patch grid.
    return any(hasattr(m, "shift_size") for m in model.modules())


def find_blocks(model: nn.Module, method: str) -> list[Block]:
    """The blocks of ``model`` whose attention probabilities can be read, in model order.

    Raises:
        HookScopeError: Windowed (Swin-like) attention, or no readable attention at all.
    """
    if _windowed(model):
        raise HookScopeError(
            f"{method} needs attention between all tokens, but this model uses Swin-like "
            "windowed attention; use a CAM method such as gradcam on one of its stages instead."
        )
    blocks = []
    for name, m in model.named_modules():
        for child_name, child in m.named_children():
            if isinstance(child, nn.MultiheadAttention) and child_name == "self_attention":
                blocks.append(Block(name, m, child, TORCHVISION))
            elif _is_timm_attention(child) and child_name == "attn":
                blocks.append(Block(name, m, child, TIMM))
            elif _is_hf_attention(child) and child_name in ("attention", "self_attn"):
                blocks.append(Block(name, m, child, HF))
    if not blocks:
        raise HookScopeError(
            f"{method} cannot read this model's attention probabilities: its blocks are not "
            "torchvision, timm or Hugging Face ViT attention; use a CAM method instead."
        )
    return blocks


def readable_blocks(model: nn.Module) -> list[Block]:
    """:func:`find_blocks`, or none where the attention cannot be read (windowed, custom)."""
    try:
        return find_blocks(model, "transformer")
    except HookScopeError:
        return []


def pick_blocks(blocks: list[Block], names, method: str) -> list[Block]:
    """The blocks named in ``names`` (None: all), in model order.

    Raises:
        HookScopeError: A name that is not a readable attention block.
    """
    if not names:
        return blocks
    by_name = {b.name: b for b in blocks}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        shown = ", ".join(b.name for b in blocks[:3])
        raise HookScopeError(
            f"{method} takes transformer blocks as layers, and '{unknown[0]}' is not one; "
            f"use block names such as {shown}."
        )
    wanted = set(names)
    return [b for b in blocks if b.name in wanted]


def token_grid(model: nn.Module, x: torch.Tensor, block: Block, method: str):
    """(prefix tokens, (h, w) patch grid) of ``block``'s output, from the layout engine."""
    layout = analyse(model, x).layouts.get(block.name)
    if layout is None or layout.kind != TOKENS or layout.grid is None:
        raise HookScopeError(
            f"{method} could not tell the patch grid of block '{block.name}' "
            f"({'no layout' if layout is None else layout.evidence or layout.kind})."
        )
    return layout.prefix, layout.grid


class Patches:
    """Hooks and attribute flags set on a model for one pass; ``__exit__`` puts all back."""

    def __init__(self):
        self._handles: list = []
        self._flags: list[tuple[object, str, object]] = []

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for owner, attr, value in reversed(self._flags):
            setattr(owner, attr, value)
        self._flags.clear()


class AttentionTap(Patches):
    """Captures the attention probabilities of ``blocks`` during one forward pass.

    Use as a context manager around the forward; fused paths are off inside and every flag and
    hook is restored on exit. After a backward (``torch.autograd.grad`` over :meth:`sources`),
    :meth:`gradients` gives ``dS/dA`` per block.

    Args:
        blocks: The blocks to read.
        grads: Keep what the gradient needs.
        cut: Detach each block's input (LeGrad: a block's score reaches only its own attention)
            and record a graph from the first such block on (the blocks before need none).
    """

    def __init__(self, blocks: list[Block], grads: bool = False, cut: bool = False):
        self.blocks = blocks
        self.grads = grads
        self.cut = cut
        self.attn: list[torch.Tensor | None] = [None] * len(blocks)
        self.outputs: list[torch.Tensor | None] = [None] * len(blocks)
        self.inputs: list[torch.Tensor | None] = [None] * len(blocks)
        super().__init__()
        self._asked: dict[int, tuple[bool, bool]] = {}

    def __enter__(self) -> AttentionTap:
        try:
            for i, b in enumerate(self.blocks):
                if self.cut:
                    self._handles.append(b.module.register_forward_pre_hook(_detach_input))
                if b.style == TIMM:
                    self._flags.append((b.attention, "fused_attn", b.attention.fused_attn))
                    b.attention.fused_attn = False
                    hook = b.attention.attn_drop.register_forward_hook(self._timm_hook(i))
                    self._handles.append(hook)
                elif b.style == HF:  # the config is shared: switch it once, restore once
                    cfg = b.attention.config
                    if all(c is not cfg for c, _, _ in self._flags):
                        self._flags.append((cfg, "_attn_implementation", cfg._attn_implementation))
                        cfg._attn_implementation = "eager"
                    hook = b.attention.register_forward_hook(self._hf_hook(i))
                    self._handles.append(hook)
                else:
                    att = b.attention
                    self._handles.append(
                        att.register_forward_pre_hook(self._ask_weights, with_kwargs=True)
                    )
                    self._handles.append(
                        att.register_forward_hook(self._mha_hook(i), with_kwargs=True)
                    )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _ask_weights(self, module, args, kwargs):
        """Pre-hook: per-head probabilities for this call; remember what the caller asked."""
        args, kwargs = list(args), dict(kwargs)
        asked = args[4] if len(args) > 4 else kwargs.get("need_weights", True)
        averaged = args[6] if len(args) > 6 else kwargs.get("average_attn_weights", True)
        self._asked[id(module)] = (bool(asked), bool(averaged))  # what the caller wants back
        if len(args) > 4:
            args[4] = True
        else:
            kwargs["need_weights"] = True
        if len(args) > 6:
            args[6] = False
        else:
            kwargs["average_attn_weights"] = False
        return tuple(args), kwargs

    def _timm_hook(self, i: int):
        def hook(module, args, output):
            self.attn[i] = output

        return hook

    def _hf_hook(self, i: int):
        def hook(module, args, output):
            self.attn[i] = output[1]  # eager: the very tensor multiplied into the values

        return hook

    def _mha_hook(self, i: int):
        def hook(module, args, kwargs, output):
            out, weights = output
            self.attn[i] = weights
            if self.grads:
                self.outputs[i] = out
                self.inputs[i] = args[2] if len(args) > 2 else kwargs.get("value")
            asked, averaged = self._asked.pop(id(module), (False, True))
            if not asked:
                return out, None
            return out, weights.mean(1) if averaged else weights

        return hook

    def probabilities(self) -> list[torch.Tensor]:
        """Per block (B, heads, T, T) attention probabilities, detached.

        Raises:
            HookScopeError: A block that did not run.
        """
        missing = [b.name for b, a in zip(self.blocks, self.attn) if a is None]
        if missing:
            raise HookScopeError(f"Block '{missing[0]}' did not run in the forward pass.")
        return [a.detach() for a in self.attn]

    def sources(self) -> list[torch.Tensor]:
        """The tensors to differentiate: the attention output (torchvision), else A itself."""
        pairs = zip(self.blocks, self.attn, self.outputs)
        return [o if b.style == TORCHVISION else a for b, a, o in pairs]

    def gradients(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """``dS/dA`` per block, (B, heads, T, T), from the gradients of :meth:`sources`."""
        out = []
        for b, g, x in zip(self.blocks, grads, self.inputs):
            out.append(_mha_attn_grad(b.attention, g, x.detach()) if b.style == TORCHVISION else g)
        return out


def _detach_input(module, args):
    # The pass may start without a graph: only the cut blocks and what follows need one.
    torch.set_grad_enabled(True)  # forward_with's context restores the caller's mode
    if args and isinstance(args[0], torch.Tensor):
        return (args[0].detach().requires_grad_(True), *args[1:])
    return None


@torch.no_grad()
def _mha_attn_grad(att: nn.MultiheadAttention, g_out: torch.Tensor, value: torch.Tensor):
    """``dS/dA`` of an ``nn.MultiheadAttention`` from the gradient at its output.

    out = concat_h(A_h v_h) W_out^T + b, so dS/dA_h = (g W_out)_h v_h^T.
    """
    e, h = att.embed_dim, att.num_heads
    bsz, t, _ = g_out.shape
    g_heads = (g_out @ att.out_proj.weight).reshape(bsz, t, h, e // h).transpose(1, 2)
    bias = None if att.in_proj_bias is None else att.in_proj_bias[2 * e :]
    v = F.linear(value, att.in_proj_weight[2 * e :], bias)
    v = v.reshape(bsz, value.shape[1], h, e // h).transpose(1, 2)
    return g_heads @ v.transpose(-2, -1)
