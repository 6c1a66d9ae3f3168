"""The Dataset dock: scan a folder in the worker, the clusters as a scatter, filters, gallery,
clicks that open an image, reopening a scan folder, cancel and resume (issue 15)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from hookscope.core.io.scan_outputs import open_scan
from hookscope.core.jobs.scan import LiveScan
from hookscope.core.reporting import SCANNING, Progress, Reporter
from hookscope.gui import figures
from hookscope.gui.docks.dataset import CLUSTER_COLORS, DatasetDock, cluster_color
from tests.core.test_scan import write_scenes
from tests.gui.conftest import RUN_TIMEOUT_MS

N = 24


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """24 demo scenes (clean distribution, 96 px) in ImageFolder layout, masks alongside."""
    return write_scenes(tmp_path_factory.mktemp("dataset"), N, seed=5)


def dataset_dock(window) -> DatasetDock:
    found = next(d for d in window.docks if d.objectName() == "DatasetDock")
    found.raise_()
    return found


def points(dock) -> dict[int, tuple[int, int, int]]:
    """Row → RGB of every point in the scatter."""
    out = {}
    for item in dock.scatter_items:
        for p in item.points():
            c = p.brush().color()
            out[int(p.data())] = (c.red(), c.green(), c.blue())
    return out


def positions(dock) -> dict[int, tuple[float, float]]:
    return {
        int(p.data()): (round(p.pos().x(), 4), round(p.pos().y(), 4))
        for item in dock.scatter_items
        for p in item.points()
    }


def click_point(qtbot, dock, row: int) -> None:
    """A real mouse click next to the point of table row ``row``."""
    qtbot.wait(50)  # the view ranges itself on the next paint
    x, y = float(dock._cols["x"][row]), float(dock._cols["y"][row])
    vb = dock.plot.getPlotItem().getViewBox()
    # A few pixels off the centre: the nearest point within PICK_PX counts.
    pos = dock.plot.mapFromScene(vb.mapViewToScene(QPointF(x, y))) + QPoint(4, -3)
    view = dock.plot.viewport()
    qtbot.mouseMove(view, pos)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=pos)


def test_dataset_dock_scans_filters_opens_and_reopens(make_window, qtbot, scenes):
    images, masks = scenes
    window = make_window()
    st = window.state
    dock = dataset_dock(window)
    dock.set_images(images)
    assert dock.masks_edit.text() == str(masks)  # the sibling "masks" folder is picked up
    assert dock.layer_combo.currentText() == st.cam_layers[0]  # the model's CAM layer
    dock.size_spin.setValue(32)
    assert dock.run() is not None
    assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dock.scan is not None and dock.run_button.isEnabled(), timeout=60_000)

    out = images.parent / "images-hookscope-scan"  # next to the images by default
    scan = open_scan(out)
    assert scan.complete and len(scan) == N and scan.maps.shape == (N, 32, 32)
    assert dock.scan.folder == out and "Scanned 24 images" in dock.status.text()
    # One point per image, coloured by the table's cluster.
    clusters = scan.column("cluster")
    shown = points(dock)
    assert sorted(shown) == list(range(N))
    assert all(shown[k] == cluster_color(int(clusters[k])) for k in range(N))
    assert len(set(clusters.tolist())) == len(scan.clusters) >= 2
    assert dock.count_label.text().startswith(f"{N} of {N}")

    # Filters: each one leaves exactly the matching rows.
    labels, preds = scan.column("label"), scan.column("pred")
    correct = scan.column("correct")
    dock.set_filters(cluster=1)
    assert sorted(points(dock)) == np.flatnonzero(clusters == 1).tolist()
    dock.set_filters(label=labels[0])
    assert sorted(points(dock)) == [k for k in range(N) if labels[k] == labels[0]]
    dock.set_filters(label=labels[0], pred=preds[0], correct=True)
    want = [k for k in range(N) if labels[k] == labels[0] and preds[k] == preds[0] and correct[k]]
    assert sorted(points(dock)) == want
    dock.set_filters(correct=False)
    assert sorted(points(dock)) == [k for k in range(N) if correct[k] is False]

    # The largest cluster's gallery, mean map and composition.
    dock.set_filters()
    big = scan.clusters[0]
    assert dock.selected_cluster() == big.id == 0
    rows = dock.gallery_rows()
    assert dock.gallery.count() == big.size == len(rows)
    assert [scan.column("path")[k] for k in rows[: len(big.examples)]] == list(big.examples)
    np.testing.assert_allclose(dock.mean_map(0), scan.mean_map(0))
    text = dock.composition.text()
    assert f"{big.size} images" in text and f"{big.mean_bg_mass:.2f}" in text
    thumb = dock.thumbnail(int(rows[0]))
    ref = figures.overlay(
        scan.input_image(int(rows[0]), side=96), scan.map(int(rows[0])), st.colormap, st.alpha
    )
    assert np.array_equal(thumb, ref)

    # A click on a cluster in the legend shows its gallery.
    dock.legend.linkActivated.emit("1")
    assert dock.selected_cluster() == 1 and dock.gallery.count() == (clusters == 1).sum()
    dock.legend.linkActivated.emit("0")
    assert dock.selected_cluster() == 0 and dock.gallery.count() == big.size

    # A click on a thumbnail, then on a point of another cluster, opens that image everywhere.
    item = dock.gallery.item(2)
    row = int(item.data(Qt.ItemDataRole.UserRole))
    with qtbot.waitSignal(st.imageChanged, timeout=5000):
        rect = dock.gallery.visualItemRect(item)
        qtbot.mouseClick(dock.gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert Path(st.image_path) == scan.image_path(row)
    assert dock.marker.points()[0].pos().x() == pytest.approx(float(scan.column("x")[row]))
    other = int(np.flatnonzero(clusters == 1)[0])
    with qtbot.waitSignal(st.imageChanged, timeout=5000):
        click_point(qtbot, dock, other)
    assert Path(st.image_path) == scan.image_path(other)
    assert dock.selected_cluster() == 1 and dock.gallery.count() == (clusters == 1).sum()
    qtbot.waitUntil(lambda: not st.busy, timeout=RUN_TIMEOUT_MS)  # the probe of that image

    # Save / Export: the scatter, the mean map with its bar, a strip of examples.
    panels = dock.figure_panels()
    assert [p[0] for p in panels] == ["Embedding", "Cluster 1: mean map", "Cluster 1: examples"]
    assert np.array_equal(panels[1].rgb, figures.colorize(scan.mean_map(1), st.colormap))
    n_strip = min(8, int((clusters == 1).sum()))
    assert panels[2][1].shape == (96, 96 * n_strip + 4 * (n_strip - 1), 3)
    assert np.array_equal(dock.export_arrays()["cluster"], clusters)

    # Reopening the folder (no rerun) shows the same numbers.
    again = DatasetDock(st)
    qtbot.addWidget(again)
    assert again.open_folder(out)
    assert points(again) == points(dock) and positions(again) == positions(dock)
    assert again.composition.text() == dock._composition_html(0)
    assert again.layer_combo.currentText() == dock.layer_combo.currentText()
    assert again.size_spin.value() == 32
    assert not again.open_folder(images)  # not a scan folder: one sentence, nothing changes
    assert "holds no scan results" in again.status.text() and again.scan.folder == out


class GateAfter(Reporter):
    """Reports through ``inner``, then holds the scan at ``n`` images until it is cancelled."""

    def __init__(self, inner: Reporter, n: int):
        super().__init__(inner._on_progress)
        self._cancel = inner._cancel  # the worker's cancel flag
        self.inner, self.n = inner, n

    def progress(self, done, total, message="", stage=""):
        self.inner.last = Progress(done, total, message, stage)  # the worker reads its stage
        super().progress(done, total, message, stage)
        deadline = time.monotonic() + 30
        while message == "Scanning" and done >= self.n and not self.cancelled:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.check()


def test_dataset_dock_cancel_keeps_the_rows_and_run_resumes(
    make_window, qtbot, scenes, tmp_path, monkeypatch
):
    import hookscope.gui.docks.dataset as dataset

    images, masks = scenes
    window = make_window()
    dock = dataset_dock(window)
    dock.set_images(images, masks)
    dock.out_edit.setText(str(tmp_path / "out"))
    dock.size_spin.setValue(16)
    dock.batch_size = 4
    real = dataset.scan_job
    monkeypatch.setattr(
        dataset, "scan_job", lambda reporter, *a, **k: real(GateAfter(reporter, 8), *a, **k)
    )
    dock.run()
    qtbot.waitUntil(lambda: "Scanning 8 / 24" in dock.status.text(), timeout=60_000)
    assert dock.progress_bar.isVisible() and dock.progress_bar.value() == 8
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: dock.run_button.isEnabled(), timeout=60_000)
    assert "Cancelled: the 8 images" in dock.status.text() and "Run resumes" in dock.status.text()
    assert not dock.scan.complete and len(dock.scan) == 8
    assert points(dock) == {}  # not clustered yet: nothing to place, the plot says why
    assert dock.hint.isVisible() and "Not clustered yet" in dock.hint.textItem.toPlainText()
    assert dock.selected_cluster() == -1 and dock.gallery.count() == 8
    assert not dock.progress_bar.isVisible()

    monkeypatch.setattr(dataset, "scan_job", real)
    dock.run()
    assert dock.scan is None  # the partial scan leaves the view as the resumed run starts
    qtbot.waitUntil(
        lambda: dock.scan is not None and dock.scan.complete and dock.run_button.isEnabled(),
        timeout=60_000,
    )
    assert "16 computed, 8 resumed" in dock.status.text()
    assert len(dock.scan) == N and sorted(points(dock)) == list(range(N))
    assert all(c in CLUSTER_COLORS for c in points(dock).values())


class HoldAt(Reporter):
    """The worker's reporter (progress, partial results, cancel) that holds the scan once
    ``n`` images are done until ``go`` is set."""

    def __init__(self, inner: Reporter, n: int, go):
        super().__init__(inner._on_progress, inner._on_partial)
        self._cancel = inner._cancel
        self.inner, self.n, self.go = inner, n, go

    def progress(self, done, total, message="", stage=""):
        self.inner.last = Progress(done, total, message, stage)  # the worker reads its stage
        super().progress(done, total, message, stage)
        while stage == SCANNING and done >= self.n and not self.go.wait(0.01):
            self.check()


def test_dataset_dock_shows_rows_while_the_scan_runs(
    make_window, qtbot, scenes, tmp_path, monkeypatch
):
    """Points, filters, mean map and gallery fill as batches land, before the scan ends."""
    import hookscope.gui.docks.dataset as dataset

    images, masks = scenes
    window = make_window()
    dock = dataset_dock(window)
    dock.set_images(images, masks)
    dock.out_edit.setText(str(tmp_path / "live"))
    dock.size_spin.setValue(16)
    dock.batch_size = 4
    go = threading.Event()
    real = dataset.scan_job
    monkeypatch.setattr(
        dataset, "scan_job", lambda reporter, *a, **k: real(HoldAt(reporter, 8, go), *a, **k)
    )
    try:
        dock.run()
        qtbot.waitUntil(
            lambda: isinstance(dock.scan, LiveScan) and len(dock.scan) == 8, timeout=60_000
        )
        assert dock.job.running and not dock.scan.complete  # the job has not ended
        assert sorted(points(dock)) == list(range(8))  # one grey point per row so far
        assert set(points(dock).values()) == {cluster_color(-1)}
        assert all(np.isfinite(xy).all() for xy in positions(dock).values())
        assert dock.gallery.count() == 8 and "8 images scanned so far" in dock.composition.text()
        assert dock.count_label.text().startswith("8 of 8")
        live = dock.scan
        mean = dock.mean_map(-1)
        np.testing.assert_allclose(mean, np.asarray(live.maps, np.float32).mean(0), atol=1e-5)
        rows = {k: live.column(k).copy() for k in ("path", "pred", "prob", "bg_mass")}
        maps = np.asarray(live.maps, np.float32).copy()
    finally:
        go.set()
    qtbot.waitUntil(lambda: dock.run_button.isEnabled(), timeout=60_000)
    final = dock.scan
    assert final.complete and len(final) == N and not isinstance(final, LiveScan)
    # The streamed rows are the rows the scan wrote.
    assert final.column("path")[:8].tolist() == rows["path"].tolist()
    assert final.column("pred")[:8].tolist() == rows["pred"].tolist()
    np.testing.assert_allclose(final.column("prob")[:8], rows["prob"], atol=1e-6)
    np.testing.assert_allclose(final.column("bg_mass")[:8], rows["bg_mass"], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(final.maps[:8], np.float32), maps)
    # The dock's choices travel as one ScanSettings (Export all, sessions) and come back.
    chosen = dock.scan_settings()
    assert chosen.batch_size == 4 and chosen.map_size == 16 and chosen.masks == str(masks)
    assert dock.settings()["scan_settings"] == chosen.to_dict()
    dock.size_spin.setValue(40)
    dock.masks_edit.clear()
    dock.set_scan_settings(chosen.to_dict())
    assert dock.scan_settings() == chosen
