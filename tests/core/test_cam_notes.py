"""A zero CAM note says what the numbers show (issue 23), not a guess from the method name."""

import torch
from torch import nn

from hookscope.core.cam import compute_cam


class MixedSigns(nn.Module):
    """feat = identity on 3 channels of ones; score = mean(feat) · [1, 1, -5]."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Identity()
        self.head = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 1.0, -5.0]]))

    def forward(self, x):
        return self.head(self.feat(x).mean(dim=(2, 3)))


def test_a_negative_sum_with_positive_weights_says_so():
    x = torch.ones(1, 3, 4, 4)
    maps = compute_cam(MixedSigns(), x, ["feat"], method="gradcam", target=0)
    assert float(maps["feat"].max()) == 0.0
    # Grad-CAM weights are [1, 1, -5] / 16: two of three positive, the sum -3/16 = -0.1875.
    (note,) = maps.notes
    assert note == (
        "The gradcam map of feat is zero everywhere: the weighted sum of channels is negative "
        "at every position (at most -0.188), though 2 of its 3 channel weights are positive."
    )
    assert "every channel's weight is negative" not in note


def test_all_negative_weights_are_counted():
    model = MixedSigns()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[-1.0, -2.0, -5.0]]))
    maps = compute_cam(model, torch.ones(1, 3, 4, 4), ["feat"], method="xgradcam", target=0)
    assert list(maps.notes) == [
        "The xgradcam map of feat is zero everywhere: every one of its 3 channel weights is "
        "negative or zero for this target."
    ]
