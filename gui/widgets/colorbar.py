"""ColorBar: a pane's colour scale, drawn like a saved figure's (three labelled values).

pyqtgraph's ``ColorBarItem`` regenerates a whole axis (tick search, text layout) whenever the
levels change, which is every run for a channel close-up; this paints a cached strip of the
colour map and three numbers.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage
from PySide6.QtWidgets import QGraphicsWidget, QSizePolicy

from hookscope.gui import figures

BAR_WIDTH = 12
WIDEST_LABELS = ("-8.88e+08", "-0.000888")
"""The widest three-digit labels (a random-init resnet152 layer, a gradient): never clipped."""


class ColorBar(QGraphicsWidget):
    """A vertical colour strip, high values on top, labelled at its top, middle and bottom.

    The labels are the values a saved figure's colour bar shows
    (``linspace(vmax, vmin, 3)``, three significant digits).
    """

    def __init__(self, cmap: str = "viridis", levels=(0.0, 1.0), text=(40, 40, 40)):
        super().__init__()
        self.cmap = ""
        self.levels = (0.0, 1.0)
        self.text = QColor(*text)
        self.strip: QImage | None = None  # the colour map, one pixel wide, top = high
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 0.9)  # labels, not text: a little smaller
        self.setFont(font)
        fm = QFontMetrics(font)
        # One width for any label: a width that followed the labels would relayout per run.
        self.label_width = max(fm.horizontalAdvance(t) for t in WIDEST_LABELS) + 10
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setPreferredWidth(BAR_WIDTH + self.label_width)
        self.setMinimumWidth(BAR_WIDTH + self.label_width)
        self.set(cmap, levels)

    def set(self, cmap: str, levels) -> None:
        """Show colour map ``cmap`` from ``levels[0]`` (bottom) to ``levels[1]`` (top)."""
        levels = (float(levels[0]), float(levels[1]))
        if cmap != self.cmap:
            table = np.ascontiguousarray(figures.lut(cmap)[::-1].reshape(256, 1, 3))
            # QImage does not own numpy memory: keep the array alive with the image.
            self._table = table
            self.strip = QImage(table.data, 1, 256, 3, QImage.Format.Format_RGB888)
            self.cmap = cmap
        elif levels == self.levels:
            return
        self.levels = levels
        self.update()

    def labels(self) -> list[str]:
        """The three labels, top to bottom."""
        return [figures.tick_text(v) for v in np.linspace(self.levels[1], self.levels[0], 3)]

    def paint(self, painter, _option, _widget=None) -> None:
        painter.setFont(self.font())
        fm = painter.fontMetrics()
        half = fm.height() / 2
        r = self.rect()
        bar = QRectF(r.left() + 2, r.top() + half, BAR_WIDTH, max(1.0, r.height() - 2 * half))
        if self.strip is not None:
            painter.drawImage(bar, self.strip)
        painter.setPen(self.text)
        x = int(bar.right())
        for i, label in enumerate(self.labels()):
            y = bar.top() + i * bar.height() / 2
            # The tick touches the strip: a detached one reads as a minus sign.
            painter.drawLine(x, int(y), x + 3, int(y))
            painter.drawText(
                QRectF(x + 6, y - half, self.label_width - 8, 2 * half),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
