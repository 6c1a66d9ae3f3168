"""FlowLayout: a row of controls that wraps onto more lines when its panel is too narrow.

A QHBoxLayout's minimum width is the sum of its controls, so a panel's header row (a combo,
two buttons, Save… and Copy) made the panel wider than the 1000-px window's column: it
scrolled sideways and hid its last buttons. Here the minimum width is the widest control.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QSizePolicy, QSpacerItem, QWidget


class FlowLayout(QLayout):
    """Controls left to right, wrapping to a new line when the next one does not fit.

    The subset of QHBoxLayout that panel rows use: ``addWidget``, ``insertWidget``,
    ``addLayout``, ``addStretch``, ``addSpacing``, ``setStretch``. Within a line the spare
    width goes to stretch items as in a box layout (a stretch before Save / Copy keeps them
    at the right edge). Not height-for-width (a scroll area would then lay its whole panel out
    at its preferred height and scroll early): the height for the width last laid out is
    reported as the minimum, and a change of line count asks the parents to lay out again.
    """

    def __init__(self, parent: QWidget | None = None, spacing: int = 4):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._stretch: list[int] = []
        self._width: int | None = None  # width of the last layout; None: one line
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    # -- the box-layout API -------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 (Qt name)
        self._items.append(item)
        self._stretch.append(0)
        self.invalidate()

    def addWidget(self, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802
        self.insertWidget(-1, widget, stretch)

    def insertWidget(self, index: int, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802
        """Insert ``widget`` before ``index`` (negative: counted from the end + 1, as Qt)."""
        super().addWidget(widget)  # Qt makes the item and reparents the widget: it lands last
        self._move_last(index, stretch)

    def addLayout(self, layout: QLayout, stretch: int = 0) -> None:  # noqa: N802
        self.addChildLayout(layout)
        self.addItem(layout)
        self._stretch[-1] = stretch

    def addStretch(self, stretch: int = 0) -> None:  # noqa: N802
        spacer = QSpacerItem(0, 0, QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.addItem(spacer)
        self._stretch[-1] = stretch

    def addSpacing(self, size: int) -> None:  # noqa: N802
        self.addItem(QSpacerItem(size, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum))

    def setStretch(self, index: int, stretch: int) -> None:  # noqa: N802
        self._stretch[index] = stretch
        self.invalidate()

    def stretch(self, index: int) -> int:
        return self._stretch[index]

    def _move_last(self, index: int, stretch: int) -> None:
        item, _ = self._items.pop(), self._stretch.pop()
        at = len(self._items) + 1 + index if index < 0 else min(index, len(self._items))
        self._items.insert(at, item)
        self._stretch.insert(at, stretch)
        self.invalidate()

    # -- QLayout ------------------------------------------------------------------------------
    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        if not 0 <= index < len(self._items):
            return None
        self._stretch.pop(index)
        item = self._items.pop(index)
        self.invalidate()
        return item

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation.Horizontal

    def sizeHint(self) -> QSize:  # noqa: N802
        items = self._shown()
        controls = sum(i.spacerItem() is None for i in items)
        width = sum(_hint(i) for i in items) + self.spacing() * max(0, controls - 1)
        return QSize(width + self._margin_w(), self._height())

    def minimumSize(self) -> QSize:  # noqa: N802
        widest = max((i.minimumSize().width() for i in self._shown()), default=0)
        return QSize(widest + self._margin_w(), self._height())

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        before = self._height()
        self._width = rect.width()
        self._place(rect, apply=True)
        if self._height() != before:  # lines were added or removed: parents make room
            self.invalidate()

    # -- line breaking ------------------------------------------------------------------------
    def _shown(self) -> list[QLayoutItem]:
        return [i for i in self._items if not i.isEmpty() or i.spacerItem() is not None]

    def _margin_w(self) -> int:
        m = self.contentsMargins()
        return m.left() + m.right()

    def _height(self) -> int:
        if self._width is None:
            m = self.contentsMargins()
            line = max((i.sizeHint().height() for i in self._shown()), default=0)
            return line + m.top() + m.bottom()
        return self._place(QRect(0, 0, self._width, 0), apply=False)

    def _lines(self, width: int) -> list[list[int]]:
        """Indexes of the shown items per line, each line as wide as fits ``width``."""
        lines: list[list[int]] = [[]]
        used = 0
        for k, item in enumerate(self._items):
            if item.isEmpty() and item.spacerItem() is None:
                continue
            w = _hint(item)
            # As in a box layout, spacing goes between controls only, not around a spacer.
            spacer = item.spacerItem() is not None
            gap = 0 if spacer or not self._controls(lines[-1]) else self.spacing()
            if lines[-1] and used + gap + w > width and not spacer:
                # A stretch right before the item goes with it (Save / Copy stay right).
                carried = []
                while lines[-1] and self._items[lines[-1][-1]].spacerItem() is not None:
                    carried.insert(0, lines[-1].pop())
                lines.append(carried)
                used, gap = 0, 0
            lines[-1].append(k)
            used += gap + w
        return [line for line in lines if line]

    def _controls(self, line: list[int]) -> int:
        """How many of ``line``'s items are controls (not spacers)."""
        return sum(self._items[k].spacerItem() is None for k in line)

    def _place(self, rect: QRect, apply: bool) -> int:
        """Lay the items out in ``rect`` (when ``apply``); the height they take."""
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        y = area.y()
        for n, line in enumerate(self._lines(max(1, area.width()))):
            widths = self._widths(line, area.width())
            height = max(self._items[k].sizeHint().height() for k in line)
            if n:
                y += self.spacing()
            if apply:
                x, after_control = area.x(), False
                for k, w in zip(line, widths, strict=True):
                    item = self._items[k]
                    if item.spacerItem() is None:
                        x += self.spacing() if after_control else 0
                        after_control = True
                    h = min(height, max(item.sizeHint().height(), item.minimumSize().height()))
                    h = min(h, item.maximumSize().height())
                    item.setGeometry(QRect(x, y + (height - h) // 2, w, h))
                    x += w
            y += height
        return y - rect.y() + m.bottom()

    def _widths(self, line: list[int], width: int) -> list[int]:
        """Widths of one line's items: their hints, the spare width given to stretch items."""
        items = [self._items[k] for k in line]
        widths = [min(_hint(i), i.maximumSize().width()) for i in items]
        spare = width - sum(widths) - self.spacing() * max(0, self._controls(line) - 1)
        if spare < 0:  # one control wider than the line: it gives way, down to its minimum
            return [max(i.minimumSize().width(), w + spare) for i, w in zip(items, widths)]
        weights = [self._stretch[k] for k in line]
        if not any(weights):
            # Else expanding controls grow (a line edit), not groups: those stay packed left.
            grows = Qt.Orientation.Horizontal
            weights = [
                int(i.widget() is not None and bool(i.expandingDirections() & grows)) for i in items
            ]
        total = sum(weights)
        if total:
            extra = [spare * wt // total for wt in weights]
            widths = [min(w + e, i.maximumSize().width()) for w, e, i in zip(widths, extra, items)]
        return widths


def _hint(item: QLayoutItem) -> int:
    """Width an item asks for (a stretch asks for none)."""
    if item.spacerItem() is not None and item.expandingDirections() & Qt.Orientation.Horizontal:
        return item.minimumSize().width()
    return max(item.sizeHint().width(), item.minimumSize().width())
