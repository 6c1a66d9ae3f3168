"""HookScope: `python main.py` opens the app; subcommands run the same jobs headless."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli import add_model_args, load_from_args, names
from core.errors import HookScopeError


class _Parser(argparse.ArgumentParser):
    """Argparse that reports a usage error as one sentence and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"hookscope: {message}.\n")


def _gui_args(p: argparse.ArgumentParser) -> None:
    """Top-level options: what the window opens with (no subcommand)."""
    g = p.add_argument_group("app (no subcommand)")
    g.add_argument("--model", help="model to open (default: the built-in demo)")
    g.add_argument("--weights", help="state_dict file applied to the model")
    g.add_argument("--trust-pickle", action="store_true", help="allow a pickled full model")
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

    p = sub.add_parser("inspect", help="print the module tree")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("probe", help="one forward + backward with hooks; print stats")
    add_model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layers", required=True, type=names, help="comma-separated module names")
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    _edit_args(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("importance", help="rank a layer's channels by ablating each in turn")
    add_model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layer", required=True, help="module whose channels are ablated")
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--top", type=int, default=10, help="how many channels to list (default 10)")
    p.add_argument("--batch-size", type=int, default=32, help="channels per forward pass")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_importance)

    from gui import cli_figures  # lazy: cam/attribute figures use Qt only when drawing

    cli_figures.add_subcommands(sub)
    return parser


def _edit_flag(flag: str):
    """Argparse type for one experiment flag; a bad value is a one-sentence usage error."""

    def parse(text: str) -> dict:
        from core.experiments.interventions import parse_edit_flag

        try:
            return parse_edit_flag(flag, text)
        except HookScopeError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None

    parse.__name__ = flag
    return parse


def _edit_args(p: argparse.ArgumentParser) -> None:
    """Gradient and activation edits, kept in command-line order in ``args.edits``."""
    g = p.add_argument_group("experiments (repeatable)")
    for flag, metavar, text in (
        ("grad-scale", "LAYER=K", "multiply the gradient flowing back through LAYER by K"),
        ("grad-clip", "LAYER=C", "clip that gradient to ±C"),
        ("grad-zero", "LAYER", "zero that gradient"),
        ("grad-noise", "LAYER=S", "add seeded noise of S × the gradient's std"),
        ("ablate", "LAYER:0,5,7", "zero these output channels of LAYER"),
    ):
        g.add_argument(
            f"--{flag}",
            dest="edits",
            action="append",
            type=_edit_flag(flag),
            metavar=metavar,
            help=text,
        )


def cmd_inspect(args) -> int:
    from core.engine.tree import build_tree

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


def cmd_probe(args) -> int:
    from core.engine.probe import run_probe, tensor_stats
    from core.loading.images import load_image, to_tensor

    lm = load_from_args(args)
    x = to_tensor(load_image(args.image), lm.input_spec)
    from core.experiments.interventions import describe_edit, edit_from_dict

    edits = [edit_from_dict(lm.model, d) for d in args.edits or []]
    r = run_probe(
        lm.model, x, args.layers, args.target, class_names=lm.class_names, k=args.topk, edits=edits
    )
    layers = {}
    for name, recs in r.records.items():
        calls = []
        for rec in recs:
            parts = {}
            for part, t in rec.outputs.items():
                g = rec.grads.get(part)
                parts[part or "output"] = {
                    "shape": list(t.shape),
                    "activation": tensor_stats(t),
                    "gradient": tensor_stats(g) if g is not None else None,
                }
            calls.append({"call": rec.call, "parts": parts})
        layers[name] = {"calls": calls, "param_grad_norm": r.param_grad_norms.get(name)}
    grad_norm = float(r.input_grad.norm()) if r.input_grad is not None else None
    if args.json:
        out = {
            "model": lm.name,
            "target": r.target,
            "target_name": r.target_name,
            "topk": [{"index": i, "name": n, "prob": p} for i, n, p in r.topk],
            "input_grad_norm": grad_norm,
            "edits": [describe_edit(e.to_dict()) for e in edits],
            "layers": layers,
            "notes": list(r.notes),
        }
        print(json.dumps(out, indent=1))
        return 0
    print(f"{lm.name}: target {r.target} ({r.target_name or '-'})")
    for i, n, p in r.topk:
        print(f"  {p:7.2%}  {i:5d}  {n or ''}")
    print(f"input gradient norm: {grad_norm}")
    cols = "mean std min max zeros"
    for name, info in layers.items():
        print(f"\n{name}  (param grad norm: {info['param_grad_norm']})")
        for call in info["calls"]:
            for part, s in call["parts"].items():
                label = f"  call {call['call']} {part} {s['shape']}"
                print(label)
                for kind in ("activation", "gradient"):
                    st = s[kind]
                    if st is not None:
                        vals = " ".join(f"{k}={st[k]:.4g}" for k in cols.split())
                        print(f"    {kind:<10} {vals}")
    for note in r.notes:
        print(f"note: {note}")
    return 0


def cmd_importance(args) -> int:
    from core.experiments.importance import channel_importance
    from core.loading.images import load_image, to_tensor

    lm = load_from_args(args)
    x = to_tensor(load_image(args.image), lm.input_spec)
    res = channel_importance(
        lm.model, x, args.layer, args.target, class_names=lm.class_names, batch_size=args.batch_size
    )
    top = res.top(max(args.top, 0))
    if args.json:
        out = {
            "model": lm.name,
            "layer": res.layer,
            "target": res.target,
            "target_name": res.target_name,
            "base_prob": res.base_prob,
            "channels": [{"channel": c, "drop": d, "prob": p} for c, d, p in top],
        }
        print(json.dumps(out, indent=1))
        return 0
    name = f" ({res.target_name})" if res.target_name else ""
    print(f"{lm.name}: {res.layer}, target {res.target}{name}, p = {res.base_prob:.4f}")
    print("  rank  channel      drop  p(zeroed)")
    for rank, (c, d, p) in enumerate(top, 1):
        print(f"  {rank:4d}  {c:7d}  {d:+8.4f}  {p:9.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, or open the GUI when no subcommand is given."""
    from core.engine.runtime import tune_allocator

    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from gui.app import run  # lazily: subcommands never load Qt

        return run(args)
    try:
        return args.func(args)
    except HookScopeError as exc:
        print(f"hookscope: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hookscope: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
