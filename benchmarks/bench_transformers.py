"""Transformer methods and LRP against their references, timed in the same run (issue 24).

Run: ``python benchmarks/bench_transformers.py [--repeats 3] [--threads 2]``.
Random-init torchvision ``vit_b_16`` at 224² (the head re-drawn: torchvision starts it at zero)
and ``resnet50``, one image, a fixed class. Cases, each a ratio to its reference:

- ``legrad`` vs torchcam 0.5.0 ``LeGrad`` (last four blocks), and the floor: one forward with
  a graph plus one backward of the class score to the input (no weight gradients);
- ``chefer`` and ``attnlrp`` vs one Grad-CAM call on the last block's ``ln_1``: pytorch-grad-cam's
  ``GradCAM`` (the call users run: a full backward with weight gradients) carries the 1.3x goal;
  HookScope's own Grad-CAM backpropagates only to that block, so against it both methods sit
  above the floor of a backward to the input (printed as ``floor / gradcam``);
- ``attnlrp`` vs the same Grad-CAM call, and vs the forward+backward floor (its rules need a
  backward to the input; lxt itself patches torch process-wide, so it is not timed here);
- ``rollout`` vs one no-grad forward;
- ``lrp`` vs zennit's ``Gradient`` attributor with the same composite on ``resnet50``.

Before timing, legrad is checked equal to torchcam and lrp to zennit (differences printed).
Median of interleaved repeats after a warm-up (``benchmarks/timing.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import median_times, print_table, ratio  # noqa: E402  (benchmarks/timing.py)
from torchvision.models import resnet50, vit_b_16  # noqa: E402

from hookscope.core.methods import explainers  # noqa: E402

TARGET = 7


def vit_cases(x):
    from torchcam.methods import LeGrad

    torch.manual_seed(0)
    vit = vit_b_16().eval()
    torch.nn.init.normal_(vit.heads.head.weight, std=0.02)
    blocks = list(vit.encoder.layers)[-4:]

    def torchcam_legrad():
        with LeGrad(vit, blocks) as extractor:
            vit(x)
            return extractor(TARGET)[0][0].numpy()

    def floor():  # one forward with a graph, one backward to the input (no weight gradients)
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(vit(xg)[0, TARGET], xg)

    def forward():
        with torch.no_grad():
            vit(x)

    def ours(method, **kw):
        return lambda: explainers.explain(vit, x, method, target=TARGET, **kw).raw

    def grad_cam_library():
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        def tokens_to_grid(t):  # (1, 197, 768) -> (1, 768, 14, 14), the class token dropped
            return t[:, 1:].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)

        layer = vit.encoder.layers[-1].ln_1
        with GradCAM(vit, [layer], reshape_transform=tokens_to_grid) as cam:
            return cam(x, targets=[ClassifierOutputTarget(TARGET)])

    diff = np.abs(ours("legrad")() - torchcam_legrad()).max()
    print(f"legrad vs torchcam LeGrad: max |diff| = {diff:.2e}")
    last = "encoder.layers.encoder_layer_11.ln_1"
    return {
        "legrad": ours("legrad"),
        "torchcam LeGrad": torchcam_legrad,
        "forward+backward floor": floor,
        "chefer": ours("chefer"),
        "attnlrp": ours("attnlrp"),
        "gradcam (1 call)": ours("gradcam", layers=[last]),
        "pytorch-grad-cam GradCAM": grad_cam_library,
        "rollout": ours("rollout"),
        "forward (no grad)": forward,
    }


def lrp_cases(x):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    net = resnet50().eval()
    onehot = torch.eye(1000)[[TARGET]]

    def zennit_lrp():
        composite = EpsilonPlusFlat(canonizers=[ResNetCanonizer()])
        with Gradient(model=net, composite=composite) as attributor:
            return attributor(x.clone(), onehot)[1][0].numpy()

    def ours():
        return explainers.explain(net, x, "lrp", target=TARGET).raw

    want = zennit_lrp()
    rel = np.abs(ours() - want).max() / np.abs(want).max()
    print(f"lrp vs zennit Gradient attributor: max |diff| / max |ref| = {rel:.2e}")
    return {"lrp": ours, "zennit attributor": zennit_lrp}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    t = median_times(vit_cases(x), args.repeats)
    t |= median_times(lrp_cases(x), args.repeats)
    lib, ours_cam = t["pytorch-grad-cam GradCAM"], t["gradcam (1 call)"]
    floor = t["forward+backward floor"]
    ok = print_table(
        [
            ("torchcam LeGrad (vit_b_16)", t["torchcam LeGrad"], None, None),
            ("forward+backward floor", t["forward+backward floor"], None, None),
            (
                "legrad / torchcam LeGrad",
                t["legrad"],
                ratio(t["legrad"], t["torchcam LeGrad"]),
                1.0,
            ),
            ("legrad / floor", t["legrad"], ratio(t["legrad"], t["forward+backward floor"]), None),
            ("pytorch-grad-cam GradCAM, one call", t["pytorch-grad-cam GradCAM"], None, None),
            ("chefer / pytorch-grad-cam", t["chefer"], ratio(t["chefer"], lib), 1.3),
            ("attnlrp / pytorch-grad-cam", t["attnlrp"], ratio(t["attnlrp"], lib), 1.3),
            ("HookScope gradcam, one call", t["gradcam (1 call)"], None, None),
            ("floor / gradcam", t["forward+backward floor"], ratio(floor, ours_cam), None),
            ("chefer / gradcam", t["chefer"], ratio(t["chefer"], ours_cam), None),
            ("attnlrp / gradcam", t["attnlrp"], ratio(t["attnlrp"], ours_cam), None),
            (
                "attnlrp / floor",
                t["attnlrp"],
                ratio(t["attnlrp"], t["forward+backward floor"]),
                None,
            ),
            ("forward (no grad)", t["forward (no grad)"], None, None),
            ("rollout / forward", t["rollout"], ratio(t["rollout"], t["forward (no grad)"]), 1.1),
            ("zennit attributor (resnet50)", t["zennit attributor"], None, None),
            ("lrp / zennit", t["lrp"], ratio(t["lrp"], t["zennit attributor"]), 1.2),
        ]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
