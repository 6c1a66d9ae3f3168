"""CAM dock Side by side on demo:vit (issue 24): the four transformer methods, one pane each,
the header agreeing with what runs, and the choices surviving a session."""

import re

import numpy as np
import pytest
from PySide6.QtGui import QFontMetrics

import hookscope
from hookscope.core.demo import sample_path
from hookscope.core.jobs import probe as jobs
from hookscope.core.jobs.probe import PATCH_MAP
from hookscope.core.jobs.side_by_side import read_choices
from hookscope.gui import session_io
from hookscope.gui.docks.cam import CAM_CHOICE

FOUR = ["rollout", "chefer", "legrad", "attnlrp"]
BLOCKS = [f"encoder.layers.encoder_layer_{i}" for i in range(4)]
RUN_MS = 60_000


@pytest.fixture(scope="module")
def vit_load():
    """demo:vit loaded once for the module (the windows share the model, as cached_loads)."""
    from hookscope.core.reporting import Reporter

    return jobs.load_job(Reporter(), "demo:vit")


@pytest.fixture
def vit(make_window, monkeypatch, vit_load):
    import hookscope.gui.state

    real = hookscope.gui.state.jobs.load_job  # cached_loads' own (demo, torchvision)

    def load(reporter, spec, *args, **kwargs):
        return vit_load if spec == "demo:vit" else real(reporter, spec, *args, **kwargs)

    monkeypatch.setattr(hookscope.gui.state.jobs, "load_job", load)
    image = sample_path("airplane_sky.png")

    def make():
        window = make_window("demo:vit", image=image)
        dock = next(d for d in window.analysis_docks if d.TITLE == "CAM")
        window.show_panel(dock)
        return window, dock

    return make


def run(qtbot, state, action):
    with qtbot.waitSignal(state.resultChanged, timeout=RUN_MS):
        action()
    return state.snapshot


def explained(state, method, **kw):
    """What the public API gives for ``method`` on the window's model, image and top-1."""
    return hookscope.explain(state.loaded, state.image, method=method, **kw).map


def shown(pane):
    """Top and height of the map on screen (scene pixels)."""
    r = pane.image.mapRectToScene(pane.image.boundingRect())
    return r.top(), r.height()


def strip(pane):
    """Top and height of the colour strip (the bar less half a label above and below)."""
    half = QFontMetrics(pane.bar.font()).height() / 2
    r = pane.bar.geometry()
    return r.top() + half, r.height() - 2 * half


def test_side_by_side_shows_each_method_as_explain_gives_it(vit, qtbot):
    window, dock = vit()
    st = window.state
    assert dock.compare_button.picked() == FOUR  # a transformer's default
    assert not dock.compare_button.isChecked() and dock.method_combo.isEnabled()
    seen = []
    st.progress.connect(lambda _d, _t, message: seen.append(message))
    run(qtbot, st, lambda: dock.compare_button.setChecked(True))
    assert st.cam_compare == FOUR
    assert list(dock.panes) == FOUR
    titles = [dock.panes[m].full_title for m in FOUR]
    assert titles == [f"{m} · airplane" for m in FOUR]
    for m in FOUR:  # each pane is the map the method gives alone
        diff = np.abs(dock.maps[m] - explained(st, m)).max()
        assert diff < 1e-5, (m, diff)
        assert dock.panes[m].image.image.shape == (96, 96, 3)
    for pane in dock.panes.values():  # the colour strip level with the map beside it
        qtbot.waitUntil(lambda p=pane: abs(strip(p)[1] - shown(p)[1]) <= 2, timeout=3000)
        assert abs(strip(pane)[0] - shown(pane)[0]) <= 2
    # Every progress line names its method and step (the probe's own gradcam first: 5 steps;
    # the worker polls, so not every line arrives: the cancel test waits for one).
    step = re.compile(r"(probe|rollout|chefer|legrad|attnlrp) \([1-5] / 5\): ")
    assert all(step.match(msg) for msg in seen), seen
    # Save figure / Export all hold the same panes and maps.
    panels = dock.make_panels()
    assert [p.title for p in panels] == ["input", *titles]
    assert panels[-1].bar is not None and panels[-1].bar.levels == (0.0, 1.0)
    arrays = dock.make_arrays()
    for m in FOUR:
        assert np.array_equal(arrays[f"cam/{m}/map"], dock.maps[m])
        assert np.array_equal(arrays[f"cam/{m}/overlay"], dock.panes[m].image.image)
    assert dock.settings()["methods"] == FOUR and dock.settings()["method"] is None
    assert dock.status.text() == f"Side by side: {', '.join(FOUR)} for class 0 (airplane)."
    # The other views keep the probe of the header's method (one CAM layer, gradcam).
    assert st.snapshot.cam_method == "gradcam" and PATCH_MAP not in st.snapshot.cams

    # Untick attnlrp in the menu: three panes, the others' maps unchanged.
    before = {m: dock.maps[m].copy() for m in FOUR[:3]}
    attnlrp = next(a for a in dock.compare_button.menu().actions() if a.text() == "attnlrp")
    run(qtbot, st, attnlrp.trigger)
    assert list(dock.panes) == FOUR[:3] and st.cam_compare == FOUR[:3]
    assert dock.compare_button.text() == "Side by side: 3"
    assert all(np.array_equal(dock.maps[m], before[m]) for m in before)

    # Off: back to the one CAM of the header, its method combo in charge again.
    run(qtbot, st, lambda: dock.compare_button.setChecked(False))
    assert st.cam_compare == [] and list(dock.panes) == st.cam_layers
    assert dock.method_combo.isEnabled() and not dock.method_note.isVisibleTo(dock)


