"""The model input with what the model predicted on it: a class mask or detection boxes.

A dense (segmentation) output is a semi-transparent class-coloured mask with a legend of the
classes present; detections are boxes with their label and score. A click reports the input
pixel under it, so the Image dock can target the region or the box there.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap

from hookscope.core.engine.outputs import DENSE, DETECTIONS
from hookscope.gui.qtutil import rgb_to_pixmap
from hookscope.gui.widgets.picture import FittedPicture

LEGEND_MIN_PX = 260  # below this the legend would hide the mask it explains
SCORE_THRESHOLD = 0.5
"""Detections drawn by default: a random-weight detector's 100 boxes at 0.01 hide the image."""
MASK_ALPHA = 0.45  # the explained class/region is drawn stronger, the others lighter


def class_colour(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC palette: distinct colours for class indices, stable across runs."""
    r = g = b = 0
    c = int(index)
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return (r, g, b) if index else (0, 0, 0)


def is_background(name: str | None) -> bool:
    """True for a class named like the background (drawn without colour)."""
    return (name or "").strip("_ ").lower() in ("background", "bg")


def resize_nearest(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) label map (the model input's size)."""
    mh, mw = mask.shape
    rows = np.minimum((np.arange(h) * mh) // h, mh - 1)
    cols = np.minimum((np.arange(w) * mw) // w, mw - 1)
    return mask[rows][:, cols]


def mask_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    names: list[str] | None = None,
    strong: np.ndarray | None = None,
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``mask`` (h, w) class colours blended on top.

    Args:
        image: The model input.
        mask: Predicted class per pixel at the output's size.
        names: Class names (a background class stays uncoloured).
        strong: Boolean (H, W) pixels drawn more opaque (the explained region).
    """
    h, w = image.shape[:2]
    labels = resize_nearest(np.asarray(mask), h, w)
    present = np.unique(labels)
    colours = np.zeros((int(present.max()) + 1, 3), np.float32)
    alpha_of = np.zeros(int(present.max()) + 1, np.float32)
    for c in present:
        name = names[c] if names and 0 <= c < len(names) else None
        colours[c] = class_colour(int(c))
        alpha_of[c] = 0.0 if is_background(name) else MASK_ALPHA
    alpha = alpha_of[labels]
    if strong is not None:
        alpha = np.where(strong & (alpha > 0), 0.65, alpha * 0.8)
    out = image.astype(np.float32) * (1 - alpha[..., None]) + colours[labels] * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def explained_pixels(snap) -> np.ndarray | None:
    """Boolean (H, W) input pixels of the explained dense target: its region or class."""
    h, w = snap.input_image.shape[:2]
    cls, _, path = (snap.target_text or "").partition("@")
    if path:
        try:
            img = Image.open(path).convert("L").resize((w, h), Image.Resampling.NEAREST)
        except OSError:
            return None
        return np.asarray(img) >= 128
    if snap.target is None or snap.mask is None:
        return None
    return resize_nearest(np.asarray(snap.mask), h, w) == snap.target


class PredictionView(FittedPicture):
    """The model input scaled to fit, with the mask or the boxes; ``clicked(row, col)``."""

    clicked = Signal(int, int)

    def __init__(self, caption: str, parent=None):
        super().__init__(caption, parent)
        self.boxes: list[tuple[int, tuple[float, float, float, float], str]] = []
        self.legend: list[tuple[tuple[int, int, int], str]] = []
        self.current_box: int | None = None
        self.score_threshold = SCORE_THRESHOLD
        self.detections = 0  # every detection of the last run, drawn or not
        self._snap, self._names = None, None

    def set_score_threshold(self, value: float) -> None:
        """Draw only detections scoring at least ``value`` (the explained one always)."""
        self.score_threshold = float(value)
        if self._snap is not None:
            self.show_snapshot(self._snap, self._names)

    # -- content ------------------------------------------------------------------------------
    def show_snapshot(self, snap, names: list[str] | None = None) -> None:
        """Draw ``snap``'s input with what fits its kind (mask + legend, or boxes)."""
        kind = snap.kind.kind if snap.kind is not None else None
        image = snap.input_image
        self.boxes, self.legend, self.current_box = [], [], None
        self._snap, self._names, self.detections = snap, names, 0
        if kind == DENSE and snap.mask is not None:
            image = mask_overlay(image, snap.mask, names, explained_pixels(snap))
            for p in snap.predictions:
                if not is_background(p.name):
                    label = f"{p.name or p.index} {p.score:.0%}"
                    self.legend.append((class_colour(p.index), label))
        elif kind == DETECTIONS:
            text = snap.target_text or ""
            if text.startswith("box:"):
                self.current_box = int(text[4:])
            self.detections = len(snap.predictions)
            for p in snap.predictions:
                if p.score < self.score_threshold and p.index != self.current_box:
                    continue
                label = f"{p.index}: {p.name or p.label or ''} {p.score:.2f}".replace("  ", " ")
                self.boxes.append((p.index, p.box, label))
        super().set_pixmap(rgb_to_pixmap(image))

    def set_pixmap(self, pix: QPixmap | None) -> None:
        """A plain picture (no prediction drawn)."""
        self.boxes, self.legend = [], []
        super().set_pixmap(pix)

    # -- geometry -----------------------------------------------------------------------------
    def _geometry(self) -> tuple[float, float, float] | None:
        """(scale, x offset, y offset) of the drawn picture inside the widget."""
        s = self.scale()
        if s is None:
            return None
        pw, ph = self._pix.width(), self._pix.height()
        return s, (self.width() - pw * s) / 2, (self.height() - ph * s) / 2

    def image_pixel(self, x: float, y: float) -> tuple[int, int] | None:
        """Input pixel (row, col) under widget point (x, y), or None outside the picture."""
        geo = self._geometry()
        if geo is None:
            return None
        s, ox, oy = geo
        col, row = (x - ox) / s, (y - oy) / s
        if not (0 <= col < self._pix.width() and 0 <= row < self._pix.height()):
            return None
        return int(row), int(col)

    def widget_point(self, row: float, col: float) -> QPointF:
        """The widget point drawn at input pixel (row, col) (tests click through it)."""
        s, ox, oy = self._geometry()
        return QPointF(ox + col * s, oy + row * s)

    def box_at(self, row: int, col: int) -> int | None:
        """The detection under input pixel (row, col): the smallest box holding it."""
        hits = [
            ((x1 - x0) * (y1 - y0), i)
            for i, (x0, y0, x1, y1), _ in self.boxes
            if x0 <= col <= x1 and y0 <= row <= y1
        ]
        return min(hits)[1] if hits else None

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            hit = self.image_pixel(event.position().x(), event.position().y())
            if hit is not None:
                self.clicked.emit(*hit)
                return
        super().mousePressEvent(event)

    # -- drawing ------------------------------------------------------------------------------
    def label_rects(self, fm, s: float, small: bool) -> list[tuple[int, QRectF, str]]:
        """Box labels that stay readable: the explained box's first, then by order (score);
        a label that would cover one already placed is left out (its box stays drawn)."""
        placed: list[tuple[int, QRectF, str]] = []
        order = sorted(self.boxes, key=lambda b: b[0] != self.current_box)
        for i, (x0, y0, _x1, _y1), label in order:
            if small:  # the index and score only; the Predictions rows carry the names
                label = f"{i}: {label.rsplit(' ', 1)[-1]}"
            tw, th = fm.horizontalAdvance(label) + 6, fm.height() + 2
            ty = y0 * s - th if y0 * s >= th else y0 * s
            rect = QRectF(x0 * s, ty, tw, th)
            if not any(rect.intersects(r) for _, r, _ in placed):
                placed.append((i, rect, label))
        return placed

    def decorate(self, pix: QPixmap) -> QPixmap:
        if self.boxes or self.legend:
            pix = self._decorate(pix, pix.width() / self._pix.width())
        return pix

    def _decorate(self, pix: QPixmap, s: float) -> QPixmap:
        """Boxes (with label and score) or the mask legend, drawn at screen resolution."""
        painter = QPainter(pix)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        fm = painter.fontMetrics()
        small = min(pix.width(), pix.height()) < LEGEND_MIN_PX
        # The explained box last, so no other box hides it.
        for i, (x0, y0, x1, y1), _label in sorted(
            self.boxes, key=lambda b: b[0] == self.current_box
        ):
            on = i == self.current_box
            colour = QColor(255, 80, 60) if on else QColor(80, 220, 120)
            painter.setPen(QPen(colour, 3 if on else 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s))
        for i, rect, label in self.label_rects(fm, s, small):
            painter.fillRect(
                rect, QColor(255, 80, 60) if i == self.current_box else QColor(80, 220, 120)
            )
            painter.setPen(QColor(10, 10, 10))
            painter.drawText(rect.adjusted(3, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, label)
        # A small picture keeps its pixels: the Predictions rows carry the same colours.
        if self.legend and min(pix.width(), pix.height()) >= LEGEND_MIN_PX:
            row_h = fm.height() + 2
            width = max(fm.horizontalAdvance(t) for _, t in self.legend) + row_h + 12
            top = pix.height() - row_h * len(self.legend) - 6
            painter.fillRect(
                QRectF(2, top - 2, width, row_h * len(self.legend) + 6), QColor(0, 0, 0, 150)
            )
            for k, (rgb, text) in enumerate(self.legend):
                y = top + k * row_h
                painter.fillRect(QRectF(6, y + 2, row_h - 4, row_h - 4), QColor(*rgb))
                painter.setPen(QColor(240, 240, 240))
                painter.drawText(
                    QRectF(row_h + 6, y, width, row_h), Qt.AlignmentFlag.AlignVCenter, text
                )
        painter.end()
        return pix
