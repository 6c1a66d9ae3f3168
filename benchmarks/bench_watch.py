"""hookscope.watch overhead on a resnet18 training step (CPU, batch 16, 64x64), same run.

    python benchmarks/bench_watch.py [--steps 50] [--repeats 5]

Three copies of the same seeded resnet18 train on the same batch: a plain loop, one inside a
watch with ``every=50`` and one with ``every=1`` (each watch entered once before timing: a long
training's steady state). The cases take turns step by step, so machine noise falls on all three
alike; a block is ``--steps`` steps of each (at ``every=50`` it holds one record), and the table
gives the median and minimum block times. Goals: <= 1.03x the plain loop at ``every=50`` and
<= 1.5x at ``every=1``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import print_table, ratio  # noqa: E402

import hookscope  # noqa: E402


def make_step(every: int | None, root: Path):
    """One training step of a fresh seeded resnet18, watched at ``every`` (None: plain)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 3, 64, 64)
    y = torch.randint(0, 10, (16,))
    w = None
    if every is not None:
        w = hookscope.watch(model, out=root / f"every{every}", every=every).__enter__()

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if w is not None:
            w.step(loss=loss.item())
        else:
            loss.item()  # the plain loop reads its loss too

    return step, w


def block_times(steps: dict, n: int, repeats: int) -> dict:
    """(median, min) seconds of ``n`` steps of each case, the cases taking turns step by step."""
    for step in steps.values():  # warm-up: one block each
        for _ in range(n):
            step()
    blocks = {k: [] for k in steps}
    for _ in range(repeats):
        total = dict.fromkeys(steps, 0.0)
        for _ in range(n):
            for k, step in steps.items():
                t0 = time.perf_counter()
                step()
                total[k] += time.perf_counter() - t0
        for k, v in total.items():
            blocks[k].append(v)
    return {k: (statistics.median(v), min(v)) for k, v in blocks.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            k: make_step(e, Path(tmp))
            for k, e in (("plain", None), ("every=50", 50), ("every=1", 1))
        }
        t = block_times({k: step for k, (step, _) in cases.items()}, args.steps, args.repeats)
        for _, w in cases.values():
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
