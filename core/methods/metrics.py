"""Faithfulness metrics: how much a saliency map tells about what the model used.

Every metric takes the model, its input ``x`` (1, C, H, W, normalised as the model expects), a
saliency map (H, W) in [0, 1] and a class index; "p" is the softmax probability of that class.

- Confidence (Chattopadhyay et al. 2018, as pytorch-grad-cam): multiply ``x`` by the map.
- ROAD (Rong et al. 2022, as pytorch-grad-cam): remove a percentile of pixels, fill them by
  noisy linear imputation, measure p. Most relevant first (MoRF) should hurt, least relevant
  first (LeRF) should not.
- Deletion / insertion (Petsiuk et al. 2018, RISE): remove (or reveal) pixels in the map's
  order and integrate p; a faithful map gives a low deletion and a high insertion area.
- Pointing game and energy in a mask: agreement with a ground-truth region.

What can be batched is: the ROAD images of all percentiles and the deletion / insertion
images of all steps go through the model in a few batches, with progress and cancel between
them. Baselines any good map must beat: :func:`random_map` and :func:`sobel_map`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.sparse.linalg import splu
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import logits_of
from hookscope.core.errors import HookScopeError
from hookscope.core.reporting import Reporter, quiet

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
"""ROAD's default removal percentiles (as pytorch-grad-cam)."""
DEFAULT_STEPS = 96
"""Deletion / insertion steps by default (RISE's curves, 97 points each)."""
BATCH_SIZE = 8
"""Images per forward pass: on CPU larger batches stop paying off (memory bandwidth)."""
BASELINES = ("random", "sobel")
"""Maps that carry no knowledge of the model: a method that does not beat them says so."""

# Noisy linear imputation: each removed pixel is the weighted mean of its 8 neighbours
# (edges 1/6, diagonals 1/12), as ROAD's reference implementation.
NEIGHBOURS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)


