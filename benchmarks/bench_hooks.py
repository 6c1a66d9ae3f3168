"""Cost of recording every leaf module's output, side by side with a bare forward.

Run: python benchmarks/bench_hooks.py   (resnet50, 1x3x224x224, 2 threads)
The app calls core.engine.runtime.tune_allocator() at start; the script shows both allocators.
Goal: HookScope capture (grads=False) <= 1.5x the bare forward, records exact under the
in-place ReLUs and `out += identity` of torchvision's Bottleneck.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hookscope.core.engine.hooks import HookSession  # noqa: E402
from hookscope.core.engine.runtime import tune_allocator  # noqa: E402


def leaves(model):
    return [n for n, m in model.named_modules() if n and not list(m.children())]


def clone_everything(model, names):
    """The naive peer: a forward hook that clones every output."""
    store, handles = {n: [] for n in names}, []
    table = dict(model.named_modules())
    try:
        for n in names:
            hook = (lambda key: lambda m, a, o: store[key].append(o.clone()))(n)
            handles.append(table[n].register_forward_hook(hook))
        model(X)
    finally:
        for h in handles:
            h.remove()
    return store


def hookscope(model, names):
    with HookSession(model, names, grads=False, inputs=False) as s:
        model(X)
    return s


def bare(model, names):
    model(X)


def timeit(fn, model, names, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with torch.no_grad():
            fn(model, names)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(repeat: int) -> None:
    global X
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    X = torch.randn(1, 3, 224, 224)
    names = leaves(model)
    # Correctness first: records must equal what each layer produced before in-place edits.
    with torch.no_grad():
        s = hookscope(model, names)
        ref = clone_everything(model, names)
    flat = [r.output for n in names for r in s.records[n]]
    want = [t for n in names for t in ref[n]]
    assert len(flat) == len(want) and all(torch.equal(a, b) for a, b in zip(flat, want))
    negatives = sum(int((s.records[n][0].output < 0).any()) for n in names if "bn" in n)
    print(
        f"resnet50: {len(names)} leaf modules, {len(flat)} records, "
        f"{negatives} BatchNorm records keep their negatives"
    )
    for fn in (bare, clone_everything, hookscope):  # warm-up
        timeit(fn, model, names, 2)
    rows = []
    for _round in range(3):  # interleave so load changes hit every variant alike
        for fn in (bare, clone_everything, hookscope):
            rows.append((fn.__name__, timeit(fn, model, names, repeat // 3)))
    med = {k: statistics.median(t for n, t in rows if n == k) for k, _ in rows}
    print(f"{'variant':<28}{'median ms':>10}{'× bare':>9}")
    labels = {
        "bare": "bare forward",
        "clone_everything": "naive: clone every output",
        "hookscope": "HookSession(grads=False)",
    }
    for key in ("bare", "clone_everything", "hookscope"):
        print(f"{labels[key]:<28}{med[key] * 1e3:>10.1f}{med[key] / med['bare']:>9.2f}")
    ratio = med["hookscope"] / med["bare"]
    print(f"goal <= 1.50x: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")


def main() -> None:
    """Measure in two fresh processes: glibc's default allocator, then HookScope's setting."""
    if len(sys.argv) > 1:
        if sys.argv[1] == "tuned":
            print(f"allocator tuned (core.engine.runtime.tune_allocator): {tune_allocator()}")
        else:
            print("allocator: glibc defaults")
        measure(repeat=15)
        return
    for mode in ("default", "tuned"):
        subprocess.run([sys.executable, __file__, mode], check=True)
        print()


if __name__ == "__main__":
    main()
