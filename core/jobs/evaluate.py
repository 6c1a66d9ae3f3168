"""Trust: score every method's map for one image and target, next to maps that know nothing.

The job behind ``python main.py evaluate`` and the app's Trust dock. Each method's map (a CAM
on one layer, an attribution, or a baseline) gets the faithfulness metrics of
``core.methods.metrics``; the methods are ranked by :data:`SCORE`, and any method that does not
beat the ``random`` and ``sobel`` baselines on this image is named.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import class_name, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs import trust_findings
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.masks import load_mask
from hookscope.core.methods import metrics
from hookscope.core.methods.explainers import (
    BASELINE,
    CAM,
    EXPLAINERS,
    TRANSFORMER,
    canonical,
    explain,
    get,
)
from hookscope.core.reporting import Reporter, per_batch

DEFAULT_METHODS = tuple(
    k for k, r in EXPLAINERS.items() if (r.kind == CAM and not r.slow) or r.kind == BASELINE
)
"""The one-pass CAMs and the baselines; ScoreCAM, AblationCAM and attributions on request."""


def default_methods(transformer: bool) -> tuple[str, ...]:
    """Methods scored when none are named: :data:`DEFAULT_METHODS`, and on a model whose
    attention can be read (``transformer``) the transformer methods too (one pass each)."""
    extra = [k for k, r in EXPLAINERS.items() if r.kind == TRANSFORMER] if transformer else []
    return (*DEFAULT_METHODS, *extra)


SCORE = "insertion − deletion"
"""How methods are ranked: RISE insertion AUC minus deletion AUC (higher is more faithful).

