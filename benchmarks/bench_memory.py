"""Peak memory of one probe with 10 hooked layers on a big model, in a fresh process.

Run: python benchmarks/bench_memory.py [torchvision-name]   (default resnet152, 1x3x224x224)
Prints RSS after loading the model and the peak RSS of the probe, and the records' own size.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hookscope.core.engine.probe import run_probe  # noqa: E402
from hookscope.core.loading.models import load_model  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


def main(name: str = "resnet152") -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    lm = load_model(f"torchvision:{name}")
    leaves = [n for n, m in lm.model.named_modules() if n and not list(m.children())]
    layers = [leaves[int(i * len(leaves) / 10)] for i in range(10)]
    loaded = rss_mb()
    r = run_probe(lm.model, torch.randn(1, 3, 224, 224), layers)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept = sum(rec.nbytes for recs in r.records.values() for rec in recs) / 2**20
    print(f"{name}: {len(layers)} hooked layers, {sum(len(v) for v in r.records.values())} records")
    print(f"RSS after load   {loaded:8.0f} MB")
    print(f"peak RSS (probe) {peak:8.0f} MB")
    print(f"records hold     {kept:8.1f} MB (outputs, inputs and gradients, on CPU)")


if __name__ == "__main__":
    main(*sys.argv[1:])
