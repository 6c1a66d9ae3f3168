"""Peak RSS of a job in a fresh process (shared by bench_scan and bench_atlas)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import json, sys, time
import torch
torch.set_num_threads(2)
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import quiet
def hwm_mb():
    # VmHWM: this process image's peak RSS (ru_maxrss would inherit the parent's at fork).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
a = json.loads(sys.argv[1])
"""
"""What every child starts with: 2 torch threads, ``load_model``, ``quiet``, ``hwm_mb()`` and
its arguments as ``a``."""


def run_child(body: str, args: dict) -> dict:
    """Run ``PRELUDE + body`` in a fresh Python; its last stdout line, read as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + body, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])
