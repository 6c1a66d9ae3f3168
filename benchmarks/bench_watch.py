"""hookscope.watch overhead on a resnet18 training step (CPU, batch 16, 64x64), same run.

    python benchmarks/bench_watch.py [--steps 50] [--repeats 3]

Each case is a block of ``--steps`` training steps (the same seeded data) inside one watch
entered before timing (a long training's steady state); the cases run interleaved so they share
the machine's minutes. Goals: <= 1.03x the plain loop at
``every=50`` and <= 1.5x at ``every=1``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_times, print_table, ratio  # noqa: E402

import hookscope  # noqa: E402


def make_loop(steps: int, every: int | None, root: Path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 3, 64, 64)
    y = torch.randint(0, 10, (16,))
    runs = iter(range(10**6))

    def train(w=None):
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if w is not None:
                w.step(loss=loss.item())
            else:
                loss.item()  # the plain loop reads its loss too

    if every is None:
        return train, None
    # Steady state, as in a long training: the watch is entered once (its run.json and
    # folder are a one-off cost); every timed block of ``steps`` holds steps // every records.
    w = hookscope.watch(model, out=root / f"run{next(runs)}", every=every).__enter__()
    return (lambda: train(w)), w


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loops = {
            "plain": make_loop(args.steps, None, root),
            "every=50": make_loop(args.steps, 50, root),
            "every=1": make_loop(args.steps, 1, root),
        }
        t = median_times({k: fn for k, (fn, _) in loops.items()}, args.repeats)
        for _, w in loops.values():
            if w is not None:
                w.__exit__(None, None, None)
    n = args.steps
    ok = print_table(
        [
            (f"plain loop, {n} steps of resnet18 b16 64x64", t["plain"], None, None),
            (f"watch every=50 ({n} steps)", t["every=50"], ratio(t["every=50"], t["plain"]), 1.03),
            (f"watch every=1 ({n} steps)", t["every=1"], ratio(t["every=1"], t["plain"]), 1.5),
        ]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
