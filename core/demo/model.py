"""The demo's small CNN: conv-BN-ReLU stages, one residual block, global average pool."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    # Downsampling uses a 4×4 kernel (padding 1): output cell i is then centred on input
    # 2i + 0.5, the grid bilinear upsampling (align_corners=False) assumes. A 3×3 stride-2
    # conv centres on 2i, and after three of them CAMs come out shifted by 3.5 pixels.
    k = 4 if stride == 2 else 3
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, k, stride, 1, bias=False),
            bn=nn.BatchNorm2d(cout),
            relu=nn.ReLU(inplace=True),
        )
    )


class ResidualBlock(nn.Module):
    """Two 3×3 convs with an identity skip (``out += identity``), as in ResNet.

    The in-place add and in-place ReLUs are deliberate: they are the hook pitfalls
    HookScope must handle, so the demo model exercises them.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu2(out)


class DemoNet(nn.Module):
    """96×96 RGB → 4 logits. ``features.block3`` (12×12) is the Grad-CAM layer."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                stem=_conv_bn_relu(3, 24, stride=2),  # 48×48
                block1=_conv_bn_relu(24, 48, stride=2),  # 24×24
                res=ResidualBlock(48),  # 24×24
                block2=_conv_bn_relu(48, 96, stride=2),  # 12×12
                block3=_conv_bn_relu(96, 128),  # 12×12, last conv block
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


def build_model(num_classes: int = 4) -> nn.Module:
    """A fresh, randomly initialised demo network."""
    return DemoNet(num_classes)
