"""Two job lanes: plain core functions ``fn(reporter, ...)`` in worker threads.

The UI thread never runs torch. Jobs run in two lanes of one pool thread each:

- ``interactive``: what a click starts (probe, load, CAM, attribution, before/after…);
- ``long``: the kinds in :data:`LONG_KINDS` (scan, Trust, Sanity, importance).

Within a lane, a new job of the same kind cancels the running one and waits behind it; only
the latest pending job of each kind is kept. A lane keeps its one thread (a new thread would
start a new OpenMP team for torch).

The two lanes never use a model at the same time: one :class:`~core.reporting.ModelGate`
(a lock, not a copy of the model). An interactive job holds it for its whole run; a long job
marked :func:`~core.reporting.per_batch` takes it per batch (``reporter.batch()``) and lets
a waiting interactive job go first between two batches, so a click waits at most for the
batch in flight. A long job without the mark holds it for its whole run. A lock rather than
a copy: a copy doubles the model's memory, misses a live model's later changes, and the lock
also hands the cores to the click instead of splitting them with the long job. The one
exception is Sanity, whose randomised weights last its whole run: it randomises a copy
(``core.jobs.experiments.sanity_job``) and still takes the gate per map, for the cores.

Progress does not travel by signal: the job only stores its latest value and the UI thread
reads it every ``PROGRESS_POLL_MS``. Short runs (the demo's take ~5 ms) so never wake the UI
thread, which would take the GIL and a core from the computation, and never flash a progress
bar; long runs show progress after the first poll. Partial results (``reporter.partial``)
do travel by (queued) signal, each one, in order, before the job's end.

Code no cancel check reaches (a factory that loops while it builds, a forward that never
returns) is abandoned as ``core.jobs.stopping.StopPolicy`` says: a load past its timeout, or
an interactive job still running one grace period after Cancel, is left on its old thread
and interrupted there; its lane goes on with a fresh thread. Closing the window does the same
(:meth:`Worker.shutdown`), and the app ends with ``os._exit`` while such a thread still runs.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.stopping import (
    StopPolicy,
    UserCodeStopped,
    cancel_sentence,
    interrupt_thread,
    timeout_sentence,
)
from hookscope.core.reporting import Cancelled, ModelGate, Reporter, lane_gate

PROGRESS_POLL_MS = 100
DEADLINE_POLL_MS = 100
"""How often the worker looks at its deadlines (timeouts, grace periods) while it has any."""
INTERACTIVE, LONG = "interactive", "long"
LONG_KINDS = frozenset({"scan", "trust", "sanity", "importance", "training", "atlas", "concepts"})
"""Job kinds that run in the long lane; every other kind is interactive."""


def lane_of(kind: str) -> str:
    """The lane a job of ``kind`` runs in."""
    return LONG if kind in LONG_KINDS else INTERACTIVE


_LEFT_BEHIND: dict[int, QThreadPool] = {}
"""Pools whose one thread ran an abandoned job (job id -> pool; see
``core.jobs.stopping``). Kept here, parentless, because destroying a pool waits for its thread;
the app ends with ``os._exit`` while one still runs (see :attr:`Worker.left_behind`)."""


@dataclass
class Job:
    """A queued or running job."""

    id: int
    kind: str
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    on_result: Callable[[Any], None] | None = None
    on_error: Callable[[str], None] | None = None
    on_partial: Callable[[Any], None] | None = None
    sink: Callable[[int, Any], None] | None = None  # hands partial results to the UI thread
    reporter: Reporter = field(init=False)
    latest: tuple[int, int, str] | None = None  # last progress the job reported
    thread_id: int | None = None  # the pool thread running it (to interrupt it)

    def __post_init__(self) -> None:
        # A plain attribute write from the pool thread; the UI thread polls it.
        self.reporter = Reporter(self._store, self._partial)

    def _store(self, *args, **_kwargs) -> None:
        self.latest = tuple(args[:3])

    def _partial(self, payload: Any) -> None:
        if self.sink is not None and not self.reporter.cancelled:
            self.sink(self.id, payload)


class _Bridge(QObject):
    """Signals emitted from the pool threads; delivered queued to the UI thread."""

    done = Signal(int, str, object)  # job id, status ("ok"|"error"|"cancelled"), payload
    partial = Signal(int, object)  # job id, partial result


class _Task(QRunnable):
    def __init__(self, job: Job, bridge: _Bridge):
        super().__init__()
        self.job, self.bridge = job, bridge
        self.setAutoDelete(True)

    def run(self) -> None:
        job = self.job
        job.thread_id = threading.get_ident()
        try:
            status, payload = _outcome(job)
        except UserCodeStopped:  # raised into this thread just as the job ended
            status, payload = "cancelled", None
        self.bridge.done.emit(job.id, status, payload)


def _outcome(job: Job) -> tuple[str, Any]:
    """Run ``job``: its status ("ok"|"error"|"cancelled") and result or one-sentence error."""
    try:
        result = job.fn(job.reporter, *job.args, **job.kwargs)
        # A job that finished right after cancel still counts as cancelled.
        return ("cancelled", None) if job.reporter.cancelled else ("ok", result)
    except (Cancelled, UserCodeStopped):  # UserCodeStopped: the worker abandoned it
        return "cancelled", None
    except HookScopeError as exc:
        return "error", str(exc)
    except Exception as exc:  # a bug, not a user error: still one sentence, app lives on
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0].rstrip(".:")[:200]
        return "error", f"Unexpected {type(exc).__name__}: {first}."
    except BaseException as exc:  # noqa: BLE001 - user code's sys.exit / KeyboardInterrupt
        # Escaping here would end the pool thread's task without a "done": the worker
        # would stay busy forever and every later job would wait behind it.
        code = f" ({exc.code})" if isinstance(exc, SystemExit) and exc.code else ""
        return "error", (
            f"The job was stopped by {type(exc).__name__}{code} raised in the code it ran "
            "(a model file or factory); nothing was changed."
        )


class _Lane:
    """One pool thread, its running job and its pending jobs (kind -> latest, in order)."""

    def __init__(self, name: str, parent: QObject):
        self.name = name
        self.pool = QThreadPool(parent)
        self.pool.setMaxThreadCount(1)
        self.pool.setExpiryTimeout(-1)  # keep the one thread (and its OpenMP team)
        self.running: Job | None = None
        self.pending: dict[str, Job] = {}
        self.shown: tuple[int, int, str] | None = None  # last progress sent for ``running``

    @property
    def busy(self) -> bool:
        return self.running is not None or bool(self.pending)


def _in_lane(fn: Callable[..., Any], lane: str, gate: ModelGate) -> Callable[..., Any]:
    """``fn`` wrapped to take the model gate as its lane does (see the module docstring)."""

    def run(reporter: Reporter, *args, **kwargs):
        with lane_gate(gate):
            if lane == LONG and getattr(fn, "per_batch", False):
                return fn(reporter, *args, **kwargs)  # takes the gate per batch itself
            take = gate.hold if lane == INTERACTIVE else gate.turn
            with take(reporter.check):
                return fn(reporter, *args, **kwargs)

    return run


class Worker(QObject):
    """Runs jobs off the UI thread in two lanes (interactive and long).

    Signals:
        started(id, kind): A job began running.
        finished(id, kind, result): A job returned ``result``.
        failed(id, kind, message): A job raised; ``message`` is one sentence.
        cancelled(id, kind): A job was cancelled (running or dropped from the queue).
        partial(id, kind, payload): A running job handed over a partial result.
        jobProgress(id, kind, done, total, message): Progress of a running job, polled every
            ``poll_ms`` (so not at all for shorter jobs), only when it changed.
        progress(done, total, message): The same for one job: the interactive lane's when it
            runs one, else the long lane's (the window's progress bar).
        busyChanged(bool): True while a job runs or waits in either lane.
        abandoned(id, kind, message): A job that did not stop when cancelled, or ran past
            its timeout (user code looping), was left on its old thread and interrupted there
            (``core.jobs.stopping``); its lane goes on with a fresh thread. A timed-out job
            also fails (``failed`` with the same sentence); a cancelled one is ``cancelled``.

    Args:
        parent: Qt parent.
        poll_ms: Progress poll interval.
        policy: Timeouts and what is abandoned (default: ``StopPolicy.from_env()``).
    """

    started = Signal(int, str)
    finished = Signal(int, str, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int, str)
    partial = Signal(int, str, object)
    jobProgress = Signal(int, str, int, int, str)
    progress = Signal(int, int, str)
    busyChanged = Signal(bool)
    abandoned = Signal(int, str, str)

    def __init__(
        self,
        parent: QObject | None = None,
        poll_ms: int = PROGRESS_POLL_MS,
        policy: StopPolicy | None = None,
    ):
        super().__init__(parent)
        self.policy = policy if policy is not None else StopPolicy.from_env()
        self._lanes = {name: _Lane(name, self) for name in (INTERACTIVE, LONG)}
        self.gate = ModelGate()
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done)
        self._bridge.partial.connect(self._on_partial)
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self.poll)
        self._shown: tuple[int, tuple] | None = None  # (job id, progress) last sent by progress
        self._ids = itertools.count(1)
        # (why, job id) -> (monotonic deadline, what then). One member timer looks at them:
        # no QTimer per job to create and delete while jobs come and go.
        self._deadlines: dict[tuple[str, int], tuple[float, Callable[[], None]]] = {}
        self._clock = QTimer(self)
        self._clock.setInterval(DEADLINE_POLL_MS)
        self._clock.timeout.connect(self._check_deadlines)

    # -- API --------------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        *args,
        kind: str = "job",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        **kwargs,
    ) -> int:
        """Queue ``fn(reporter, *args, **kwargs)`` in its kind's lane; return the job id.

        A running job of the same ``kind`` is cancelled and a pending one replaced.
        ``on_result`` / ``on_error`` / ``on_partial`` are called in the UI thread.
        """
        name = lane_of(kind)
        lane = self._lanes[name]
        job = Job(
            next(self._ids),
            kind,
            # Loading a spec builds a new model: it needs no turn on the current one, and
            # a factory that never returns must not hold the gate when it is left behind.
            fn
            if kind == "load" and args and isinstance(args[0], str)
            else _in_lane(fn, name, self.gate),
            args,
            kwargs,
            on_result,
            on_error,
            on_partial,
            self._bridge.partial.emit,
        )
        old = lane.pending.pop(kind, None)
        if old is not None:
            self.cancelled.emit(old.id, old.kind)
        if lane.running is not None and lane.running.kind == kind:
            lane.running.reporter.cancel()
            self._abandon_later(lane.running)
        was_busy = self.busy
        lane.pending[kind] = job
        self._start_next(lane)
        if not was_busy:
            self.busyChanged.emit(True)
        return job.id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job by id (running or pending), or with no id every job in both lanes.

        Cancelling an id that already finished, or that is unknown, does nothing.
        """
        was_busy = self.busy
        for lane in self._lanes.values():
            if job_id is None:
                pending, lane.pending = list(lane.pending.values()), {}
            else:
                pending = [job for job in lane.pending.values() if job.id == job_id]
                for job in pending:
                    del lane.pending[job.kind]
            for job in pending:
                self.cancelled.emit(job.id, job.kind)
            running = lane.running
            if running is not None and job_id in (None, running.id):
                running.reporter.cancel()
                self._abandon_later(running)
        if was_busy and not self.busy:
            self.busyChanged.emit(False)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits in either lane."""
        return any(lane.busy for lane in self._lanes.values())

    def lane_busy(self, lane: str) -> bool:
        """True while a job runs or waits in ``lane`` (``"interactive"`` or ``"long"``)."""
        return self._lanes[lane].busy

    @property
    def running_kind(self) -> str | None:
        """Kind of the running interactive job, else of the running long job, else None."""
        kinds = self.running_kinds
        return kinds[0] if kinds else None

    @property
    def running_kinds(self) -> list[str]:
        """Kinds of the running jobs, interactive lane first."""
        return [lane.running.kind for lane in self._lanes.values() if lane.running is not None]

    def stage_of(self, job_id: int | None) -> str:
        """The stage of a running job's latest progress report ("" when none or not running)."""
        job = next(
            (ln.running for ln in self._lanes.values() if ln.running and ln.running.id == job_id),
            None,
        )
        return job.reporter.stage if job is not None else ""

    def wait(self, msecs: int = -1) -> bool:
        """Block until both lanes are idle (tests and shutdown only)."""
        return all(lane.pool.waitForDone(msecs) for lane in self._lanes.values())

    def shutdown(self, long_ms: int = 5000) -> int:
        """Cancel everything and end what can be ended, for quitting; blocks the caller.

        The interactive lane gets the policy's grace period to stop, a long job ``long_ms``
        (a scan finishing its batch); what still runs is abandoned (interrupted when the
        policy allows). Returns how many threads still run (then only ``os._exit`` ends).
        """
        self.cancel()
        for lane in self._lanes.values():
            wait_ms = long_ms if lane.name == LONG else int(self.policy.grace_s * 1000)
            if not lane.pool.waitForDone(wait_ms) and lane.running is not None:
                self._abandon(lane.running)
        for pool in list(_LEFT_BEHIND.values()):
            pool.waitForDone(200)  # an interrupted thread unwinds in a moment
        return self.left_behind

    # -- internals --------------------------------------------------------------------------
    def _start_next(self, lane: _Lane) -> None:
        if lane.running is not None or not lane.pending:
            return
        kind = next(iter(lane.pending))
        job = lane.pending.pop(kind)
        lane.running = job
        lane.shown = None
        self.started.emit(job.id, job.kind)
        lane.pool.start(_Task(job, self._bridge))
        self._poll.start()
        seconds = self.policy.timeout_s(job.kind, lane.name == LONG)
        if seconds is not None:
            self._after("timeout", job, seconds, lambda: self._time_out(job, seconds))

    def _lane_running(self, job_id: int) -> _Lane | None:
        return next(
            (ln for ln in self._lanes.values() if ln.running and ln.running.id == job_id), None
        )

    @Slot(int, object)
    def _on_partial(self, job_id: int, payload: object) -> None:
        lane = self._lane_running(job_id)
        if lane is None or lane.running.reporter.cancelled:  # superseded: nobody wants it
            return
        job = lane.running
        self.partial.emit(job.id, job.kind, payload)
        if job.on_partial is not None:
            job.on_partial(payload)

    @property
    def left_behind(self) -> int:
        """How many abandoned jobs' threads still run (then only ``os._exit`` ends the process)."""
        return sum(1 for pool in _LEFT_BEHIND.values() if pool.activeThreadCount())

    def _after(self, why: str, job: Job, seconds: float, then: Callable[[], None]) -> None:
        """Call ``then`` in ``seconds`` unless the job ends first (:meth:`_drop_timers`)."""
        key = (why, job.id)
        if key not in self._deadlines:
            self._deadlines[key] = (time.monotonic() + seconds, then)
            self._clock.start()

    def _drop_timers(self, job_id: int, whys=("grace", "timeout")) -> None:
        for why in whys:
            self._deadlines.pop((why, job_id), None)
        if not self._deadlines:
            self._clock.stop()

    @Slot()
    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for key, (when, then) in list(self._deadlines.items()):
            if when <= now and self._deadlines.pop(key, None) is not None:
                then()
        if not self._deadlines:
            self._clock.stop()

    def _abandon_later(self, job: Job) -> None:
        """After the grace period, abandon a cancelled job that did not stop, if the policy says."""
        if self.policy.may_abandon(job.kind, lane_of(job.kind) == LONG):
            self._after("grace", job, self.policy.grace_s, lambda: self._abandon(job))

    def _time_out(self, job: Job, seconds: float) -> None:
        if self._lane_running(job.id) is not None:
            job.reporter.cancel()
            self._abandon(job, timeout_sentence(job.kind, seconds))

    def _abandon(self, job: Job, timed_out: str | None = None) -> None:
        """Leave a running job on its old thread, interrupt it there, go on with a fresh one.

        ``timed_out``: the sentence when it ran past its timeout (then it fails with it).
        """
        self._drop_timers(job.id)
        lane = self._lane_running(job.id)
        if lane is None:  # it stopped in time
            return
        old = lane.pool
        old.setParent(None)
        _LEFT_BEHIND[job.id] = old
        lane.pool = QThreadPool(self)
        lane.pool.setMaxThreadCount(1)
        lane.pool.setExpiryTimeout(-1)
        lane.running = None
        long_lane = lane.name == LONG
        if job.thread_id is not None:
            if self.policy.interrupt and self.policy.may_abandon(job.kind, long_lane):
                interrupt_thread(job.thread_id)
            # If it does not unwind (stuck in C, or it swallows the interrupt), the model
            # gate it holds is freed after one more grace period, so later runs are not stuck.
            self._after("gate", job, self.policy.grace_s, lambda: self._forfeit(job))
        message = timed_out or cancel_sentence(job.kind)
        if not timed_out:
            self.cancelled.emit(job.id, job.kind)
        self.abandoned.emit(job.id, job.kind, message)
        self._start_next(lane)
        if not self.busy:
            self.busyChanged.emit(False)
        if timed_out:  # last: a failed load opens a (modal) dialog, the progress bar gone
            self.failed.emit(job.id, job.kind, message)
            if job.on_error is not None:
                job.on_error(message)

    def _forfeit(self, job: Job) -> None:
        self._drop_timers(job.id, ("gate",))
        pool = _LEFT_BEHIND.get(job.id)
        if pool is not None and pool.activeThreadCount():
            self.gate.forfeit(job.thread_id)

    @Slot(int, str, object)
    def _on_done(self, job_id: int, status: str, payload: object) -> None:
        if _LEFT_BEHIND.pop(job_id, None) is not None:  # an abandoned job ended at last
            self._drop_timers(job_id, ("gate",))
            return
        self._drop_timers(job_id)
        lane = self._lane_running(job_id)
        if lane is None:  # cannot happen: a lane runs one job at a time; be safe
            return
        job, lane.running = lane.running, None
        if not any(ln.running for ln in self._lanes.values()):
            self._poll.stop()
        if status == "ok":
            self.finished.emit(job.id, job.kind, payload)
            if job.on_result is not None:
                job.on_result(payload)
        elif status == "error":
            self.failed.emit(job.id, job.kind, str(payload))
            if job.on_error is not None:
                job.on_error(str(payload))
        else:
            self.cancelled.emit(job.id, job.kind)
        self._start_next(lane)
        if not self.busy:
            self.busyChanged.emit(False)

    @Slot()
    def poll(self) -> None:
        """Emit progress of running jobs that reported something new (the timer calls this)."""
        main = None
        for lane in self._lanes.values():
            job = lane.running
            if job is None:
                continue
            latest = job.latest or (0, 0, "Working…")
            if latest != lane.shown:
                lane.shown = latest
                self.jobProgress.emit(job.id, job.kind, *latest)
            main = main or (job.id, latest)
        if main is not None and main != self._shown:
            self._shown = main
            self.progress.emit(*main[1])
