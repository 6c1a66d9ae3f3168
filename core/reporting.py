"""Progress and cancel for long jobs; needs nothing else in core.

A job takes a ``Reporter``; the GUI wraps it in one worker thread, the CLI in a
tqdm bar. Cancel is cooperative: the job calls ``reporter.check()`` between
batches and :class:`Cancelled` unwinds through its ``finally`` blocks, so hooks
are removed and model state is restored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside a job when the user asked it to stop."""


class Reporter:
    """Progress sink and cancel flag shared between a job and whoever runs it.

    Args:
        on_progress: Called as ``on_progress(done, total, message)``; may be None.
    """

    def __init__(self, on_progress: Callable[[int, int, str], None] | None = None):
        self._on_progress = on_progress
        self._cancel = threading.Event()

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

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Report ``done`` of ``total`` steps, then honour a pending cancel."""
        if self._on_progress is not None:
            self._on_progress(done, total, message)
        self.check()


def quiet() -> Reporter:
    """Return a fresh reporter that reports nowhere."""
    return Reporter()