Both use the same pixel order, so the score rewards a map whose top pixels are what the model
needs (insertion rises fast) and whose removal hurts it (deletion falls fast)."""

FIELDS = tuple(metrics.METRICS)
"""The metric fields of ``evaluate --json``, in order (``core.methods.metrics.METRICS``)."""

BETTER = {
    **{k: m.better for k, m in metrics.METRICS.items()},
    metrics.SCORE_METRIC.name: metrics.SCORE_METRIC.better,
}
"""Which direction is better for each metric (the table's header says it)."""


@dataclass(frozen=True)
class EvaluateSettings:
    """What ``evaluate`` scores and how: frozen, validated, plain data for sessions.

    Attributes:
        methods: Registry names (``core.methods.explainers``), in table order.
        layer: The CAM layer (None: only methods without a layer can run).
        target: None (top-1), class index or name.
        steps: Deletion / insertion steps.
        percentiles: ROAD percentiles.
        noise: ROAD imputation noise.
        seed: Seed of the ROAD noise and of the random baseline.
        batch_size: Images per forward pass.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    layer: str | None = None
    target: int | str | None = None
    steps: int = metrics.DEFAULT_STEPS
    percentiles: tuple[int, ...] = metrics.PERCENTILES
    noise: float = 0.01
    seed: int = 0
    batch_size: int = metrics.BATCH_SIZE

    def __post_init__(self):
        methods = tuple(dict.fromkeys(canonical(m) for m in self.methods))
        if not methods:
            raise HookScopeError("Pick at least one method to evaluate.")
        for name in methods:
            rec = get(name)  # one sentence for an unknown name
            if rec.needs_layer and rec.kind == CAM and not self.layer:
                raise HookScopeError(f"{name} needs a layer: pass --layer, e.g. layer4.")
        if int(self.steps) < 2:
            raise HookScopeError(f"steps must be at least 2, not {self.steps}.")
        pcts = tuple(int(p) for p in self.percentiles)
        if not pcts or any(not 0 < p < 100 for p in pcts):
            raise HookScopeError("ROAD percentiles must lie strictly between 0 and 100.")
        if not 0 <= float(self.noise) < 1:
            raise HookScopeError(f"noise must be in [0, 1), not {self.noise}.")
        if int(self.batch_size) < 1:
            raise HookScopeError(f"batch_size must be at least 1, not {self.batch_size}.")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "percentiles", pcts)
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "noise", float(self.noise))

    def to_dict(self) -> dict:
        """Plain data for JSON (sessions, resume identity)."""
        return {
            "methods": list(self.methods),
            "layer": self.layer,
            "target": self.target,
            "steps": self.steps,
            "percentiles": list(self.percentiles),
            "noise": self.noise,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EvaluateSettings:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys fail."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise HookScopeError(f"Unknown evaluate settings: {', '.join(unknown)}.")
        d = dict(d)
        for key in ("methods", "percentiles"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True)
class MethodScores:
    """All metrics of one method's map (numpy and plain numbers only).

    Every metric of ``core.methods.metrics.METRICS`` is an attribute (``scores.deletion``),
    read from :attr:`values`; pointing and energy are None without a mask.

    Attributes:
        name: Method name (a CAM method, an attribution or a baseline).
        values: Metric name → value.
        deletion_curve, insertion_curve: p at each step (steps + 1 points).
        morf_curve, lerf_curve: ROAD at each percentile.
        baseline: True for ``random`` and ``sobel``.
        seconds: Wall time for the map and its metrics.
    """

    name: str
    values: dict
    deletion_curve: np.ndarray
    insertion_curve: np.ndarray
    morf_curve: np.ndarray
    lerf_curve: np.ndarray
    baseline: bool = False
    seconds: float = 0.0

    def __getattr__(self, key):
        values = self.__dict__.get("values") or {}
        if key in values:
            return values[key]
        raise AttributeError(key)

    @property
    def score(self) -> float:
        """:data:`SCORE`: insertion − deletion."""
        return self.insertion - self.deletion

    def as_dict(self) -> dict:
        """The metric fields of ``evaluate --json`` (pointing and energy None without a mask)."""
        return {k: self.values.get(k) for k in FIELDS}


@dataclass(frozen=True)
class TrustReport:
    """The Trust table for one image, target and layer.

    Attributes:
        target: Explained class index.
        target_name: Its name, if known.
        base_prob: p(target) on the unchanged input.
        layer: CAM layer.
        methods: Method name → :class:`MethodScores`, in the order asked for.
        maps: Method name → the scored (H, W) map in [0, 1].
        steps, percentiles, noise: The metric settings.
        has_mask: Whether pointing game and energy were measured.
        notes: Things to know (e.g. a method whose map was all zero).
        base: p(target) of the input, its blurred copy and all zeros (``x``, ``blurred``,
            ``zeros``): the start and end of the deletion / insertion curves.
    """

    target: int
    target_name: str | None
    base_prob: float
    layer: str
    methods: dict[str, MethodScores]
    maps: dict[str, np.ndarray] = field(repr=False)
    steps: int = metrics.DEFAULT_STEPS
    percentiles: tuple[int, ...] = metrics.PERCENTILES
    noise: float = 0.01
    has_mask: bool = False
    notes: tuple[str, ...] = ()
    base: dict = field(default_factory=dict)

    def ranking(self) -> list[str]:
        """Method names, best :data:`SCORE` first."""
        return sorted(self.methods, key=lambda k: -self.methods[k].score)

    def best(self) -> str | None:
        """The best method that is not a baseline (None if only baselines ran)."""
        return next((k for k in self.ranking() if not self.methods[k].baseline), None)

    def baselines_beating(self, name: str) -> list[str]:
        """Baselines whose score is at least that of ``name`` (empty: it beats them all)."""
        s = self.methods[name].score
        return [k for k, m in self.methods.items() if m.baseline and k != name and m.score >= s]

    def verdict(self, name: str) -> str:
        """One sentence on ``name``: does it beat the baselines on this image?"""
        m = self.methods[name]
        if m.baseline:
            return f"{name} is a baseline (a map that knows nothing about the model)."
        worse = self.baselines_beating(name)
        if worse:
            return (
                f"{name} does not beat {' or '.join(worse)} on this image "
                f"({SCORE} {m.score:+.3f}), so do not trust its map here."
            )
        if not any(x.baseline for x in self.methods.values()):
            return f"{name}: {SCORE} {m.score:+.3f} (no baseline ran to compare with)."
        return f"{name} beats the baselines ({SCORE} {m.score:+.3f})."

    def summary(self) -> str:
        """The best method and the methods that fail the baselines, in words."""
        best = self.best()
        if best is None:
            return "Only baselines ran: add a method to compare with them."
        m = self.methods[best]
        worse = self.baselines_beating(best)
        if worse:
            text = (
                f"No method beats the {' and '.join(worse)} baseline on this image; the best, "
                f"{best}, scores {SCORE} = {m.score:+.3f}, so none of these maps is trustworthy."
            )
        else:
            d = self.decimals()
            text = (
                f"Most faithful here: {best} ({SCORE} = {self.cell(best, 'score', d)}: deletion "
                f"{self.cell(best, 'deletion', d)}, insertion {self.cell(best, 'insertion', d)})."
            )
            failing = [
                k for k, v in self.methods.items() if not v.baseline and self.baselines_beating(k)
            ]
            if failing:
                text += f" Not better than a baseline: {', '.join(failing)}."
        return text

    def findings(self) -> list[str]:
        """Flat curves in words (``core.jobs.trust_findings``): what the metrics cannot see."""
        target = self.target_name or str(self.target)
        return trust_findings.findings(self.methods, target, self.base)

    def decimals(self) -> dict[str, int]:
        """Decimals per column (and ``score``): enough for distinct values to read apart."""
        cols = [*FIELDS, metrics.SCORE_METRIC.name]
        ms = self.methods.values()
        rows = [[m.score if c == "score" else m.values.get(c) for c in cols] for m in ms]
        return trust_findings.column_decimals(rows, cols)

    def cell(self, name: str, column: str, digits: dict[str, int] | None = None) -> str:
        """One table cell as text, with the column's :meth:`decimals` (no "−0.000")."""
        m = self.methods[name]
        v = m.score if column == "score" else m.values.get(column)
        return trust_findings.cell(v, (digits or self.decimals())[column])

    def to_json(self) -> dict:
        """``{"target": …, "methods": {name: {"drop": …, …, "energy": …}}}``."""
        return {
            "target": self.target,
            "methods": {k: m.as_dict() for k, m in self.methods.items()},
        }

    def columns(self) -> list[str]:
        """Table columns: the metrics measured (pointing and energy only with a mask), score."""
        cols = [k for k in FIELDS if self.has_mask or not metrics.METRICS[k].needs_mask]
        return [*cols, metrics.SCORE_METRIC.name]

    def rows(self) -> list[list]:
        """Table rows in ranking order: [name, value per column…]."""
        cols = self.columns()
        out = []
        for k in self.ranking():
            m = self.methods[k]
            out.append([k, *[m.score if c == "score" else getattr(m, c) for c in cols]])
        return out

    def to_csv(self) -> str:
        """The table as CSV (ranking order, a header line first)."""
        lines = [",".join(["method", *self.columns(), "baseline"])]
        for row in self.rows():
            cells = [row[0]] + [_cell(v) for v in row[1:]]
            cells.append("1" if self.methods[row[0]].baseline else "0")
            lines.append(",".join(cells))
        return "\n".join(lines) + "\n"

    def table(self) -> str:
        """The table as aligned text, best first, with the direction of each column."""
        cols = self.columns()
        head = ["method", *cols]
        arrows = ["", *("↓" if BETTER[c] == "lower" else "↑" for c in cols)]
        digits = self.decimals()
        body = [[k, *[self.cell(k, c, digits) for c in cols]] for k in self.ranking()]
        for r, name in zip(body, self.ranking()):
            if self.methods[name].baseline:
                r[0] += " (baseline)"
        widths = [max(len(str(row[i])) for row in [head, arrows, *body]) for i in range(len(head))]

        def fmt(row):
            first = f"{row[0]:<{widths[0]}}"
            return "  ".join([first, *(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:]))])

        return "\n".join(fmt(r) for r in [head, arrows, *body])


