"""The Trust dock: score the maps in the worker, rank them, say which to believe, export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hookscope.core.demo import sample_path
from tests.gui.conftest import RUN_TIMEOUT_MS

CAR_ROAD = str(sample_path("car_road.png"))


def done(trust) -> bool:
    """The run ended with a report (rows stream in before: ``report`` is set at the first)."""
    return trust.report is not None and not trust.job.running


def trust_dock(window):
    found = next(d for d in window.docks if d.objectName() == "TrustDock")
    found.raise_()
    return found


def test_trust_dock_ranks_the_maps_and_exports_them(make_window, qtbot, tmp_path):
    window = make_window(image=CAR_ROAD)
    trust = trust_dock(window)
    trust.set_methods(["gradcam", "eigencam", "random", "sobel"])
    trust.steps_box.setValue(16)
    assert trust.run() is not None
    assert not trust.run_button.isEnabled() and trust.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: done(trust), timeout=RUN_TIMEOUT_MS)

    r = trust.report
    assert r.target == 1 and r.has_mask  # car_road_mask.png lies next to the image
    assert trust.table.rowCount() == 4
    scores = [r.methods[k].score for k in trust.order]
    assert scores == sorted(scores, reverse=True)
    assert trust.table.item(0, 0).text().split(" ")[0] == trust.order[0]
    headers = [trust.table.horizontalHeaderItem(i).text() for i in range(4)]
    assert headers == ["method", "ins − del ↑", "verdict", "deletion ↓"]
    assert r.best() in trust.summary.text() or "No method beats" in trust.summary.text()
    # The selected row's two curves and the random baseline's, dashed.
    assert trust.selected() == trust.order[0]
    assert len(trust.curves_plot.getPlotItem().listDataItems()) == 4
    trust.table.selectRow(trust.order.index("random"))
    assert len(trust.curves_plot.getPlotItem().listDataItems()) == 2

    path = trust.save_csv(tmp_path / "trust.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("method,drop,increase") and len(lines) == 5
    assert [ln.split(",")[0] for ln in lines[1:]] == trust.order
    arrays = trust.export_arrays()
    assert np.allclose(arrays["deletion/gradcam"], r.methods["gradcam"].deletion_curve)
    assert trust.settings()["ranking"] == trust.order
    panels = trust.figure_panels()
    assert len(panels) == 1 and panels[0][1].shape[2] == 3


def test_trust_dock_cancel_and_rerun(make_window, qtbot):
    window = make_window()
    trust = trust_dock(window)
    trust.set_methods(["gradcam", "gradcam++", "random"])
    trust.steps_box.setValue(400)
    trust.run()
    trust.cancel_button.click()
    qtbot.waitUntil(lambda: trust.run_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
    assert trust.report is None and trust.status.text() == "Cancelled."
    trust.steps_box.setValue(8)
    trust.run()
    qtbot.waitUntil(lambda: done(trust), timeout=RUN_TIMEOUT_MS)
    assert set(trust.report.methods) == {"gradcam", "gradcam++", "random"}


def test_a_method_that_loses_to_a_baseline_says_so(make_window, qtbot):
    window = make_window(image=CAR_ROAD)
    trust = trust_dock(window)
    trust.set_methods(["gradcam", "random", "sobel"])
    trust.steps_box.setValue(8)
    trust.run()
    qtbot.waitUntil(lambda: done(trust), timeout=RUN_TIMEOUT_MS)
    r = trust.report
    # The same table where Grad-CAM's map is the worst possible: it must say so.
    worst = {**r.methods["gradcam"].values, "deletion": 1.0, "insertion": 0.0}
    bad = dataclasses.replace(r.methods["gradcam"], values=worst)
    trust._on_result(dataclasses.replace(r, methods={**r.methods, "gradcam": bad}))
    row = trust.order.index("gradcam")
    assert row == 2
    verdict = trust.table.item(row, 2).text()
    assert verdict == "does not beat random or sobel"
    assert "No method beats the random and sobel baseline" in trust.summary.text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, layer", [("torchvision:resnet18", "layer4"), ("timm:resnet18", "layer4")]
)
def test_trust_dock_on_resnet18_and_timm(make_window, qtbot, spec, layer):
    window = make_window(spec=spec, image=CAR_ROAD)
    st, trust = window.state, trust_dock(window)
    st.set_cam(layers=[layer])
    trust.set_methods(["gradcam", "random", "sobel"])
    trust.steps_box.setValue(8)
    trust.run()
    qtbot.waitUntil(lambda: done(trust), timeout=4 * RUN_TIMEOUT_MS)
    r = trust.report
    assert r.layer == layer and trust.table.rowCount() == 3
    assert r.methods["gradcam"].deletion_curve.shape == (9,)
    assert np.isfinite([r.methods[k].score for k in r.methods]).all()


def test_trust_rows_appear_as_each_method_ends(make_window, qtbot, monkeypatch):
    import threading

    import hookscope.gui.docks.trust as trust_module
    from hookscope.core.reporting import Reporter

    window = make_window()
    trust = trust_dock(window)
    trust.set_methods(["gradcam", "eigencam", "random"])
    trust.steps_box.setValue(8)
    go, first = threading.Event(), []

    class HoldAfterFirst(Reporter):
        """The worker's reporter; the job waits after its first partial table."""

        def __init__(self, inner):
            super().__init__(inner._on_progress, self._partial)
            self._cancel, self.inner = inner._cancel, inner

        def _partial(self, report):
            self.inner.partial(report)
            first.append(report)
            while len(first) == 1 and not go.wait(0.01):
                self.check()

    real = trust_module.evaluate_job
    monkeypatch.setattr(
        trust_module, "evaluate_job", lambda r, *a, **k: real(HoldAfterFirst(r), *a, **k)
    )
    try:
        trust.run()
        qtbot.waitUntil(lambda: trust.table.rowCount() == 1, timeout=RUN_TIMEOUT_MS)
        assert trust.job.running and not trust.run_button.isEnabled()  # still scoring
        assert trust.order == ["gradcam"] and trust.selected() == "gradcam"
        assert trust.table.item(0, 0).text() == "gradcam"
        row = [trust.table.item(0, c).text() for c in range(trust.table.columnCount())]
        partial = trust.report.methods["gradcam"]
    finally:
        go.set()
    qtbot.waitUntil(lambda: done(trust), timeout=RUN_TIMEOUT_MS)
    assert trust.table.rowCount() == 3 and set(trust.order) == {"gradcam", "eigencam", "random"}
    final = trust.report.methods["gradcam"]
    assert final.score == partial.score and final.deletion == partial.deletion
    at = trust.order.index("gradcam")
    assert trust.table.item(at, 1).text() == row[1]  # the same score the streamed row showed


