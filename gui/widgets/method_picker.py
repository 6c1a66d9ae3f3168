"""MethodPicker: a checkable "Side by side" button whose menu ticks the methods to compare."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolButton

from hookscope.core.methods import explainers


class _StayOpenMenu(QMenu):
    """A menu that stays open while boxes are ticked (picking four methods was four trips)."""

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt name)
        action = self.activeAction()
        if action is not None and action.isCheckable() and action.isEnabled():
            action.trigger()
            return
        super().mouseReleaseEvent(event)


class MethodPicker(QToolButton):
    """On: the ticked methods run side by side; the arrow's menu picks which.

    Signals:
        changed(list): The methods to show side by side, in menu order; empty when off.
    """

    changed = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setCheckable(True)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.setMenu(_StayOpenMenu(self))
        self.setToolTip(
            "Show several methods side by side on this image and target, one pane each "
            "(the arrow picks which)"
        )
        self.toggled.connect(lambda _on: self._emit())
        self._show_count()

    def set_choices(self, names: list[str], picked: list[str]) -> None:
        """Offer ``names`` (transformer methods, then the CAMs), ticking ``picked``."""
        menu = self.menu()
        menu.clear()
        kind = None
        for name in names:
            rec = explainers.get(name)
            if kind is not None and rec.kind != kind:
                menu.addSeparator()
            kind = rec.kind
            action = QAction(name, menu)
            action.setCheckable(True)
            action.setChecked(name in picked)
            action.setToolTip(rec.title)
            action.toggled.connect(lambda _on: self._on_tick())
            menu.addAction(action)
        menu.setToolTipsVisible(True)
        self._show_count()

    def choices(self) -> list[str]:
        """Every method the menu offers, in order."""
        return [a.text() for a in self.menu().actions() if not a.isSeparator()]

    def picked(self) -> list[str]:
        """The ticked methods, in menu order."""
        return [a.text() for a in self.menu().actions() if a.isCheckable() and a.isChecked()]

    def show_state(self, active: list[str]) -> None:
        """Show what runs: on with ``active`` ticked, or off (the ticks kept for next time)."""
        with QSignalBlocker(self):
            self.setChecked(bool(active))
        if active:
            for action in self.menu().actions():
                with QSignalBlocker(action):
                    action.setChecked(action.text() in active)
        self._show_count()

    def _emit(self) -> None:
        self._show_count()
        self.changed.emit(self.picked() if self.isChecked() else [])

    def _on_tick(self) -> None:
        self._show_count()
        if self.isChecked():  # while off, ticks only choose for next time
            self.changed.emit(self.picked())

    def _show_count(self) -> None:
        n = len(self.picked())
        self.setText(f"Side by side: {n}" if self.isChecked() else "Side by side")
