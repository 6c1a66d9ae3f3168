"""Training health in words: rules over a watched run's statistics.

Each rule gives one sentence naming the layer and the step, and the hook the Hook code panel
would suggest (the reference tutorial scales a vanishing gradient with a tensor hook and
clips a large one). Thresholds are module constants so tests and docs quote the same numbers.
Several ranks are merged by their mean per step and layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hookscope.core.training.store import RunData, read_run

VANISH_RATIO = 1e-3
"""A layer's gradient norm below this share of the largest layer's is vanishing..."""
VANISH_RECORDS = 3
"""...when it stays so for at least this many records (all of them in a shorter run)."""
EXPLODE_GROWTH = 100.0
EXPLODE_RECORDS = 5
"""Exploding: within this many records the norm rises ``EXPLODE_GROWTH`` times above the
highest it had been before (or holds Inf / NaN)."""
DEAD_SHARE = 0.9
SATURATED_SHARE = 0.9
STEADY_RECORDS = 3
"""Dead / saturated units must hold for this many records, not one unlucky batch."""
UPDATE_LOW, UPDATE_HIGH = 1e-5, 1e-1
"""Median update-to-weight ratio outside these (two decades around 1e-3) is far from 1e-3."""


SEVERITY = ("loss", "exploding", "vanishing", "dead", "saturated", "update-ratio")
"""Rules in the order findings of one step are listed: the worst first."""


@dataclass(frozen=True)
class Finding:
    """One problem: which rule, where, from which step, in words, and the hook to try."""

    rule: str
    layer: str
    step: int
    sentence: str
    hook: str = ""


def diagnose(run: str | Path | RunData) -> list[Finding]:
    """Every finding of every rule, in step order."""
    data = run if isinstance(run, RunData) else read_run(run)
    grads = series(data, "param", "grad_norm", combine="norm")
    found = [
        *_loss_nan(data),
        *_vanishing(grads),
        *_exploding(data, grads),
        *_units(data, "act_zero", DEAD_SHARE, "dead"),
        *_units(data, "act_saturated", SATURATED_SHARE, "saturated"),
        *_update_ratio(data),
    ]
    order = {name: i for i, name in enumerate(data.info.get("layers", []))}
    return sorted(
        found,
        key=lambda f: (f.step, SEVERITY.index(f.rule), order.get(f.layer, len(order)), f.layer),
    )


def series(data: RunData, kind: str, column: str, combine: str = "mean", values=None):
    """``(steps, layers, values (layers × steps))`` of one column; ranks merged by mean.

    ``combine="norm"`` joins a layer's parameters as the norm of their norms (the layer's
    whole gradient norm); otherwise the mean. ``values`` replaces the column's own values.
    """
    rows = data.rows(kind)
    if values is not None:
        rows = {**rows, column: values[data.columns["kind"] == kind]}
    steps = np.unique(rows["step"]).astype(int)
    layers = [str(n) for n in dict.fromkeys(rows["module"])]
    values = np.full((len(layers), len(steps)), np.nan)
    if not len(steps):
        return steps, layers, values
    li = {n: i for i, n in enumerate(layers)}
    si = {s: i for i, s in enumerate(steps)}
    acc, cnt = np.zeros_like(values), np.zeros_like(values)
    for s, m, v in zip(rows["step"], rows["module"], rows[column]):
        i, j = li[m], si[int(s)]
        acc[i, j] += v * v if combine == "norm" else v
        cnt[i, j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        if combine == "norm":
            ranks = max(len(np.unique(rows["rank"])), 1)
            values = np.sqrt(acc / ranks)
        else:
            values = acc / cnt
    values[cnt == 0] = np.nan
    return steps, layers, values


def _runs(mask: np.ndarray, length: int) -> int | None:
    """Index where ``mask`` first holds ``length`` times in a row, or None."""
    count = 0
    for j, ok in enumerate(mask):
        count = count + 1 if ok else 0
        if count >= length:
            return j - length + 1
    return None


def _vanishing(grads) -> list[Finding]:
    steps, layers, g = grads
    if not len(steps) or len(layers) < 2:
        return []
    with np.errstate(invalid="ignore"):
        top = np.where(np.isfinite(g), g, -np.inf).max(axis=0)
        low = g < VANISH_RATIO * top
    need = min(VANISH_RECORDS, len(steps))
    out = []
    for i, layer in enumerate(layers):
        j = _runs(low[i], need)
        if j is None:
            continue
        ratio = g[i, j] / top[j] if top[j] > 0 else 0.0
        out.append(
            Finding(
                "vanishing",
                layer,
                int(steps[j]),
                f"Vanishing gradients in {layer}: from step {steps[j]} its gradient norm is "
                f"{ratio:.1e} of the largest layer's for {need} records or more; scale it up "
                "with a tensor hook.",
                _scale_hook(layer),
            )
        )
    return out


def _exploding(data: RunData, grads) -> list[Finding]:
    steps, layers, g = grads
    out, flagged = [], set()
    params = data.rows("param")
    for s, m, nan, inf in zip(
        params["step"], params["module"], params["grad_nan"], params["grad_inf"]
    ):
        if (nan > 0 or inf > 0) and m not in flagged:
            flagged.add(m)
            what = "Inf" if inf > 0 else "NaN"
            out.append(
                Finding(
                    "exploding",
                    m,
                    int(s),
                    f"Exploding gradients in {m}: its gradient holds {what} at step {int(s)}; "
                    "clip it with a tensor hook.",
                    _clip_hook(m),
                )
            )
    for i, layer in enumerate(layers):
        if layer in flagged:
            continue
        row = g[i]
        for j in range(len(steps) - 1):
            # Growth over the highest level seen so far: a recovery from a dip is not a blow-up.
            before = np.nanmax(row[: j + 1]) if np.isfinite(row[: j + 1]).any() else np.nan
            window = row[j + 1 : j + EXPLODE_RECORDS]
            if not np.isfinite(before) or before <= 0 or not np.isfinite(window).any():
                continue
            growth = np.nanmax(window) / before
            if growth >= EXPLODE_GROWTH:
                k = j + 1 + int(np.nanargmax(window))
                start = int(np.nanargmax(row[: j + 1]))
                out.append(
                    Finding(
                        "exploding",
                        layer,
                        int(steps[k]),
                        f"Exploding gradients in {layer}: its gradient norm grew {growth:.0f}× "
                        f"between steps {steps[start]} and {steps[k]}; clip it with a tensor hook.",
                        _clip_hook(layer),
                    )
                )
                break
    return out


def _units(data: RunData, column: str, share: float, rule: str) -> list[Finding]:
    steps, layers, v = series(data, "module", column)
    out = []
    need = min(STEADY_RECORDS, len(steps))
    for i, layer in enumerate(layers):
        with np.errstate(invalid="ignore"):
            j = _runs(v[i] >= share, need) if need else None
        if j is None:
            continue
        what = "outputs exactly zero" if rule == "dead" else "saturated outputs"
        out.append(
            Finding(
                rule,
                layer,
                int(steps[j]),
                f"{'Dead' if rule == 'dead' else 'Saturated'} units in {layer}: "
                f"{v[i, j]:.0%} {what} from step {steps[j]}; its inputs need another "
                "initialisation or a smaller learning rate.",
            )
        )
    return out


def _update_ratio(data: RunData) -> list[Finding]:
    """Per layer, ‖Δ all its parameters‖ / ‖all its parameters‖: a zero-initialised bias
    alone would read as a huge ratio."""
    delta = np.nan_to_num(data.columns["update_ratio"] * data.columns["weight_norm"])
    steps, layers, d = series(data, "param", "update_ratio", "norm", values=delta)
    _, _, w = series(data, "param", "weight_norm", "norm")
    with np.errstate(invalid="ignore", divide="ignore"):
        r = d / w
    out = []
    for i, layer in enumerate(layers):
        finite = r[i][np.isfinite(r[i])]
        if not len(finite):
            continue
        med = float(np.median(finite))
        if med <= 0 or UPDATE_LOW <= med <= UPDATE_HIGH:
            continue
        side = "too small: the layer barely learns" if med < UPDATE_LOW else "too large"
        out.append(
            Finding(
                "update-ratio",
                layer,
                int(steps[0]),
                f"Update ratio of {layer} is {med:.1e} per step (median), far from 1e-3 and "
                f"{side}; change its learning rate.",
            )
        )
    return out


def _loss_nan(data: RunData) -> list[Finding]:
    rows = data.rows("loss")
    bad = ~np.isfinite(rows["loss"])
    if not bad.any():
        return []
    step = int(rows["step"][np.argmax(bad)])
    return [Finding("loss", "", step, f"The loss is not a number from step {step} on.")]


def _scale_hook(layer: str) -> str:
    return (
        f'p = model.get_submodule("{layer}").weight\n'
        "h = p.register_hook(lambda g: g * 100)  # scale the vanishing gradient up"
    )


def _clip_hook(layer: str) -> str:
    return (
        f'p = model.get_submodule("{layer}").weight\n'
        "h = p.register_hook(lambda g: g.clamp(-1.0, 1.0))  # clip large gradients"
    )
