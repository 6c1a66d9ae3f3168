"""What a model expects as input."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
