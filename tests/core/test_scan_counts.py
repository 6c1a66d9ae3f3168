"""A scan's numbers add up, and a cancel after the last image leaves a finished scan."""

from __future__ import annotations

from pathlib import Path

from hookscope.core.io.scan_outputs import REPORT_FILE, open_scan
from hookscope.core.jobs.scan import ScanSettings, ScanSummary, scan_job
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import Reporter
from tests.core.test_scan import write_scenes


def summary(rows, errors, computed, resumed) -> ScanSummary:
    return ScanSummary(Path("out"), rows, errors, computed, resumed, 2, True, 1.0, 10.0)


def test_counts_add_up():
    assert summary(31, 1, 31, 0).counts() == "31 images: 30 mapped, 1 unreadable"
    assert summary(24, 0, 16, 8).counts() == "24 images (16 computed, 8 resumed)"
    assert summary(6, 0, 6, 0).counts() == "6 images"
    both = summary(31, 2, 21, 10).counts()
    assert both == "31 images: 29 mapped, 2 unreadable (21 computed, 10 resumed)"


class CancelWhileClustering(Reporter):
    """Cancel arrives while the scan clusters its rows (the user clicks Cancel, or Esc, late)."""

    def progress(self, done, total, message="", stage=""):
        super().progress(done, total, message, stage)
        if message == "Clustering":
            self.cancel()


def test_a_cancel_while_clustering_leaves_a_finished_scan(tmp_path):
    images, _ = write_scenes(tmp_path, 6, seed=2)
    (images / "car" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    settings = ScanSettings(images, "features.block3", out=out, workers=0, map_size=16)
    reporter = CancelWhileClustering()
    try:
        s = scan_job(reporter, load_model("demo"), settings)
    except Exception as exc:  # it raised Cancelled at "Writing the report", no report written
        raise AssertionError(f"the finished scan was reported {type(exc).__name__}") from exc
    assert reporter.cancelled and s.complete
    assert (s.rows, s.errors, s.computed, s.resumed) == (7, 1, 7, 0)
    assert s.counts() == "7 images: 6 mapped, 1 unreadable"
    assert open_scan(out).complete and (out / REPORT_FILE).is_file()
