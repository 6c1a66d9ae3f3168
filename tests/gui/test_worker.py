"""The worker: results by signal, newest request wins, cancel is quick and clean, UI stays live.

No test here depends on how fast the machine is: jobs wait on events the test sets, and
progress polls are driven by the test, not by a timer racing a ``sleep``.
"""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QCoreApplication, QTimer

from hookscope.core.engine.hooks import hook_count
from hookscope.core.errors import HookScopeError
from hookscope.gui.worker import Worker
from tests.gui.conftest import RUN_TIMEOUT_MS

NEVER_MS = 10**9  # a poll interval no test outlives: the test calls poll() itself


def gated(reporter, value, gate: threading.Event):
    """Return ``value`` once ``gate`` is set; a cancel stops the wait."""
    while not gate.wait(0.01):
        reporter.check()
    reporter.check()
    return value


def test_results_errors_and_threads(qtbot):
    worker = Worker()
    ui_thread = threading.get_ident()
    seen = {}

    def job(reporter):
        seen["thread"] = threading.get_ident()
        return 42

    with qtbot.waitSignal(worker.finished, timeout=5000) as blocker:
        worker.submit(job)
    assert blocker.args[2] == 42 and seen["thread"] != ui_thread

    def bad(reporter):
        raise HookScopeError("The model file is broken; pick another.")

    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.submit(bad)
    assert blocker.args[2] == "The model file is broken; pick another."


def test_a_new_request_cancels_the_running_one_and_only_the_latest_pending_runs(qtbot):
    worker = Worker()
    done, cancelled = [], []
    worker.finished.connect(lambda _id, _kind, value: done.append(value))
    worker.cancelled.connect(lambda job_id, _kind: cancelled.append(job_id))
    never, now = threading.Event(), threading.Event()
    now.set()
    first = worker.submit(gated, "first", never, kind="probe")  # would wait forever
    second = worker.submit(gated, "second", never, kind="probe")
    third = worker.submit(gated, "third", now, kind="probe")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        pass
    assert done == ["third"]
    assert set(cancelled) == {first, second}
    assert third not in cancelled


def test_progress_is_polled_never_signalled_by_the_job(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    seen = []
    worker.progress.connect(lambda done, total, message: seen.append((done, total, message)))
    steps = [threading.Event() for _ in range(2)]
    gates = [threading.Event() for _ in range(2)]

    def job(reporter):
        for i in range(2):
            reporter.progress(i + 1, 2, f"step {i + 1}")
            steps[i].set()
            gates[i].wait(30)
        return "done"

    worker.submit(job)
    assert steps[0].wait(30)
    QCoreApplication.processEvents()
    assert seen == []  # reporting progress sends nothing by itself: a short job never wakes the UI
    worker.poll()
    worker.poll()  # nothing new: not sent again
    assert seen == [(1, 2, "step 1")]
    gates[0].set()
    assert steps[1].wait(30)
    worker.poll()
    assert seen == [(1, 2, "step 1"), (2, 2, "step 2")]
    with qtbot.waitSignal(worker.finished, timeout=5000):
        gates[1].set()
    worker.poll()  # no running job
    assert len(seen) == 2


def test_cancel_by_id_cancels_that_job_only(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    done, cancelled = [], []
    worker.finished.connect(lambda job_id, _kind, value: done.append(value))
    worker.cancelled.connect(lambda job_id, _kind: cancelled.append(job_id))
    gate, never = threading.Event(), threading.Event()
    probe = worker.submit(gated, "probe", gate, kind="probe")
    queued = worker.submit(gated, "queued", never, kind="importance")
    worker.cancel(queued)  # pending: dropped, the running probe keeps going
    assert cancelled == [queued] and worker.busy
    worker.cancel(queued)  # twice, or an unknown id: nothing happens
    worker.cancel(12345)
    assert cancelled == [queued]
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        gate.set()
    assert done == ["probe"] and probe not in cancelled

    # A running job cancelled by id stops; the job queued behind it still runs.
    gate2 = threading.Event()
    running = worker.submit(gated, "long", never, kind="importance")
    after = worker.submit(gated, "probe 2", gate2, kind="probe")
    gate2.set()
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.cancel(running)
    assert done == ["probe", "probe 2"] and cancelled == [queued, running]

    # No id: everything goes.
    a = worker.submit(gated, "a", never, kind="probe")
    b = worker.submit(gated, "b", never, kind="sanity")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda x: not x):
        worker.cancel()
    assert cancelled[-2:] in ([a, b], [b, a]) and after not in cancelled


def _block_inside(model, module_name: str):
    """A forward pre-hook that, in whichever thread runs the model, waits for the test."""
    entered, release = threading.Event(), threading.Event()
    info = {}

    def hook(module, args):
        info.setdefault("thread", threading.get_ident())
        entered.set()
        info["released"] = release.wait(RUN_TIMEOUT_MS / 1000)

    handle = dict(model.named_modules())[module_name].register_forward_pre_hook(hook)
    return entered, release, info, handle


def test_ui_thread_stays_live_while_the_model_runs(make_window, qtbot):
    """Mid-forward, the model waits for a UI timer; if the UI thread ran torch it never fires."""
    window = make_window()
    st = window.state
    entered, release, info, handle = _block_inside(st.loaded.model, "features.res")
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: release.set() if entered.is_set() else None)
    timer.start()
    try:
        with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
            st.run()
    finally:
        timer.stop()
        handle.remove()
    assert info["released"], "the UI event loop did not run while the model was running"
    assert info["thread"] != threading.get_ident()


