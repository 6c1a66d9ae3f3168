"""Run ``python main.py ARGS`` in the test process: the same ``main``, no new interpreter.

A subprocess costs 4–8 s here, most of it importing torch again; the tests that need a real
process (Ctrl+C, stdin, ``sys.exit`` from a factory, no Qt loaded) still start one.
"""

from __future__ import annotations

import contextlib
import io
import subprocess

import torch


def run_cli(*args: str, threads: int | None = None) -> subprocess.CompletedProcess:
    """``main(args)`` with stdout and stderr captured, as a finished process would report them.

    argparse's ``SystemExit`` becomes the return code; the process-wide settings the CLI
    touches (torch's thread count, glibc's allocator) are left as the test process had them.
    """
    from hookscope.core.engine import runtime
    from hookscope.gui.command import main

    out, err = io.StringIO(), io.StringIO()
    before = torch.get_num_threads()
    tune, runtime.tune_allocator = runtime.tune_allocator, lambda: False
    try:
        if threads:  # as OMP_NUM_THREADS would set them for a new process
            torch.set_num_threads(threads)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        runtime.tune_allocator = tune
        torch.set_num_threads(before)
    return subprocess.CompletedProcess(list(args), code or 0, out.getvalue(), err.getvalue())
