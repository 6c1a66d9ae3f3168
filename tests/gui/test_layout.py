"""Dock layout: saved with saveState, restored by a new window, and reset to the default."""

from __future__ import annotations

from PySide6.QtCore import Qt

from gui.main_window import LAYOUT_VERSION, MainWindow, dock_area_map
from gui.state import AppState


def test_every_dock_has_an_object_name_and_a_view_toggle(make_window):
    window = make_window(run=False)
    names = [d.objectName() for d in window.docks]
    assert all(names) and len(set(names)) == len(names)
    toggles = {a.text() for a in window.view_menu.actions()}
    assert {d.TITLE for d in window.docks} <= toggles


def test_default_layout_tree_left_image_and_predictions_right(make_window):
    window = make_window(run=False)
    area = window.dockWidgetArea
    assert area(window.tree_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    right = Qt.DockWidgetArea.RightDockWidgetArea
    assert area(window.image_dock) == area(window.predictions_dock) == right
    # The image column sits right of the centre docks, which share one tabbed place.
    centre = [*window.analysis_docks, window.stats_dock]
    assert {area(d) for d in centre} == {right}
    assert window.image_dock.x() > centre[0].x() > window.tree_dock.x()
    assert all(window.tabifiedDockWidgets(centre[0])) and set(centre[1:]) <= set(
        window.tabifiedDockWidgets(centre[0])
    )
    assert window.predictions_dock.y() > window.image_dock.y()


def test_save_state_then_restore_in_a_new_window(make_window, qtbot):
    window = make_window(run=False)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.predictions_dock)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, window.stats_dock)
    window.image_dock.setVisible(False)
    saved = window.saveState(LAYOUT_VERSION)
    before = dock_area_map(window)
    assert before["ImageDock"][1] is False

    other = MainWindow(AppState(), restore=False)
    qtbot.addWidget(other)
    other.show()
    assert dock_area_map(other) != before
    assert other.restoreState(saved, LAYOUT_VERSION)
    assert dock_area_map(other) == before

    other.reset_layout()
    assert dock_area_map(other) == dock_area_map(make_window(run=False))


def test_layout_persists_through_qsettings(make_window, qtbot):
    window = make_window(run=False)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, window.image_dock)
    window.save_layout()
    expected = dock_area_map(window)
    window.close()
    again = MainWindow(AppState(), restore=True)
    qtbot.addWidget(again)
    again.show()
    assert dock_area_map(again) == expected
    assert again.dockWidgetArea(again.image_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
