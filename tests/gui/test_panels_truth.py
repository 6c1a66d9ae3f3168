"""Panels that tell the truth (issue 23): Sanity's axis and counts, the scan dock, Image lab."""

from __future__ import annotations

import numpy as np

from hookscope.core.experiments.sanity import SanityResult
from hookscope.core.jobs.experiments import SanityReport


def dock(window, name):
    """The dock, brought to the front as a user would by clicking its tab."""
    found = next(d for d in window.docks if d.objectName() == name)
    found.raise_()
    return found


def test_sanity_axis_holds_a_curve_that_falls_below_zero(window):
    sanity = dock(window, "SanityDock")
    steps = ("fc", "features.block3.conv", "features.block2.conv")
    corr = {"gradcam": np.array([0.7, -0.35, -0.9]), "guided-backprop": np.array([0.9, 0.8, 0.6])}
    result = SanityResult(steps, corr, {}, {}, 0)
    sanity._on_result(SanityReport(result, tuple(corr), "a", "a", "airplane"))
    lo, hi = sanity.plot.getPlotItem().getViewBox().viewRange()[1]
    assert lo <= -0.9 - 0.05 + 1e-9 and hi >= 1.0  # the lowest point is inside (was -0.2)
    assert "3 steps" in sanity.note.text()
