"""One worker job owned by a dock: its Run / Cancel buttons and its status line."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QAbstractButton, QLabel


class DockJob(QObject):
    """Runs a core job for one dock and keeps its buttons and status text in step.

    Args:
        state: The AppState (its worker runs the job).
        kind: Worker job kind; a new job of the same kind replaces a running one.
        run_button: Disabled while the job runs.
        cancel_button: Enabled while the job runs; clicking it cancels.
        label: Shows progress, "Cancelled." and errors.
        cancelled_text: What the label says after a cancel.
    """

    def __init__(
        self,
        state,
        kind: str,
        run_button: QAbstractButton,
        cancel_button: QAbstractButton,
        label: QLabel,
        cancelled_text: str = "Cancelled.",
    ):
        super().__init__(label)
        self.state, self.kind = state, kind
        self.run_button, self.cancel_button, self.label = run_button, cancel_button, label
        self.cancelled_text = cancelled_text
        self.job_id: int | None = None
        cancel_button.setEnabled(False)
        cancel_button.clicked.connect(self.cancel)
        state.worker.jobProgress.connect(self._on_job_progress)
        state.worker.cancelled.connect(self._on_cancelled)

    @property
    def running(self) -> bool:
        return self.job_id is not None

    def submit(self, fn, *args, status: str, on_result, on_partial=None, **kwargs) -> int:
        """Start ``fn(reporter, *args, **kwargs)``; ``on_result`` gets its value.

        ``on_partial`` gets each partial result the job streams (``reporter.partial``).
        """
        self.label.setText(status)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

        def done(result):
            self._finish()
            on_result(result)

        self.job_id = self.state.worker.submit(
            fn,
            *args,
            kind=self.kind,
            on_result=done,
            on_error=self._on_error,
            on_partial=on_partial,
            **kwargs,
        )
        return self.job_id

    def cancel(self) -> None:
        """Cancel this dock's job only; a probe or another dock's job keeps running."""
        if self.running:
            self.state.worker.cancel(self.job_id)

    def _finish(self) -> None:
        self.job_id = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_error(self, message: str) -> None:
        self._finish()
        self.label.setText(message)
        self.state.errorRaised.emit(message)

    def _on_cancelled(self, job_id: int, _kind: str) -> None:
        if job_id == self.job_id:
            self._finish()
            self.label.setText(self.cancelled_text)

    def _on_job_progress(self, job_id: int, _kind: str, done: int, total: int, msg: str) -> None:
        if job_id == self.job_id and total > 0:
            self._on_progress(done, total, msg)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        """Progress of this dock's running job (the worker polls it)."""
        self.label.setText(f"{message} ({done} / {total})")
