"""Bounds on sizes typed on the command line, checked while parsing, before anything runs.

A count such as ``--batch-size 100000000`` would otherwise reach torch and end, after a long
wait, in a MemoryError traceback; here it is one usage sentence naming the limit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

MAX_STEPS = 1024
"""Most deletion/insertion steps (``evaluate --steps``), as the app's Trust dock allows."""
MAX_MAP_SIZE = 512
"""Largest stored map side (``scan --map-size``), as the app's Dataset dock allows."""
MAX_BATCH = 1024
"""Largest batch (``--batch-size``): images, channels or masks per forward pass."""


def bounded(low: int, high: int) -> Callable[[str], int]:
    """Argparse type: a whole number from ``low`` to ``high`` (ASCII digits only)."""

    def parse(text: str) -> int:
        digits = text.strip()
        if not (digits.isascii() and digits.isdecimal()) or not low <= int(digits) <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, not {text!r}"
            )
        return int(digits)

    parse.__name__ = f"whole number from {low} to {high}"  # argparse names the type with it
    return parse
