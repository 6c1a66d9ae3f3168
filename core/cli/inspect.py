"""``inspect``: print the module tree."""

from __future__ import annotations

import json
from collections.abc import Callable

from hookscope.core.cli import add_model_args, load_from_args
from hookscope.core.engine.tree import ModuleNode, build_tree


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser("inspect", help="print the module tree")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:
    lm = load_from_args(args)
    tree = build_tree(lm.model, lm.input_spec, class_names=lm.class_names)
    nodes = [n for n in tree.nodes() if n.name]
    if args.json:
        print(json.dumps([n.to_dict() for n in nodes], indent=1))
        return 0
    print(f"{lm.name}: {tree.root.total_params:,} parameters, input {lm.input_spec.size}")
    if tree.error:
        print(f"note: {tree.error}")
    kind = tree.output_kind
    if kind is not None:
        shape = "x".join(map(str, kind.shape))
        last = tree.default_cam_layer() or "-"
        print(f"output: {kind.kind} {shape}; last layer with a spatial grid: {last}")
        if kind.note:
            print(f"note: {kind.note}")
    if tree.kind_error:
        print(f"note: {tree.kind_error}")
    for line in format_table(nodes, COLUMNS):
        print(line)
    return 0


# One column of the text tree: header, the cell for a node, right-aligned or not.
Column = tuple[str, Callable[[ModuleNode], str], bool]

COLUMNS: list[Column] = [
    # The full dotted name is what --layers takes; indentation shows the nesting.
    ("module", lambda n: "  " * n.name.count(".") + n.name, False),
    ("type", lambda n: n.type, False),
    ("output", lambda n: "x".join(map(str, n.out_shape)) if n.out_shape else "-", False),
    ("params", lambda n: f"{n.total_params:,}", True),
    ("calls", lambda n: f"×{n.calls}" if n.calls > 1 else "", False),
    # How a CAM reads the output: nchw/nhwc grid or tokens:K (prefix tokens) on a grid.
    ("layout", lambda n: str(n.layout) if n.layout is not None else "", False),
]


def format_table(nodes: list[ModuleNode], columns: list[Column]) -> list[str]:
    """Lines of a header and one row per node, each column as wide as its widest cell."""
    rows = [[header for header, _, _ in columns]]
    rows += [[cell(n) for _, cell, _ in columns] for n in nodes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = []
    for row in rows:
        cells = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, (_, _, right) in zip(row, widths, columns)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