def _cell(v, digits: int = 6) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    return f"{float(v):.{digits}f}"


class _Stage(Reporter):
    """A reporter for one part of a job: local progress mapped into the job's range."""

    def __init__(self, parent: Reporter, start: float, width: float, total: float, label: str):
        super().__init__()
        self.parent, self.start, self.width, self.total = parent, start, width, total
        self.label = label

    @property
    def cancelled(self) -> bool:
        return self.parent.cancelled

    def cancel(self) -> None:
        self.parent.cancel()

    def check(self) -> None:
        self.parent.check()

    def progress(self, done: int, total: int, message: str = "") -> None:
        frac = done / total if total else 1.0
        at = int(round(self.start + self.width * min(frac, 1.0)))
        # One message per method (not per step): the CLI's bar restarts on a new message.
        self.parent.progress(at, int(self.total), self.label)


def method_names() -> list[str]:
    """Every name ``evaluate`` accepts: the explainer registry's (CAMs, attributions, baselines)."""
    return list(EXPLAINERS)


def saliency_map(
    name: str,
    model,
    x: torch.Tensor,
    layer: str | None,
    target: int,
    *,
    spec=None,
    seed: int = 0,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """The (H, W) map in [0, 1] that ``name`` gives for ``x`` and ``target``.

    ``core.methods.explainers.explain``'s map (its module docstring has the one rule for
    attributions); the seed goes to the methods that take one (the random baseline).
    """
    rec = get(name)
    params = {"seed": seed} if any(p.name == "seed" for p in rec.params) else {}
    layers = [layer] if layer and rec.needs_layer else None
    e = explain(
        model, x, name, layers=layers, target=target, input_spec=spec, reporter=reporter, **params
    )
    return e.map


@per_batch
def evaluate_job(
    reporter: Reporter,
    loaded,
    image,
    settings: EvaluateSettings,
    mask=None,
    *,
    spec=None,
) -> TrustReport:
    """Score each method's map on one image (in the worker, or the CLI).

    Each method's scores are streamed as they end (``reporter.partial`` gets the
    :class:`TrustReport` of the methods so far); model work runs in ``reporter.batch()``
    blocks (one map, one scoring batch), so the app's clicks go in between.

    Args:
        reporter: Progress across all methods and metrics; cancel between batches.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        settings: Methods, layer, target and metric settings.
        mask: Ground-truth region: a path, a PIL image (fitted like the image) or an (H, W)
            array at the model's input size; None skips the metrics that need a mask.
        spec: Input spec overriding ``loaded.input_spec``.

    Raises:
        HookScopeError: A target that is not a class, bad mask.
        Cancelled: When the reporter was cancelled.
    """
    st = settings
    spec = spec or loaded.input_spec
    model = loaded.model
    x = to_tensor(image, spec)
    with reporter.batch(), torch.no_grad(), eval_mode(model):
        output = forward_model(model, x.to(model_device(model)))
    logits = logits_of(output)
    tgt = resolve_target(st.target, output, loaded.class_names, model=model, spec=spec)
    if not isinstance(tgt, int):
        raise HookScopeError(
            "The Trust metrics need a class target (softmax over class scores); this target "
            "is not a class index."
        )
    if logits.dim() != 2:
        raise HookScopeError(
            f"The Trust metrics need class scores of shape (N, K), not {tuple(logits.shape)}."
        )
    region = _region(mask, spec, tuple(x.shape[-2:]))

    # Progress units per method: its map, confidence, each ROAD imputation, each curve batch.
    curve_batches = -(-2 * max(st.steps - 1, 0) // max(st.batch_size, 1))
    per = [1.0, 1.0, 2 * len(st.percentiles) + 1.0, max(curve_batches, 1)]
    total = float(len(st.methods) * sum(per) + 1)
    sc = metrics.Scorer(model, x, tgt, batch_size=st.batch_size, reporter=reporter)
    reporter.progress(0, int(total), "Scoring the input")
    results: dict[str, MethodScores] = {}
    maps: dict[str, np.ndarray] = {}
    notes: list[str] = []
    at = 1.0
    for name in st.methods:
        t0 = time.perf_counter()

        def stage(i, _at=at, _name=name):
            return _Stage(reporter, _at + sum(per[:i]), per[i], total, f"Scoring {_name}")

        stage(0).progress(0, 1)
        with reporter.batch():
            m = saliency_map(
                name, model, x, st.layer, tgt, spec=spec, seed=st.seed, reporter=stage(0)
            )
        m = np.clip(np.asarray(m, dtype=np.float32), 0.0, 1.0)
        if not m.any():
            notes.append(f"{name}'s map is all zero, so its metrics measure nothing.")
        maps[name] = m
        results[name] = _score(name, model, x, m, tgt, st, sc, region, stage, t0)
        at += sum(per)
        reporter.partial(_report(loaded, st, tgt, sc, results, maps, region, notes))
    reporter.progress(int(total), int(total), "Done")
    return _report(loaded, st, tgt, sc, results, maps, region, notes)


def _report(loaded, st, tgt, sc, results, maps, region, notes) -> TrustReport:
    """The Trust table of the methods scored so far (copies: later methods do not change it)."""
    return TrustReport(
        target=tgt,
        target_name=class_name(tgt, loaded.class_names),
        base_prob=sc.base["x"],
        layer=st.layer or "",
        methods=dict(results),
        maps=dict(maps),
        steps=st.steps,
        percentiles=st.percentiles,
        noise=st.noise,
        has_mask=region is not None,
        notes=tuple(notes),
        base=dict(sc.base),
    )


def _score(name, model, x, m, tgt, st, sc, region, stage, t0) -> MethodScores:
    """Every metric of one map (``core.methods.metrics.METRICS``)."""
    change = metrics.confidence_change(model, x, m, tgt, scorer=sc)
    stage(1).progress(1, 1)
    road = metrics.road_scores(
        model, x, m, tgt, st.percentiles, st.noise, st.seed, scorer=sc, reporter=stage(2)
    )
    curves = metrics.causal_curves(model, x, m, tgt, st.steps, scorer=sc, reporter=stage(3))
    evidence = metrics.Evidence(change, road, curves, m, region)
    return MethodScores(
        name=name,
        values=metrics.measure(evidence),
        deletion_curve=curves.deletion,
        insertion_curve=curves.insertion,
        morf_curve=road.morf,
        lerf_curve=road.lerf,
        baseline=EXPLAINERS[name].kind == BASELINE,
        seconds=time.perf_counter() - t0,
    )


def _region(mask, spec, size) -> np.ndarray | None:
    if mask is None:
        return None
    # A file or PIL image gets the image's preprocessing (core.loading.masks: one convention).
    m = mask if isinstance(mask, np.ndarray) else load_mask(mask, spec)
    if m.shape != size:
        raise HookScopeError(
            f"The mask is {m.shape[0]}×{m.shape[1]} but the model input is {size[0]}×{size[1]}."
        )
    if not m.any():
        raise HookScopeError("The mask is empty: mark the object in white on black.")
    return m.astype(bool) if m.dtype == bool else m > 0
