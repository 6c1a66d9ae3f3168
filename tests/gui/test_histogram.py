"""The channel close-up: histogram bars as tall as their counts, statistics never cut."""

import numpy as np

from hookscope.gui.qtutil import qimage_to_rgb
from hookscope.gui.widgets.histogram import FILL, HistogramView
from hookscope.gui.widgets.panes import BACKGROUND


def test_bars_are_as_tall_as_their_counts(qtbot):
    view = HistogramView()
    qtbot.addWidget(view)
    view.resize(300, 200)
    view.set_data(np.array([0.0, 5.0, 10.0]), np.array([-1.0, 0.0, 1.0, 2.0]))
    bars = qimage_to_rgb(view._bars(90, 100))  # 30 px per bin, peak 10 → 100 px
    filled = bars.any(axis=2)  # transparent pixels come out black
    assert filled[:, :30].sum(0).tolist() == [0] * 30
    assert filled[:, 30:60].sum(0).tolist() == [50] * 30
    assert filled[:, 60:].sum(0).tolist() == [100] * 30
    shot = qimage_to_rgb(view.grab().toImage())
    assert shot.shape[:2] == (200, 300)
    blend = [round(b + (f - b) * FILL[3] / 255) for f, b in zip(FILL[:3], BACKGROUND)]
    # The tallest bin, drawn over the background, is in the shot.
    assert (np.abs(shot.astype(int) - blend).max(axis=2) <= 2).sum() >= 90 * 30


def test_channel_stats_fit_their_label_at_any_width(qtbot):
    from hookscope.gui.widgets.mosaic import StatsLabel

    label = StatsLabel()
    qtbot.addWidget(label)
    label.show()
    label.setText(
        "<b>channel 127</b> · zeros 0%<br>mean 0.0002932 · std -1.234e+05<br>"
        "min -0.0002932 · max 1.5e+08"
    )
    for width in (160, 240, 600):
        label.resize(width, label.height())
        assert label.heightForWidth(width) <= label.height(), width  # no line cut off
