"""The window by keyboard alone: F1 help, a key for every File action, Tab through every panel."""

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication


def owning_dock(window, widget):
    """The dock holding ``widget`` (None for the toolbar, menus, status bar)."""
    for dock in window.docks:
        if widget is dock or dock.isAncestorOf(widget):
            return dock
    return None


def tab_walk(window, qtbot, start, presses: int, key=Qt.Key.Key_Tab) -> list:
    """Docks the focus visits from ``start`` on ``presses`` Tab presses, in order, no repeats."""
    start.setFocus()
    visited = []
    for _ in range(presses):
        qtbot.keyClick(QApplication.focusWidget(), key)
        dock = owning_dock(window, QApplication.focusWidget())
        if dock is not None and (not visited or visited[-1] is not dock):
            visited.append(dock)
    return visited


def test_f1_opens_the_help_with_every_shortcut(window, qtbot):
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    box = window.help_box
    assert box.isVisible() and not box.isModal()  # the window stays usable beside it
    text = box.text()
    assert "<b>F1</b>" in text and "Tab moves between the panels" in text
    save = window.save_session_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    assert f"<b>{save}</b></td><td>Save session…" in text


def test_save_session_has_a_key_that_clashes_with_nothing(window):
    assert window.save_session_action.shortcut() == QKeySequence("Ctrl+Alt+S")
    assert window.export_action.shortcut() == QKeySequence("Ctrl+S")  # unchanged
    keys = [a.shortcut().toString() for a in window.actions() if not a.shortcut().isEmpty()]
    assert len(keys) >= 10 and len(keys) == len(set(keys)), keys


def test_tab_goes_model_centre_image_predictions_and_out_of_tables(window, qtbot):
    tree_view = window.tree_dock.view
    centre = window.analysis_docks[0]
    assert centre.isVisible() and centre.TITLE == "Activations"
    visited = tab_walk(window, qtbot, tree_view, 120)
    order = [d.TITLE for d in visited]
    # Before: Model → Image → Predictions, then Tab stayed in the Predictions table's cells.
    assert order[:5] == ["Activations", "Image", "Predictions", "Model", "Activations"], order
    back = tab_walk(window, qtbot, window.image_dock, 1, key=Qt.Key.Key_Backtab)
    assert [d.TITLE for d in back] == ["Activations"]  # Shift+Tab from Image: the centre


def test_esc_closes_the_help_box_and_f1_brings_it_back(window, qtbot):
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    box = window.help_box
    qtbot.waitUntil(lambda: QApplication.activeWindow() is box, timeout=2000)
    assert box.isVisible() and box.escapeButton() is not None
    qtbot.keyClick(QApplication.focusWidget() or box, Qt.Key.Key_Escape)
    assert not box.isVisible()
    assert window.isVisible() and not window.cancel_action.isEnabled()  # nothing else ran
    window.help_action.trigger()  # F1 again (key events need the window active again)
    assert box.isVisible() and box.text().count("<tr>") >= 10  # the same help, reopened
