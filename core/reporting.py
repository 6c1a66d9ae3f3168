"""Progress and cancel for long jobs; needs nothing else in core.

A job takes a ``Reporter``; the GUI wraps it in one worker thread, the CLI in a
tqdm bar. Cancel is cooperative: the job calls ``reporter.check()`` between
batches and :class:`Cancelled` unwinds through its ``finally`` blocks, so hooks
are removed and model state is restored.

Two more channels serve the app's two worker lanes (``gui/worker.py``):

- ``reporter.partial(payload)`` hands a partial result (Trust rows so far, a chunk of scan
  rows) to whoever runs the job; the app shows it at once, the CLI ignores it.
- ``with reporter.batch():`` marks one batch of work on the model. The app runs long jobs
  (scan, Trust, Sanity, importance) beside interactive runs (probe, CAM, attribution) and a
  :class:`ModelGate` keeps them off the model at the same time: an interactive run holds the
  gate for its whole run, a long job per batch, and between two batches it lets any waiting
  interactive run go first. Outside the app ``batch()`` only checks for cancel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class Cancelled(Exception):
    """Raised inside a job when the user asked it to stop."""


# Stages a job reports (``Reporter.progress(..., stage=...)``): listeners compare these, never
# the message text, which is for people and may change.
LOADING = "loading"
PROBING = "probing"
CAM = "cam"
VIEWS = "views"
SCANNING = "scanning"
DONE = "done"


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes:
        done: Units done.
        total: Units in all (0: unknown, a busy indicator).
        message: What is happening, for people.
        stage: What part of the job this is (``SCANNING``...), for code; "" when unnamed.
    """

    done: int
    total: int
    message: str = ""
    stage: str = ""


# flat-map: a CAM map or gradient that is flat or zero; cam-error: why no CAM was computed;
# target: about what is explained; info: anything else (memory cap, no gradients...).
NOTE_KINDS = ("flat-map", "cam-error", "target", "info")


