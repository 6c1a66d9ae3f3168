"""Panels that tell the truth (issue 23): Sanity's axis and counts, the scan dock, Image lab."""

from __future__ import annotations

import numpy as np

from hookscope.core.experiments.sanity import SanityResult
from hookscope.core.jobs.experiments import SanityReport


def dock(window, name):
    """The dock, brought to the front as a user would by clicking its tab."""
    found = next(d for d in window.docks if d.objectName() == name)
    found.raise_()
    return found


def test_sanity_axis_holds_a_curve_that_falls_below_zero(window):
    sanity = dock(window, "SanityDock")
    steps = ("fc", "features.block3.conv", "features.block2.conv")
    corr = {"gradcam": np.array([0.7, -0.35, -0.9]), "guided-backprop": np.array([0.9, 0.8, 0.6])}
    result = SanityResult(steps, corr, {}, {}, 0)
    sanity._on_result(SanityReport(result, tuple(corr), "a", "a", "airplane"))
    lo, hi = sanity.plot.getPlotItem().getViewBox().viewRange()[1]
    assert lo <= -0.9 - 0.05 + 1e-9 and hi >= 1.0  # the lowest point is inside (was -0.2)
    assert "3 steps" in sanity.note.text()


def test_scan_dock_clears_stale_scans_counts_right_and_lets_a_finished_scan_win(
    make_window, qtbot, tmp_path, monkeypatch
):
    import threading

    import hookscope.gui.docks.dataset as dataset
    from tests.core.test_scan import write_scenes

    images, _ = write_scenes(tmp_path, 8, seed=3)
    (images / "car" / "broken.png").write_bytes(b"not an image")
    window = make_window()
    scans = dock(window, "DatasetDock")
    scans.set_images(images)
    scans.size_spin.setValue(32)
    scans.run()
    qtbot.waitUntil(lambda: scans.scan is not None and scans.run_button.isEnabled(), timeout=90_000)
    # 9 listed = 8 mapped + 1 unreadable (it said "9 images (9 computed, 1 unreadable)").
    assert scans.status.text().startswith("Scanned 9 images: 8 mapped, 1 unreadable at ")
    assert len(scans.scan) == 9 and scans.scatter_items
    first = scans.scan
    scans.size_spin.setValue(16)  # the Output folder holds the 32-px scan: refused at once
    scans.run()
    qtbot.waitUntil(lambda: scans.run_button.isEnabled(), timeout=90_000)
    assert "holds a scan made with another map size" in scans.status.text()
    assert scans.scan is first and not scans.hint.isVisible()  # no "Scanning…" left behind
    scans.size_spin.setValue(32)

    go = threading.Event()
    real = dataset.scan_job

    def late_cancel(reporter, *args, **kwargs):
        while not go.wait(0.01):
            reporter.check()
        result = real(reporter, *args, **kwargs)
        reporter.cancel()  # a Cancel (or Esc) that lands as the finished scan returns
        return result

    monkeypatch.setattr(dataset, "scan_job", late_cancel)
    scans.run()
    # The old scan leaves the view the moment the new one starts, before any row lands.
    assert scans.scan is None and scans.scatter_items == [] and scans.gallery.count() == 0
    assert scans.hint.isVisible() and scans.hint.textItem.toPlainText().startswith("Scanning…")
    go.set()
    qtbot.waitUntil(lambda: scans.run_button.isEnabled(), timeout=90_000)
    assert scans.scan.complete and len(scans.scan) == 9
    assert scans.status.text().startswith("Finished before the cancel took effect: 9 images, ")

    with qtbot.waitSignal(window.state.modelChanged, timeout=90_000):
        window.state.load_model("demo:clean", device="cpu")
    assert scans.scan is None and scans.scatter_items == []
    assert scans.status.text().startswith("The model changed, so the scan made with the previous")
    assert scans.out_edit.text() == ""  # the next Run does not aim at the old model's folder


def test_image_lab_before_after_comes_back_with_a_reopened_session(make_window, qtbot, tmp_path):
    from hookscope.core.demo import sample_path
    from hookscope.gui import session_io

    def rows(lab):
        return [
            [lab.table.item(r, c).text() for c in range(2)] for r in range(lab.table.rowCount())
        ]

    first = make_window(image=str(sample_path("sky.png")))
    lab = dock(first, "ImageLabDock")
    lab.set_patch(str(sample_path("car_road.png")))
    assert lab.apply_paste()
    qtbot.waitUntil(lambda: lab.result is not None and not first.state.busy, timeout=90_000)
    shown = rows(lab)
    assert len(shown) == 4 and shown[0][1].startswith("airplane")  # the car on sky: airplane
    path = session_io.save_session(first, tmp_path / "s.json")

    second = make_window()
    lab2 = dock(second, "ImageLabDock")
    assert lab2.result is None and lab2.table.rowCount() == 0
    assert session_io.open_session(second, path)
    qtbot.waitUntil(lambda: lab2.result is not None, timeout=90_000)
    # The same numbers as when the edit was made (was: an empty table after the reopen).
    assert rows(lab2) == shown and lab2.summary.text() == lab.summary.text()
    assert lab2.result.edit == first.state.image_edits[-1]

    second.state.load_image(str(sample_path("sky.png")))  # a plain image: nothing to compare
    assert lab2.result is None and lab2.table.rowCount() == 0