# -- model scores -----------------------------------------------------------------------------
class Scorer:
    """Softmax probability of one class for batches of model inputs.

    Keeps the three images every map shares (``x``, its blurred copy, all zeros), so several
    maps scored with one scorer pay for them once.

    Args:
        model: The model (run in eval mode, each submodule's mode restored).
        x: One input (1, C, H, W).
        target: Class index.
        batch_size: Images per forward pass.
        reporter: Cancel is checked between batches.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        target: int,
        *,
        batch_size: int = BATCH_SIZE,
        reporter: Reporter | None = None,
    ):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise HookScopeError(f"The metrics take one image of shape (1, C, H, W), not {shape}.")
        try:
            if isinstance(target, bool):
                raise TypeError
            target = operator.index(target)
        except TypeError:
            raise HookScopeError(
                f"The metrics need a class index as target, not {type(target).__name__}."
            ) from None
        self.model = model
        self.device = model_device(model)
        self.x = x.detach().float().cpu()
        self.target = int(target)
        self.batch_size = max(1, int(batch_size))
        self.reporter = reporter or quiet()
        self._base: dict[str, float] | None = None
        self._p_x: float | None = None
        # Channels-last batches run conv nets ~1.5x faster on CPU; a model that cannot take
        # them (a .view on its input) gets contiguous ones from its first failure on.
        self._channels_last = x.dim() == 4
        self._blurred: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    def probs(self, images: torch.Tensor) -> np.ndarray:
        """p(target) for each image of (N, C, H, W), in batches of ``batch_size``."""
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            with self.reporter.batch():  # checks cancel; in the app, clicks go in between
                out.append(self._forward(images[i : i + self.batch_size]))
        return np.concatenate(out) if out else np.zeros(0)

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        batch = batch.to(self.device)
        with torch.no_grad(), eval_mode(self.model):
            if self._channels_last:
                try:
                    out = self.model(batch.contiguous(memory_format=torch.channels_last))
                except RuntimeError:
                    self._channels_last = False
            if not self._channels_last:
                out = forward_model(self.model, batch.contiguous())
            logits = logits_of(out)
        if logits.dim() != 2 or logits.shape[0] != batch.shape[0]:
            raise HookScopeError(
                f"The metrics need class scores of shape (N, K), but the model returned "
                f"{tuple(logits.shape)}; pick a classifier output."
            )
        if not 0 <= self.target < logits.shape[1]:
            raise HookScopeError(
                f"Target class {self.target} is out of range: the model has {logits.shape[1]} "
                "classes."
            )
        return torch.softmax(logits.float(), dim=1)[:, self.target].cpu().double().numpy()

    @property
    def blurred(self) -> torch.Tensor:
        """``x`` blurred with RISE's kernel (insertion's starting image)."""
        if self._blurred is None:
            self._blurred = blur(self.x)
        return self._blurred

    @property
    def base(self) -> dict[str, float]:
        """p of ``x``, of its blurred copy and of all zeros (one batch, computed once)."""
        if self._base is None:
            p = self.probs(torch.cat([self.x, self.blurred, torch.zeros_like(self.x)]))
            self._base = {"x": float(p[0]), "blurred": float(p[1]), "zeros": float(p[2])}
        return self._base

    @property
    def p_x(self) -> float:
        """p of ``x`` (from :attr:`base` when known, else one forward)."""
        if self._base is not None:
            return self._base["x"]
        if self._p_x is None:
            self._p_x = float(self.probs(self.x)[0])
        return self._p_x

    def probs_and_p_x(self, images: torch.Tensor) -> tuple[np.ndarray, float]:
        """:meth:`probs` of ``images`` and p of ``x``, in the same batches when p(x) is new."""
        if self._base is not None or self._p_x is not None:
            return self.probs(images), self.p_x
        p = self.probs(torch.cat([self.x, images]))
        self._p_x = float(p[0])
        return p[1:], self._p_x


def as_map(saliency, size: tuple[int, int]) -> np.ndarray:
    """``saliency`` as a float32 (H, W) array of the input's size.

    Raises:
        HookScopeError: Wrong shape or non-finite values.
    """
    if isinstance(saliency, torch.Tensor):
        saliency = saliency.detach().cpu().numpy()
    s = np.asarray(saliency, dtype=np.float32)
    if s.ndim > 2 and all(n == 1 for n in s.shape[:-2]):
        s = s.reshape(s.shape[-2:])  # (1, H, W) or (1, 1, H, W)
    if s.shape != tuple(size):
        raise HookScopeError(
            f"The saliency map has shape {s.shape} but the input is {size[0]}×{size[1]}; "
            "upsample the map to the input size first."
        )
    if not np.isfinite(s).all():
        raise HookScopeError("The saliency map has NaN or Inf values, so it cannot be scored.")
    return s


# -- confidence -------------------------------------------------------------------------------
def confidence_change(
    model: nn.Module, x: torch.Tensor, saliency, target: int, *, scorer: Scorer | None = None
) -> float:
    """p(x · saliency) − p(x), the map multiplying every channel of ``x``."""
    sc = scorer or Scorer(model, x, target)
    s = torch.from_numpy(as_map(saliency, sc.size))
    p, p_x = sc.probs_and_p_x(sc.x * s)
    return float(p[0] - p_x)


def drop_in_confidence(model: nn.Module, x: torch.Tensor, saliency, target: int) -> float:
    """max(0, p(x) − p(x · saliency)): pytorch-grad-cam's ``DropInConfidence`` (softmax target).

    Lower is better: the map kept what the model needed.
    """
    return max(0.0, -confidence_change(model, x, saliency, target))


def increase_in_confidence(model: nn.Module, x: torch.Tensor, saliency, target: int) -> float:
    """1.0 if p(x · saliency) > p(x) else 0.0: pytorch-grad-cam's ``IncreaseInConfidence``."""
    return 1.0 if confidence_change(model, x, saliency, target) > 0 else 0.0


# -- ROAD -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoadScores:
    """ROAD at each percentile: p(imputed) − p(x).

    Attributes:
        percentiles: The removal percentiles.
        morf: (P,) most relevant first (removing what the map ranks high; lower is better).
        lerf: (P,) least relevant first (higher is better).
    """

    percentiles: tuple[int, ...]
    morf: np.ndarray
    lerf: np.ndarray

    @property
    def combined(self) -> float:
        """(mean LeRF − mean MoRF) / 2, pytorch-grad-cam's ``ROADCombined``; higher is better."""
        return float((np.mean(self.lerf) - np.mean(self.morf)) / 2)


def keep_mask(saliency: np.ndarray, percentile: float, order: str = "morf") -> np.ndarray:
    """Pixels ROAD keeps: MoRF removes saliency at or above its percentile, LeRF of 1 − saliency.

    Returns:
        (H, W) bool, True where the pixel stays.
    """
    if order not in ("morf", "lerf"):
        raise HookScopeError(f"Unknown ROAD order '{order}': use morf or lerf.")
    s = np.asarray(saliency, dtype=np.float32)
    s = s if order == "morf" else np.float32(1) - s
    # Compared in float32 like the reference (a torch tensor against a scalar).
    return s < np.float32(np.percentile(s, percentile))


