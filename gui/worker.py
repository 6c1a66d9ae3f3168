"""One job runner: plain core functions ``fn(reporter, ...)`` in a worker thread.

The UI thread never runs torch. Jobs run one at a time on a single pool thread so two jobs
never touch the same model at once. A new job of the same kind cancels the running one and
waits behind it; only the latest pending job of each kind is kept.

Progress does not travel by signal: the job only stores its latest value and the UI thread
reads it every ``PROGRESS_POLL_MS``. Short runs (the demo's take ~5 ms) so never wake the UI
thread, which would take the GIL and a core from the computation, and never flash a progress
bar; long runs show progress after the first poll.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from hookscope.core.errors import HookScopeError
from hookscope.core.reporting import Cancelled, Reporter

PROGRESS_POLL_MS = 100


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
    reporter: Reporter = field(init=False)
    latest: tuple[int, int, str] | None = None  # last progress the job reported

    def __post_init__(self) -> None:
        # A plain attribute write from the pool thread; the UI thread polls it.
        self.reporter = Reporter(lambda d, t, m: setattr(self, "latest", (d, t, m)))


class _Bridge(QObject):
    """Signals emitted from the pool thread; delivered queued to the UI thread."""

    done = Signal(int, str, object)  # job id, status ("ok"|"error"|"cancelled"), payload


class _Task(QRunnable):
    def __init__(self, job: Job, bridge: _Bridge):
        super().__init__()
        self.job, self.bridge = job, bridge
        self.setAutoDelete(True)

    def run(self) -> None:
        job = self.job
        try:
            result = job.fn(job.reporter, *job.args, **job.kwargs)
            # A job that finished right after cancel still counts as cancelled.
            status, payload = ("cancelled", None) if job.reporter.cancelled else ("ok", result)
        except Cancelled:
            status, payload = "cancelled", None
        except HookScopeError as exc:
            status, payload = "error", str(exc)
        except Exception as exc:  # a bug, not a user error: still one sentence, app lives on
            traceback.print_exc()
            first = (str(exc).strip().splitlines() or [""])[0].rstrip(".:")[:200]
            status, payload = "error", f"Unexpected {type(exc).__name__}: {first}."
        except BaseException as exc:  # noqa: BLE001 - user code's sys.exit / KeyboardInterrupt
            # Escaping here would end the pool thread's task without a "done": the worker
            # would stay busy forever and every later job would wait behind it.
            code = f" ({exc.code})" if isinstance(exc, SystemExit) and exc.code else ""
            status = "error"
            payload = (
                f"The job was stopped by {type(exc).__name__}{code} raised in the code it ran "
                "(a model file or factory); nothing was changed."
            )
        self.bridge.done.emit(job.id, status, payload)


class Worker(QObject):
    """Runs jobs off the UI thread, one at a time.

    Signals:
        started(id, kind): A job began running.
        finished(id, kind, result): A job returned ``result``.
        failed(id, kind, message): A job raised; ``message`` is one sentence.
        cancelled(id, kind): A job was cancelled (running or dropped from the queue).
        progress(done, total, message): Progress of the running job, polled every
            ``poll_ms`` (so not at all for shorter jobs), only when it changed.
        busyChanged(bool): True while a job runs or waits.
    """

    started = Signal(int, str)
    finished = Signal(int, str, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int, str)
    progress = Signal(int, int, str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, poll_ms: int = PROGRESS_POLL_MS):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        # Keep the one thread: a new thread would start a new OpenMP team for torch.
        self._pool.setExpiryTimeout(-1)
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done)
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self.poll)
        self._shown: tuple[int, int, str] | None = None
        self._ids = itertools.count(1)
        self._running: Job | None = None
        self._pending: dict[str, Job] = {}  # kind -> latest job, in arrival order

    # -- API --------------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        *args,
        kind: str = "job",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        **kwargs,
    ) -> int:
        """Queue ``fn(reporter, *args, **kwargs)``; return the job id.

        A running job of the same ``kind`` is cancelled and a pending one replaced.
        ``on_result`` / ``on_error`` are called in the UI thread.
        """
        job = Job(next(self._ids), kind, fn, args, kwargs, on_result, on_error)
        old = self._pending.pop(kind, None)
        if old is not None:
            self.cancelled.emit(old.id, old.kind)
        if self._running is not None and self._running.kind == kind:
            self._running.reporter.cancel()
        was_busy = self.busy
        self._pending[kind] = job
        self._start_next()
        if not was_busy:
            self.busyChanged.emit(True)
        return job.id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job by id (running or pending), or with no id every job.

        Cancelling an id that already finished, or that is unknown, does nothing.
        """
        if job_id is None:
            pending, self._pending = list(self._pending.values()), {}
        else:
            pending = [job for job in self._pending.values() if job.id == job_id]
            for job in pending:
                del self._pending[job.kind]
        for job in pending:
            self.cancelled.emit(job.id, job.kind)
        running = self._running
        if running is not None and job_id in (None, running.id):
            running.reporter.cancel()
        elif pending and not self.busy:
            self.busyChanged.emit(False)

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._pending)

    @property
    def running_kind(self) -> str | None:
        return self._running.kind if self._running is not None else None

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (tests and shutdown only)."""
        return self._pool.waitForDone(msecs)

    # -- internals --------------------------------------------------------------------------
    def _start_next(self) -> None:
        if self._running is not None or not self._pending:
            return
        kind = next(iter(self._pending))
        job = self._pending.pop(kind)
        self._running = job
        self._shown = None
        self.started.emit(job.id, job.kind)
        self._pool.start(_Task(job, self._bridge))
        self._poll.start()

    @Slot(int, str, object)
    def _on_done(self, job_id: int, status: str, payload: object) -> None:
        job, self._running = self._running, None
        self._poll.stop()
        if job is None or job.id != job_id:  # cannot happen with one thread; be safe
            return
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
        self._start_next()
        if not self.busy:
            self.busyChanged.emit(False)

    @Slot()
    def poll(self) -> None:
        """Emit ``progress`` if the running job reported something new (the timer calls this)."""
        job = self._running
        if job is None:
            return
        latest = job.latest or (0, 0, "Working…")
        if latest != self._shown:
            self._shown = latest
            self.progress.emit(*latest)
