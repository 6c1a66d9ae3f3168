"""Sanity check for saliency maps: cascading weight randomisation (Adebayo et al., 2018).

Re-initialise the parametrised layers one after another from the output down and compute the
maps again after each step. A map that still looks the same once the weights are random does
not explain the model. The similarity is the Spearman rank correlation with the original map.

The real weights are put back bit-for-bit afterwards, also after cancel or an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model
from hookscope.core.engine.hooks import resolve_modules
from hookscope.core.engine.outputs import CLASSES, output_kind
from hookscope.core.engine.targets import Target, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.methods.explainers import CAM, explain, get
from hookscope.core.reporting import Reporter

# (model, x, target class) -> 2-D map
Explainer = Callable[[nn.Module, torch.Tensor, int], np.ndarray]

FAIL_AT = 0.5
"""A map whose rank correlation with the original is still at least this once the weights
are random fails the check (Adebayo et al. 2018)."""

Y_RANGE = (-0.2, 1.05)
"""The correlation axis when every value lies in it; :meth:`SanityResult.y_range` widens it."""


@dataclass(frozen=True)
class SanityResult:
    """Outcome of a cascading randomisation.

    Attributes:
        steps: Layer randomised at each step, top (output) first; step ``i`` has layers
            ``steps[: i + 1]`` random.
        correlations: Method → (len(steps),) Spearman rank correlation of the map after each
            step with the original map (0 where a map is constant and the rank is undefined).
        original: Method → the map with the real weights.
        maps: Method → one map per step, or empty when ``keep_maps`` was False.
        target: The explained class (fixed to the original prediction for every step).
    """

    steps: tuple[str, ...]
    correlations: dict[str, np.ndarray]
    original: dict[str, np.ndarray]
    maps: dict[str, list[np.ndarray]]
    target: int

    def y_range(self, margin: float = 0.05) -> tuple[float, float]:
        """The correlation axis: :data:`Y_RANGE`, widened so that every value lies inside.

        Spearman's rho lies in [-1, 1]; a map that turns into its own negative once the weights
        are random goes well below 0, and the plot must still show it.
        """
        values = [v for c in self.correlations.values() for v in np.asarray(c, np.float64)]
        values = [v for v in values if np.isfinite(v)]
        lo, hi = Y_RANGE
        if values:
            lo, hi = min(lo, min(values) - margin), max(hi, max(values) + margin)
        return float(lo), float(hi)

    def final(self, method: str) -> float:
        """Rank correlation with the original once every layer of the cascade is random."""
        c = self.correlations[method]
        return float(c[-1]) if len(c) else 1.0

    def passed(self, method: str) -> bool:
        """True when the randomised map no longer resembles the original (< :data:`FAIL_AT`)."""
        return self.final(method) < FAIL_AT

    def verdict(self, method: str) -> str:
        """One sentence: does ``method`` pass the randomisation check?"""
        rho = self.final(method)
        if self.passed(method):
            return (
                f"{method} passes: with the weights randomised its map's rank correlation with "
                f"the original falls to {rho:.2f} (< {FAIL_AT}), so it depends on what the "
                "model learnt."
            )
        return (
            f"{method} fails: with the weights randomised its map still has rank correlation "
            f"{rho:.2f} (≥ {FAIL_AT}) with the original, so it shows the image more than the "
            "model (Adebayo et al. 2018)."
        )


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a flattened array, ties sharing their average rank (as scipy's default)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    # Start of each run of equal values; the average rank of a run is (first + last) / 2 + 1.
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], a.size]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(a.size, np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays; 0.0 if either is constant."""
    ra, rb = rankdata(a), rankdata(b)
    if ra.size != rb.size:
        raise HookScopeError(f"Cannot correlate maps of {ra.size} and {rb.size} values.")
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def parametrised_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Modules that own parameters, in the order the forward pass calls them (first call)."""
    owners = {
        name: m
        for name, m in model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
    }
    order: list[str] = []
    handles = []

    def note(name):
        def hook(module, args):
            if name not in order:
                order.append(name)

        return hook

    try:
        for name, m in owners.items():
            handles.append(m.register_forward_pre_hook(note(name)))
        with eval_mode(model), torch.no_grad():
            forward_model(model, x)
    finally:
        for h in handles:
            h.remove()
    # Parameters used without a forward call (rare) go last, in definition order.
    return order + [n for n in owners if n not in order]


def _explainers(methods, cam_layer: str | None) -> dict[str, Explainer]:
    """Method name → (model, x, target) -> map, from the explainer registry (or callables).

    Registry maps are in [0, 1]; an attribution's is its magnitude summed over colour
    channels, which is what Adebayo et al. rank.
    """
    out: dict[str, Explainer] = {}
    for m in methods:
        if callable(m):
            out[getattr(m, "__name__", f"method{len(out)}")] = m
            continue
        rec = get(m)  # one sentence for an unknown name
        if rec.kind == CAM and not cam_layer:
            raise HookScopeError(f"{rec.name} needs a layer to compute the CAM on (cam_layer).")
        layers = [cam_layer] if cam_layer and rec.needs_layer else None

        def run(model, x, target, _name=rec.name, _layers=layers):
            return explain(model, x, _name, layers=_layers, target=target).map

        out[rec.name] = run
    if not out:
        raise HookScopeError("Pick at least one method for the sanity check.")
    return out


class _Weights:
    """Snapshot of every parameter and buffer (object and values) of a model, to restore."""

    def __init__(self, model: nn.Module):
        self.saved = []
        for m in model.modules():
            for store in (m._parameters, m._buffers):
                for key, t in store.items():
                    if t is not None:
                        self.saved.append((store, key, t, t.detach().clone()))

    def restore(self) -> None:
        with torch.no_grad():
            for store, key, obj, data in self.saved:
                # A reset may have swapped the tensor object; put the original back first.
                if store.get(key) is not obj:
                    store[key] = obj
                if obj.shape != data.shape:
                    obj.data = data.clone()
                else:
                    obj.copy_(data)


def _randomise(module: nn.Module, seed: int) -> None:
    """Re-initialise the parameters of ``module`` and its submodules, reproducibly."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in module.modules():
            if not any(True for _ in m.parameters(recurse=False)):
                continue
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()  # the layer's own initialiser (Kaiming for conv / linear)
            else:
                for p in m.parameters(recurse=False):
                    std = float(p.float().std()) if p.numel() > 1 else 1.0
                    p.normal_(0.0, std if std > 0 else 1.0)