class Note(str):
    """A thing the user should know about a result: its sentence, and a kind code filters on.

    A ``str`` (the sentence), so every place that prints, joins or saves notes keeps working;
    ``kind`` is one of :data:`NOTE_KINDS`.
    """

    kind: str

    def __new__(cls, kind: str, text: str):
        if kind not in NOTE_KINDS:
            raise ValueError(f"Unknown note kind {kind!r}; use one of {', '.join(NOTE_KINDS)}.")
        self = super().__new__(cls, text)
        self.kind = kind
        return self

    @property
    def text(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Note({self.kind!r}, {str.__repr__(self)})"

    def __reduce__(self):
        return (Note, (self.kind, str.__str__(self)))


def as_note(note, kind: str = "info") -> Note:
    """``note`` as a :class:`Note` (a plain string gets ``kind``)."""
    return note if isinstance(note, Note) else Note(kind, str(note))


class Reporter:
    """Progress sink and cancel flag shared between a job and whoever runs it.

    Args:
        on_progress: Called as ``on_progress(done, total, message)``; may be None.
        on_partial: Called with each :meth:`partial` payload (in the job's thread); may be None.
        on_update: Called with each :class:`Progress` (its stage included); may be None.
    """

    def __init__(
        self,
        on_progress: Callable[[int, int, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        *,
        on_update: Callable[[Progress], None] | None = None,
    ):
        self._on_progress = on_progress
        self._on_partial = on_partial
        self._on_update = on_update
        self._cancel = threading.Event()
        self.last: Progress | None = None

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancel was requested."""
        if self._cancel.is_set():
            raise Cancelled("The run was cancelled.")

    def progress(self, done: int, total: int, message: str = "", stage: str = "") -> None:
        """Report ``done`` of ``total`` steps (of ``stage``), then honour a pending cancel."""
        self.last = Progress(done, total, message, stage)
        if self._on_progress is not None:
            self._on_progress(done, total, message)
        if self._on_update is not None:
            self._on_update(self.last)
        self.check()

    @property
    def stage(self) -> str:
        """The stage of the last report ("" before any)."""
        return self.last.stage if self.last is not None else ""

    def partial(self, payload: Any) -> None:
        """Hand a partial result to whoever runs the job (a no-op when nobody listens)."""
        if self._on_partial is not None:
            self._on_partial(payload)

    def batch(self):
        """Context manager around one batch of work on the model (see :class:`ModelGate`).

        Between batches a waiting interactive run of the app takes the model; cancel is
        checked while waiting and on entry. Everything that touches the model (hooks,
        forward, backward, a changed mode or weight) must start and end inside the block.
        """
        return model_turn(self.check)


def quiet() -> Reporter:
    """Return a fresh reporter that reports nowhere."""
    return Reporter()


# -- the model gate between the app's two worker lanes ---------------------------------------
class ModelGate:
    """Whose turn it is on the model: interactive runs first, long jobs between batches.

    Re-entrant per thread. An interactive run (:meth:`hold`) waits at most for the batch in
    flight; a long job's batch (:meth:`turn`) waits while the gate is held or any interactive
    run is waiting for it, so a stream of batches never starves the clicks.
    """

    WAIT_S = 0.05
    """How often a waiter checks for cancel."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0  # interactive runs waiting for the gate

    @property
    def waiting(self) -> int:
        """Interactive runs waiting for the gate."""
        return self._waiting

    @contextmanager
    def hold(self, check: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the gate for an interactive run (priority over long jobs)."""
        me = threading.get_ident()
        with self._cond:
            self._waiting += 1
            try:
                self._wait_until(lambda: self._owner in (None, me), check)
            finally:
                self._waiting -= 1
            self._take(me)
        try:
            yield
        finally:
            self._give(me)

    @contextmanager
    def turn(self, check: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the gate for one batch of a long job, after every waiting interactive run."""
        me = threading.get_ident()
        with self._cond:
            self._wait_until(
                lambda: self._owner == me or (self._owner is None and not self._waiting), check
            )
            self._take(me)
        try:
            yield
        finally:
            self._give(me)

    def _wait_until(self, ready: Callable[[], bool], check) -> None:
        while not ready():
            self._cond.wait(self.WAIT_S)
            if check is not None:
                check()

    def _take(self, me: int) -> None:
        self._owner = me
        self._depth += 1

    def forfeit(self, thread_id: int) -> bool:
        """Free the gate if thread ``thread_id`` holds it (a job the app abandoned).

        That thread's own later release is then ignored. Returns True when it held the gate.
        """
        with self._cond:
            if self._owner != thread_id:
                return False
            self._owner, self._depth = None, 0
            self._cond.notify_all()
            return True

    def _give(self, me: int) -> None:
        with self._cond:
            if self._owner != me:  # forfeited while this thread was left behind
                return
            self._depth -= 1
            if not self._depth:
                self._owner = None
                self._cond.notify_all()


_lane = threading.local()


@contextmanager
def lane_gate(gate: ModelGate | None) -> Iterator[None]:
    """Make ``gate`` the one :meth:`Reporter.batch` uses in this thread (the app's worker)."""
    before = getattr(_lane, "gate", None)
    _lane.gate = gate
    try:
        yield
    finally:
        _lane.gate = before


@contextmanager
def model_turn(check: Callable[[], None] | None = None) -> Iterator[None]:
    """One batch on the model: the lane's gate turn when a worker set one, else just ``check``."""
    if check is not None:
        check()
    gate = getattr(_lane, "gate", None)
    if gate is None:
        yield
        return
    with gate.turn(check):
        yield


def per_batch(fn: Callable) -> Callable:
    """Mark a job that does all its model work inside ``reporter.batch()`` blocks.

    The app's worker then lets interactive runs in between its batches; a long job without
    this mark holds the model for its whole run.
    """
    fn.per_batch = True
    return fn