def test_header_method_agrees_with_what_runs(vit, qtbot):
    window, dock = vit()
    st = window.state
    assert dock.method_combo.currentText() == "gradcam" and dock.method_combo.isEnabled()
    snap = run(qtbot, st, lambda: dock.tf_combo.setCurrentText("rollout"))
    # rollout ran: the pane says so, and the header's gradcam is greyed with a note.
    assert snap.cam_method == "rollout" and list(dock.panes) == [PATCH_MAP]
    assert dock.panes[PATCH_MAP].full_title == f"{PATCH_MAP} — rollout"
    assert not dock.method_combo.isEnabled()
    assert (
        dock.method_note.isVisibleTo(dock) and dock.method_note.text() == "not used: rollout runs"
    )
    assert CAM_CHOICE in dock.method_combo.toolTip()
    assert not dock.layer_box.isVisibleTo(dock)  # the CAM layers decide nothing now
    # Side by side: neither method combo decides; both greyed, the note says why.
    run(qtbot, st, lambda: dock.compare_button.setChecked(True))
    assert not dock.tf_combo.isEnabled() and not dock.method_combo.isEnabled()
    assert dock.method_note.text() == "not used: side by side"
    assert dock.fusion_combo.isEnabled() and dock.blocks_button.isEnabled()  # rollout / legrad
    # The Sanity check takes what the panes show, not the greyed header method.
    sanity = next(d for d in window.experiment_docks if d.TITLE == "Sanity check")
    assert sanity.methods()[:4] == tuple(FOUR) and "gradcam" not in sanity.methods()
    run(qtbot, st, lambda: dock.compare_button.setChecked(False))
    assert sanity.methods()[0] == "rollout"  # the transformer method the pane shows again
    snap = run(qtbot, st, lambda: dock.tf_combo.setCurrentText(CAM_CHOICE))
    assert snap.cam_method == "gradcam" and dock.method_combo.isEnabled()
    assert not dock.method_note.isVisibleTo(dock) and dock.layer_box.isVisibleTo(dock)
    assert [dock.panes[n].full_title for n in dock.panes] == [
        f"{n} — gradcam" for n in st.cam_layers
    ]


def test_session_keeps_blocks_fusion_and_side_by_side(vit, qtbot, tmp_path):
    window, dock = vit()
    st = window.state
    st.set_auto_run(False)  # the choices through the controls, then one run
    dock.tf_combo.setCurrentText("rollout")
    dock.fusion_combo.setCurrentText("max")
    actions = dock.blocks_button.menu().actions()
    actions[2].setChecked(True)
    actions[3].setChecked(True)
    picked = ["rollout", "legrad"]
    for a in dock.compare_button.menu().actions():
        a.setChecked(a.text() in picked)  # ticks while off only choose
    dock.compare_button.setChecked(True)
    run(qtbot, st, st.run)
    shown = {m: dock.maps[m].copy() for m in picked}
    path = session_io.save_session(window, tmp_path / "s.json")
    saved = session_io.Session.load(path).cam_params
    assert saved["blocks"] == BLOCKS[2:] and saved["method_params"] == {"fusion": "max"}
    assert saved["side_by_side"] == picked

    other, odock = vit()  # a fresh window: gradcam, default blocks, no side by side
    assert other.state.cam_compare == [] and other.state.cam_blocks == []
    run(qtbot, other.state, lambda: session_io.open_session(other, path, trust={}))
    ost = other.state
    assert ost.cam_blocks == BLOCKS[2:] and ost.cam_params == {"fusion": "max"}
    assert ost.cam_compare == picked and ost.cam_method == "rollout"
    # The controls show it ...
    assert odock.blocks_button.text() == "Blocks: 2"
    assert [a.isChecked() for a in odock.blocks_button.menu().actions()] == [0, 0, 1, 1]
    assert odock.fusion_combo.currentText() == "max"
    assert odock.compare_button.isChecked() and odock.compare_button.picked() == picked
    # ... and it is what ran: the same maps, equal to the API with those blocks and fusion.
    assert list(odock.panes) == picked
    for m in picked:
        assert np.array_equal(odock.maps[m], shown[m])
    rollout = explained(ost, "rollout", layers=BLOCKS[2:], fusion="max")
    assert np.abs(odock.maps["rollout"] - rollout).max() < 1e-5
    legrad = explained(ost, "legrad", layers=BLOCKS[2:])
    assert np.abs(odock.maps["legrad"] - legrad).max() < 1e-5
    # The blocks matter (else the check above would say nothing).
    assert np.abs(explained(ost, "legrad") - legrad).max() > 1e-3


