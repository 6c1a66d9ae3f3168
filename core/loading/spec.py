"""What a model expects as input."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from hookscope.core.errors import HookScopeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 8192
"""Largest input side a spec may ask for (a bigger one is a typo, and would not fit in memory)."""


@dataclass(frozen=True)
class InputSpec:
    """Input size and normalisation of a model.

    Attributes:
        size: (height, width) of the tensor the model takes.
        channels: 1 (grey) or 3 (RGB).
        mean: Per-channel mean subtracted after scaling to [0, 1].
        std: Per-channel standard deviation divided by.
        resize: Shorter side before the centre crop; defaults to ``size`` (no crop margin).
        native: The image goes in at its own size (a live model given no input size):
            ``size`` is then only a placeholder; :meth:`for_image` gives the concrete spec.
    """

    size: tuple[int, int] = (224, 224)
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: int | None = None
    native: bool = False

    def __post_init__(self):
        """Check every field, so a bad INPUT_SPEC or preprocessor config is one sentence."""
        size = self.size
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = (size, size)
        if not (
            not isinstance(size, (str, bytes, dict))
            and len(size := list(_iter(size))) == 2
            and all(_whole(v, 1, MAX_SIDE) for v in size)
        ):
            raise HookScopeError(
                f"An input size must be one or two whole numbers from 1 to {MAX_SIDE}, "
                f"not {self.size!r}."
            )
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if not _whole(self.channels, 1, 64):
            raise HookScopeError(
                f"An input's channel count must be 1 to 64, not {self.channels!r}."
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            vals = [] if isinstance(value, (str, bytes, dict)) else list(_iter(value))
            ok = 0 < len(vals) and all(_finite(v) and (name == "mean" or v > 0) for v in vals)
            if not ok:
                kind = "positive" if name == "std" else "finite"
                raise HookScopeError(
                    f"An input {name} must be a list of {kind} numbers, not {value!r}."
                )
            object.__setattr__(self, name, tuple(float(v) for v in vals))
        if self.resize is not None and not _whole(self.resize, 1, MAX_SIDE):
            raise HookScopeError(
                f"An input resize must be a whole number from 1 to {MAX_SIDE}, not {self.resize!r}."
            )

    def for_image(self, width: int, height: int) -> InputSpec:
        """This spec at an image's own size when :attr:`native`, else itself."""
        if not self.native:
            return self
        return InputSpec((int(height), int(width)), self.channels, self.mean, self.std, None, True)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        """Inverse of :meth:`to_dict` (sessions)."""
        return cls(
            size=tuple(int(v) for v in d["size"]),
            channels=int(d.get("channels", 3)),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            resize=None if d.get("resize") is None else int(d["resize"]),
            native=bool(d.get("native", False)),
        )

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {
            "size": list(self.size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "native": self.native,
        }


def _whole(v, lo: int, hi: int) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and lo <= v <= hi


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _iter(value):
    try:
        return iter(value)
    except TypeError:
        return iter(())
