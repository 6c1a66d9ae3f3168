"""ImagePane: one titled pyqtgraph image (row-major, y down, square pixels) with hover text."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics

from hookscope.gui import figures
from hookscope.gui.widgets.colorbar import ColorBar

BACKGROUND = (246, 246, 246)
TEXT = (40, 40, 40)


class ImagePane(pg.GraphicsLayoutWidget):
    """A title, an image and an optional colour bar.

    Signals:
        hovered(float, float): Image pixel (y, x) under the mouse (NaN when outside).
        clicked(float, float): Image pixel (y, x) clicked.
    """

    hovered = Signal(float, float)
    clicked = Signal(float, float)

    def __init__(self, title: str = "", parent=None, *, colorbar: bool = False):
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        self.ci.layout.setContentsMargins(2, 2, 2, 2)
        self.title = self.addLabel(title, row=0, col=0, colspan=2, color=TEXT, size="9pt")
        self.full_title = title
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.bar: ColorBar | None = None
        if colorbar:
            self.bar = ColorBar(text=TEXT)
            self.addItem(self.bar, row=1, col=1)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 260)

    def set_title(self, text: str) -> None:
        """Set the title; one too long for the pane is elided (whole in the tooltip).

        A pyqtgraph label is as wide as its text at least: a long title would widen the scene
        past the widget and push the colour bar's labels out of view ("1.(").
        """
        self.full_title = text
        self.setToolTip(text)
        self._fit_title()

    def _fit_title(self) -> None:
        text = self.full_title
        font = QFont(self.font())
        font.setPointSizeF(9)
        room = max(20, self.width() - 12)
        shown = QFontMetrics(font).elidedText(text, Qt.TextElideMode.ElideMiddle, room)
        if shown != self.title.text:  # setText re-lays out the HTML: skip it when unchanged
            self.title.setText(shown, color=TEXT, size="9pt")
            self.title.setMinimumWidth(0)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if hasattr(self, "full_title"):  # pyqtgraph resizes once before __init__ is done
            self._fit_title()

    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """Show a uint8 RGB image (None clears)."""
        if rgb is None:
            self.image.clear()
            return
        self.image.setLookupTable(None)
        self.image.setImage(np.ascontiguousarray(rgb), autoLevels=False, levels=(0, 255))
        self._fit_view(rgb.shape[:2])

    def set_values(self, a: np.ndarray, cmap: str, levels: tuple[float, float]) -> None:
        """Show a float image through colour map ``cmap`` at fixed ``levels``.

        pyqtgraph colours it exactly as ``gui.figures.colorize(a, cmap, levels)`` does, so the
        pane and a saved figure agree pixel for pixel.
        """
        self.image.setImage(np.ascontiguousarray(a, dtype=np.float32), autoLevels=False)
        self.image.setLookupTable(figures.lut(cmap))
        self.image.setLevels(levels)
        self.set_bar(cmap, levels)
        self._fit_view(a.shape[:2])

    def _fit_view(self, shape) -> None:
        # Only a new image size resets the view: a rerun keeps the user's zoom (and skips a
        # relayout that costs a few ms per run).
        if tuple(shape) != getattr(self, "_fitted", None):
            self._fitted = tuple(shape)
            self.view.autoRange(padding=0.01)

    def set_bar(self, cmap: str, levels: tuple[float, float]) -> None:
        """Point the colour bar (if any) at ``cmap`` and ``levels``."""
        if self.bar is not None:
            self.bar.set(cmap, levels)

    def pixel_at(self, scene_pos: QPointF) -> tuple[float, float] | None:
        """Image (y, x) under a scene position, or None outside the image."""
        if self.image.image is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.image.mapFromScene(scene_pos)
        h, w = self.image.image.shape[:2]
        if 0 <= p.y() < h and 0 <= p.x() < w:
            return p.y(), p.x()
        return None

    def _on_move(self, pos) -> None:
        hit = self.pixel_at(pos)
        self.hovered.emit(*(hit or (float("nan"), float("nan"))))

    def _on_click(self, ev) -> None:
        hit = self.pixel_at(ev.scenePos())
        if hit is not None:
            self.clicked.emit(*hit)
