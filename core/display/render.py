"""Numpy helpers that turn maps and feature maps into displayable arrays (no colours, no Qt).

Colouring lives in :mod:`core.display.colormaps` (the app's colour tables); everything here
returns float or uint8 arrays so it can be tested and reused without a display.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Below this spread relative to the largest magnitude a map is float noise, not signal.
_REL_FLAT = 1e-6


def normalize(a: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Min-max scale to [0, 1] as float32; a constant (or all-NaN) map becomes zeros.

    Args:
        a: Any array.
        vmin: Value mapped to 0 (default: the minimum, NaN ignored).
        vmax: Value mapped to 1 (default: the maximum, NaN ignored).
    """
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if a.size == 0:
        return a
    lo = float(a.min()) if vmin is None else float(vmin)
    hi = float(a.max()) if vmax is None else float(vmax)
    scale = max(abs(lo), abs(hi))
    if hi - lo <= _REL_FLAT * scale or hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def normalize_signed(a: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Scale to [0, 1] with 0 at 0.5, so a diverging colour map shows the sign.

    Args:
        a: Any real array (gradients, attributions).
        limit: Magnitude mapped to the ends (default: max |a|); larger values are clipped.
    """
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    m = float(np.abs(a).max()) if limit is None and a.size else float(limit or 0.0)
    if m <= 0.0:
        return np.full_like(a, 0.5)
    return np.clip(0.5 + 0.5 * a / m, 0.0, 1.0).astype(np.float32)


def robust_limit(a: np.ndarray, percentile: float = 99.5) -> float:
    """Magnitude at the given percentile of |a| (outlier-proof limit for signed maps)."""
    a = np.abs(np.asarray(a, dtype=np.float32))
    return float(np.percentile(a, percentile)) if a.size else 0.0


def upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (h, w) or (C, h, w) to ``size`` = (H, W), half-pixel centres.

    Matches ``F.interpolate(..., align_corners=False)`` and OpenCV's ``INTER_LINEAR``.
    """
    a = np.asarray(a, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t[None, None] if t.dim() == 2 else t[None]
    out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)
    return out[0, 0].numpy() if a.ndim == 2 else out[0].numpy()


def blend(base: np.ndarray, top: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * base + alpha * top`` for uint8 RGB arrays of the same shape."""
    if base.shape != top.shape:
        raise ValueError(f"cannot blend {base.shape} with {top.shape}")
    a = float(np.clip(alpha, 0.0, 1.0))
    out = (1.0 - a) * base.astype(np.float32) + a * top.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def gradient_to_rgb(grad: np.ndarray) -> np.ndarray:
    """Show a (3, H, W) input gradient as an RGB image: zero mean, 0.1 std, centred on grey.

    Same recipe as the guided-backprop pictures of Grad-CAM's authors (``deprocess_image``);
    a 1-channel gradient is repeated to grey.
    """
    g = np.asarray(grad, dtype=np.float32)
    g = g[None] if g.ndim == 2 else g
    g = g.transpose(1, 2, 0)
    g = g - g.mean()
    g = g / (g.std() + 1e-5) * 0.1 + 0.5
    rgb = (np.clip(g, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else np.ascontiguousarray(rgb[..., :3])


def attribution_map(attr: np.ndarray, signed: bool = True) -> np.ndarray:
    """The 2-D picture of a (C, H, W) attribution that the app shows and the CLI saves.

    The sum over colour channels: ``sum_c a_c`` for signed methods (sign kept, for a diverging
    colour map), ``sum_c |a_c|`` for magnitude methods. The same channel sum as
    :func:`magnitude_map`, so the picture and the [0, 1] map never disagree on where. A (H, W)
    map is kept.
    """
    a = np.asarray(attr, dtype=np.float32)
    if a.ndim == 2:
        return a.copy()
    return a.sum(axis=0) if signed else np.abs(a).sum(axis=0)


def magnitude_map(attr: np.ndarray) -> np.ndarray:
    """An attribution as a (H, W) map in [0, 1]: ``sum_c |a_c|``, min-max scaled.

    The one rule for attributions, signed or not (``core.methods.explainers``): the sign is
    dropped, a constant map becomes zeros.
    """
    a = np.abs(np.asarray(attr, dtype=np.float32))
    return normalize(a.sum(axis=0) if a.ndim == 3 else a)


def attribution_heat(attr: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """|attribution| summed over channels over its ``percentile`` (outliers clip), in [0, 1]."""
    a = np.abs(np.asarray(attr, dtype=np.float32))
    a = a.sum(axis=0) if a.ndim == 3 else a
    limit = robust_limit(a, percentile) if a.size else 0.0
    return np.clip(a / limit, 0.0, 1.0).astype(np.float32) if limit > 0 else np.zeros_like(a)
