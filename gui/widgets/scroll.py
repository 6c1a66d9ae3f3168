"""Wrap a dock's content in a scroll area, so a tall form never forces the window taller."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea


def make_scrollable(dock: QDockWidget) -> QScrollArea:
    """Put the dock's current widget inside a frameless, resizable scroll area.

    A dock that already scrolls (every ``BaseDock`` does) keeps its one scroll area.
    """
    if isinstance(dock.widget(), QScrollArea):
        return dock.widget()
    area = QScrollArea(dock)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidgetResizable(True)
    area.setWidget(dock.widget())
    dock.setWidget(area)
    return area
