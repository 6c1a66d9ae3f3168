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
    assert cam._stale  # not redrawn behind the Activations tab
    layer = next(iter(st.snapshot.cams))
    cam.raise_()
    qtbot.waitUntil(lambda: not cam._stale)
    np.testing.assert_array_equal(cam.maps[layer], st.snapshot.cams[layer])


def test_export_all_includes_docks_behind_tabs(window, tmp_path):
    by_name(window, "ActivationsDock").raise_()
    written = {p.name for p in window.export_all(tmp_path)}
    assert {"activations.png", "cam.png", "gradients.png"} <= written, written
