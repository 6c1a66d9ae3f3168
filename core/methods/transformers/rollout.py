"""Attention rollout (Abnar & Zuidema, ACL 2020, "Quantifying Attention Flow in Transformers").

Per block the heads are fused (mean, max or min), the identity is added for the residual
path and the rows are renormalised: ``Â = (fuse(A) + I) / rowsum``. The rollout is the
product over blocks, ``R = Â_L ⋯ Â_1``; the map is the class token's row over the patch tokens
(for a model without a class token: the mean of all rows).
"""

from __future__ import annotations

import torch

from hookscope.core.errors import HookScopeError
from hookscope.core.methods.transformers.attention import (
    AttentionTap,
    find_blocks,
    pick_blocks,
    token_grid,
)
from hookscope.core.methods.transformers.common import forward_with, patch_map

FUSIONS = ("mean", "max", "min")


def fuse_heads(a: torch.Tensor, fusion: str) -> torch.Tensor:
    """(heads, T, T) → (T, T) by ``fusion``."""
    if fusion == "mean":
        return a.mean(0)
    return a.amax(0) if fusion == "max" else a.amin(0)


def rollout(model, x: torch.Tensor, *, blocks=None, fusion: str = "mean"):
    """Attention rollout of ``model`` on ``x`` (1, C, H, W).

    Returns:
        ((h, w) float32 map in [0, 1] over the patches, names of the blocks used).
    """
    if fusion not in FUSIONS:
        raise HookScopeError(f"rollout fuses heads by {', '.join(FUSIONS)}, not '{fusion}'.")
    chosen = pick_blocks(find_blocks(model, "rollout"), blocks, "rollout")
    prefix, grid = token_grid(model, x, chosen[-1], "rollout")
    tap = AttentionTap(chosen)
    forward_with(model, x, tap, grad=False)
    with torch.no_grad():
        probs = tap.probabilities()
        t = probs[0].shape[-1]
        eye = torch.eye(t, dtype=torch.float64, device=probs[0].device)
        r = eye
        for a in probs:
            a_hat = fuse_heads(a[0].double(), fusion) + eye
            a_hat = a_hat / a_hat.sum(-1, keepdim=True)
            r = a_hat @ r
        row = r[0, prefix:] if prefix else r.mean(0)
    return patch_map(row, grid), [b.name for b in chosen]
