"""``importance``: rank a layer's channels by ablating each in turn."""

from __future__ import annotations

import json

from hookscope.core.cli import add_model_args, count, load_from_args, run_job
from hookscope.core.cli.limits import MAX_BATCH, bounded
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.experiments import importance_job
from hookscope.core.loading.images import load_image


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser("importance", help="rank a layer's channels by ablating each in turn")
    add_model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layer", required=True, help="module whose channels are ablated")
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--top", type=count, default=10, help="how many channels to list (default 10)")
    p.add_argument(
        "--batch-size",
        type=bounded(1, MAX_BATCH),
        default=32,
        help=f"channels per forward pass, 1 to {MAX_BATCH}",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_importance)


def cmd_importance(args) -> int:
    """Run ``importance_job`` (the Channel importance dock's job) and print its ranking."""
    if args.batch_size < 1:
        raise HookScopeError(f"--batch-size must be at least 1, not {args.batch_size}.")
    lm = load_from_args(args)
    image = load_image(args.image)
    res, code = run_job(
        importance_job, lm, image, args.layer, args.target, batch_size=args.batch_size
    )
    if code:
        return code
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
