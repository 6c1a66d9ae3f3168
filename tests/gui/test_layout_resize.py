"""Shrinking the window to 1000×700 and growing it back leaves every panel's controls usable."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractButton

SIZES = ((1000, 700), (1920, 1080), (1000, 700))
BUTTONS = {
    "ImageDock": ("Copy", "Model default"),
    "ImageLabDock": ("Copy", "Paste here", "Reset image"),
    "PredictionsDock": ("Copy",),
    "EditsDock": ("Copy", "Add gradient edit"),
}
"""Per right-column panel, buttons that were cut or behind a sideways scroll bar at 1000×700."""
BELOW_FOLD = {"EditsDock": "Clear all"}
"""A tall form in a short place scrolls up and down (only): its last button is reachable."""


def _dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def _button(dock, text) -> QAbstractButton:
    found = [b for b in dock.findChildren(QAbstractButton) if b.text() == text]
    assert len(found) == 1, (dock.objectName(), text, len(found))
    return found[0]


def _in_view(dock, button) -> tuple[QRect, QRect, QRect]:
    """The button's rect in the dock, the dock's visible rect, the part of the button drawn."""
    viewport = dock.scroll.viewport()
    at = QRect(button.mapTo(dock, QPoint(0, 0)), button.size())
    view = QRect(viewport.mapTo(dock, QPoint(0, 0)), viewport.size()).intersected(dock.rect())
    return at, view, button.visibleRegion().boundingRect()


def test_shrink_grow_shrink_keeps_every_button_in_view(make_window, qtbot):
    window = make_window(run=False)
    assert window.minimumSizeHint().width() <= 1000  # the window can be 1000 px wide at all
    widths = {}
    for size in SIZES:
        window.resize(*size)
        qtbot.wait(80)
        assert (window.width(), window.height()) == size
        for name, texts in BUTTONS.items():
            dock = _dock(window, name)
            window.show_panel(dock)
            qtbot.wait(30)
            assert dock.isVisible() and not dock.isFloating()
            # Nothing to scroll sideways: the content is as wide as the panel shows.
            assert dock.scroll.horizontalScrollBar().maximum() == 0, (size, name)
            assert dock.content.width() <= dock.scroll.viewport().width() <= dock.width()
            for text in texts:
                button = _button(dock, text)
                at, view, drawn = _in_view(dock, button)
                assert button.isVisible(), (size, name, text)
                assert view.contains(at), (size, name, text, at.getRect(), view.getRect())
                assert drawn.size() == button.size(), (size, name, text, drawn.getRect())
            if name in BELOW_FOLD:
                button = _button(dock, BELOW_FOLD[name])
                dock.scroll.ensureWidgetVisible(button)
                at, view, drawn = _in_view(dock, button)
                assert view.contains(at) and drawn.size() == button.size(), (size, name)
                dock.scroll.verticalScrollBar().setValue(0)
            widths[size, name] = dock.width()
        window.show_panel(window.image_dock)
        window.show_panel(window.predictions_dock)
    # Grown back, the right column has its width again (it stayed 236 px at 1920).
    assert widths[(1000, 700), "ImageDock"] < 300 < widths[(1920, 1080), "ImageDock"]
    assert widths[(1920, 1080), "ImageLabDock"] == widths[(1920, 1080), "ImageDock"]


def test_image_lab_is_no_wider_than_its_dock_at_1000(make_window, qtbot):
    window = make_window(run=False)
    lab = _dock(window, "ImageLabDock")
    window.show_panel(lab)
    for size in SIZES:
        window.resize(*size)
        qtbot.wait(80)
        assert lab.content.width() <= lab.width()
        # Its rows wrap: the widest control, not the sum of a row, sets its least width.
        assert lab.content.minimumSizeHint().width() <= 236


def test_narrow_header_wraps_with_save_and_copy_at_the_right(make_window, qtbot):
    window = make_window(run=False)
    window.resize(1000, 700)
    qtbot.wait(80)
    dock = window.image_dock
    copy, open_ = _button(dock, "Copy"), _button(dock, "Open…")
    # Two lines at 236 px: Copy under the sample list, flush with the panel's right edge.
    assert copy.y() > open_.y() + open_.height() // 2
    right = dock.content.width() - dock.content.layout().contentsMargins().right()
    assert abs(copy.geometry().right() + 1 - right) <= 1
    window.resize(1920, 1080)
    qtbot.wait(80)
    assert (
        copy.y() == open_.y()
        or abs(copy.geometry().center().y() - open_.geometry().center().y()) <= 2
    )
