"""Process-wide settings that make repeated probes fast."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

import torch

SMALL_MACS = 200_000_000
"""Below this a forward runs on one thread (see :func:`threads_for`)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> bool:
    """Let glibc keep freed activation memory for the next run instead of unmapping it.

    Recording layers keeps every activation alive until the run ends, so each forward needs
    fresh memory; with glibc's defaults that memory is mapped and zero-filled by the kernel
    every time (about 1.7x a bare resnet50 forward here). Serving big blocks from the heap and
    never trimming it makes the second and later runs reuse warm pages. RSS then stays at its
    peak instead of shrinking between runs. Only acts on Linux with glibc; call it before any
    thread starts.

    Every thread also shares the main heap: the app's worker thread would get a heap of its
    own, which glibc unmaps whenever it empties, whatever the trim threshold, so every run
    faulted its memory in again (resnet18 probe + Grad-CAM in the worker thread: 53 ms, 46 ms
    with one heap, as fast as in the main thread).

    Returns:
        True when the settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl or another libc without mallopt
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    ok = mallopt(_M_ARENA_MAX, 1) == 1 and ok
    return mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok


def threads_for(macs: int) -> int | None:
    """Intra-op threads for a model of ``macs`` multiply-accumulates, None for torch's own.

    A run that follows idle time (every click in the app) on two OpenMP threads sometimes
    takes twice as long while the threads wake up; on a small model that costs more than the
    second core gives. Click to repainted docks on the demo, five runs of 30 clicks each:
    median 21-24 ms on one thread, 22-30 ms on two.
    """
    return 1 if 0 < macs < SMALL_MACS else None  # 0: the dry run failed, size unknown


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch ops with ``n`` intra-op threads (None: leave as is), restored after."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
