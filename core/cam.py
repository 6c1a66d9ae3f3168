"""Public API: the CAM methods (``core.methods.cam``, one small class per method)."""

from hookscope.core.methods.cam import CAM_METHODS, CamMaps, CamMethod, compute_cam, suggest_layer

__all__ = ["CAM_METHODS", "CamMaps", "CamMethod", "compute_cam", "suggest_layer"]
