"""Sanity check: progress counts the steps the result shows; the axis holds every value."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hookscope.core.experiments.sanity import Y_RANGE, SanityResult, cascading_randomization
from hookscope.core.reporting import Reporter


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()


def test_progress_counts_the_steps_of_the_result():
    seen = []
    reporter = Reporter(lambda done, total, msg: seen.append((done, total, msg)))
    x = torch.rand(1, 3, 8, 8)
    r = cascading_randomization(
        tiny_model(), x, methods=("gradcam",), cam_layer="2", reporter=reporter
    )
    assert r.steps == ("6", "2", "0")  # the three parametrised layers, output first
    # "k / 3" for a result of 3 steps (it said "k / 4": the original maps counted as a step).
    assert {t for _, t, _ in seen} == {3}
    assert seen[0][:2] == (0, 3) and seen[-1] == (3, 3, "Randomised down to 0")
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


def result(*curves) -> SanityResult:
    corr = {f"m{i}": np.asarray(c, np.float64) for i, c in enumerate(curves)}
    return SanityResult(("a", "b", "c"), corr, {}, {}, 0)


def test_the_axis_holds_every_correlation():
    assert result([0.9, 0.4, 0.1]).y_range() == Y_RANGE  # inside the usual axis: unchanged
    lo, hi = result([0.9, -0.1, -0.83], [1.0, 0.5, 0.2]).y_range()
    assert lo == -0.83 - 0.05 and hi == Y_RANGE[1]
    assert result([np.nan, -1.0, 0.0]).y_range() == (-1.05, 1.05)
