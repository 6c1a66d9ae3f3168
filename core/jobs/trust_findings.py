"""What a Trust table means in words, and how many digits it needs to show its ranking.

Policy for every view of ``core.jobs.evaluate.TrustReport`` (the app's Trust dock, the CLI):

- A curve family (deletion, insertion, ROAD MoRF / LeRF) is *flat* when p(target) moves less
  than :data:`FLAT` along it for the methods scored. Then the metric does not depend on which
  pixels the maps point at, and that is the finding to say in words (on the shortcut demo the
  blurred sky alone is already "airplane", so every insertion curve is 0.966 from start to end).
- A column gets as many decimals as it takes for its distinct values to read differently (at
  least :data:`MIN_DECIMALS`, at most :data:`MAX_DECIMALS`), and a value that rounds to zero
  never reads "−0.000".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FLAT = 0.01
"""A curve is flat when p(target) moves less than this along it (one point of probability)."""

MIN_DECIMALS = 3
MAX_DECIMALS = 6

CURVES = {
    "deletion": ("deletion_curve", "deletion"),
    "insertion": ("insertion_curve", "insertion"),
    "road_morf": ("morf_curve", "ROAD MoRF"),
    "road_lerf": ("lerf_curve", "ROAD LeRF"),
}
"""Metric → (MethodScores curve attribute, words for it)."""


@dataclass(frozen=True)
class FlatCurves:
    """One curve family that is flat for some methods.

    Attributes:
        metric: ``deletion``, ``insertion``, ``road_morf`` or ``road_lerf``.
        methods: The methods whose curve is flat, in table order.
        total: How many methods were scored.
        span: The largest movement of p along one of those curves.
        lo, hi: The range of the values on those curves.
    """

    metric: str
    methods: tuple[str, ...]
    total: int
    span: float
    lo: float
    hi: float

    @property
    def everywhere(self) -> bool:
        """True when every method's curve is flat (the metric cannot rank any of them)."""
        return len(self.methods) == self.total


def flat_curves(methods: dict, tolerance: float = FLAT) -> list[FlatCurves]:
    """The curve families that stay within ``tolerance`` for at least one method.

    Args:
        methods: Name → ``MethodScores`` (anything with the curve attributes of :data:`CURVES`).
        tolerance: Largest movement of p that still counts as flat.
    """
    out = []
    for metric, (attr, _) in CURVES.items():
        flat, spans, values = [], [], []
        for name, m in methods.items():
            c = np.asarray(getattr(m, attr, np.zeros(0)), dtype=np.float64)
            if c.size < 2 or not np.isfinite(c).all():
                continue
            span = float(c.max() - c.min())
            if span < tolerance:
                flat.append(name)
                spans.append(span)
                values.append(c)
        if flat:
            v = np.concatenate(values)
            out.append(
                FlatCurves(
                    metric, tuple(flat), len(methods), max(spans), float(v.min()), float(v.max())
                )
            )
    return out


def round_up(x: float) -> str:
    """``x`` rounded up to two significant digits (a bound to quote: 0.00101 → "0.0011")."""
    if x <= 0:
        return "0"
    e = math.floor(math.log10(x)) - 1
    v = math.ceil(x / 10**e - 1e-9) * 10**e
    return f"{v:.{max(0, -e)}f}"


def why(metric: str, target: str, base: dict) -> str:
    """Why a flat family says nothing about the maps (the reference image that explains it)."""
    if metric == "insertion" and "blurred" in base:
        return (
            f"the blurred image alone gives p({target}) = {base['blurred']:.3f} (a coarse cue "
            "such as colour, not the detail the maps point at)"
        )
    if metric == "deletion" and "zeros" in base:
        return f"even the image with every pixel removed gives p({target}) = {base['zeros']:.3f}"
    return "filling them from their neighbours keeps what the model reads"


ACTION = {
    "deletion": "removed",
    "insertion": "inserted into the blurred image",
    "road_morf": "filled from their neighbours, most relevant first",
    "road_lerf": "filled from their neighbours, least relevant first",
}


def flat_sentence(f: FlatCurves, target: str, base: dict) -> str:
    """One finding on deletion or insertion: how little p moves along the curves, and why."""
    words = CURVES[f.metric][1]
    who = "every method" if f.everywhere else ", ".join(f.methods)
    text = (
        f"The score hardly changes when pixels are {ACTION[f.metric]} ({words} curves flat "
        f"within {round_up(f.span)} for {who}, p({target}) {_plain(f.lo, 4)} to "
        f"{_plain(f.hi, 4)}): {why(f.metric, target, base)}"
    )
    if f.everywhere:
        text += f"; {words} cannot rank these maps"
    return text + "."


def road_sentence(flats: list[FlatCurves], first: bool) -> str:
    """ROAD's flat orders in one sentence (its curves are changes of p, so no p range)."""
    parts = [
        f"{CURVES[f.metric][1].split()[-1]} within {round_up(f.span)} for "
        + ("every method" if f.everywhere else f"{len(f.methods)} of {f.total} methods")
        for f in flats
    ]
    lead = (
        "The score hardly changes when pixels are filled from their neighbours (ROAD "
        if first
        else "ROAD hardly changes either ("
    )
    return f"{lead}{', '.join(parts)})."


def findings(methods: dict, target: str, base: dict) -> list[str]:
    """Sentences on the flat curve families of a Trust table (empty when none is flat).

    Deletion and insertion each get a sentence, ROAD's two orders share one. When insertion is
    flat for every method but deletion is not, the ranking by insertion − deletion rests on
    deletion alone: the last sentence says so.
    """
    flats = flat_curves(methods)
    rise = [f for f in flats if f.metric in ("deletion", "insertion")]
    road = [f for f in flats if f not in rise]
    out = [flat_sentence(f, target, base) for f in rise]
    if road:
        out.append(road_sentence(road, first=not out))
    every = {f.metric for f in rise if f.everywhere}
    if len(methods) > 1 and len(every) == 1:
        alone = "deletion" if "insertion" in every else "insertion"
        out.append(f"The ranking rests on {alone} alone.")
    return out


def decimals(values: Iterable, least: int = MIN_DECIMALS, most: int = MAX_DECIMALS) -> int:
    """Fewest decimals (``least`` to ``most``) at which a column's distinct values read apart."""
    nums = sorted({float(v) for v in values if _is_number(v) and math.isfinite(float(v))})
    for d in range(least, most + 1):
        texts = [_plain(v, d) for v in nums]
        if len(set(texts)) == len(texts):
            return d
    return most


def _plain(v: float, d: int) -> str:
    """``v`` with ``d`` decimals, with no minus sign on a value that rounds to zero."""
    text = f"{float(v):.{d}f}"
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def cell(v, d: int) -> str:
    """One table cell: "" for None, yes / no for a flag, else ``d`` decimals (no "−0.000")."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    return _plain(v, d)


def column_decimals(rows: Sequence[Sequence], columns: Sequence[str]) -> dict[str, int]:
    """Decimals per column for rows of values (one list per method, in ``columns`` order)."""
    return {c: decimals(r[i] for r in rows) for i, c in enumerate(columns)}


def _is_number(v) -> bool:
    return v is not None and not isinstance(v, (bool, np.bool_, str))
