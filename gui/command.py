"""The ``hookscope`` command: with no subcommand the app opens; subcommands run jobs headless."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hookscope.core.cli import names
from hookscope.core.errors import HookScopeError

SUBCOMMANDS = (
    "hookscope.core.cli.inspect",
    "hookscope.core.cli.probe",
    "hookscope.core.cli.importance",
    "hookscope.core.cli.evaluate",
    "hookscope.core.cli.figures",
    "hookscope.core.cli.scan",
    "hookscope.core.cli.atlas",
    "hookscope.core.cli.diagnose",
)
"""Modules with ``add_subcommand(subparsers)``; every one is Qt-free (core)."""


class _Parser(argparse.ArgumentParser):
    """Argparse that reports a usage error as one sentence and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"hookscope: {message}.\n")


def _gui_args(p: argparse.ArgumentParser) -> None:
    """Top-level options: what the window opens with (no subcommand)."""
    g = p.add_argument_group("app (no subcommand)")
    g.add_argument("--model", help="model to open (default: the built-in demo)")
    g.add_argument("--weights", help="state_dict file applied to the model")
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled full model or weights file (unpickling runs code from the file)",
    )
    g.add_argument(
        "--session",
        metavar="JSON",
        help="open a saved session (its factory or pickle runs only with --trust-factory / "
        "--trust-pickle)",
    )
    g.add_argument(
        "--trust-factory",
        action="store_true",
        help="let the --session's file.py:factory run (it executes that Python file)",
    )
    g.add_argument(
        "--run",
        metavar="DIR",
        help="open a training run recorded by hookscope.watch in the Training panel",
    )
    g.add_argument("--image", help="image to open (default: a bundled sample)")
    g.add_argument("--layers", type=names, help="comma-separated module names to hook")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    g.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a screenshot of the window after the first run, then exit",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; with no subcommand the GUI opens."""
    parser = _Parser(prog="hookscope", description=__doc__)
    _gui_args(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    for module in SUBCOMMANDS:
        importlib.import_module(module).add_subcommand(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, or open the GUI when no subcommand is given."""
    from hookscope.core.engine.runtime import tune_allocator

    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from hookscope.gui.app import AppOptions, run  # lazily: subcommands never load Qt

        try:
            return run(AppOptions.from_args(args))
        except HookScopeError as exc:  # e.g. a bad HOOKSCOPE_LOAD_TIMEOUT, before the window
            print(f"hookscope: {exc}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except HookScopeError as exc:
        print(f"hookscope: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hookscope: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `hookscope inspect ... | head`: the reader left; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
