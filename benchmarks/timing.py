"""Timing helpers the peer benchmarks share: interleaved medians and the ratio table."""

from __future__ import annotations

import statistics
import time

Seconds = tuple[float, float]
"""(median, min) seconds."""


def median_times(fns: dict, repeats: int) -> dict[str, Seconds]:
    """(median, min) seconds of each callable, run interleaved after one warm-up call each."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def ratio(a: Seconds, b: Seconds) -> Seconds:
    """``a / b`` of the medians and of the minimums."""
    return a[0] / b[0], a[1] / b[1]


def print_table(rows) -> bool:
    """Print ``(name, seconds or None, ratio or None, goal or None)`` rows; True if all goals met.

    A goal is the largest ratio allowed (its median decides).
    """
    print(
        f"{'case':<52} {'median ms':>10} {'min ms':>9} {'ratio':>6} {'(min)':>6} {'target':>7}  ok"
    )
    ok_all = True
    for name, sec, rat, limit in rows:
        med = f"{sec[0] * 1000:10.1f} {sec[1] * 1000:9.1f}" if sec else " " * 20
        r = f"{rat[0]:6.2f} {rat[1]:6.2f}" if rat else " " * 13
        goal, ok = "", ""
        if limit is not None:
            goal = f"<={limit:.2f}"
            ok = "yes" if rat[0] <= limit else "NO"
            ok_all &= rat[0] <= limit
        print(f"{name:<52} {med} {r} {goal:>7}  {ok}")
    return ok_all
