"""``probe``: one forward + backward with hooks; print stats."""

from __future__ import annotations

import argparse
import json

from hookscope.core.cli import (
    TARGET_HELP,
    add_model_args,
    count,
    load_from_args,
    names,
    run_job,
)
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import describe_edit, parse_edit_flag
from hookscope.core.jobs.probe import probe_job
from hookscope.core.loading.images import load_image


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser("probe", help="one forward + backward with hooks; print stats")
    add_model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layers", required=True, type=names, help="comma-separated module names")
    p.add_argument("--target", help=TARGET_HELP)
    p.add_argument("--topk", type=count, default=5, help="how many classes to list (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _edit_args(p)
    p.set_defaults(func=cmd_probe)


def _edit_flag(flag: str):
    """Argparse type for one experiment flag; a bad value is a one-sentence usage error."""

    def parse(text: str) -> dict:

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


def cmd_probe(args) -> int:
    """Run ``probe_job`` (what the app runs on every click) and print its numbers."""
    lm = load_from_args(args)
    image = load_image(args.image)
    edits = list(args.edits or [])
    snap, code = run_job(probe_job, lm, image, args.layers, args.target, k=args.topk, edits=edits)
    if code:
        return code
    layers = {
        name: {
            "calls": [{"call": c.call, "parts": c.parts} for c in calls],
            "param_grad_norm": snap.param_grad_norms.get(name),
        }
        for name, calls in snap.layers.items()
    }
    grad_norm = snap.input_grad_norm
    if args.json:
        out = {
            "model": lm.name,
            "target": snap.target,
            "target_name": snap.target_name,
            "topk": [{"index": i, "name": n, "prob": p} for i, n, p in snap.topk],
            "output_kind": snap.kind.kind if snap.kind is not None else None,
            "target_text": snap.target_text,
            "target_label": snap.target_label,
            "predictions": [
                {
                    "index": p.index,
                    "name": p.name,
                    "score": p.score,
                    "label": p.label,
                    "box": list(p.box) if p.box is not None else None,
                    "target": p.target_text(snap.kind.kind),
                }
                for p in snap.predictions
            ],
            "input_grad_norm": grad_norm,
            "edits": [describe_edit(d) for d in edits],
            "layers": layers,
            "notes": list(snap.notes),
        }
        print(json.dumps(out, indent=1))
        return 0
    kind = snap.kind.kind if snap.kind is not None else "classes"
    if kind == "classes":
        print(f"{lm.name}: target {snap.target} ({snap.target_name or '-'})")
    else:
        print(f"{lm.name}: {kind} output, target {snap.target_text or '-'}: {snap.target_label}")
    if kind == "dense":
        print("  share of pixels predicted as each class:")
    for i, n, p in snap.topk:
        print(f"  {p:7.2%}  {i:5d}  {n or ''}")
    if kind == "detections":
        for p in snap.predictions[: args.topk]:
            box = ", ".join(f"{v:.0f}" for v in p.box)
            who = f"class {p.label} {p.name or ''}".rstrip()
            print(f"  box:{p.index:<3d} score {p.score:.3f}  {who} [{box}]")
    if kind == "embedding" and snap.embedding is not None:
        norm = float((snap.embedding**2).sum() ** 0.5)
        print(f"  embedding of {snap.embedding.shape[0]} values, norm {norm:.4g}")
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
    for note in snap.notes:
        print(f"note: {note}")
    return 0
