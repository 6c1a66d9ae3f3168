"""Docks behind another tab redraw when shown, and still export their figures."""

import numpy as np

from tests.gui.conftest import RUN_TIMEOUT_MS


def by_name(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def test_hidden_tab_catches_up_when_shown(window, qtbot):
    st = window.state
    acts, cam = by_name(window, "ActivationsDock"), by_name(window, "CamDock")
    acts.raise_()
    qtbot.waitUntil(lambda: not cam._shown)
    st.set_target(2)  # a rerun for another class: a new CAM
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        pass
    assert cam._redraw_pending  # not redrawn behind the Activations tab
    layer = next(iter(st.snapshot.cams))
    cam.raise_()
    qtbot.waitUntil(lambda: not cam._redraw_pending)
    np.testing.assert_array_equal(cam.maps[layer], st.snapshot.cams[layer])


def test_export_all_includes_docks_behind_tabs(window, tmp_path):
    by_name(window, "ActivationsDock").raise_()
    written = {p.name for p in window.export_all(tmp_path)}
    assert {"activations.png", "cam.png", "gradients.png"} <= written, written


def test_out_of_date_attribution_still_saves(window, qtbot, tmp_path):
    st, attr = window.state, by_name(window, "AttributionDock")
    attr.raise_()
    attr.set_method("saliency")
    with qtbot.waitSignal(st.worker.finished, timeout=RUN_TIMEOUT_MS):
        attr.run()
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.set_target(1)  # the attribution is now out of date until Run
    assert "out of date" in attr.status.text()
    png = attr.save_figure(tmp_path / "attr.png")
    assert png is not None and png.stat().st_size > 1000
