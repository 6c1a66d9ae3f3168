"""Concepts (CRAFT-style): NMF of a layer's patch activations, concept maps and importances.

Fel et al. (CVPR 2023, CRAFT) factorise the activations of many image patches as
``A ≈ U · W`` with non-negative ``U`` (how much of each concept a patch holds) and ``W``
(K concept directions in channel space). Here every position of the layer's grid is a patch:
``A`` is (positions, C), shifted to ≥ 0 when the layer has negative values.

Importance (a gradient × activation decomposition, not CRAFT's Sobol indices): with
``g(p) = ∂y/∂A(p)`` the gradient of the target score y at position p,

    importance_k = Σ_p U_k(p) · (W_k · g(p))

and the parts add up exactly: ``Σ_k importance_k + Σ_p R(p) · g(p) = Σ_p A(p) · g(p)`` with
the residual ``R = A − U · W`` (and a shift s: ``A = A⁺ − s``, its term ``−Σ_p s · g(p)`` joins
the residual). The target score of class t is its *centred* logit ``y = z_t − mean_j z_j``: the
softmax ignores what raises every logit alike, and on the clean demo twin that common part is
most of each raw logit (every concept lowers all four by about the same amount), so raw-logit
importances ranked a car concept first for airplane. For a head that is linear in A (global
average pool + linear layer, as in the demo and ResNets), ``Σ_p A(p) · g(p) = y − b_c`` with
``b_c = b_t − mean_j b_j``: concept importances plus the residual's share are the centred score
minus the head's centred bias.

Top patches (:func:`patch_scores`): a position ranks by ``U_k(p) · s_k(p)``, the concept's
amount times its share of the position's reconstruction, ``s_k = c_k / Σ_j c_j`` with
``c_j = U_j(p) · ‖W_j‖``; a position where the concept is strong *and* not mixed with others
(an object's edge also holds the background's concepts). Its box is the cell's footprint on the
input (one stride, centred on the cell's receptive field), where the concept map puts it: the
layer's whole receptive field (54 px of the demo's 96) is mostly the surroundings.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model
from hookscope.core.engine.layouts import Layout
from hookscope.core.engine.targets import logits_of
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.atlas import find_layer

MAX_AUTO = 10
"""Most concepts ``auto`` tries."""


def activations_and_grads(
    model: nn.Module, layer: str, x: torch.Tensor, targets, layout: Layout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's grid activations, ∂(target score)/∂activations and the target scores.

    The target score is the centred logit ``z_t − mean_j z_j`` (see the module docstring; the
    raw logit for a single-output model).

    Returns:
        ``A`` float32 (N, C, h, w), ``G`` float32 (N, C, h, w), ``y`` float32 (N,).
    """
    module = find_layer(model, layer)
    box: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        t = out if isinstance(out, torch.Tensor) else None
        if t is None or box:
            return None
        box.append(t)
        return t.clone()  # later in-place ops change the clone, not the captured tensor

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.enable_grad():
            out = logits_of(forward_model(model, x))
            if not box:
                raise HookScopeError(f"Layer '{layer}' was not called with a tensor output.")
            idx = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=out.device)
            y = _centred(out, idx)
            (g,) = torch.autograd.grad(y.sum(), box[0])
    finally:
        handle.remove()
    a = layout.to_grid(box[0].detach()).float().cpu().numpy()
    g = layout.to_grid(g.detach()).float().cpu().numpy()
    return a, g, y.detach().float().cpu().numpy()


def _centred(out: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    y = out.gather(1, idx[:, None])[:, 0]
    return y - out.mean(1) if out.shape[1] > 1 else y  # the part the softmax sees


def centred_score(target: int):
    """The concepts' target score of class ``target`` as a target callable (for
    ``compute_cam``-style passes): ``z_t − mean_j z_j`` per sample (module docstring)."""

    def score(output) -> torch.Tensor:
        z = logits_of(output)
        return _centred(z, torch.full((len(z),), int(target), device=z.device))

    return score


def patches(a: np.ndarray) -> np.ndarray:
    """(N, C, h, w) → (N·h·w, C): every grid position a patch."""
    n, c, h, w = a.shape
    return a.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def fit_nmf(x: np.ndarray, k: int | str, seed: int = 0, step=None):
    """NMF of non-negative patches ``x`` (P, C) with K concepts, or ``auto``: the K from 2 to
    :data:`MAX_AUTO` at the elbow of the reconstruction error (largest second difference).

    ``step(K, done, total)``, if given, is called before each fit (progress; it may raise
    ``Cancelled``: ``auto`` fits up to ten factorisations, each many seconds on a big folder).

    Returns:
        ``(fitted sklearn NMF, K, {K: relative error})``.
    """
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    def fit(kk):
        m = NMF(n_components=kk, init="nndsvda", max_iter=400, random_state=seed)
        with warnings.catch_warnings():
            # not converged to tolerance: still a valid factorisation; the residual (reported
            # with the importances) carries what it misses
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(x)
        return m, float(m.reconstruction_err_ / max(np.linalg.norm(x), 1e-12))

    if k != "auto":
        if step is not None:
            step(int(k), 0, 1)
        m, err = fit(int(k))
        return m, int(k), {int(k): err}
    tried = {}
    models = {}
    top = min(MAX_AUTO, x.shape[1])
    for kk in range(1, top + 1):
        if step is not None:
            step(kk, kk - 1, top)
        models[kk], tried[kk] = fit(kk)
    ks = sorted(tried)
    if len(ks) < 3:
        best = ks[-1]
    else:
        e = np.asarray([tried[kk] for kk in ks])
        second = e[:-2] - 2 * e[1:-1] + e[2:]  # curvature at ks[1:-1]
        best = ks[1 + int(np.argmax(second))]
    return models[best], best, tried


def decompose(a: np.ndarray, g: np.ndarray, nmf, shift: np.ndarray) -> dict[str, np.ndarray]:
    """Concept maps and importances of a batch (see the module docstring for the identity).

    Args:
        a: Activations (N, C, h, w); g: their gradients; nmf: the fitted NMF;
        shift: (C,) added to ``a`` before the NMF (0 after a ReLU).

    Returns:
        ``maps`` U (N, K, h, w), ``importance`` (N, K), ``residual`` (N,) (the residual's and
        the shift's share), ``total`` (N,) = Σ_p A(p)·g(p).
    """
    n, c, h, w = a.shape
    pos = patches(a) + shift
    u = nmf.transform(pos.astype(np.float32))  # (N·h·w, K)
    wk = nmf.components_  # (K, C)
    gp = patches(g).astype(np.float64)
    importance = (u * (gp @ wk.T)).reshape(n, h * w, -1).sum(1)
    total = (patches(a).astype(np.float64) * gp).reshape(n, h * w, c).sum((1, 2))
    maps = u.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
    return {
        "maps": maps.astype(np.float32),
        "importance": importance,
        "residual": total - importance.sum(1),
        "total": total,
    }


def patch_scores(maps: np.ndarray, nmf) -> np.ndarray:
    """Top-patch scores ``U_k(p) · s_k(p)`` (module docstring) of concept maps (N, K, h, w)."""
    contrib = maps * np.linalg.norm(nmf.components_, axis=1)[None, :, None, None]
    share = contrib / np.maximum(contrib.sum(1, keepdims=True), 1e-12)
    return (maps * share).astype(np.float32)
