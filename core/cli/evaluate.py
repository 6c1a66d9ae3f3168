"""``evaluate``: how faithful each method's map is for one image (the Trust table)."""

from __future__ import annotations

import json

from hookscope.core.cli import add_model_args, load_from_args, names, run_job
from hookscope.core.cli.limits import MAX_STEPS, bounded
from hookscope.core.jobs.evaluate import (
    DEFAULT_METHODS,
    SCORE,
    EvaluateSettings,
    default_methods,
    evaluate_job,
    method_names,
)
from hookscope.core.loading.images import load_image
from hookscope.core.methods.metrics import DEFAULT_STEPS
from hookscope.core.methods.transformers.attention import readable_blocks


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score each method's map (ROAD, deletion/insertion, confidence) against baselines",
        description=(
            "Score each method's saliency map for one image and target: drop / increase in "
            "confidence, ROAD (MoRF, LeRF, combined), RISE deletion / insertion and, with "
            f"--mask, pointing game and energy. Rows are ranked by {SCORE}; the random and "
            "sobel baselines show what a map that knows nothing scores."
        ),
    )
    add_model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--layer", required=True, help="layer the CAM methods use, e.g. layer4")
    p.add_argument(
        "--methods",
        type=names,
        help=f"comma-separated, from {', '.join(method_names())} "
        f"(default {','.join(DEFAULT_METHODS)}, and on a vision transformer its methods)",
    )
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--mask", help="ground-truth region (white on black) for pointing and energy")
    p.add_argument(
        "--steps",
        type=bounded(1, MAX_STEPS),
        default=DEFAULT_STEPS,
        help=f"deletion/insertion steps, 1 to {MAX_STEPS} (default 96)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of ROAD's noise and of random")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    lm = load_from_args(args)
    image = load_image(args.image)
    methods = args.methods or default_methods(bool(readable_blocks(lm.model)))
    settings = EvaluateSettings(
        tuple(methods), args.layer, args.target, steps=args.steps, seed=args.seed
    )
    report, code = run_job(evaluate_job, lm, image, settings, args.mask)
    if report is None:
        return code
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        return 0
    name = f" ({report.target_name})" if report.target_name else ""
    print(
        f"{lm.name}: layer {report.layer}, target {report.target}{name}, "
        f"p = {report.base_prob:.4f}; ranked by {SCORE} (↑ higher is better, ↓ lower)"
    )
    print(report.table())
    for finding in report.findings():
        print(finding)
    print(report.summary())
    for k in report.methods:
        if not report.methods[k].baseline and report.baselines_beating(k):
            print("  " + report.verdict(k))
    for note in report.notes:
        print(f"note: {note}")
    return 0
