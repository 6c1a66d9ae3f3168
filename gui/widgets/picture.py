"""FittedPicture: a picture scaled to fit its widget (aspect kept), or a caption."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(0x20, 0x24, 0x2A)
CAPTION = QColor(0xB0, 0xB4, 0xBA)


class FittedPicture(QWidget):
    """Shows ``set_pixmap``'s picture as large as fits, centred; the caption when there is none.

    Painted directly rather than as a QLabel's pixmap: a label's size hints follow its
    pixmap, so rescaling it on resize made the layout resize it again (two Image panes
    bounced between 190 and 194 px until the stack overflowed) and relaid out the panel on
    every run.
    """

    def __init__(self, caption: str, parent=None):
        super().__init__(parent)
        self.caption = caption
        self._pix: QPixmap | None = None
        self._shown = QPixmap()
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(180, 180)

    def set_pixmap(self, pix: QPixmap | None) -> None:
        """Show ``pix`` (None: the caption)."""
        self._pix = pix
        self._rescale()

    def pixmap(self) -> QPixmap:
        """The picture as drawn (scaled to the widget); null when the caption shows."""
        return self._shown

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._rescale()

    def scale(self) -> float | None:
        """Screen pixels per picture pixel, None without a picture."""
        if self._pix is None or self._pix.isNull():
            return None
        return min(self.width() / self._pix.width(), self.height() / self._pix.height())

    def decorate(self, pix: QPixmap) -> QPixmap:
        """Override: draw on the scaled picture (boxes, a legend)."""
        return pix

    def _rescale(self) -> None:
        s = self.scale()
        if s is None:
            self._shown = QPixmap()
        else:
            # Nearest-neighbour when enlarging small model inputs keeps pixels honest.
            mode = (
                Qt.TransformationMode.FastTransformation
                if s > 2
                else Qt.TransformationMode.SmoothTransformation
            )
            size = self.size()
            self._shown = self.decorate(
                self._pix.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, mode)
            )
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        if self._shown.isNull():
            p.setPen(CAPTION)
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            p.drawText(QRectF(self.rect()), int(flags), self.caption)
            return
        x = (self.width() - self._shown.width()) // 2
        y = (self.height() - self._shown.height()) // 2
        p.drawPixmap(x, y, self._shown)
