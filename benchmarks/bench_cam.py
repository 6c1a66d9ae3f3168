"""Side-by-side timing of HookScope's CAMs against captum and pytorch-grad-cam.

Run: ``python benchmarks/bench_cam.py [--repeats N]``. Random-init resnet18, 2 threads, median
of interleaved repeats after a warm-up (interleaving keeps a busy machine fair to both sides).
Prints one table; the "target" column states the goal for each ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from timing import median_times, print_table, ratio  # noqa: E402  (benchmarks/timing.py)

from hookscope.core.methods.cam import compute_cam  # noqa: E402

LAYERS4 = ["layer1", "layer2", "layer3", "layer4"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--score-size", type=int, default=96, help="input side for ScoreCAM")
    parser.add_argument("--score-repeats", type=int, default=3)
    args = parser.parse_args()

    import pytorch_grad_cam as pgc
    from captum.attr import LayerGradCam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    target = 7

    def ours():
        return compute_cam(model, x, ["layer4"], "gradcam", target)

    lgc = LayerGradCam(model, model.layer4)

    def captum():
        a = lgc.attribute(x, target=target, relu_attributions=True)
        up = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
        lo, hi = up.min(), up.max()
        return ((up - lo) / (hi - lo + 1e-12)).detach()

    def pgc_gradcam():
        with pgc.GradCAM(model, [model.layer4]) as cam:
            return cam(x, [ClassifierOutputTarget(target)])

    def four_in_one():
        return compute_cam(model, x, LAYERS4, "gradcam", target)

    def four_calls():
        return [compute_cam(model, x, [name], "gradcam", target) for name in LAYERS4]

    t = median_times(
        {
            "ours": ours,
            "captum": captum,
            "pgc": pgc_gradcam,
            "four_in_one": four_in_one,
            "four_calls": four_calls,
        },
        args.repeats,
    )

    xs = torch.randn(
        1, 3, args.score_size, args.score_size, generator=torch.Generator().manual_seed(2)
    )

    def ours_score():
        return compute_cam(model, xs, ["layer4"], "scorecam", target, batch_size=32)

    def pgc_score():
        with pgc.ScoreCAM(model, [model.layer4]) as cam:
            cam.batch_size = 32
            return cam(xs, [ClassifierOutputTarget(target)])

    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):  # pytorch-grad-cam's own tqdm bars
        s = median_times({"ours": ours_score, "pgc": pgc_score}, args.score_repeats)

    rows = [
        ("Grad-CAM layer4, HookScope", t["ours"], None, None),
        ("Grad-CAM layer4, captum LayerGradCam+upsample", t["captum"], None, None),
        ("Grad-CAM layer4, pytorch-grad-cam", t["pgc"], None, None),
        ("  HookScope / captum", None, ratio(t["ours"], t["captum"]), 1.10),
        ("  HookScope / pytorch-grad-cam", None, ratio(t["ours"], t["pgc"]), 0.50),
        ("Grad-CAM 4 layers, one call", t["four_in_one"], None, None),
        ("Grad-CAM 4 layers, four calls", t["four_calls"], None, None),
        ("  one call / four calls", None, ratio(t["four_in_one"], t["four_calls"]), 0.60),
        (f"ScoreCAM layer4 @{args.score_size}px bs32, HookScope", s["ours"], None, None),
        (f"ScoreCAM layer4 @{args.score_size}px bs32, pytorch-grad-cam", s["pgc"], None, None),
        ("  HookScope / pytorch-grad-cam", None, ratio(s["ours"], s["pgc"]), 0.80),
    ]
    print(
        f"resnet18 random init, torch {torch.__version__}, 2 threads, "
        f"{args.repeats} repeats ({args.score_repeats} for ScoreCAM), interleaved"
    )
    ok_all = print_table(rows)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
