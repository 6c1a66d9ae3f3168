"""``inspect``: print the module tree."""

from __future__ import annotations

import json

from core.cli import add_model_args, load_from_args
from core.engine.tree import build_tree


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser("inspect", help="print the module tree")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:

    lm = load_from_args(args)
    tree = build_tree(lm.model, lm.input_spec)
    nodes = [n for n in tree.nodes() if n.name]
    if args.json:
        print(json.dumps([n.to_dict() for n in nodes], indent=1))
        return 0
    print(f"{lm.name}: {tree.root.total_params:,} parameters, input {lm.input_spec.size}")
    if tree.error:
        print(f"note: {tree.error}")
    for n in nodes:
        indent = "  " * n.name.count(".")
        shape = "x".join(map(str, n.out_shape)) if n.out_shape else "-"
        calls = f"  ×{n.calls}" if n.calls > 1 else ""
        print(f"{indent}{n.short_name:<20} {n.type:<22} {shape:<18} {n.total_params:>12,}{calls}")
    return 0