def test_flat_curves_are_said_in_words_and_the_legend_leaves_them_alone(make_window, qtbot):
    """Shortcut demo: insertion is flat for every map; the dock says so and shows the digits."""
    window = make_window()  # the demo on airplane_sky: the blurred sky alone is "airplane"
    trust = trust_dock(window)
    trust.set_methods(["gradcam", "random"])
    trust.steps_box.setValue(8)
    trust.run()
    qtbot.waitUntil(lambda: done(trust), timeout=RUN_TIMEOUT_MS)
    r = trust.report
    text = trust.finding.text()
    assert trust.finding.isVisibleTo(trust) and text == " ".join(r.findings())
    assert text.startswith(
        "The score hardly changes when pixels are inserted into the blurred image (insertion "
        "curves flat within 0.0"
    )
    assert text.endswith("The ranking rests on deletion alone.")
    heads = [trust.table.horizontalHeaderItem(i).text() for i in range(trust.table.columnCount())]
    col = heads.index("insertion ↑")
    cells = [trust.table.item(i, col).text() for i in range(2)]
    assert cells[0] != cells[1] and len(cells[0].split(".")[1]) >= 4  # not 0.966 twice
    assert [float(c) for c in cells] == pytest.approx(
        [r.methods[k].insertion for k in trust.order], abs=1e-4
    )
    assert not any(
        trust.table.item(i, j).text().startswith("-0.000")
        for i in range(2)
        for j in range(1, len(heads))
    )
    # The legend is a wrapping line under the plot, not a box over the curves.
    d = r.decimals()
    top = trust.order[0]
    assert trust.legend_entries[:2] == [
        f"{top} del {r.cell(top, 'deletion', d)}",
        f"{top} ins {r.cell(top, 'insertion', d)}",
    ]
    assert trust.curves_plot.getPlotItem().legend is None
    below = trust.curves_legend.mapTo(trust, trust.curves_legend.rect().topLeft()).y()
    plot = trust.curves_plot.mapTo(trust, trust.curves_plot.rect().bottomLeft()).y()
    assert below >= plot and trust.curves_legend.wordWrap()
    assert all(t.replace(" ", "&nbsp;") in trust.curves_legend.text() for t in trust.legend_entries)
