"""Two CAM layers side by side (issue 23): equal panes, shaped by the panel, titles whole."""

from PySide6.QtCore import Qt

from hookscope.gui.docks.cam import BAR_W, NARROW, grid_columns
from tests.gui.conftest import RUN_TIMEOUT_MS


def test_columns_follow_the_shape_of_the_panel():
    assert grid_columns(1, 300, 900) == 1
    assert grid_columns(2, 300, 900) == 1  # narrow and tall: one above the other
    assert grid_columns(2, 1200, 400) == 2  # wide: side by side
    assert grid_columns(4, 900, 900) == 2 and grid_columns(3, 1400, 400) == 3
    # The choice is the largest map: 2 in a 600×700 area stack (a side of 328 vs 224).
    assert grid_columns(2, 600, 700) == 1 and min(600 - BAR_W, 350 - 22) == 328


def test_two_cam_layers_get_equal_panes_with_whole_titles(window, qtbot):
    state = window.state
    cam = next(d for d in window.docks if d.objectName() == "CamDock")
    window.show_panel(cam)
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
        cam.layer_list.item(0).setCheckState(Qt.CheckState.Checked)  # features.block2 too
    qtbot.waitUntil(lambda: len(cam.panes) == 2, timeout=RUN_TIMEOUT_MS)
    a, b = cam.panes.values()
    # Before: a √n grid put them side by side, the second with the only bar (76 px smaller).
    assert a.bar is not None and b.bar is not None
    qtbot.waitUntil(lambda: a.size() == b.size(), timeout=5000)
    cols = grid_columns(2, cam.grid_host.width(), cam.grid_host.height())
    row_b, col_b, *_ = cam.grid.getItemPosition(cam.grid.indexOf(b))
    assert (row_b, col_b) == ((0, 1) if cols == 2 else (1, 0))
    cam.grid_host.resize(1200, 400)  # a wide panel: side by side
    assert cam.grid.getItemPosition(cam.grid.indexOf(b))[:2] == (0, 1)
    cam.grid_host.resize(300, 900)  # narrow and tall: one above the other
    assert cam.grid.getItemPosition(cam.grid.indexOf(b))[:2] == (1, 0)
    for pane in (a, b):
        assert pane.title.text == pane.full_title  # not elided
    vertical = cam.split.orientation() == Qt.Orientation.Vertical
    assert vertical == (cam.split.width() < NARROW)
