"""The command line's Qt-free subcommands (one module each) and the options they share."""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import contextmanager

from hookscope.core.engine.layouts import parse_reshape
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import Cancelled, Reporter


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--model, --weights, --trust-pickle and --device."""
    p.add_argument(
        "--model",
        required=required,
        help="demo, torchvision:NAME[:WEIGHTS], timm:NAME[?key=value&...], hf:DIR (a "
        "save_pretrained folder), file.py:factory or model.pt",
    )
    p.add_argument("--weights", help="state_dict file applied to the model")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled full model or weights file holding Python objects (unpickling "
        "runs code from the file: only for files you trust)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")


TARGET_HELP = (
    "what to explain: a class index or name; dense (segmentation) outputs: C = class C over "
    "the pixels predicted as C, or C@mask.png over a region; detections: box:i = the score of "
    "detection i; embeddings: similar:IMAGE = cosine similarity to IMAGE's embedding "
    "(default: top class, most-predicted class, box:0, or the embedding's norm)"
)
RESHAPE_HELP = (
    "layout of the CAM layers' outputs when HookScope cannot tell: nchw, nhwc, tokens:K "
    "(K prefix tokens before the grid) or HxW (the token grid); default: read from the model"
)


def reshape_value(text: str) -> str:
    """Argparse type for ``--reshape``; a bad value is a one-sentence usage error."""
    try:
        parse_reshape(text)
    except HookScopeError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    return text


def count(text: str) -> int:
    """Argparse type for a count of at least 1 (``--topk``, ``--top``); ASCII digits only."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdecimal()) or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(digits)


def names(text: str) -> list[str]:
    """Comma-separated names → list, blanks dropped."""
    return [s.strip() for s in text.split(",") if s.strip()]


def load_from_args(args):
    """The LoadedModel the model options ask for."""
    return load_model(args.model, args.weights, trust_pickle=args.trust_pickle, device=args.device)


CANCELLED_EXIT = 130
"""Exit code after Ctrl+C cancelled a job (nothing written)."""
COARSE_STEPS = 3
"""Progress with at most this many steps is a job's phases (probe, CAM, views): no bar, so a
quick run's output or one-sentence error stands alone on stderr."""


@contextmanager
def cancel_on_sigint(reporter: Reporter):
    """Within the block, Ctrl+C cancels ``reporter``; a second Ctrl+C raises KeyboardInterrupt.

    The previous SIGINT handler is restored on exit. Off the main thread (where Python cannot
    install handlers) Python's default is kept.
    """

    def on_sigint(signum, frame):
        if reporter.cancelled:
            raise KeyboardInterrupt
        reporter.cancel()

    old = None
    try:
        old = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: keep Python's default
        pass
    try:
        yield reporter
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


@contextmanager
def progress_reporter(desc: str = "computing"):
    """A Reporter drawing a tqdm bar on stderr; Ctrl+C cancels it at the job's next check.

    Only loops of forward passes (ScoreCAM, occlusion, importance, ...) draw a bar. A second
    Ctrl+C interrupts at once. Each new loop message starts the bar afresh.
    """
    from tqdm import tqdm

    bar = None
    label = None

    def on_progress(done: int, total: int, message: str) -> None:
        nonlocal bar, label
        if total <= COARSE_STEPS:  # a job's phases, not a loop of forward passes: no bar
            return
        if bar is None:
            # delay: a loop that ends (or fails) within half a second prints no bar at all.
            bar = tqdm(
                total=total,
                desc=message or desc,
                file=sys.stderr,
                leave=False,
                unit="fw",
                delay=0.5,
            )
            label = message
        elif message != label:
            label = message
            bar.set_description(message or desc, refresh=False)
            bar.reset(total=total)
        bar.total = total
        bar.update(done - bar.n)

    reporter = Reporter(on_progress)
    try:
        with cancel_on_sigint(reporter):
            yield reporter
    finally:
        if bar is not None:
            bar.close()


def run_job(job, *args, **kwargs):
    """Run ``job(reporter, *args, **kwargs)`` (a ``core.jobs`` function) with a progress bar.

    The CLI runs the very job functions the app's worker runs and only formats their results.

    Returns:
        ``(result, 0)``, or ``(None, CANCELLED_EXIT)`` after Ctrl+C (a message is printed).
    """
    try:
        with progress_reporter() as reporter:
            return job(reporter, *args, **kwargs), 0
    except (Cancelled, KeyboardInterrupt):
        print("hookscope: cancelled (Ctrl+C); nothing was written.", file=sys.stderr)
        return None, CANCELLED_EXIT
