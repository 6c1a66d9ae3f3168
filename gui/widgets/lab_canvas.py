"""LabCanvas: the Image lab's editor view — drag a patch into place, or drag an occlusion box.

Scene coordinates are image pixels (the image sits at 0, 0 unscaled), so positions read off
the items are the numbers the image edit dicts store.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
)

from hookscope.gui.qtutil import rgb_to_qimage


class _Patch(QGraphicsPixmapItem):
    """A movable pixmap that snaps to whole pixels and reports moves."""

    def __init__(self, canvas: LabCanvas):
        super().__init__()
        self.canvas = canvas
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges, True)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setZValue(2)

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            return QPointF(round(value.x()), round(value.y()))
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.canvas.patchMoved.emit(*self.canvas.patch_pos())
        return super().itemChange(change, value)


class LabCanvas(QGraphicsView):
    """The current image with an optional draggable patch and an optional box.

    Modes: ``"move"`` (drag the patch; it follows the mouse and drops on release) and
    ``"box"`` (drag a rectangle to occlude).

    Signals:
        patchMoved(int, int): The patch's top-left in image pixels.
        boxChanged(): The occlusion box was drawn or cleared.
    """

    patchMoved = Signal(int, int)
    boxChanged = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setBackgroundBrush(QColor(32, 36, 42))
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumSize(100, 100)
        self.base = QGraphicsPixmapItem()
        self.scene().addItem(self.base)
        self.patch = _Patch(self)
        self.patch.setVisible(False)
        self.scene().addItem(self.patch)
        pen = QPen(QColor(255, 210, 0), 0)
        pen.setCosmetic(True)
        self.box_item = QGraphicsRectItem()
        self.box_item.setPen(pen)
        self.box_item.setBrush(QBrush(QColor(0, 0, 0, 140)))
        self.box_item.setZValue(3)
        self.box_item.setVisible(False)
        self.scene().addItem(self.box_item)
        self.mode = "move"
        self._drag_from: QPointF | None = None
        self._size = (0, 0)

    # -- content ------------------------------------------------------------------------------
    def set_base(self, rgb: np.ndarray | None) -> None:
        """Show a uint8 RGB image (None clears)."""
        if rgb is None:
            self.base.setPixmap(QPixmap())
            self._size = (0, 0)
            return
        self.base.setPixmap(QPixmap.fromImage(rgb_to_qimage(rgb)))
        self._size = (rgb.shape[1], rgb.shape[0])
        self.scene().setSceneRect(QRectF(0, 0, rgb.shape[1], rgb.shape[0]))
        self._fit()

    def set_patch(self, rgba: np.ndarray | None, pos: tuple[int, int] = (0, 0)) -> None:
        """Show a uint8 RGBA patch (alpha = mask) at ``pos``; None hides it."""
        if rgba is None:
            self.patch.setVisible(False)
            return
        self.patch.setPixmap(QPixmap.fromImage(rgb_to_qimage(rgba)))
        self.patch.setVisible(True)
        self.set_patch_pos(*pos)

    def has_patch(self) -> bool:
        return self.patch.isVisible()

    def patch_pos(self) -> tuple[int, int]:
        p = self.patch.pos()
        return int(round(p.x())), int(round(p.y()))

    def set_patch_pos(self, x: int, y: int) -> None:
        self.patch.setPos(QPointF(int(x), int(y)))

    def set_mode(self, mode: str) -> None:
        """``move`` or ``box``."""
        self.mode = mode
        self.patch.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, mode == "move")
        self.setCursor(Qt.CursorShape.CrossCursor if mode == "box" else Qt.CursorShape.ArrowCursor)

    def box(self) -> tuple[int, int, int, int] | None:
        """The occlusion box (left, top, right, bottom) in image pixels, or None."""
        if not self.box_item.isVisible():
            return None
        r = self.box_item.rect().normalized()
        w, h = self._size
        box = (
            max(0, int(round(r.left()))),
            max(0, int(round(r.top()))),
            min(w, int(round(r.right()))),
            min(h, int(round(r.bottom()))),
        )
        return box if box[2] > box[0] and box[3] > box[1] else None

    def set_box(self, box: tuple[int, int, int, int] | None) -> None:
        if box is None:
            self.box_item.setVisible(False)
        else:
            left, top, right, bottom = box
            self.box_item.setRect(QRectF(left, top, right - left, bottom - top))
            self.box_item.setVisible(True)
        self.boxChanged.emit()

    # -- mouse (box mode) ---------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.mode == "box" and event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = self.mapToScene(event.position().toPoint())
            self.set_box((0, 0, 0, 0))
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag_from is not None:
            p = self.mapToScene(event.position().toPoint())
            self.box_item.setRect(QRectF(self._drag_from, p).normalized())
            self.box_item.setVisible(True)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drag_from is not None:
            self._drag_from = None
            self.boxChanged.emit()
            return
        super().mouseReleaseEvent(event)

    # -- view ---------------------------------------------------------------------------------
    def _fit(self) -> None:
        if self._size[0]:
            self.fitInView(self.base, Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()
