"""Restricted (concept-conditional) CAM maps: the map of one channel or one concept.

CRP (Achtibat et al. 2023) conditions a heatmap on a concept by letting the backward pass
through that concept's direction only. For the linear CAM family this is exact and cheap. A
method whose map is a weighted sum of the layer's channels,

    cam(p) = Σ_c α_c(p) · A_c(p)

(α: :meth:`~core.methods.cam.CamMethod.field`; the same at every position for Grad-CAM,
Grad-CAM++, XGrad-CAM, Score-CAM and Ablation-CAM, the gradient for HiResCAM, its positive
part for LayerCAM), restricted to a direction keeps only the activation's part along it:

- channel c: ``m_c(p) = α_c(p) · A_c(p)``;
- concept k, with NMF coefficient map ``U_k`` and direction ``w_k`` (C,):
  ``m_k(p) = U_k(p) · (w_k · α(p))``.

Identities (before the ReLU; tested):

- over all channels, ``Σ_c m_c(p) = cam(p)`` exactly;
- over all concepts, with the NMF residual ``R = A + s − U·W`` (s: the shift to ≥ 0),
  ``Σ_k m_k(p) + α(p) · (R(p) − s) = cam(p)``;
- for HiResCAM, ``Σ_p m_k(p)`` is concept k's importance of :mod:`core.experiments.concepts`
  (gradient × activation), and ``Σ_p m_c(p)`` channel c's gradient × activation.

EigenCAM (a principal component, not a weighted sum) has no restricted map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.display.render import normalize
from hookscope.core.engine.context import eval_mode, model_device
from hookscope.core.engine.hooks import resolve_modules
from hookscope.core.engine.targets import resolve_target, target_scores
from hookscope.core.errors import HookScopeError
from hookscope.core.methods.cam import (
    CAM_METHODS,
    Run,
    _backward,
    _forward,
    _layer,
    _needs_layouts,
)
from hookscope.core.reporting import Reporter, quiet


@dataclass(frozen=True)
class LayerPass:
    """One layer's activations and the CAM method's weights for one image and target.

    Attributes:
        layer, method: What was computed.
        target: The resolved target (class index, or the target object).
        score: The target score.
        acts: Activations (C, h, w) float32, as a grid.
        grads: ∂score/∂acts (C, h, w) float32, or None for a method without gradients.
        field: The method's weights α (C, h, w) float32 (:meth:`CamMethod.field`).
        cam: The method's map (h, w) before the ReLU, as :func:`compute_cam` computes it.
        input_size: (H, W) of the input.
    """

    layer: str
    method: str
    target: Any
    score: float
    acts: np.ndarray
    grads: np.ndarray | None
    field: np.ndarray
    cam: np.ndarray
    input_size: tuple[int, int]


def layer_pass(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    target=None,
    *,
    class_names=None,
    reshape=None,
    input_spec=None,
    reporter: Reporter | None = None,
) -> LayerPass:
    """One forward and backward of one image; the layer's activations, gradients, α and map.

    Arguments as for :func:`~core.methods.cam.compute_cam` (one layer).

    Raises:
        HookScopeError: Unknown method or layer, a method that is not a weighted sum, bad input.
    """
    if method not in CAM_METHODS:
        raise HookScopeError(f"Unknown CAM method '{method}': use one of {', '.join(CAM_METHODS)}.")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        raise HookScopeError("A restricted map takes one image of shape (1, C, H, W).")
    impl = CAM_METHODS[method]()
    modules = resolve_modules(model, [layer])
    x = x.detach().to(model_device(model))
    record = _needs_layouts(model, x, [layer], reshape)
    with eval_mode(model):
        output, captured = _forward(model, x, modules, impl.uses_gradients, record)
        resolved = resolve_target(target, output, class_names, model=model, spec=input_spec)
        score = target_scores(resolved, output).sum()
        grads = _backward(score, captured, [layer]) if impl.uses_gradients else {}
        cap, grad = captured[layer], grads.get(layer)
        data = _layer(model, layer, modules[layer], cap, grad, reshape, x.shape)
        run = Run(model, x, resolved, float(score.detach()), 32, reporter or quiet())
        field = impl.field(run, data).detach().float().cpu().numpy()
        cam = impl.cam(run, data).detach().float().cpu().numpy()
    g = data.grads[0].detach().cpu().numpy() if data.grads is not None else None
    return LayerPass(
        layer,
        method,
        resolved,
        float(score.detach()),
        data.acts[0].detach().cpu().numpy(),
        g,
        np.ascontiguousarray(field),
        cam,
        (int(x.shape[-2]), int(x.shape[-1])),
    )


def channel_maps(p: LayerPass, channels=None) -> np.ndarray:
    """Restricted maps ``m_c = α_c · A_c`` (K, h, w) float64 of ``channels`` (default: all)."""
    idx = np.arange(p.acts.shape[0]) if channels is None else np.asarray(channels, np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= p.acts.shape[0]):
        raise HookScopeError(
            f"Layer {p.layer} has channels 0 to {p.acts.shape[0] - 1}, not {idx.tolist()}."
        )
    return p.field[idx].astype(np.float64) * p.acts[idx].astype(np.float64)


def concept_maps(p: LayerPass, coefficients: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Restricted maps ``m_k = U_k · (w_k · α)`` (K, h, w) float64.

    Args:
        p: The layer pass.
        coefficients: U (K, h, w), each concept's amount at each position (NMF transform).
        directions: W (K, C), the concepts' directions in channel space.
    """
    w = np.asarray(directions, np.float64)
    u = np.asarray(coefficients, np.float64)
    if w.shape[1] != p.acts.shape[0] or u.shape[1:] != p.acts.shape[1:]:
        raise HookScopeError(
            f"The concepts were found for {w.shape[1]} channels on a {u.shape[1:]} grid, but "
            f"layer {p.layer} has {p.acts.shape[0]} on {p.acts.shape[1:]}; find them again."
        )
    return u * np.einsum("kc,chw->khw", w, p.field.astype(np.float64))


def to_input(m: np.ndarray, size: tuple[int, int], vmax: float | None = None) -> np.ndarray:
    """A restricted map (h, w) as the CAM dock shows maps: ReLU, bilinear upsample to
    ``size``, scaled to [0, 1] (min-max, or 0..``vmax`` to compare several maps)."""
    t = torch.from_numpy(np.maximum(np.asarray(m, np.float32), 0))[None, None]
    up = F.interpolate(t, size=size, mode="bilinear")[0, 0].numpy()
    if vmax is None:
        return normalize(up)
    return np.clip(up / vmax, 0, 1).astype(np.float32) if vmax > 0 else np.zeros_like(up)