def impute(
    image: np.ndarray, keep: np.ndarray, noise: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Noisy linear imputation: removed pixels become the weighted mean of their neighbours.

    One sparse linear system for all removed pixels (neighbour weights :data:`NEIGHBOURS`,
    out-of-image neighbours dropped), solved for every channel at once, plus Gaussian noise of
    std ``noise``. With no pixel left to anchor the solution (a constant map removes all of
    them) every pixel becomes 0, the normalisation mean, as the reference's singular solve gives.

    Args:
        image: (C, H, W) float32.
        keep: (H, W) bool, True where the pixel is known.
        noise: Std of the added noise (0 for none).
        rng: Noise source (default: seeded 0).

    Returns:
        (C, H, W) float32.
    """
    c, h, w = image.shape
    flat = image.reshape(c, -1)
    known = keep.reshape(-1)
    missing = np.flatnonzero(~known)
    out = flat.astype(np.float32, copy=True)
    n = missing.size
    if n == 0:
        return out.reshape(image.shape)
    values = _solve(flat, known, missing, w) if n < known.size else np.zeros((c, n), np.float32)
    if noise:
        rng = rng or np.random.default_rng(0)
        values = values + np.float32(noise) * rng.standard_normal(values.shape, np.float32)
    out[:, missing] = values
    return out.reshape(image.shape)


def _solve(flat: np.ndarray, known: np.ndarray, missing: np.ndarray, w: int) -> np.ndarray:
    """The imputed values (C, n) of the ``missing`` pixels of a (C, H·W) image."""
    c, n, h = flat.shape[0], missing.size, known.size // w
    index = np.full(known.size, -1, np.int64)
    index[missing] = np.arange(n)
    rows, cols = np.divmod(missing, w)
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    ai, aj, av = [], [], []
    for (dr, dc), weight in NEIGHBOURS:
        r, q = rows + dr, cols + dc
        inside = (r >= 0) & (q >= 0) & (r < h) & (q < w)
        eq = np.flatnonzero(inside)
        nb = r[inside] * w + q[inside]
        diag[eq] += weight
        has = known[nb]
        rhs[eq[has]] += weight * flat[:, nb[has]].T
        ai.append(eq[~has])
        aj.append(index[nb[~has]])
        av.append(np.full(int((~has).sum()), weight))
    # sum_j w_ij v_j - (sum of inside weights) v_i = -sum_known w_ik x_k, negated: a symmetric
    # positive definite system, where a symmetric fill-reducing ordering is fastest.
    ai.append(np.arange(n))
    aj.append(np.arange(n))
    av.append(-diag)
    a = sparse.csc_matrix(
        (-np.concatenate(av), (np.concatenate(ai), np.concatenate(aj))), shape=(n, n)
    )
    solved = splu(a, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}).solve(rhs)
    return solved.T.astype(np.float32)


def road_scores(
    model: nn.Module,
    x: torch.Tensor,
    saliency,
    target: int,
    percentiles: Sequence[float] = PERCENTILES,
    noise: float = 0.01,
    seed: int = 0,
    *,
    orders: Sequence[str] = ("morf", "lerf"),
    scorer: Scorer | None = None,
    reporter: Reporter | None = None,
) -> RoadScores:
    """ROAD for every percentile and order; the imputed images go through the model in batches.

    The noise of order ``o`` at percentile ``q`` comes from a generator seeded with
    ``(seed, o, q)``, so a single :func:`road` call equals its entry here.

    Args:
        reporter: Progress (one step per imputation) and cancel.
    """
    sc = scorer or Scorer(model, x, target, reporter=reporter)
    reporter = reporter or sc.reporter
    s = as_map(saliency, sc.size)
    pcts = tuple(percentiles)
    image = sc.x[0].numpy()
    jobs = [(o, q) for o in orders for q in pcts]
    total = len(jobs) + 1
    imputed = []
    for i, (o, q) in enumerate(jobs):
        reporter.progress(i, total, f"ROAD {o.upper()} {q:g}%")
        rng = np.random.default_rng([int(seed), ("morf", "lerf").index(o), int(round(q * 1000))])
        imputed.append(impute(image, keep_mask(s, q, o), noise, rng))
    reporter.progress(len(jobs), total, "ROAD: scoring the imputed images")
    p = np.zeros(0)
    if jobs:
        p, p_x = sc.probs_and_p_x(torch.from_numpy(np.stack(imputed)))
        p = p - p_x
    reporter.progress(total, total, "ROAD done")
    per = {o: p[k * len(pcts) : (k + 1) * len(pcts)] for k, o in enumerate(orders)}
    empty = np.zeros(0)
    return RoadScores(pcts, per.get("morf", empty), per.get("lerf", empty))


def road(
    model: nn.Module,
    x: torch.Tensor,
    saliency,
    target: int,
    percentile: float,
    order: str = "morf",
    noise: float = 0.01,
    seed: int = 0,
) -> float:
    """p(imputed) − p(x) after removing one percentile (``ROADMostRelevantFirst`` or LeRF).

    ``order="morf"`` removes the pixels whose saliency is at or above its ``percentile``-th
    percentile, ``"lerf"`` does the same on 1 − saliency.
    """
    if order not in ("morf", "lerf"):
        raise HookScopeError(f"Unknown ROAD order '{order}': use morf or lerf.")
    r = road_scores(model, x, saliency, target, (percentile,), noise, seed, orders=(order,))
    return float((r.morf if order == "morf" else r.lerf)[0])


def road_combined(
    model: nn.Module,
    x: torch.Tensor,
    saliency,
    target: int,
    percentiles: Sequence[float] = PERCENTILES,
    noise: float = 0.01,
    seed: int = 0,
) -> float:
    """(mean LeRF − mean MoRF) / 2 over ``percentiles``: pytorch-grad-cam's ``ROADCombined``."""
    return road_scores(model, x, saliency, target, percentiles, noise, seed).combined


# -- deletion / insertion (RISE) --------------------------------------------------------------
def blur_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's kernel: ``gaussian_filter`` (default arguments) of a centred unit impulse.

    The impulse sits in a ``size`` × ``size`` array, so with scipy's default reflecting border
    the kernel sums to 1 (and is nearly flat for sigma 5).
    """
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return gaussian_filter(impulse, sigma)


def blur(x: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Each channel of (N, C, H, W) convolved with :func:`blur_kernel`, zero padding size // 2."""
    c = x.shape[1]
    k = torch.as_tensor(blur_kernel(size, sigma), dtype=x.dtype, device=x.device)
    weight = k.expand(c, 1, size, size).contiguous()
    return F.conv2d(x, weight, padding=size // 2, groups=c)


@dataclass(frozen=True)
class CausalCurves:
    """RISE's deletion and insertion curves: p after each step (steps + 1 points).

    Attributes:
        deletion: p as the most salient pixels are set to 0, from ``x`` to all zeros.
        insertion: p as they are copied into the blurred image, from blurred to ``x``.
        pixels_per_step: ceil(H·W / steps).
    """

    deletion: np.ndarray
    insertion: np.ndarray
    pixels_per_step: int

    @property
    def steps(self) -> int:
        return len(self.deletion) - 1

    @property
    def deletion_auc(self) -> float:
        return auc(self.deletion)

    @property
    def insertion_auc(self) -> float:
        return auc(self.insertion)


def auc(curve: np.ndarray) -> float:
    """Trapezoid area of a curve over [0, 1]: (sum − first / 2 − last / 2) / steps."""
    y = np.asarray(curve, dtype=np.float64)
    if y.size < 2:
        return float(y.sum())
    return float((y.sum() - y[0] / 2 - y[-1] / 2) / (y.size - 1))


def causal_curves(
    model: nn.Module,
    x: torch.Tensor,
    saliency,
    target: int,
    steps: int = DEFAULT_STEPS,
    *,
    scorer: Scorer | None = None,
    reporter: Reporter | None = None,
) -> CausalCurves:
    """Deletion and insertion curves; every step's image goes through the model in batches.

    Pixels are ordered by saliency, highest first (ties in row-major order); step ``i`` has the
    first ``min(i · n, H·W)`` removed (deletion: set to 0 in every channel) or inserted (copied
    from ``x`` into the blurred image), n = ceil(H·W / steps).
    """
    if steps < 1:
        raise HookScopeError(f"Deletion / insertion needs at least one step, not {steps}.")
    sc = scorer or Scorer(model, x, target, reporter=reporter)
    reporter = reporter or sc.reporter
    s = as_map(saliency, sc.size)
    hw = s.size
    per_step = math.ceil(hw / steps)
    rank = np.empty(hw, np.int64)
    rank[np.argsort(-s.ravel(), kind="stable")] = np.arange(hw)
    rank_t = torch.from_numpy(rank.reshape(s.shape))
    counts = np.minimum(np.arange(steps + 1) * per_step, hw)
    base = sc.base
    deletion = np.empty(steps + 1)
    insertion = np.empty(steps + 1)
    deletion[0], insertion[-1] = base["x"], base["x"]
    deletion[-1], insertion[0] = base["zeros"], base["blurred"]
    # The inner steps of both curves, deletion then insertion, batch after batch.
    todo = [(0, i) for i in range(1, steps)] + [(1, i) for i in range(1, steps)]
    x0, blurred = sc.x, sc.blurred
    bs = sc.batch_size
    total = max(1, math.ceil(len(todo) / bs))
    for b in range(0, len(todo), bs):
        reporter.progress(b // bs, total, "Deletion and insertion")
        chunk = todo[b : b + bs]
        kind = torch.tensor([k for k, _ in chunk]).view(-1, 1, 1, 1).bool()
        n = torch.from_numpy(counts[[i for _, i in chunk]]).view(-1, 1, 1)
        changed = (rank_t[None] < n)[:, None]  # (B, 1, H, W): removed or inserted so far
        deleted = x0.masked_fill(changed, 0.0)
        inserted = torch.where(changed, x0, blurred)
        p = sc.probs(torch.where(kind, inserted, deleted))
        for (k, i), v in zip(chunk, p):
            (insertion if k else deletion)[i] = v
    reporter.progress(total, total, "Deletion and insertion done")
    return CausalCurves(deletion, insertion, per_step)


def deletion_insertion(
    model: nn.Module, x: torch.Tensor, saliency, target: int, steps: int = DEFAULT_STEPS
) -> tuple[float, float]:
    """(deletion AUC, insertion AUC), RISE; a faithful map has low deletion, high insertion."""
    c = causal_curves(model, x, saliency, target, steps)
    return c.deletion_auc, c.insertion_auc


# -- localisation -----------------------------------------------------------------------------
def _mask(mask, shape) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0] if m.shape[-1] in (1, 3, 4) else m[0]
    if m.shape != tuple(shape):
        raise HookScopeError(
            f"The mask is {m.shape[0]}×{m.shape[1]} but the map is {shape[0]}×{shape[1]}; "
            "resize the mask like the image."
        )
    return m.astype(bool) if m.dtype == bool else m > 0


def pointing_game(saliency, mask, tolerance: int = 15) -> bool:
    """Whether the map's maximum (first in row-major order) lies in ``mask`` dilated by a disk.

    Args:
        saliency: (H, W) map.
        mask: (H, W) bool, or numbers where nonzero means inside.
        tolerance: Radius of the disk in pixels.
    """
    s = np.asarray(saliency, dtype=np.float32)
    m = _mask(mask, s.shape)
    y, x = np.unravel_index(int(np.argmax(s)), s.shape)
    rows, cols = np.nonzero(m)
    return bool(np.any((rows - y) ** 2 + (cols - x) ** 2 <= tolerance**2))


def energy_in_mask(saliency, mask) -> float:
    """Share of the map's sum inside ``mask`` (0.0 for an all-zero map)."""
    s = np.asarray(saliency, dtype=np.float64)
    m = _mask(mask, s.shape)
    total = s.sum()
    return float(s[m].sum() / total) if total > 0 else 0.0


# -- baselines --------------------------------------------------------------------------------
def random_map(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A seeded uniform map in [0, 1): what a map that knows nothing looks like."""
    return np.random.default_rng(seed).random(tuple(size), dtype=np.float32)


def sobel_map(rgb: np.ndarray) -> np.ndarray:
    """Edges of the grey image, as pytorch-grad-cam's metrics tutorial: 0.5 |Gx| + 0.5 |Gy|.

    Mirrors its OpenCV calls (grey, 3×3 ``Sobel`` with the reflect-101 border,
    ``convertScaleAbs``, ``addWeighted``, each rounding to uint8), divided by its maximum. The
    grey is ``COLOR_RGB2GRAY`` (the tutorial hands an RGB image to ``COLOR_BGR2GRAY``).

    Args:
        rgb: uint8 (H, W, 3) image as the model sees it.
    """
    a = np.asarray(rgb)
    if a.ndim == 3:
        r, g, b = (a[..., i].astype(np.int64) for i in range(3))
        # OpenCV's fixed-point luma for uint8 (0.299, 0.587, 0.114 in 15 bits, rounded).
        grey = ((r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15).astype(np.float64)
    else:
        grey = a.astype(np.float64)
    p = np.pad(grey, 1, mode="reflect")  # numpy's reflect is OpenCV's BORDER_REFLECT_101
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    ax = np.clip(np.round(np.abs(gx)), 0, 255)
    ay = np.clip(np.round(np.abs(gy)), 0, 255)
    grad = np.clip(np.round(0.5 * ax + 0.5 * ay), 0, 255)
    top = grad.max()
    return (grad / top if top > 0 else grad).astype(np.float32)


# -- the metric records -----------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """What the scorer measured for one map; every metric's value is read from it.

    Attributes:
        change: Mean confidence change with ``x`` times the map (:func:`confidence_change`).
        road: ROAD at each percentile.
        curves: RISE deletion / insertion curves.
        saliency: The (H, W) map in [0, 1].
        region: Ground-truth mask (H, W) bool, or None.
    """

    change: float
    road: RoadScores
    curves: CausalCurves
    saliency: np.ndarray
    region: np.ndarray | None = None


@dataclass(frozen=True)
class Metric:
    """One faithfulness number of a map.

    Attributes:
        name: Field name (``evaluate --json``, CSV column, :class:`MethodScores` attribute).
        header: Short column header of the Trust table.
        better: ``"higher"`` or ``"lower"``.
        needs_mask: True when it needs a ground-truth region (None without one).
        value: ``value(evidence) -> float | bool``.
        help: One line on what it measures.
    """

    name: str
    header: str
    better: str
    needs_mask: bool
    value: Callable[[Evidence], float | bool]
    help: str = ""

    @property
    def arrow(self) -> str:
        """↑ when higher is better, ↓ when lower is."""
        return "↑" if self.better == "higher" else "↓"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "drop",
            "drop",
            "lower",
            False,
            lambda e: max(0.0, -e.change),
            "average drop in confidence with x times the map",
        ),
        Metric(
            "increase",
            "increase",
            "higher",
            False,
            lambda e: 1.0 if e.change > 0 else 0.0,
            "1 when x times the map raises the confidence",
        ),
        Metric(
            "road_morf",
            "MoRF",
            "lower",
            False,
            lambda e: float(np.mean(e.road.morf)),
            "ROAD, most relevant pixels removed first",
        ),
        Metric(
            "road_lerf",
            "LeRF",
            "higher",
            False,
            lambda e: float(np.mean(e.road.lerf)),
            "ROAD, least relevant pixels removed first",
        ),
        Metric(
            "road_combined", "ROAD", "higher", False, lambda e: e.road.combined, "(LeRF − MoRF) / 2"
        ),
        Metric(
            "deletion",
            "deletion",
            "lower",
            False,
            lambda e: e.curves.deletion_auc,
            "RISE deletion area",
        ),
        Metric(
            "insertion",
            "insertion",
            "higher",
            False,
            lambda e: e.curves.insertion_auc,
            "RISE insertion area",
        ),
        Metric(
            "pointing",
            "pointing",
            "higher",
            True,
            lambda e: pointing_game(e.saliency, e.region),
            "the map's peak lies in the mask",
        ),
        Metric(
            "energy",
            "energy",
            "higher",
            True,
            lambda e: energy_in_mask(e.saliency, e.region),
            "share of the map inside the mask",
        ),
    )
}
"""Every metric of the Trust table and ``evaluate``, in the order of ``evaluate --json``."""

SCORE_METRIC = Metric(
    "score",
    "ins − del",
    "higher",
    False,
    lambda e: e.curves.insertion_auc - e.curves.deletion_auc,
    "insertion − deletion: how methods are ranked",
)
"""The ranking score (RISE insertion AUC minus deletion AUC)."""
SCORE_PARTS = ("deletion", "insertion")
"""The metrics the score is made of: tables show them right after it."""


def measure(evidence: Evidence) -> dict[str, float | bool | None]:
    """Every metric's value for one map (None for mask metrics without a mask)."""
    return {
        k: None if m.needs_mask and evidence.region is None else m.value(evidence)
        for k, m in METRICS.items()
    }
