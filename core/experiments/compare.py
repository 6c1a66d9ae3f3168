"""Compare a run with a pinned baseline: difference maps and top-k deltas, on plain numpy.

A :class:`RunView` is what a comparison needs from one run (activations, gradients and CAM
maps per layer, class probabilities, top-k). Build it from the GUI's Snapshot with
:meth:`RunView.from_snapshot`, from a probe with :meth:`RunView.from_probe`, or by hand.
Differences are always ``run - baseline``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import class_name, logits_of

TopK = Sequence[tuple[int, str | None, float]]


@dataclass(frozen=True)
class RunView:
    """The parts of one run a comparison looks at (first sample, no batch dim).

    Attributes:
        activations: Layer → main output of its first call.
        gradients: Layer → gradient wrt that output.
        cams: Layer → CAM map (H, W).
        probs: (K,) class probabilities, or None (then only ``topk`` is known).
        topk: ``(class_index, class_name or None, prob)``, best first.
        input_grad: (C, H, W) input gradient, or None.
        label: What this run was (e.g. "car_road.png", "layer2 grad ×2").
    """

    activations: Mapping[str, np.ndarray] = field(default_factory=dict)
    gradients: Mapping[str, np.ndarray] = field(default_factory=dict)
    cams: Mapping[str, np.ndarray] = field(default_factory=dict)
    probs: np.ndarray | None = None
    topk: TopK = ()
    input_grad: np.ndarray | None = None
    label: str = ""

    @classmethod
    def from_snapshot(cls, snap, label: str = "") -> RunView:
        """From a :class:`core.display.snapshot.Snapshot` (first call of each layer)."""
        acts, grads = {}, {}
        for name, calls in snap.layers.items():
            if calls:
                acts[name] = calls[0].activation
                if calls[0].gradient is not None:
                    grads[name] = calls[0].gradient
        return cls(
            acts, grads, dict(snap.cams), snap.probs, list(snap.topk), snap.input_grad, label
        )

    @classmethod
    def from_probe(cls, result, cams: Mapping[str, np.ndarray] | None = None, label: str = ""):
        """From a ``ProbeResult`` (first sample, first call of each layer)."""

        def first(t):
            t = t.detach().float().cpu()
            return (t[0] if t.dim() >= 2 else t).numpy()

        acts, grads = {}, {}
        for name, recs in result.records.items():
            if recs and recs[0].output is not None:
                acts[name] = first(recs[0].output)
                if recs[0].grad_output is not None:
                    grads[name] = first(recs[0].grad_output)
        ig = first(result.input_grad) if result.input_grad is not None else None
        probs = result.probs[0].numpy()
        return cls(acts, grads, dict(cams or {}), probs, list(result.topk), ig, label)


@dataclass(frozen=True)
class ClassDelta:
    """One class's probability before (baseline) and after (run)."""

    index: int
    name: str | None
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class Comparison:
    """``run - baseline`` for everything both runs have.

    Attributes:
        activations: Layer → activation difference (same shape as each activation).
        gradients: Layer → gradient difference.
        cams: Layer → CAM difference in [-1, 1].
        input_grad: Input gradient difference, or None.
        classes: The union of both top-k lists: run's order first, then the baseline's.
        skipped: ``"kind:layer"`` → why no difference was made (missing, shape changed).
        baseline_label: ``RunView.label`` of the baseline.
        run_label: ``RunView.label`` of the run.
    """

    activations: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]
    cams: dict[str, np.ndarray]
    input_grad: np.ndarray | None
    classes: list[ClassDelta]
    skipped: dict[str, str]
    baseline_label: str = ""
    run_label: str = ""

    def delta(self, index: int) -> float | None:
        """Probability change of class ``index`` (None if it was in neither top-k)."""
        for c in self.classes:
            if c.index == index:
                return c.delta
        return None

    def biggest(self, n: int = 5) -> list[ClassDelta]:
        """The ``n`` classes whose probability moved most (by absolute change)."""
        return sorted(self.classes, key=lambda c: -abs(c.delta))[:n]


