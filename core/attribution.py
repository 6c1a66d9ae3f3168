"""Public API: input attributions (``core.methods.attribution``)."""

from hookscope.core.methods.attribution import (
    ATTRIBUTION_METHODS,
    attribute,
    guided_backprop,
    guided_gradcam,
    integrated_gradients,
    occlusion,
    saliency,
    smoothgrad,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "attribute",
    "guided_backprop",
    "guided_gradcam",
    "integrated_gradients",
    "occlusion",
    "saliency",
    "smoothgrad",
]
