"""The built-in demo: a small CNN that learnt "blue sky means airplane", and its clean twin.

``load_demo("shortcut")`` was trained on scenes where the background predicts the class;
``load_demo("clean")`` on scenes where it does not. Both take 96×96 RGB input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.demo.model import build_model
from core.demo.scenes import CLASS_NAMES

INPUT_SIZE = 96
# Fixed 0.5s rather than data statistics: simple, and the same for both variants.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
CAM_LAYER = "features.block3"
VARIANTS = ("shortcut", "clean")

__all__ = [
    "CAM_LAYER",
    "CLASS_NAMES",
    "INPUT_SIZE",
    "MEAN",
    "STD",
    "VARIANTS",
    "build_model",
    "load_demo",
    "weights_path",
]


def weights_path(variant: str) -> Path:
    """Path of the bundled weights of one variant (``shortcut`` or ``clean``)."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown demo variant '{variant}': use shortcut or clean.")
    return Path(__file__).resolve().parents[2] / "resources" / f"demo_{variant}.pt"


def load_demo(variant: str = "shortcut") -> nn.Module:
    """Build the demo network and load its bundled weights, in eval mode."""
    model = build_model(len(CLASS_NAMES))
    state = torch.load(weights_path(variant), weights_only=True, map_location="cpu")
    model.load_state_dict(state)
    return model.eval()
