"""Public API: the CAM methods (``core.methods.cam``, one small class per method)."""

from core.methods.cam import CAM_METHODS, CamMethod, compute_cam

__all__ = ["CAM_METHODS", "CamMethod", "compute_cam"]
