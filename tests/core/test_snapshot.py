"""Snapshot: probe results as frozen numpy arrays, built without Qt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hookscope.core.engine.tree import build_tree, layer_defaults
from hookscope.core.jobs.probe import probe_job
from hookscope.core.loading.models import LoadedModel
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Reporter


def tiny() -> LoadedModel:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    spec = InputSpec((8, 8), 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return LoadedModel(model.eval(), "tiny", ["a", "b", "c"], spec)


def test_probe_job_gives_numpy_only(no_hooks_left):
    from PIL import Image

    lm = tiny()
    no_hooks_left(lm.model)
    img = Image.new("RGB", (16, 16), (255, 0, 0))
    snap = probe_job(Reporter(), lm, img, ["0", "1", "4"], target="b")
    assert snap.target == 1 and snap.target_name == "b"
    assert snap.probs.shape == (3,) and snap.probs.dtype == np.float32
    assert snap.probs.sum() == pytest.approx(1, abs=1e-6)
    conv = snap.call("0")
    assert conv.activation.shape == (4, 8, 8) and conv.gradient.shape == (4, 8, 8)
    assert conv.shapes == {"": (1, 4, 8, 8)} and conv.is_map
    # ReLU is in place: its record is the post-ReLU map, the conv record the pre-ReLU one.
    relu = snap.call("1")
    np.testing.assert_allclose(relu.activation, np.maximum(conv.activation, 0), atol=1e-6)
    assert snap.call("4").activation.shape == (3,)
    assert snap.input_image.shape == (8, 8, 3) and snap.input_image.dtype == np.uint8
    assert tuple(snap.input_image[0, 0]) == (255, 0, 0)
    assert snap.input_grad.shape == (3, 8, 8)
    assert relu.stats["activation"]["min"] == 0.0
    for value in snap.arrays().values():
        assert isinstance(value, np.ndarray)


def test_default_layers_looks_inside_a_single_feature_stage():
    lm = tiny()
    wrapped = nn.Sequential()
    wrapped.add_module("features", nn.Sequential(lm.model[0], lm.model[1], nn.Conv2d(4, 4, 1)))
    wrapped.add_module("pool", nn.AdaptiveAvgPool2d(1))
    wrapped.add_module("flatten", nn.Flatten())
    wrapped.add_module("fc", nn.Linear(4, 3))
    tree = build_tree(wrapped, lm.input_spec)
    picked = layer_defaults(tree)
    assert picked.layers == ["features.1", "features.2", "fc"]
    assert picked.cam_layers == ["features.2"]
