"""Detections on the model input (issue 23): a score threshold, labels that stay readable."""

import torch
from torch import nn

FACTORY = '''
import torch
from torch import nn

INPUT_SPEC = {"size": 64, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
CLASS_NAMES = ["__background__", "cat", "dog"]


class Crowd(nn.Module):
    """100 boxes as a random-weight detector gives them: scores 0.01-0.99, piled up."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        g = torch.Generator().manual_seed(0)
        xy = torch.rand(100, 2, generator=g) * 40
        self.register_buffer("boxes", torch.cat([xy, xy + 20], 1))
        self.register_buffer("base", torch.linspace(0.99, 0.01, 100))

    def forward(self, x):
        s = torch.sigmoid(self.conv(x).mean()) * 0 + self.base
        return [{"boxes": self.boxes, "labels": torch.ones(100, dtype=torch.long), "scores": s}]


def build():
    return Crowd()
'''


def test_only_boxes_above_the_threshold_are_drawn_and_labels_do_not_overlap(make_window, tmp_path):
    path = tmp_path / "crowd.py"
    path.write_text(FACTORY)
    window = make_window(f"{path}:build", image=None)
    dock, view = window.image_dock, window.image_dock.model_input
    snap = window.state.snapshot
    assert snap.kind.kind == "detections" and len(snap.predictions) == 100
    # Scores 0.99 … 0.01 in steps of 0.0099: 50 reach 0.5 (before: all 100 drawn).
    assert view.score_threshold == 0.5 and len(view.boxes) == 50
    assert dock.score_row.isVisibleTo(dock) and dock.score_count.text() == "50 of 100 drawn"
    dock.score_spin.setValue(0.9)
    assert len(view.boxes) == 10 and dock.score_count.text() == "10 of 100 drawn"
    assert view.current_box == 0 and 0 in [b[0] for b in view.boxes]
    # Labels: the explained box's first, none covering another.
    from PySide6.QtGui import QFontMetrics

    rects = view.label_rects(QFontMetrics(view.font()), 4.0, small=False)
    assert rects[0][0] == 0 and 1 <= len(rects) <= len(view.boxes)
    for k, (_, a, _) in enumerate(rects):
        assert not any(a.intersects(b) for _, b, _ in rects[k + 1 :])


def test_the_factory_scores_are_what_the_test_says():
    ns: dict = {}
    exec(FACTORY, ns)
    out = ns["build"]()(torch.zeros(1, 3, 64, 64))[0]
    assert int((out["scores"] >= 0.5).sum()) == 50 and isinstance(ns["Crowd"](), nn.Module)
