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
from hookscope.core.reporting import per_batch
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
    queued = worker.submit(gated, "queued", never, kind="attribution")  # same lane: waits
    worker.cancel(queued)  # pending: dropped, the running probe keeps going
    assert cancelled == [queued] and worker.busy
    worker.cancel(queued)  # twice, or an unknown id: nothing happens
    worker.cancel(12345)
    assert cancelled == [queued]
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        gate.set()
    assert done == ["probe"] and probe not in cancelled

    # A running job cancelled by id stops; the job queued behind it in its lane still runs.
    gate2 = threading.Event()
    running = worker.submit(gated, "slow", never, kind="attribution")
    after = worker.submit(gated, "probe 2", gate2, kind="probe")
    gate2.set()
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.cancel(running)
    assert done == ["probe", "probe 2"] and cancelled == [queued, running]

    # No id: everything goes, in both lanes.
    a = worker.submit(gated, "a", never, kind="probe")
    b = worker.submit(gated, "b", never, kind="sanity")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda x: not x):
        worker.cancel()
    assert cancelled[-2:] in ([a, b], [b, a]) and after not in cancelled


# -- two lanes --------------------------------------------------------------------------------
@per_batch
def batches(reporter, log: list, entered: list, release: list):
    """A long job of ``len(release)`` batches; batch i waits for ``release[i]``."""
    for i, go in enumerate(release):
        with reporter.batch():
            log.append(("long", i, "start"))
            entered[i].set()
            while not go.wait(0.01):
                reporter.check()
            log.append(("long", i, "end"))
    return "long done"


def click(reporter, log: list, name: str = "click"):
    log.append(name)
    return name


def test_a_click_waits_at_most_for_the_batch_in_flight(qtbot):
    """The long lane yields to the interactive one between batches: the click runs after the
    batch in flight and before the next one, whatever the machine's speed."""
    worker = Worker(poll_ms=NEVER_MS)
    log: list = []
    entered = [threading.Event() for _ in range(3)]
    release = [threading.Event() for _ in range(3)]
    long_id = worker.submit(batches, log, entered, release, kind="scan")
    assert entered[0].wait(30)
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        worker.submit(click, log, kind="probe")
        qtbot.waitUntil(lambda: worker.gate.waiting == 1, timeout=10_000)  # behind batch 0
        assert log == [("long", 0, "start")]  # not inside the batch in flight
        release[0].set()
    assert blocker.args[2] == "click"
    assert log[:3] == [("long", 0, "start"), ("long", 0, "end"), "click"]
    assert not entered[1].is_set() or log.index("click") < log.index(("long", 1, "start"))
    for go in release:
        go.set()
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        pass
    assert blocker.args[:3] == [long_id, "scan", "long done"]
    assert log[-2:] == [("long", 2, "start"), ("long", 2, "end")]


def test_a_long_batch_waits_for_a_running_click(qtbot):
    """A click holds the model for its whole run: no batch starts inside it."""
    worker = Worker(poll_ms=NEVER_MS)
    log: list = []
    inside, go = threading.Event(), threading.Event()

    def slow_click(reporter):
        log.append("click start")
        inside.set()
        go.wait(30)
        log.append("click end")

    worker.submit(slow_click, kind="probe")
    assert inside.wait(30)
    entered = [threading.Event()]
    release = [threading.Event()]
    release[0].set()
    worker.submit(batches, log, entered, release, kind="scan")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        go.set()
    assert log == ["click start", "click end", ("long", 0, "start"), ("long", 0, "end")]


