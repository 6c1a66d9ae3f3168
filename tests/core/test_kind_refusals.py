"""Class-only experiments refuse a dense, detection or embedding model in one sentence.

Channel importance and the sanity check rank by a class probability; a segmentation output
flattened into K*H*W "classes" gave a made-up ranking with no message (issue 13).
"""

from __future__ import annotations

import pytest
import torch

from core.errors import HookScopeError
from core.experiments.importance import channel_importance
from core.experiments.sanity import cascading_randomization
from tests.gui import kind_models


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (kind_models.build_seg, "dense (1, 3, 32, 32)"),
        (kind_models.build_det, "detections (1, 3)"),
        (kind_models.build_emb, "embedding (1, 6)"),
    ],
)
def test_importance_and_sanity_need_class_scores(build, kind):
    model, x = build(), torch.rand(1, 3, 32, 32)
    layer = "backbone" if isinstance(model, kind_models.Detector) else "features"
    with pytest.raises(HookScopeError) as err:
        channel_importance(model, x, layer)
    assert str(err.value) == (
        "Channel importance ranks channels by the drop of a class probability, so it needs "
        f"class scores; this model's output is {kind}."
    )
    with pytest.raises(HookScopeError) as err:
        cascading_randomization(model, x, methods=("gradcam",), cam_layer=layer)
    assert str(err.value) == (
        "The sanity check explains one class, so it needs class scores; this model's output "
        f"is {kind}."
    )
