"""The CAM panel's note for a map that ReLU zeroed says what the numbers are (issue 23)."""

FACTORY = '''
import torch
from torch import nn

INPUT_SPEC = {"size": 16, "channels": 3}
CLASS_NAMES = ["a", "b"]


class Net(nn.Module):
    """feat: three channels of ones; class 0 = their means · [1, 1, -5] (-3: the top class)."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(3, 3, 1)
        self.head = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.feat.weight.zero_()
            self.feat.bias.fill_(1.0)
            self.head.weight.copy_(torch.tensor([[1.0, 1.0, -5.0], [-5.0, -5.0, 0.0]]))

    def forward(self, x):
        return self.head(self.feat(x).mean(dim=(2, 3)))


def build():
    return Net()
'''


def test_the_cam_panel_says_the_sum_is_negative_not_every_weight(make_window, tmp_path, qtbot):
    path = tmp_path / "mixed.py"
    path.write_text(FACTORY)
    window = make_window(f"{path}:build", layers=["feat"])
    st = window.state
    assert st.snapshot.target == 0 and list(st.snapshot.cams) == ["feat"]
    (cam,) = [d for d in window.analysis_docks if d.TITLE == "CAM"]
    text = cam.notes_label.text()
    # Grad-CAM weights: [1, 1, -5] / 256 (16×16 grid); the map is -3/256 = -0.0117 everywhere.
    assert text == (
        "The gradcam map of feat is zero everywhere: the weighted sum of channels is negative "
        "at every position (at most -0.0117), though 2 of its 3 channel weights are positive."
    )