def test_a_long_job_without_batches_keeps_the_model_for_its_whole_run(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    log: list = []
    started, go = threading.Event(), threading.Event()

    def whole(reporter):  # no per_batch mark: it may hold hooks or changed weights throughout
        log.append("whole start")
        started.set()
        go.wait(30)
        log.append("whole end")

    worker.submit(whole, kind="sanity")
    assert started.wait(30)
    worker.submit(click, log, kind="probe")
    qtbot.waitUntil(lambda: worker.gate.waiting == 1, timeout=10_000)
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        go.set()
    assert log == ["whole start", "whole end", "click"]


def test_each_lane_keeps_its_own_newest_wins_and_cancel(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    done, cancelled = [], []
    worker.finished.connect(lambda _id, _kind, value: done.append(value))
    worker.cancelled.connect(lambda job_id, _kind: cancelled.append(job_id))
    log: list = []
    entered = [threading.Event() for _ in range(2)]
    release = [threading.Event() for _ in range(2)]
    scan = worker.submit(batches, log, entered, release, kind="scan")
    assert entered[0].wait(30)
    # A probe in the other lane neither cancels the scan nor is cancelled by it.
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.submit(click, log, "probe 1", kind="probe")
        qtbot.waitUntil(lambda: worker.gate.waiting == 1, timeout=10_000)
        release[0].set()
    assert done == ["probe 1"] and cancelled == []
    # A second scan cancels the first (same kind, same lane) and runs after it.
    entered2, release2 = [threading.Event()], [threading.Event()]
    release2[0].set()
    second = worker.submit(batches, [], entered2, release2, kind="scan")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        pass
    assert cancelled == [scan] and done == ["probe 1", "long done"] and second not in cancelled
    # Cancel by id inside the long lane leaves a probe running in the interactive lane.
    gate, never = threading.Event(), threading.Event()
    probe = worker.submit(gated, "probe 2", gate, kind="probe")
    sanity = worker.submit(gated, "sanity", never, kind="sanity")
    with qtbot.waitSignal(worker.cancelled, timeout=10_000) as blocker:
        worker.cancel(sanity)
    assert blocker.args[0] == sanity and worker.busy
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        gate.set()
    assert done[-1] == "probe 2" and probe not in cancelled


def test_partial_results_reach_the_ui_thread_in_order_before_the_end(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    ui = threading.get_ident()
    seen = []

    def job(reporter):
        for i in range(3):
            reporter.partial({"rows": i})
        return "end"

    worker.partial.connect(lambda _id, kind, payload: seen.append(("signal", kind, payload)))
    worker.finished.connect(lambda _id, _kind, value: seen.append(("finished", value)))

    def on_partial(payload):
        seen.append(("callback", threading.get_ident() == ui, payload["rows"]))

    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.submit(job, kind="trust", on_partial=on_partial)
    assert seen == [
        x for i in range(3) for x in (("signal", "trust", {"rows": i}), ("callback", True, i))
    ] + [("finished", "end")]

    # A cancelled job's late partial results are dropped.
    gate, after = threading.Event(), []

    def late(reporter):
        gate.wait(30)
        reporter.partial("late")
        reporter.check()

    job_id = worker.submit(late, kind="trust", on_partial=after.append)
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.cancel(job_id)
        gate.set()
    assert after == []


def test_progress_per_job_for_both_lanes(qtbot):
    worker = Worker(poll_ms=NEVER_MS)
    per_job, main = [], []
    worker.jobProgress.connect(lambda *a: per_job.append(a))
    worker.progress.connect(lambda *a: main.append(a))
    ready = [threading.Event(), threading.Event()]
    go = threading.Event()

    def job(reporter, k):
        reporter.progress(k, 10, f"step {k}")
        ready[k].set()
        go.wait(30)

    scan = worker.submit(per_batch(lambda r: job(r, 0)), kind="scan")
    probe = worker.submit(job, 1, kind="probe")
    assert ready[1].wait(30)
    assert ready[0].wait(30)  # the scan reported before any batch: it holds no gate
    worker.poll()
    assert sorted(per_job) == sorted(
        [(scan, "scan", 0, 10, "step 0"), (probe, "probe", 1, 10, "step 1")]
    )
    assert main == [(1, 10, "step 1")]  # the window's bar follows the interactive lane
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        go.set()


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
