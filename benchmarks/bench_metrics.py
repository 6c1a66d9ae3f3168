"""Side-by-side timing of HookScope's faithfulness metrics.

Run: ``python benchmarks/bench_metrics.py [--repeats N] [--steps S]``. Random-init torchvision
resnet18 at 224², 2 threads, one Grad-CAM (layer4) map; median of interleaved repeats after a
warm-up (interleaving keeps a busy machine fair to both sides).

- ROAD combined (9 percentiles, noise 0.01) against pytorch-grad-cam's ``ROADCombined``.
- Deletion + insertion with ``--steps`` steps against a straightforward loop that runs the
  model on one image per step (RISE's reference shape); the two must give the same curves.
  The "floor" row is the least time any exact (float32) way can take here: every image's
  FLOPs at the best convolution rate the CPU reaches in this run.

Prints one table; the "target" column states the goal for each ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from timing import median_times, print_table, ratio  # noqa: E402  (benchmarks/timing.py)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hookscope.core.methods import metrics  # noqa: E402
from hookscope.core.methods.cam import compute_cam  # noqa: E402


def conv_peak_gflops() -> float:
    """Best fp32 3×3-convolution rate of this machine now (GFLOP/s, 2 threads, channels-last).

    resnet18's own largest layers' shape, batched: no forward of the model runs faster than
    its FLOPs at this rate, so it bounds what any exact batching can reach.
    """
    best = 0.0
    for n, c, hw in ((32, 256, 28), (32, 64, 56)):
        x = torch.randn(n, c, hw, hw).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, padding=1)
            for _ in range(3):
                t0 = time.perf_counter()
                torch.nn.functional.conv2d(x, w, padding=1)
                best = max(best, 2 * n * c * c * 9 * hw * hw / (time.perf_counter() - t0))
    return best / 1e9


def loop_deletion_insertion(model, x, saliency, target, steps):
    """The straightforward RISE loop: one forward per step, pixels changed in place."""
    hw = saliency.size
    order = torch.from_numpy(np.argsort(-saliency.ravel(), kind="stable"))
    n = math.ceil(hw / steps)
    curves = []
    with torch.no_grad():
        for start, finish in ((x.clone(), torch.zeros_like(x)), (metrics.blur(x), x)):
            img, scores = start.clone(), []
            for i in range(steps + 1):
                scores.append(float(torch.softmax(model(img), 1)[0, target]))
                idx = order[i * n : (i + 1) * n]
                img.view(1, x.shape[1], -1)[..., idx] = finish.view(1, x.shape[1], -1)[..., idx]
            curves.append(np.asarray(scores))
    return curves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=metrics.BATCH_SIZE)
    parser.add_argument("--cases", default="road,di", help="road, di (deletion/insertion) or both")
    args = parser.parse_args()

    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    target = int(model(x).argmax())
    sal = compute_cam(model, x, ["layer4"], "gradcam", target)["layer4"]

    def ours_road():
        return metrics.road_combined(model, x, sal, target)

    def pgc_road():
        return ROADCombined()(x, sal[None], [ClassifierOutputSoftmaxTarget(target)], model)

    def ours_di():
        sc = metrics.Scorer(model, x, target, batch_size=args.batch_size)
        return metrics.causal_curves(model, x, sal, target, args.steps, scorer=sc)

    def loop_di():
        return loop_deletion_insertion(model, x, sal, target, args.steps)

    cases = set(args.cases.split(","))
    rows, agreement = [], []
    if "road" in cases:
        with contextlib.redirect_stderr(io.StringIO()):
            t = median_times({"ours": ours_road, "pgc": pgc_road}, args.repeats)
        rows += [
            ("ROAD combined (9 pct), HookScope", t["ours"], None, None),
            ("ROAD combined (9 pct), pytorch-grad-cam", t["pgc"], None, None),
            ("  HookScope / pytorch-grad-cam", None, ratio(t["ours"], t["pgc"]), 0.50),
        ]
        # Same numbers, not only the same time.
        noise0 = metrics.road_combined(model, x, sal, target, noise=0.0)
        import pytorch_grad_cam.metrics.road as road_mod

        defaults = road_mod.NoisyLinearImputer.__init__.__defaults__
        road_mod.NoisyLinearImputer.__init__.__defaults__ = (0.0, *defaults[1:])
        try:
            ref0 = float(pgc_road()[0])
        finally:
            road_mod.NoisyLinearImputer.__init__.__defaults__ = defaults
        agreement.append(
            f"ROAD combined noise 0 {noise0:.6f} vs {ref0:.6f} (|diff| {abs(noise0 - ref0):.1e})"
        )
    if "di" in cases:
        d = median_times({"ours": ours_di, "loop": loop_di}, args.repeats)
        rows += [
            (f"deletion+insertion {args.steps} steps, HookScope", d["ours"], None, None),
            (f"deletion+insertion {args.steps} steps, 1 image/step", d["loop"], None, None),
            ("  HookScope / loop", None, ratio(d["ours"], d["loop"]), 0.30),
        ]
        c, (dl, ins) = ours_di(), loop_di()
        diff_di = max(np.abs(c.deletion - dl).max(), np.abs(c.insertion - ins).max())
        agreement.append(f"curves max |diff| {diff_di:.1e}")
        # The floor of exact float32 arithmetic: every image through the model at the best
        # convolution rate this CPU reaches. A ratio goal below floor / loop needs other
        # hardware or lower precision, not better batching.
        with FlopCounterMode(display=False) as flops, torch.no_grad():
            model(x)
        forwards = 2 * (args.steps - 1) + 3  # inner steps of both curves + x, blurred, zeros
        peak = conv_peak_gflops()
        floor = forwards * flops.get_total_flops() / 1e9 / peak
        rows.append(
            (
                f"  floor: {forwards} forwards at {peak:.0f} GFLOP/s",
                (floor, floor),
                ratio((floor, floor), d["loop"]),
                None,
            )
        )
    print(
        f"resnet18 random init 224², torch {torch.__version__}, 2 threads, "
        f"{args.repeats} repeats interleaved, batch {args.batch_size} (channels-last)"
    )
    ok_all = print_table(rows)
    print("agreement: " + "; ".join(agreement))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
