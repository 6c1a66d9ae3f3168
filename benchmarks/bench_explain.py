"""``hookscope.explain`` on a batch of images against pytorch-grad-cam's batched ``GradCAM``.

Run: ``python benchmarks/bench_explain.py [--images 64] [--size 224] [--repeats 3]``.
Random-init resnet50, Grad-CAM on ``layer4``, every image's own top-1 class. Both sides get the
same (N, 3, S, S) tensor in chunks of ``--batch`` images (pytorch-grad-cam computes a chunk in
one forward and one backward, as ``explain`` does). Median of interleaved repeats after a
warm-up (``benchmarks/timing.py``). Before timing, the maps of both are checked equal.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from timing import median_times, print_table, ratio  # noqa: E402  (benchmarks/timing.py)

import hookscope  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--batch", type=int, default=32, help="images per pass (both sides)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import pytorch_grad_cam as pgc

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(args.images, 3, args.size, args.size, generator=gen)
    chunks = list(torch.split(xs, args.batch))

    def ours():
        return hookscope.explain(model, xs, "gradcam", layer="layer4", batch_size=args.batch)

    def theirs():
        out = []
        with pgc.GradCAM(model, [model.layer4]) as cam:
            for chunk in chunks:
                out.append(cam(input_tensor=chunk, targets=None))  # None: each image's top-1
        return np.concatenate(out)

    with contextlib.redirect_stderr(io.StringIO()):
        a = np.stack([e.map for e in ours()])
        b = theirs()
    # pytorch-grad-cam scales each map after upsampling with OpenCV; ours min-max in float32.
    diff = float(np.abs(a - b).max())
    print(f"max |HookScope − pytorch-grad-cam| over {args.images} maps: {diff:.2e}")

    t = median_times({"ours": ours, "pgc": theirs}, args.repeats)
    n = args.images
    rows = [
        (f"Grad-CAM {n} images @{args.size}px, hookscope.explain", t["ours"], None, None),
        (f"Grad-CAM {n} images @{args.size}px, pytorch-grad-cam", t["pgc"], None, None),
        ("  hookscope.explain / pytorch-grad-cam", None, ratio(t["ours"], t["pgc"]), 0.50),
    ]
    print(
        f"resnet50 random init, torch {torch.__version__}, {args.threads} threads, "
        f"batches of {args.batch}, {args.repeats} repeats, interleaved"
    )
    ok = print_table(rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
