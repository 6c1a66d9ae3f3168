"""A dock's own job (channel importance, sanity check): progress, cancel, and the next run."""

from hookscope.core.engine.hooks import hook_count
from tests.gui.conftest import RUN_TIMEOUT_MS


def test_cancel_channel_importance_then_run_again(make_window, qtbot):
    window = make_window("torchvision:resnet18", layers=["layer4"])
    st = window.state
    imp = next(d for d in window.docks if d.objectName() == "ImportanceDock")
    imp.raise_()
    progress = []
    st.worker.progress.connect(lambda done, total, msg: progress.append(done))
    with qtbot.waitSignal(st.worker.cancelled, timeout=RUN_TIMEOUT_MS):
        imp.run("layer4")
        assert not imp.run_button.isEnabled() and imp.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: len(progress) >= 2, timeout=RUN_TIMEOUT_MS)
        imp.cancel_button.click()
    assert imp.status.text() == "Cancelled."
    assert imp.run_button.isEnabled() and not imp.cancel_button.isEnabled()
    assert imp.result is None and hook_count(st.loaded.model) == 0
    with qtbot.waitSignal(st.worker.finished, timeout=RUN_TIMEOUT_MS):
        imp.run("layer4")
    assert len(imp.result.drops) == 512 and imp.run_button.isEnabled()


def test_cancelling_a_docks_job_leaves_the_running_probe_alone(make_window, qtbot):
    import threading

    window = make_window()
    st = window.state
    st.set_auto_run(False)
    imp = next(d for d in window.docks if d.objectName() == "ImportanceDock")
    imp.raise_()
    entered, release = threading.Event(), threading.Event()

    def hold(module, args):  # the probe waits inside its forward until the test lets it go
        entered.set()
        release.wait(RUN_TIMEOUT_MS / 1000)

    handle = st.loaded.model.features.res.register_forward_pre_hook(hold)
    cancelled_ids = []
    st.worker.cancelled.connect(lambda job_id, _kind: cancelled_ids.append(job_id))
    try:
        probe_id = st.run()
        qtbot.waitUntil(entered.is_set, timeout=RUN_TIMEOUT_MS)
        dock_id = imp.run("features.res")  # long lane: waits for the model the probe holds
        with qtbot.waitSignal(st.worker.cancelled, timeout=RUN_TIMEOUT_MS):
            imp.cancel_button.click()  # stops its wait for the model
        assert cancelled_ids == [dock_id] and imp.status.text() == "Cancelled."
        assert imp.run_button.isEnabled() and not imp.cancel_button.isEnabled()
        with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
            release.set()
    finally:
        release.set()
        handle.remove()
    assert probe_id not in cancelled_ids and imp.result is None
    assert hook_count(st.loaded.model) == 0
