"""Tiny factory models of each output kind for the app's tests (``path.py:build_*`` specs).

Hand-set weights so the predictions are known: the segmenter calls bright pixels class 1 and
dark ones class 2 (class 0, the background, in between); the detector returns three fixed boxes
whose scores depend on the image; the embedder returns a 6-D vector and has no classes.
"""

from __future__ import annotations

import torch
from torch import nn

SPEC = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


class Segmenter(nn.Module):
    """{"out": (N, 3, H, W)} like torchvision's segmentation models."""

    class_names = ["__background__", "bright", "dark"]
    input_spec = SPEC

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(2, 3, 1)
        with torch.no_grad():
            conv = self.features[0]
            conv.weight.zero_()
            conv.weight[0] = 1 / 27  # mean brightness in [-1, 1]
            conv.weight[1] = -1 / 27  # its opposite
            conv.bias.zero_()
            self.classifier.weight.zero_()
            self.classifier.weight[1, 0] = 3.0
            self.classifier.weight[2, 1] = 3.0
            self.classifier.bias.copy_(torch.tensor([0.3, 0.0, 0.0]))

    def forward(self, x):
        return {"out": self.classifier(self.features(x))}


class Detector(nn.Module):
    """[{"boxes", "labels", "scores"}] per image: three fixed boxes, scores from the image."""

    class_names = ["__background__", "cat", "dog"]
    input_spec = {"size": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    boxes = torch.tensor([[2.0, 2.0, 14.0, 14.0], [16.0, 4.0, 30.0, 20.0], [4.0, 18.0, 12.0, 30.0]])
    labels = torch.tensor([1, 2, 1])

    def __init__(self, threshold: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(4, 1, 1)
        self.threshold = threshold

    def forward(self, x):
        heat = self.head(self.backbone(x))[:, 0]
        return [self._detections(h) for h in heat]

    def _detections(self, h):
        scores = torch.stack(
            [
                torch.sigmoid(h[int(y0) : int(y1), int(x0) : int(x1)].mean())
                for x0, y0, x1, y1 in self.boxes
            ]
        )
        keep = scores > self.threshold
        return {"boxes": self.boxes[keep], "labels": self.labels[keep], "scores": scores[keep]}


class Embedder(nn.Module):
    """(N, 6) embedding; ``num_classes = 0`` says it has no class scores (as timm does)."""

    num_classes = 0
    input_spec = SPEC

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(8, 6)

    def forward(self, x):
        return self.proj(self.pool(self.features(x)).flatten(1))


class _DictOut(nn.Module):
    """A backbone that returns a dict of maps, as torchvision's detection backbones do."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return {"0": self.body(x)}


class _BoxHead(nn.Module):
    """Scores the fixed boxes from a feature map; returns the detections (no plain map)."""

    def __init__(self, conv, detector):
        super().__init__()
        self.conv = conv
        self.detections = detector._detections

    def forward(self, feats):
        return [self.detections(h) for h in self.conv(feats)[:, 0]]


class FpnDetector(Detector):
    """No top-level child outputs a plain feature map, as in torchvision's detectors."""

    def __init__(self):
        super().__init__()
        self.backbone = _DictOut(self.backbone)
        self.head = _BoxHead(self.head, self)

    def forward(self, x):
        return self.head(self.backbone(x)["0"])


def build_seg():
    return Segmenter().eval()


def build_det():
    return Detector().eval()


def build_det_empty():
    return Detector(threshold=2.0).eval()  # a sigmoid never passes 2: no detections


def build_emb():
    return Embedder().eval()


def build_det_fpn():
    return FpnDetector().eval()
