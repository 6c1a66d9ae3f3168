"""Public API: read images and turn them into model input (``core.loading.images``)."""

from hookscope.core.loading.images import (
    load_image,
    occlude,
    paste,
    preprocess,
    solid,
    to_display,
    to_tensor,
)

__all__ = ["load_image", "occlude", "paste", "preprocess", "solid", "to_display", "to_tensor"]