def cascading_randomization(
    model: nn.Module,
    x: torch.Tensor,
    *,
    methods: Sequence[str | Explainer] = ("gradcam",),
    cam_layer: str | None = None,
    target: Target = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    keep_maps: bool = True,
    reporter: Reporter | None = None,
) -> SanityResult:
    """Cascading randomisation: randomise layers top-down, correlate each map with the original.

    Args:
        model: The model; its weights are changed during the run and restored bit-for-bit.
        x: One input (1, C, H, W).
        methods: Names from the explainer registry (``core.methods.explainers``), or callables
            ``(model, x, target) -> (H, W) array``.
        cam_layer: Layer for the CAM methods.
        target: Class to explain (default: the top-1 class with the real weights); kept fixed.
        layers: Modules to randomise in this order (each with all its submodules); default:
            every parametrised module, from the last one the forward calls to the first.
        seed: Step ``i`` re-initialises with seed ``seed + i``.
        class_names: For a string target.
        keep_maps: Keep every step's map (for the figure); False keeps only correlations.
        reporter: Progress (one step per layer) and cancel.

    Raises:
        HookScopeError: Unknown method or layer.
        Cancelled: When the reporter was cancelled (weights restored first).
    """
    reporter = reporter or Reporter()
    explain = _explainers(methods, cam_layer)
    x = x.detach()[:1]
    if layers is None:
        steps = list(reversed(parametrised_layers(model, x)))
    else:
        steps = list(layers)
        resolve_modules(model, steps)
    if not steps:
        raise HookScopeError("The model has no parameters, so there is nothing to randomise.")
    modules = resolve_modules(model, steps)
    weights = _Weights(model)
    try:
        with eval_mode(model):
            with torch.no_grad():
                output = forward_model(model, x)
            kind = output_kind(output, class_names, model)
            if kind.kind != CLASSES:  # a flattened dense map would be K*H*W made-up classes
                raise HookScopeError(
                    "The sanity check explains one class, so it needs class scores; this model's "
                    f"output is {kind.kind} {tuple(kind.shape)}."
                )
            logits = logits_of(output).float().reshape(1, -1)
            tgt = resolve_target(target, logits, class_names)
            if callable(tgt):
                raise HookScopeError("The sanity check needs a class index or name as target.")
            # Progress counts the steps the result shows (the original maps are step 0 of N).
            total = len(steps)
            reporter.progress(0, total, "Maps with the real weights…")
            with reporter.batch():  # in the app, clicks go in between two maps
                original = {k: _as_map(f(model, x, tgt)) for k, f in explain.items()}
            corr = {k: np.zeros(len(steps), np.float64) for k in explain}
            maps: dict[str, list[np.ndarray]] = {k: [] for k in explain}
            reporter.progress(0, total, f"Randomising {steps[0]}…")
            for i, name in enumerate(steps):
                _randomise(modules[name], seed + i)
                for k, f in explain.items():
                    with reporter.batch():
                        m = _as_map(f(model, x, tgt))
                    corr[k][i] = spearman(original[k], m)
                    if keep_maps:
                        maps[k].append(m)
                reporter.progress(i + 1, total, f"Randomised down to {name}")
    finally:
        weights.restore()
    return SanityResult(
        steps=tuple(steps),
        correlations=corr,
        original=original,
        maps=maps if keep_maps else {},
        target=int(tgt),
    )


def _as_map(a) -> np.ndarray:
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float32)
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a
