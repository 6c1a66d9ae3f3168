"""Generic attention explainability (Chefer, Gur & Wolf, ICCV 2021).

One forward and one backward of the target score S. With ``R = I`` and, block by block,
``R += mean_heads(clamp(∂S/∂A ⊙ A, min=0)) · R``; the map is the class token's row of R over
the patch tokens (for a model without a class token: the mean of all rows).
"""

from __future__ import annotations

import torch

from hookscope.core.methods.transformers.attention import (
    AttentionTap,
    find_blocks,
    pick_blocks,
    token_grid,
)
from hookscope.core.methods.transformers.common import forward_with, patch_map, target_score


def chefer(model, x: torch.Tensor, target, *, blocks=None):
    """Chefer et al.'s relevance map of ``target`` for ``model`` on ``x`` (1, C, H, W).

    Returns:
        ((h, w) float32 map in [0, 1] over the patches, names of the blocks used).
    """
    chosen = pick_blocks(find_blocks(model, "chefer"), blocks, "chefer")
    prefix, grid = token_grid(model, x, chosen[-1], "chefer")
    tap = AttentionTap(chosen, grads=True)
    output = forward_with(model, x, tap, grad=True)
    probs = tap.probabilities()
    with torch.enable_grad():  # the caller may be inside no_grad
        grads = torch.autograd.grad(target_score(target, output), tap.sources())
    with torch.no_grad():
        t = probs[0].shape[-1]
        r = torch.eye(t, dtype=torch.float64, device=probs[0].device)
        for a, g in zip(probs, tap.gradients(list(grads))):
            cam = (g[0].double() * a[0].double()).clamp(min=0).mean(0)
            r = r + cam @ r
        row = r[0, prefix:] if prefix else r.mean(0)
    return patch_map(row, grid), [b.name for b in chosen]
