"""HistogramView: a channel's value histogram, painted directly.

A close-up shows one per run; a pyqtgraph plot (curve, two axes, title) costs a few ms of
layout and text per repaint, this one image of the bars and four numbers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from hookscope.gui.figures import tick_text
from hookscope.gui.widgets.panes import BACKGROUND, TEXT

FILL = (66, 110, 200, 150)  # RGBA, drawn over the background
EDGE = QColor(40, 80, 160)


class HistogramView(QWidget):
    """Bars of ``counts`` over ``edges``; the value range under the bars, the top count left."""

    def __init__(self, parent=None, title: str = "Histogram"):
        super().__init__(parent)
        self.title = title
        self.counts = np.zeros(0)
        self.edges = np.zeros(0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(110)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 160)

    def set_data(self, counts: np.ndarray, edges: np.ndarray) -> None:
        """Show ``counts`` (n,) over bin ``edges`` (n + 1,)."""
        self.counts = np.asarray(counts, dtype=np.float64)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.update()

    def _bars(self, w: int, h: int) -> QImage:
        """The bars as a (h, w) image: one numpy step, not a draw call per bin."""
        n = len(self.counts)
        peak = max(float(self.counts.max()), 1.0)
        tops = np.round(h * (1 - self.counts / peak)).astype(int)[np.arange(w) * n // w]
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[np.arange(h)[:, None] >= tops[None, :]] = FILL
        self._rgba = rgba  # QImage does not own numpy memory: keep it alive while drawn
        return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(*BACKGROUND))
        fm = self.fontMetrics()
        line = fm.height()
        p.setPen(QColor(*TEXT))
        p.drawText(QRectF(0, 2, self.width(), line), Qt.AlignmentFlag.AlignHCenter, self.title)
        n = len(self.counts)
        if n == 0 or len(self.edges) != n + 1:
            return
        top_text = f"{int(self.counts.max())}"
        left = fm.horizontalAdvance(top_text) + 8
        plot = QRectF(left, line + 6, self.width() - left - 8, self.height() - 2 * line - 12)
        if plot.width() < 4 or plot.height() < 4:
            return
        p.drawImage(plot.topLeft(), self._bars(int(plot.width()), int(plot.height())))
        p.setPen(QPen(EDGE))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        p.drawLine(plot.bottomLeft(), plot.topLeft())
        p.setPen(QColor(*TEXT))
        right = Qt.AlignmentFlag.AlignRight
        p.drawText(QRectF(0, plot.top() - line / 2, left - 4, line), right, top_text)
        p.drawText(QRectF(0, plot.bottom() - line / 2, left - 4, line), right, "0")
        below = QRectF(plot.left(), plot.bottom() + 3, plot.width(), line)
        p.drawText(below, Qt.AlignmentFlag.AlignLeft, tick_text(float(self.edges[0])))
        p.drawText(below, right, tick_text(float(self.edges[-1])))
