"""Dataset scan: throughput against pytorch-grad-cam and a one-image loop; memory vs size.

Run: python benchmarks/bench_scan.py [--images 256] [--batch 32] [--rss 200,2000]

1. Throughput, resnet18 (random init, seed 0) at 224², the same batches of random inputs
   (seeded) for every contender, 2 torch threads, one warm-up batch each, then the batches
   interleaved (HookScope, pytorch-grad-cam, loop, next batch ...) so load on a shared machine
   hits all three alike:
   - HookScope: ``core.experiments.scan.scan_batch`` (forward + backward of the batch, maps at
     the input size, then 64² maps, predictions, probabilities);
   - pytorch-grad-cam: ``GradCAM(model, [model.layer4[-1]])(batch, targets=None)`` (its own
     copy of the model: its hooks stay registered);
   - loop: ``compute_cam`` called once per image of the batch.
   The maps of the first batch are compared with pytorch-grad-cam's (max |difference|).
2. Peak RSS of whole ``scan_job`` runs (listing, decoding, CAMs, writing, clustering,
   report) in fresh processes (VmHWM) on folders of 200 and 2,000 demo scenes: the demo model at its
   96² input (resnet18 on 2,000 images takes too long on 2 shared cores), batch 32,
   ``workers=0`` so every byte is in the measured process.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rss import run_child  # noqa: E402
from scenes import write_scenes  # noqa: E402

RSS_CHILD = """
from hookscope.core.jobs.scan import scan_job
lm = load_model("demo")
t = time.perf_counter()
s = scan_job(quiet(), lm, a["images"], "features.block3", masks=a["masks"], out=a["out"],
             workers=0, batch_size=32)
print(json.dumps({"rows": s.rows, "seconds": time.perf_counter() - t,
                  "images_per_s": s.images_per_s, "clusters": s.clusters,
                  "peak_rss_mb": hwm_mb()}))
"""


def throughput(n_images: int, batch: int) -> dict:
    import numpy as np
    import torch
    from pytorch_grad_cam import GradCAM

    from hookscope.core.experiments.scan import scan_batch
    from hookscope.core.loading.models import load_model
    from hookscope.core.methods.cam import compute_cam, compute_cam_batch

    torch.set_num_threads(2)
    lm = load_model("torchvision:resnet18")
    model = lm.model
    peer_model = copy.deepcopy(model)
    peer = GradCAM(peer_model, [peer_model.layer4[-1]])
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, 3, 224, 224, generator=gen) for _ in range(n_images // batch)]

    ours_maps, _ = compute_cam_batch(model, xs[0], "layer4")
    peer_maps = peer(xs[0], targets=None)
    agree = float(np.abs(ours_maps - peer_maps).max())

    def ours(x):
        scan_batch(model, x, "layer4", "gradcam", map_size=64)

    def theirs(x):
        peer(x, targets=None)

    def loop(x):
        for i in range(len(x)):
            compute_cam(model, x[i : i + 1], "layer4")

    runs = {
        "hookscope scan_batch": ours,
        "pytorch-grad-cam GradCAM": theirs,
        "compute_cam loop": loop,
    }
    warm = torch.randn(batch, 3, 224, 224, generator=gen)
    for fn in runs.values():
        fn(warm[:4])
    seconds = dict.fromkeys(runs, 0.0)
    for x in xs:
        for name, fn in runs.items():
            t = time.perf_counter()
            fn(x)
            seconds[name] += time.perf_counter() - t
    n = len(xs) * batch
    return {
        "images": n,
        "batch": batch,
        "images_per_s": {k: n / v for k, v in seconds.items()},
        "max_abs_diff_vs_pytorch_grad_cam": agree,
    }


def make_scenes(folder: Path, n: int) -> tuple[Path, Path]:
    done = folder / f"done{n}"
    images, masks = folder / f"images{n}", folder / f"masks{n}"
    if not done.exists():
        write_scenes(images, n, "clean", masks, seed=1000)
        done.touch()
    return images, masks


def peak_rss(folder: Path, n: int) -> dict:
    images, masks = make_scenes(folder, n)
    args = {"images": str(images), "masks": str(masks), "out": str(folder / f"out{n}")}
    return run_child(RSS_CHILD, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rss", default="200,2000", help="folder sizes for the memory part")
    p.add_argument("--skip-throughput", action="store_true")
    a = p.parse_args()
    if not a.skip_throughput:
        t = throughput(a.images, a.batch)
        ips = t["images_per_s"]
        base = ips["hookscope scan_batch"]
        print(f"\nresnet18 224², {t['images']} images, batch {t['batch']}, 2 threads")
        print(f"{'':28s} {'images/s':>9s} {'HookScope ×':>12s}")
        for name, v in ips.items():
            print(f"{name:28s} {v:9.2f} {base / v:12.2f}")
        diff = t["max_abs_diff_vs_pytorch_grad_cam"]
        print(f"max |map − pytorch-grad-cam map| (first batch): {diff:.2e}")
    sizes = [int(s) for s in a.rss.split(",") if s]
    if sizes:
        with tempfile.TemporaryDirectory(prefix="bench_scan_") as tmp:
            rows = [(n, peak_rss(Path(tmp), n)) for n in sizes]
        print("\nscan_job, demo model 96², batch 32, workers=0 (fresh process each)")
        print(
            f"{'images':>7s} {'peak RSS MB':>12s} {'seconds':>8s} {'images/s':>9s} {'clusters':>9s}"
        )
        for n, r in rows:
            print(
                f"{n:7d} {r['peak_rss_mb']:12.1f} {r['seconds']:8.1f} {r['images_per_s']:9.1f} "
                f"{r['clusters']:9d}"
            )
        if len(rows) > 1:
            grow = rows[-1][1]["peak_rss_mb"] - rows[0][1]["peak_rss_mb"]
            print(f"peak RSS difference: {grow:+.1f} MB")


if __name__ == "__main__":
    main()
