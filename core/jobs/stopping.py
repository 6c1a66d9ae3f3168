"""When the app stops waiting for a job, and how it stops code that ignores cancel.

Cancel is cooperative (``Reporter.check``), but a job may run code no check reaches: a
factory or model file that loops while the model is built, a model whose forward never
returns. The app then *abandons* the job: it leaves the job's thread behind, goes on with a
fresh one, and raises :class:`UserCodeStopped` in the old thread, which ends any Python-level
loop there (its ``finally`` blocks run: hooks removed, modes restored). Code stuck inside C
never sees it; its thread stays behind until the process ends (quitting ends the process).

:class:`StopPolicy` is the whole policy, Qt-free so it is tested without a display; the
app's worker (``gui/worker.py``) applies it.
"""

from __future__ import annotations

import ctypes
import math
import os
from dataclasses import dataclass

from hookscope.core.errors import HookScopeError

LOAD_TIMEOUT_ENV = "HOOKSCOPE_LOAD_TIMEOUT"
"""Environment variable that overrides :attr:`StopPolicy.load_timeout_s` (seconds)."""

USER_CODE_KINDS = frozenset({"load"})
"""Job kinds that run code from the user's files before any cancel check can run."""


class UserCodeStopped(BaseException):
    """Raised into a job's thread when the app abandons it.

    A ``BaseException``, so a model's own ``except Exception`` does not swallow it.
    """


@dataclass(frozen=True)
class StopPolicy:
    """How long the app waits for jobs before abandoning them.

    Attributes:
        load_timeout_s: A model load still running after this many seconds is abandoned
            (None: never). Building a model runs the user's code, which may loop forever.
        run_timeout_s: The same for an interactive run (probe, CAM, before/after); None by
            default because a run's length depends on the model and method (Score-CAM on a
            big model on a CPU takes minutes) and Cancel always works.
        grace_s: After Cancel, how long a job gets to stop by itself before it is abandoned.
        interrupt: Raise :class:`UserCodeStopped` in an abandoned job's thread.
    """

    load_timeout_s: float | None = 120.0
    run_timeout_s: float | None = None
    grace_s: float = 1.5
    interrupt: bool = True

    def __post_init__(self) -> None:
        for name in ("load_timeout_s", "run_timeout_s", "grace_s"):
            value = getattr(self, name)
            if value is None and name != "grace_s":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HookScopeError(f"The stop setting {name} must be a number of seconds.")
            if not (math.isfinite(value) and value > 0):
                raise HookScopeError(
                    f"The stop setting {name} must be a positive number of seconds, not {value}."
                )

    @classmethod
    def from_env(cls, environ: dict | None = None) -> StopPolicy:
        """The default policy, with the load timeout from ``HOOKSCOPE_LOAD_TIMEOUT`` if set.

        ``0`` or ``none`` there means no load timeout.
        """
        text = (os.environ if environ is None else environ).get(LOAD_TIMEOUT_ENV, "").strip()
        if not text:
            return cls()
        if text.lower() in ("0", "none", "off"):
            return cls(load_timeout_s=None)
        try:
            seconds = float(text)
        except ValueError:
            raise HookScopeError(
                f"{LOAD_TIMEOUT_ENV} must be a number of seconds (or 0 for none), not {text!r}."
            ) from None
        return cls(load_timeout_s=seconds)

    def may_abandon(self, kind: str, long_lane: bool) -> bool:
        """Whether a cancelled job of ``kind`` that does not stop is abandoned.

        Loads and every interactive run (they run the model's own forward); a long job (scan,
        Trust...) checks for cancel between batches and writes files, so it is left to stop
        by itself.
        """
        return kind in USER_CODE_KINDS or not long_lane

    def timeout_s(self, kind: str, long_lane: bool) -> float | None:
        """Seconds a running job of ``kind`` may take before it is abandoned (None: no limit)."""
        if kind in USER_CODE_KINDS:
            return self.load_timeout_s
        return None if long_lane else self.run_timeout_s


DEFAULT_POLICY = StopPolicy()


def _what(kind: str) -> str:
    return {"load": "model load", "probe": "run", "before_after": "before/after run"}.get(
        kind, f"{kind.replace('_', ' ')} job"
    )


def timeout_sentence(kind: str, seconds: float) -> str:
    """The one sentence shown when a job of ``kind`` is abandoned after ``seconds``."""
    if kind in USER_CODE_KINDS:
        return (
            f"The model load took longer than the {seconds:g} s load timeout (the model's own "
            f"code may loop forever), so HookScope stopped waiting for it and loaded nothing; set "
            f"{LOAD_TIMEOUT_ENV} to allow longer."
        )
    return (
        f"The {_what(kind)} took longer than the {seconds:g} s run timeout (the model's own "
        "code may loop forever), so HookScope stopped waiting for it and shows no new result."
    )


def cancel_sentence(kind: str) -> str:
    """The one sentence shown when a cancelled job of ``kind`` did not stop and was abandoned."""
    return (
        f"The {_what(kind)} did not stop when cancelled (its own code is still running), so "
        "HookScope left it behind and carries on with a fresh worker thread."
    )


def interrupt_thread(thread_id: int) -> bool:
    """Raise :class:`UserCodeStopped` in thread ``thread_id`` at its next Python instruction.

    Returns:
        True when the thread was found. Code inside one long C call sees it only on return.
    """
    found = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(UserCodeStopped)
    )
    if found > 1:  # cannot happen for one id; undo as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return found == 1