def test_cancel_stops_a_run_mid_forward_and_leaves_no_hooks(make_window, qtbot):
    window = make_window()
    st = window.state
    model = st.loaded.model
    st.set_auto_run(False)
    st.set_layers([n.name for n in st.tree.nodes() if n.name and n.calls])  # every module
    entered, release, _info, handle = _block_inside(model, "features.res")
    after = []
    later = model.fc.register_forward_hook(lambda *a: after.append(1) if entered.is_set() else None)
    try:
        st.run()
        qtbot.waitUntil(entered.is_set, timeout=RUN_TIMEOUT_MS)  # the job is inside the forward
        qtbot.waitUntil(window.progress_bar.isVisible, timeout=RUN_TIMEOUT_MS)  # first poll
        with qtbot.waitSignal(st.runCancelled, timeout=RUN_TIMEOUT_MS):
            window.cancel_action.trigger()
            release.set()
    finally:
        release.set()
        handle.remove()
        later.remove()
    assert after == []  # nothing after the cancelled module ran
    assert not st.busy
    assert hook_count(model) == 0
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert not window.progress_bar.isVisible()

    st.set_layers(["features.res", "fc"])
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        st.run()
    assert set(blocker.args[0].layers) == {"features.res", "fc"}
    assert hook_count(model) == 0


@pytest.mark.parametrize("when", ["before", "during"])
def test_probe_job_cancel_raises_cancelled(when):
    from hookscope.core.jobs.probe import load_job, probe_job
    from hookscope.core.loading.images import solid
    from hookscope.core.reporting import Cancelled, Reporter

    lm, tree = load_job(Reporter(), "torchvision:resnet18")
    reporter = Reporter()
    if when == "before":
        reporter.cancel()
    else:
        calls = {"n": 0}

        def count(*_):
            calls["n"] += 1
            if calls["n"] == 20:
                reporter.cancel()

        hooks = [m.register_forward_pre_hook(count) for m in lm.model.modules()]
    with pytest.raises(Cancelled):
        probe_job(reporter, lm, solid((0, 0, 255), lm.input_spec), ["layer1", "fc"])
    if when == "during":
        for h in hooks:
            h.remove()
    assert hook_count(lm.model) == 0
