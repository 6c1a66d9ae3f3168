"""``diagnose``: a watched training run's problems, one sentence each."""

from __future__ import annotations

import json

from hookscope.core.training.diagnose import diagnose
from hookscope.core.training.store import read_run


def add_subcommand(subparsers) -> None:
    """Register the subcommand on ``subparsers``."""
    p = subparsers.add_parser(
        "diagnose", help="say what is wrong with a training run recorded by hookscope.watch"
    )
    p.add_argument("run", help="the run folder (its run.json, stats/ and probe/)")
    p.add_argument("--hooks", action="store_true", help="print the suggested hook under each")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args) -> int:
    data = read_run(args.run)
    found = diagnose(data)
    if args.json:
        rows = [f.__dict__ for f in found]
        print(json.dumps({"findings": rows, "notes": data.notes}, indent=1))
        return 0
    for note in data.notes:
        print(f"note: {note}")
    steps = sorted(set(data.rows("loss")["step"].astype(int).tolist()))
    span = f"steps {steps[0]}-{steps[-1]}" if steps else "no steps"
    print(f"{args.run}: {data.info.get('model', '?')}, {span}, {len(found)} finding(s)")
    for f in found:
        print(f"- {f.sentence}")
        if args.hooks and f.hook:
            print("    " + f.hook.replace("\n", "\n    "))
    return 0
