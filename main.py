"""HookScope: `python main.py` opens the app; subcommands run the same jobs headless."""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import HookScopeError


class _Parser(argparse.ArgumentParser):
    """Argparse that reports a usage error as one sentence and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"hookscope: {message}.\n")


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--model",
        required=required,
        help="demo, torchvision:NAME[:WEIGHTS], file.py:factory or model.pt",
    )
    p.add_argument("--weights", help="state_dict file applied to the model")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled full model (unpickling runs code from the file)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")


def _gui_args(p: argparse.ArgumentParser) -> None:
    """Top-level options: what the window opens with (no subcommand)."""
    g = p.add_argument_group("app (no subcommand)")
    g.add_argument("--model", help="model to open (default: the built-in demo)")
    g.add_argument("--weights", help="state_dict file applied to the model")
    g.add_argument("--trust-pickle", action="store_true", help="allow a pickled full model")
    g.add_argument("--image", help="image to open (default: a bundled sample)")
    g.add_argument("--layers", type=_layers, help="comma-separated module names to hook")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    g.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a screenshot of the window after the first run, then exit",
    )


def _layers(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; with no subcommand the GUI opens."""
    parser = _Parser(prog="hookscope", description=__doc__)
    _gui_args(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("inspect", help="print the module tree")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("probe", help="one forward + backward with hooks; print stats")
    _model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layers", required=True, type=_layers, help="comma-separated module names")
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_probe)
    return parser


def _load(args):
    from core.models import load_model

    return load_model(args.model, args.weights, trust_pickle=args.trust_pickle, device=args.device)


def cmd_inspect(args) -> int:
    from core.tree import build_tree

    lm = _load(args)
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
    from core.images import load_image, to_tensor
    from core.probe import run_probe, tensor_stats

    lm = _load(args)
    x = to_tensor(load_image(args.image), lm.input_spec)
    r = run_probe(lm.model, x, args.layers, args.target, class_names=lm.class_names, k=args.topk)
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, or open the GUI when no subcommand is given."""
    from core.runtime import tune_allocator

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
