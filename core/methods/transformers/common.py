"""What the transformer methods share: one explained forward and the patch map at input size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import target_scores
from hookscope.core.methods.transformers.attention import AttentionTap


def forward_with(model, x: torch.Tensor, tap: AttentionTap, grad: bool):
    """One forward in eval mode (each submodule's mode restored) with ``tap`` reading attention.

    With ``grad`` the input requires grad, so the attention has a graph even when every
    parameter is frozen.
    """
    x = x.detach().to(model_device(model))
    if grad:
        x.requires_grad_(True)
    with eval_mode(model), tap, torch.set_grad_enabled(grad):
        return forward_model(model, x)


def target_score(target, output) -> torch.Tensor:
    """The scalar score of the resolved target."""
    return target_scores(target, output).sum()


def patch_map(row: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """A per-patch score vector as an (h, w) float32 map, min-max scaled (eps 1e-8, as torchcam)."""
    m = row.detach().float().reshape(grid)
    m = m - m.min()
    m = m / (m.max() + 1e-8)
    return m.cpu().numpy().astype(np.float32)


def to_input(grid_map: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The registry's map rule: bilinear upsampling (align_corners=False) to the input, min-max."""
    t = torch.from_numpy(np.ascontiguousarray(grid_map, dtype=np.float32))[None, None]
    up = F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False)[0, 0]
    up = up - up.min()
    peak = up.max()
    up = up / peak if peak > 0 else up
    return up.numpy().astype(np.float32)
