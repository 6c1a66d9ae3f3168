"""Dock layout: saved with saveState, restored by a new window, and reset to the default."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTabBar

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
    # One dock area for the three columns: only there do the side columns keep their width.
    right = Qt.DockWidgetArea.RightDockWidgetArea
    assert area(window.tree_dock) == area(window.image_dock) == area(window.predictions_dock)
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


def test_one_working_tab_bar_per_tab_group_also_after_reset(make_window, qtbot):
    # Qt replaces tab bars while it lays out (the old ones are deleted from the event loop);
    # what is left must be one bar per group, and the one that switches its docks.
    window = make_window(run=False)
    for _ in range(2):
        qtbot.wait(50)
        bars = [b for b in window.findChildren(QTabBar) if b.parent() is window and b.isVisible()]
        groups = [tuple(b.tabText(i) for i in range(b.count())) for b in bars]
        assert len(groups) == len(set(groups)) == 3, groups
        titles = {d.windowTitle(): d for d in window.docks}
        for bar in bars:  # the visible bar is the one that switches its docks
            first, second = titles[bar.tabText(0)], titles[bar.tabText(1)]
            with qtbot.waitSignal(second.visibilityChanged, timeout=2000, check_params_cb=bool):
                bar.setCurrentIndex(1)
            with qtbot.waitSignal(first.visibilityChanged, timeout=2000, check_params_cb=bool):
                bar.setCurrentIndex(0)
        window.reset_layout()