def test_session_choices_are_checked_against_the_model():
    data = {
        "blocks": ["encoder.layers.encoder_layer_1", "features.3"],
        "method_params": {"fusion": "median", "conv_gamma": 0.5},
        "side_by_side": ["rollout", "gradcam", "nope"],
    }
    kept, notes = read_choices(data, BLOCKS)
    assert kept == {
        "blocks": ["encoder.layers.encoder_layer_1"],
        "params": {"conv_gamma": 0.5},
        "compare": ["rollout", "gradcam"],
    }
    assert len(notes) == 3 and "fusion='median'" in notes[1]
    cnn, notes = read_choices({"side_by_side": ["rollout", "gradcam"], "blocks": "x"}, [])
    assert cnn == {"blocks": [], "params": {}, "compare": ["gradcam"]} and len(notes) == 2


def test_side_by_side_of_cams_on_the_cnn_demo(window, qtbot):
    """A CNN compares the CAM family on its CAM layers: one pane per method (and layer)."""
    st = window.state
    dock = next(d for d in window.analysis_docks if d.TITLE == "CAM")
    window.show_panel(dock)
    cams = ["gradcam", "gradcam++", "xgradcam", "layercam"]
    assert dock.compare_button.choices()[0] == "gradcam" and dock.compare_button.picked() == cams
    run(qtbot, st, lambda: dock.compare_button.setChecked(True))
    (layer,) = st.cam_layers
    assert list(dock.panes) == cams and dock.layer_box.isVisibleTo(dock)  # the list decides
    for m in cams:
        diff = np.abs(dock.maps[m] - explained(st, m, layer=layer)).max()
        assert diff < 1e-5, (m, diff)
    # Two CAM layers: each method has a pane per layer, named by both.
    both = ["features.block2", layer]
    run(qtbot, st, lambda: st.set_cam(layers=both))
    assert list(dock.panes) == [f"{m} · {n}" for m in cams for n in both]
    block2 = explained(st, "layercam", layer="features.block2")
    assert np.abs(dock.maps["layercam · features.block2"] - block2).max() < 1e-5


def test_cancel_puts_side_by_side_back_to_what_is_shown(vit, qtbot, no_hooks_left):
    import threading

    window, dock = vit()
    st = window.state
    model = st.loaded.model
    no_hooks_left(model)
    entered, release, calls = threading.Event(), threading.Event(), []

    def block(*_args):  # the third forward is inside a compared method's pass: wait there
        calls.append(1)
        if len(calls) >= 3 and not release.is_set():
            entered.set()
            release.wait(30)

    handle = model.heads.register_forward_hook(block)
    try:
        dock.compare_button.setChecked(True)
        qtbot.waitUntil(entered.is_set, timeout=RUN_MS)
        # The panel says which method of how many is running (the probe's gradcam is 1 / 5).
        qtbot.waitUntil(lambda: "/ 5)" in dock.status.text(), timeout=RUN_MS)
        assert dock.status.text().endswith("(Esc cancels)")
        assert dock.status.text().split(" (")[0] in FOUR
        with qtbot.waitSignal(st.runCancelled, timeout=RUN_MS):
            st.cancel()
            release.set()
    finally:
        release.set()
        handle.remove()
    # Back to what the panes show: one gradcam map, Side by side off, the header in charge.
    assert st.cam_compare == [] and not dock.compare_button.isChecked()
    assert list(dock.panes) == st.cam_layers and st.snapshot.cam_method == "gradcam"
    assert dock.method_combo.isEnabled() and dock.status.text() == "gradcam for class 0 (airplane)."
