"""The built-in demo: a small CNN that learnt "blue sky means airplane", and its clean twin.

``load_demo("shortcut")`` was trained on scenes where the background predicts the class;
``load_demo("clean")`` on scenes where it does not. Both take 96×96 RGB input.
``load_demo("vit")`` and ``load_demo("vit-clean")`` are the same pair as small vision
transformers (:mod:`.vit`), trained on the same scenes by the same script.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import torch
from torch import nn

from hookscope.core.demo.model import build_model
from hookscope.core.demo.scenes import CLASS_NAMES
from hookscope.core.errors import HookScopeError

INPUT_SIZE = 96
# Fixed 0.5s rather than data statistics: simple, and the same for both variants.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
CAM_LAYER = "features.block3"
VARIANTS = ("shortcut", "clean")
VIT_VARIANTS = ("vit", "vit-clean")
"""The transformer twins; each is trained on the scenes of ``VIT_DATA[variant]``."""
VIT_DATA = {"vit": "shortcut", "vit-clean": "clean"}
# The repo's top-level resources/ folder, installed under this package name (pyproject.toml).
RESOURCES_PACKAGE = "hookscope"

__all__ = [
    "CAM_LAYER",
    "CLASS_NAMES",
    "INPUT_SIZE",
    "MEAN",
    "STD",
    "VARIANTS",
    "VIT_DATA",
    "VIT_VARIANTS",
    "build_model",
    "load_demo",
    "resource_path",
    "sample_path",
    "sample_paths",
    "samples_dir",
    "weights_path",
]


def resource_path(*parts: str) -> Path:
    """A bundled file or folder (it may not exist yet), found with ``importlib.resources``.

    Works from a source checkout installed with ``pip install -e .`` and from an installed
    wheel alike, whatever the current directory.
    """
    try:
        node = importlib.resources.files(RESOURCES_PACKAGE)
    except ModuleNotFoundError as exc:
        raise HookScopeError(
            "HookScope's bundled files (demo weights, sample images) are not installed; "
            "reinstall HookScope with pip install ."
        ) from exc
    for part in parts:
        node = node / part
    if not isinstance(node, Path):  # a zipped install: torch.load and file dialogs need files
        raise HookScopeError(
            "HookScope is installed as a zip archive; install it unpacked with pip install ."
        )
    return node


def weights_path(variant: str) -> Path:
    """Path of the bundled weights of one variant (``shortcut``, ``clean``, ``vit``...)."""
    if variant not in VARIANTS + VIT_VARIANTS:
        known = ", ".join(VARIANTS + VIT_VARIANTS)
        raise ValueError(f"Unknown demo variant '{variant}': use one of {known}.")
    return resource_path(f"demo_{variant}.pt")


def samples_dir() -> Path:
    """The folder of bundled sample images (demo scenes) and their object masks."""
    return resource_path("samples")


def sample_path(name: str) -> Path:
    """One bundled sample by file name, e.g. ``sample_path("car_road.png")``."""
    return samples_dir() / name


def sample_paths() -> list[Path]:
    """Bundled sample images (masks excluded), sorted by name; empty if none are installed."""
    try:
        folder = samples_dir()
    except HookScopeError:  # the model's load says so; a samples menu just stays empty
        return []
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.png") if not p.stem.endswith("_mask"))


def load_demo(variant: str = "shortcut") -> nn.Module:
    """Build a demo network (a ViT for the ``vit`` variants) with its bundled weights, in eval."""
    if variant in VIT_VARIANTS:
        from hookscope.core.demo.vit import build_vit

        model = build_vit(len(CLASS_NAMES))
    else:
        model = build_model(len(CLASS_NAMES))
    state = torch.load(weights_path(variant), weights_only=True, map_location="cpu")
    model.load_state_dict(state)
    return model.eval()
