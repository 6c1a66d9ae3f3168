"""WrapLabel: a word-wrapped label as tall as its text needs at its width, no taller."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QWidget


class WrapLabel(QLabel):
    """A word-wrapped label that takes the height its width needs without height-for-width.

    A box layout sizes a word-wrapped QLabel by its preferred height, worked out for a width
    Qt picks: a one-line status message made the status bar three lines tall at 1280 px.
    Here the least height is the height at the label's own width, updated as it changes.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt name)
        return False

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._fit()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        hint = super().sizeHint()
        hint.setHeight(self._needed())
        return hint

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        hint = super().minimumSizeHint()
        hint.setHeight(self._needed())
        return hint

    def _needed(self) -> int:
        """Height of the text wrapped at the label's width (one line's when empty)."""
        if not self.text():
            return self.fontMetrics().height()
        return max(self.fontMetrics().height(), self.heightForWidth(max(1, self.width())))

    def _fit(self) -> None:
        h = self._needed()
        if h != self.minimumHeight():
            self.setMinimumHeight(h)
            self.updateGeometry()