def _diff_maps(base, run, kind: str, skipped: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for name in [*base, *[n for n in run if n not in base]]:
        a, b = base.get(name), run.get(name)
        if a is None or b is None:
            skipped[f"{kind}:{name}"] = "only in the " + ("run" if a is None else "baseline")
            continue
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        if a.shape != b.shape:
            skipped[f"{kind}:{name}"] = f"shape changed from {a.shape} to {b.shape}"
            continue
        out[name] = b - a
    return out


def top_deltas(
    base_probs: np.ndarray | None,
    run_probs: np.ndarray | None,
    base_topk: TopK = (),
    run_topk: TopK = (),
) -> list[ClassDelta]:
    """Before / after / delta for the union of both top-k lists (run's order first).

    With full probability vectors the values are exact for every class; with top-k lists
    only, a class missing from one list is taken as at most that list's last probability
    and reported as 0.0 there (the GUI should show it as "< last").
    """
    names: dict[int, str | None] = {}
    for i, n, _ in [*run_topk, *base_topk]:
        names.setdefault(int(i), n)
    before = {int(i): float(p) for i, _, p in base_topk}
    after = {int(i): float(p) for i, _, p in run_topk}
    out = []
    for i, n in names.items():
        b = float(base_probs[i]) if base_probs is not None else before.get(i, 0.0)
        a = float(run_probs[i]) if run_probs is not None else after.get(i, 0.0)
        out.append(ClassDelta(i, n, b, a))
    return out


def compare_runs(baseline: RunView, run: RunView) -> Comparison:
    """Differences ``run - baseline`` for layers, CAMs, input gradient and top-k classes."""
    skipped: dict[str, str] = {}
    acts = _diff_maps(baseline.activations, run.activations, "activation", skipped)
    grads = _diff_maps(baseline.gradients, run.gradients, "gradient", skipped)
    cams = _diff_maps(baseline.cams, run.cams, "cam", skipped)
    ig = None
    if baseline.input_grad is not None and run.input_grad is not None:
        d = _diff_maps({"input": baseline.input_grad}, {"input": run.input_grad}, "grad", skipped)
        ig = d.get("input")
    probs_ok = (
        baseline.probs is not None
        and run.probs is not None
        and baseline.probs.shape == run.probs.shape
    )
    classes = top_deltas(
        baseline.probs if probs_ok else None,
        run.probs if probs_ok else None,
        baseline.topk,
        run.topk,
    )
    return Comparison(acts, grads, cams, ig, classes, skipped, baseline.label, run.label)


@dataclass(frozen=True)
class BeforeAfter:
    """Predictions for an image before and after an edit.

    Attributes:
        before: Top-k of the original image.
        after: Top-k of the edited image.
        probs_before: (K,) probabilities of the original.
        probs_after: (K,) probabilities of the edited image.
        classes: Deltas for the union of both top-k lists.
    """

    before: list[tuple[int, str | None, float]]
    after: list[tuple[int, str | None, float]]
    probs_before: np.ndarray
    probs_after: np.ndarray
    classes: list[ClassDelta]


def before_after(
    model: nn.Module,
    x_before: torch.Tensor,
    x_after: torch.Tensor,
    *,
    k: int = 5,
    class_names: Sequence[str] | None = None,
) -> BeforeAfter:
    """Top-k of two inputs (one forward each, no gradients) and the per-class change."""
    device = model_device(model)
    probs = []
    with eval_mode(model), torch.no_grad():
        for x in (x_before, x_after):
            logits = logits_of(forward_model(model, x.detach()[:1].to(device)))
            probs.append(torch.softmax(logits.float().reshape(1, -1), 1)[0].cpu().numpy())

    def topk(p: np.ndarray):
        idx = np.argsort(-p, kind="stable")[:k]
        return [(int(i), class_name(int(i), class_names), float(p[i])) for i in idx]

    tb, ta = topk(probs[0]), topk(probs[1])
    return BeforeAfter(tb, ta, probs[0], probs[1], top_deltas(probs[0], probs[1], tb, ta))
