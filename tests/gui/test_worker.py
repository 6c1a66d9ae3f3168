"""The worker: results by signal, newest request wins, cancel is quick and clean, UI stays live."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QTimer

from core.engine.hooks import hook_count
from core.errors import HookScopeError
from gui.worker import Worker
from tests.gui.conftest import RUN_TIMEOUT_MS


def slow_echo(reporter, value, seconds=0.3):
    for i in range(10):
        reporter.progress(i, 10, "working")
        time.sleep(seconds / 10)
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
    first = worker.submit(slow_echo, "first", kind="probe")
    second = worker.submit(slow_echo, "second", kind="probe")
    third = worker.submit(slow_echo, "third", kind="probe")
    with qtbot.waitSignal(worker.busyChanged, timeout=10_000, check_params_cb=lambda b: not b):
        pass
    assert done == ["third"]
    assert set(cancelled) == {first, second}
    assert third not in cancelled


def test_progress_is_polled_so_short_jobs_send_none(qtbot):
    worker = Worker()
    seen = []
    worker.progress.connect(lambda done, total, message: seen.append((done, total, message)))

    def quick(reporter):
        reporter.progress(1, 2, "quick")
        return 1

    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.submit(quick)
    assert seen == []
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.submit(slow_echo, "slow", seconds=0.6)
    # One poll per 100 ms while it ran, each a step of the job, never repeated.
    assert 3 <= len(seen) <= 7, seen
    assert all(total == 10 and message == "working" for _, total, message in seen)
    assert [done for done, _, _ in seen] == sorted({done for done, _, _ in seen})


def test_ui_timer_keeps_ticking_during_resnet50(make_window, qtbot):
    window = make_window("torchvision:resnet50", layers=["layer3", "layer4", "fc"])
    st = window.state
    stamps: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start()
    qtbot.wait(100)
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS):
        start = time.perf_counter()
        st.run()
    took = time.perf_counter() - start
    qtbot.wait(60)
    timer.stop()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert took > 0.1, "the run was too short to say anything"
    assert max(gaps) < 0.1, f"UI froze for {max(gaps) * 1000:.0f} ms during a {took:.2f} s run"


def test_cancel_stops_a_long_run_and_leaves_no_hooks(make_window, qtbot):
    window = make_window("torchvision:resnet50", layers=["fc"])
    st = window.state
    model = st.loaded.model
    st.set_auto_run(False)
    st.set_layers([n.name for n in st.tree.nodes() if n.name and n.calls])  # every module
    with qtbot.waitSignal(st.worker.started, timeout=5000):
        st.run()
    qtbot.wait(150)  # let it get into the forward pass
    qtbot.waitUntil(window.progress_bar.isVisible, timeout=2000)  # shown for a long run
    start = time.perf_counter()
    with qtbot.waitSignal(st.runCancelled, timeout=RUN_TIMEOUT_MS):
        window.cancel_action.trigger()
    assert time.perf_counter() - start < 5
    assert not st.busy
    assert hook_count(model) == 0
    assert "cancelled" in window.statusBar().currentMessage().lower()
    assert not window.progress_bar.isVisible()

    st.set_layers(["layer4", "fc"])
    with qtbot.waitSignal(st.resultChanged, timeout=RUN_TIMEOUT_MS) as blocker:
        st.run()
    assert set(blocker.args[0].layers) == {"layer4", "fc"}
    assert hook_count(model) == 0


@pytest.mark.parametrize("when", ["before", "during"])
def test_probe_job_cancel_raises_cancelled(when):
    from core.jobs.probe import load_job, probe_job
    from core.loading.images import solid
    from core.reporting import Cancelled, Reporter

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
