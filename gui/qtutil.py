"""Small conversions between numpy / PIL images and Qt images."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def rgb_to_qimage(arr: np.ndarray) -> QImage:
    """uint8 (H, W, 3) or (H, W) array → QImage (a deep copy, safe after ``arr`` dies)."""
    a = np.ascontiguousarray(arr)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        h, w = a.shape
        return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    return QImage(a.data, w, h, w * c, fmt).copy()


def rgb_to_pixmap(arr: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(rgb_to_qimage(arr))


def qimage_to_rgb(img: QImage) -> np.ndarray:
    """QImage → uint8 (H, W, 3) array."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def pil_to_rgb(img) -> np.ndarray:
    """PIL image → uint8 (H, W, 3) array."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)
