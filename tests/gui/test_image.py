"""Image dock: bundled samples, paste from the clipboard, drop a file."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication

from hookscope.gui.docks.image import sample_paths
from hookscope.gui.qtutil import rgb_to_qimage
from tests.gui.conftest import RUN_TIMEOUT_MS


def test_sample_combo_lists_samples_without_masks(make_window, qtbot):
    window = make_window(run=False)
    dock = window.image_dock
    paths = [dock.samples.itemData(i) for i in range(1, dock.samples.count())]
    assert paths == [str(p) for p in sample_paths()]
    assert not any(p.endswith("_mask.png") for p in paths)
    if paths:
        dock.samples.setCurrentIndex(len(paths))
        dock.samples.activated.emit(len(paths))
        assert window.state.image_path == paths[-1]


def test_paste_and_drop_replace_the_input(window, qtbot, tmp_path):
    st = window.state
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    QGuiApplication.clipboard().setImage(rgb_to_qimage(red))
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.image_dock.paste()
    assert st.image.size == (60, 40) and st.image_path is None
    assert tuple(blocker.args[0].input_image[0, 0]) == (255, 0, 0)

    path = tmp_path / "green.png"
    Image.new("RGB", (30, 30), (0, 255, 0)).save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        window.image_dock.dropEvent(event)
    assert st.image_path == str(path)
    assert tuple(blocker.args[0].input_image[5, 5]) == (0, 255, 0)
