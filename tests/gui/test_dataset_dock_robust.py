"""The Dataset dock survives what the scan refuses or simplifies (issue 22, section 2): a
folder of identical images gives one cluster and the dock says why; a folder another scan is
writing is refused in the status line, and the app keeps working."""

from __future__ import annotations

from hookscope.core.io.scan_outputs import lock_folder
from tests.core.test_scan_robust import write_images
from tests.gui.conftest import RUN_TIMEOUT_MS
from tests.gui.test_dataset_dock import dataset_dock


def test_identical_images_and_a_busy_folder(make_window, qtbot, tmp_path):
    images = write_images(tmp_path / "same", 6, identical=True)
    out = tmp_path / "out"
    window = make_window()
    dock = dataset_dock(window)
    dock.set_images(images)
    dock.out_edit.setText(str(out))
    dock.size_spin.setValue(16)

    lock = lock_folder(out)  # another scan holds the folder
    try:
        assert dock.run() is not None
        qtbot.waitUntil(lambda: dock.run_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
        assert dock.status.text() == (
            f"Another scan is writing to {out}; wait for it to finish or pick another --out folder."
        )
        assert dock.scan is None
    finally:
        lock.release()

    assert dock.run() is not None
    qtbot.waitUntil(lambda: dock.scan is not None and dock.run_button.isEnabled(),
                    timeout=RUN_TIMEOUT_MS)  # fmt: skip
    assert dock.scan.complete and dock.scan.column("cluster").tolist() == [0] * 6
    text = dock.status.text()
    assert "Scanned 6 images" in text and "1 clusters" in text
    assert "All 6 maps are the same (identical images, or maps that are all zero)" in text
