"""The bad-input catalogue through the app: the sentence is shown, the app stays usable."""

from __future__ import annotations

import gc
import re

import pytest

from hookscope.core.engine.hooks import hook_count
from tests.catalogue import CASES, prepare
from tests.core.test_robustness import rss_mb
from tests.gui.conftest import RUN_TIMEOUT_MS


def shown(state) -> list[str]:
    seen: list[str] = []
    state.errorRaised.connect(seen.append)
    state.statusMessage.connect(seen.append)
    state.runFailed.connect(seen.append)
    return seen


def wait_idle(qtbot, state):
    qtbot.waitUntil(lambda: not state.worker.busy, timeout=RUN_TIMEOUT_MS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gui(case, make_window, qtbot, tmp_path, monkeypatch, messages):
    window = make_window("torchvision:resnet18")
    st = window.state
    fields = prepare(case, tmp_path, monkeypatch)
    if fields["app"] is None:
        pytest.skip("the app has no field that takes this value")
    seen = shown(st)
    model, image = st.loaded, st.image

    if callable(fields["app"]):  # an option the app sets its own way (e.g. an edit)
        fields["app"](st)
        wait_idle(qtbot, st)
    elif case.kind == "image":
        ok = st.load_image(fields["image"])
        if case.message is None:
            assert ok
            qtbot.waitUntil(
                lambda: st.snapshot is not None and not st.worker.busy, timeout=RUN_TIMEOUT_MS
            )
            assert len(st.snapshot.topk) == 5
            if case.note:
                assert any(re.search(case.note, n) for n in st.snapshot.notes), st.snapshot.notes
            return
        assert not ok and st.image is image  # the previous image stays
    elif case.kind == "model" or fields["spec"] != "torchvision:resnet18":
        st.load_model(
            fields["spec"],
            fields["weights"],
            fields["trust_pickle"],
            fields["device"],
            layers=fields["layers"],
        )
        wait_idle(qtbot, st)
        if case.kind == "model":
            assert st.loaded is model  # a failed load keeps the previous model
    elif fields["target"] is not None:
        assert not st.set_target_text(fields["target"])
    elif fields["cam"]:
        st.set_layers([*st.layers, *fields["layers"]])
        st.set_cam(layers=fields["layers"])
        wait_idle(qtbot, st)
        seen += list(st.snapshot.notes)  # a CAM failure is a note on an otherwise good run
    else:  # a layer name only the command line can ask for
        st.load_model(fields["spec"], layers=fields["layers"])
        wait_idle(qtbot, st)

    text = " | ".join(seen + messages)
    assert re.search(case.message, text), text
    assert "Traceback" not in text
    if case.marker:
        assert not (tmp_path / case.marker).exists()
    if callable(fields["app"]):  # the refused edit is the user's to remove, as in the app
        st.set_edits([])
        wait_idle(qtbot, st)
    # Still usable: nothing left hooked, and a run on a good model works.
    assert hook_count(st.loaded.model) == 0
    if st.loaded.name != "resnet18" or fields["target"] is not None:
        st.load_model("torchvision:resnet18", device="cpu")
        wait_idle(qtbot, st)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        st.run()


def test_fifty_gui_runs_keep_memory_flat(make_window, qtbot):
    window = make_window("demo")
    st = window.state
    st.set_layers(["features.block1", "features.res", "features.block2", "features.block3"])
    wait_idle(qtbot, st)
    for _ in range(5):
        with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
            st.run()
    gc.collect()
    before = rss_mb()
    for _ in range(50):
        with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
            st.run()
    gc.collect()
    growth = rss_mb() - before
    print(f"RSS growth over 50 GUI runs: {growth:.1f} MB")
    assert growth < 50
    assert sorted(st.snapshot.layers) == sorted(st.layers)
    assert hook_count(st.loaded.model) == 0
