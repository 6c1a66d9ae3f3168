"""Trust: score every method's map for one image and target, next to maps that know nothing.

The job behind ``python main.py evaluate`` and the app's Trust dock. Each method's map (a CAM
on one layer, an attribution, or a baseline) gets the faithfulness metrics of
``core.methods.metrics``; the methods are ranked by :data:`SCORE`, and any method that does not
beat the ``random`` and ``sobel`` baselines on this image is named.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hookscope.core.engine.probe import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import class_name, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, preprocess, to_display, to_tensor
from hookscope.core.methods import metrics
from hookscope.core.methods.attribution import ATTRIBUTION_METHODS, attribute
from hookscope.core.methods.cam import CAM_METHODS, compute_cam
from hookscope.core.reporting import Reporter

DEFAULT_METHODS = (
    "gradcam",
    "gradcam++",
    "xgradcam",
    "hirescam",
    "layercam",
    "eigencam",
    *metrics.BASELINES,
)
"""The one-pass CAMs and the baselines; ScoreCAM, AblationCAM and attributions on request."""

SCORE = "insertion − deletion"
"""How methods are ranked: RISE insertion AUC minus deletion AUC (higher is more faithful).

Both use the same pixel order, so the score rewards a map whose top pixels are what the model
needs (insertion rises fast) and whose removal hurts it (deletion falls fast)."""

FIELDS = (
    "drop",
    "increase",
    "road_morf",
    "road_lerf",
    "road_combined",
    "deletion",
    "insertion",
    "pointing",
    "energy",
)
"""The metric fields of ``evaluate --json``, in order."""

BETTER = {
    "drop": "lower",
    "increase": "higher",
    "road_morf": "lower",
    "road_lerf": "higher",
    "road_combined": "higher",
    "deletion": "lower",
    "insertion": "higher",
    "pointing": "higher",
    "energy": "higher",
    "score": "higher",
}
"""Which direction is better for each metric (the table's header says it)."""


@dataclass(frozen=True)
class MethodScores:
    """All metrics of one method's map (numpy and plain numbers only).

    Attributes:
        name: Method name (a CAM method, an attribution or a baseline).
        drop, increase: Average drop / increase in confidence with ``x`` times the map.
        road_morf, road_lerf: Mean ROAD over the percentiles, p(imputed) − p(x).
        road_combined: (road_lerf − road_morf) / 2.
        deletion, insertion: RISE areas under the curves.
        pointing, energy: Pointing game and energy in the mask (None without a mask).
        deletion_curve, insertion_curve: p at each step (steps + 1 points).
        morf_curve, lerf_curve: ROAD at each percentile.
        baseline: True for ``random`` and ``sobel``.
        seconds: Wall time for the map and its metrics.
    """

    name: str
    drop: float
    increase: float
    road_morf: float
    road_lerf: float
    road_combined: float
    deletion: float
    insertion: float
    pointing: bool | None
    energy: float | None
    deletion_curve: np.ndarray
    insertion_curve: np.ndarray
    morf_curve: np.ndarray
    lerf_curve: np.ndarray
    baseline: bool = False
    seconds: float = 0.0

    @property
    def score(self) -> float:
        """:data:`SCORE`: insertion − deletion."""
        return self.insertion - self.deletion

    def as_dict(self) -> dict:
        """The metric fields of ``evaluate --json`` (pointing and energy None without a mask)."""
        return {k: getattr(self, k) for k in FIELDS}


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
            text = (
                f"Most faithful here: {best} ({SCORE} = {m.score:+.3f}: deletion "
                f"{m.deletion:.3f}, insertion {m.insertion:.3f})."
            )
            failing = [
                k for k, v in self.methods.items() if not v.baseline and self.baselines_beating(k)
            ]
            if failing:
                text += f" Not better than a baseline: {', '.join(failing)}."
        return text

    def to_json(self) -> dict:
        """``{"target": …, "methods": {name: {"drop": …, …, "energy": …}}}``."""
        return {
            "target": self.target,
            "methods": {k: m.as_dict() for k, m in self.methods.items()},
        }

    def columns(self) -> list[str]:
        """Table columns: the metrics measured (pointing and energy only with a mask), score."""
        cols = [k for k in FIELDS if self.has_mask or k not in ("pointing", "energy")]
        return [*cols, "score"]

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
        body = [[r[0], *[_cell(v, 4) for v in r[1:]]] for r in self.rows()]
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
    """Every name ``evaluate`` accepts: CAM methods, attributions, baselines."""
    return [*CAM_METHODS, *ATTRIBUTION_METHODS, *metrics.BASELINES]


def load_mask(path, spec) -> np.ndarray:
    """A mask image fitted exactly like the image (resize, centre crop), as (H, W) bool.

    Raises:
        HookScopeError: The file cannot be read.
    """
    img = preprocess(load_image(path), spec).convert("L")
    return np.asarray(img, dtype=np.uint8) >= 128


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

    CAMs come from ``layer``; attributions are summed over channels as magnitudes; baselines
    are :func:`~core.methods.metrics.random_map` (seeded) and
    :func:`~core.methods.metrics.sobel_map` of the image the model sees.
    """
    size = tuple(x.shape[-2:])
    if name == "random":
        return metrics.random_map(size, seed)
    if name == "sobel":
        if spec is None:
            raise HookScopeError("The sobel baseline needs the input spec to see the image.")
        return metrics.sobel_map(to_display(x, spec))
    if name in CAM_METHODS:
        if not layer:
            raise HookScopeError(f"{name} needs a layer: pass --layer, e.g. layer4.")
        return compute_cam(model, x, [layer], name, target, reporter=reporter)[layer]
    if name in ATTRIBUTION_METHODS:
        out = attribute(name, model, x, target, spec=spec, layer=layer, reporter=reporter)
        a = np.abs(np.asarray(out, dtype=np.float32))
        a = a.sum(0) if a.ndim == 3 else a
        lo, hi = float(a.min()), float(a.max())
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    raise HookScopeError(f"Unknown method '{name}': use one of {', '.join(method_names())}.")


def evaluate_job(
    reporter: Reporter,
    loaded,
    image,
    layer: str | None,
    methods: Sequence[str] = DEFAULT_METHODS,
    target=None,
    mask=None,
    *,
    spec=None,
    steps: int = metrics.DEFAULT_STEPS,
    percentiles: Sequence[int] = metrics.PERCENTILES,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = metrics.BATCH_SIZE,
) -> TrustReport:
    """Score each method's map on one image (in the worker, or the CLI).

    Args:
        reporter: Progress across all methods and metrics; cancel between batches.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        layer: The CAM layer.
        methods: Names from :func:`method_names`.
        target: None (top-1), class index or name.
        mask: Ground-truth region: a path, a PIL image (fitted like the image) or an (H, W)
            array at the model's input size; None skips pointing game and energy.
        spec: Input spec overriding ``loaded.input_spec``.
        steps: Deletion / insertion steps.
        percentiles: ROAD percentiles.
        noise: ROAD imputation noise.
        seed: Seed of the ROAD noise and of the random baseline.
        batch_size: Images per forward pass.

    Raises:
        HookScopeError: Unknown method, a target that is not a class, bad mask.
        Cancelled: When the reporter was cancelled.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise HookScopeError("Pick at least one method to evaluate.")
    known = set(method_names())
    for name in methods:
        if name not in known:
            raise HookScopeError(
                f"Unknown method '{name}': use one of {', '.join(method_names())}."
            )
    spec = spec or loaded.input_spec
    model = loaded.model
    x = to_tensor(image, spec)
    with torch.no_grad(), eval_mode(model):
        output = forward_model(model, x.to(model_device(model)))
    logits = logits_of(output)
    tgt = resolve_target(target, logits, loaded.class_names)
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
    curve_batches = -(-2 * max(steps - 1, 0) // max(batch_size, 1))
    per = [1.0, 1.0, 2 * len(percentiles) + 1.0, max(curve_batches, 1)]
    total = float(len(methods) * sum(per) + 1)
    sc = metrics.Scorer(model, x, tgt, batch_size=batch_size, reporter=reporter)
    reporter.progress(0, int(total), "Scoring the input")
    base_prob = sc.base["x"]
    results: dict[str, MethodScores] = {}
    maps: dict[str, np.ndarray] = {}
    notes: list[str] = []
    at = 1.0
    for name in methods:
        t0 = time.perf_counter()

        def stage(i, _at=at, _name=name):
            return _Stage(reporter, _at + sum(per[:i]), per[i], total, f"Scoring {_name}")

        stage(0).progress(0, 1)
        m = saliency_map(name, model, x, layer, tgt, spec=spec, seed=seed, reporter=stage(0))
        m = np.clip(np.asarray(m, dtype=np.float32), 0.0, 1.0)
        if not m.any():
            notes.append(f"{name}'s map is all zero, so its metrics measure nothing.")
        maps[name] = m
        change = metrics.confidence_change(model, x, m, tgt, scorer=sc)
        stage(1).progress(1, 1)
        road = metrics.road_scores(
            model, x, m, tgt, percentiles, noise, seed, scorer=sc, reporter=stage(2)
        )
        curves = metrics.causal_curves(model, x, m, tgt, steps, scorer=sc, reporter=stage(3))
        results[name] = MethodScores(
            name=name,
            drop=max(0.0, -change),
            increase=1.0 if change > 0 else 0.0,
            road_morf=float(np.mean(road.morf)),
            road_lerf=float(np.mean(road.lerf)),
            road_combined=road.combined,
            deletion=curves.deletion_auc,
            insertion=curves.insertion_auc,
            pointing=metrics.pointing_game(m, region) if region is not None else None,
            energy=metrics.energy_in_mask(m, region) if region is not None else None,
            deletion_curve=curves.deletion,
            insertion_curve=curves.insertion,
            morf_curve=road.morf,
            lerf_curve=road.lerf,
            baseline=name in metrics.BASELINES,
            seconds=time.perf_counter() - t0,
        )
        at += sum(per)
    reporter.progress(int(total), int(total), "Done")
    return TrustReport(
        target=tgt,
        target_name=class_name(tgt, loaded.class_names),
        base_prob=base_prob,
        layer=layer or "",
        methods=results,
        maps=maps,
        steps=steps,
        percentiles=tuple(percentiles),
        noise=noise,
        has_mask=region is not None,
        notes=tuple(notes),
    )


def _region(mask, spec, size) -> np.ndarray | None:
    if mask is None:
        return None
    if isinstance(mask, np.ndarray):
        m = mask
    elif hasattr(mask, "convert"):  # a PIL image: fit it like the image
        m = np.asarray(preprocess(mask, spec).convert("L"), dtype=np.uint8) >= 128
    else:
        m = load_mask(mask, spec)
    if m.shape != size:
        raise HookScopeError(
            f"The mask is {m.shape[0]}×{m.shape[1]} but the model input is {size[0]}×{size[1]}."
        )
    if not m.any():
        raise HookScopeError("The mask is empty: mark the object in white on black.")
    return m.astype(bool) if m.dtype == bool else m > 0
