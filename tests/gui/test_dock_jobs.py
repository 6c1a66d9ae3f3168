"""A dock's own job (channel importance, sanity check): progress, cancel, and the next run."""

from core.engine.hooks import hook_count
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
