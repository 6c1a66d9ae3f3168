"""Where the maps of ``demo:vit`` and ``demo:vit-clean`` put their mass: sky or airplane (issue 24).

Run: ``python benchmarks/bench_demo_vit.py [--fresh 96] [--rise 24] [--threads 2]``.

The scene set is the bundled samples plus ``--fresh`` new airplanes on sky
(``core.experiments.shortcut.shortcut_scenes``). For each model and method, over the images the
model calls airplane: the mean share of map mass off the airplane (on the sky), and on the
first ``--rise`` of them the RISE insertion − deletion AUC (Trust's score). Methods: every
transformer method of the explainer registry, Grad-CAM on tokens (the layer ``suggest_layer``
picks) and the random baseline. Goal: the best transformer method ≥ 0.8 on ``demo:vit`` and
≤ 0.4 on ``demo:vit-clean``, and above Grad-CAM-on-tokens on insertion − deletion.

Measured 2026-12-07 (1 thread on a loaded machine; the sky masses do not depend on load):

    method    |          demo:vit sky |  ins−del |    demo:vit-clean sky |  ins−del
    rollout   |         0.634 (n= 99) |    0.277 |         0.390 (n= 99) |   -0.015
    chefer    |         0.932 (n= 99) |    0.350 |         0.220 (n= 99) |   -0.007
    legrad    |         0.953 (n= 99) |    0.349 |         0.740 (n= 99) |    0.120
    attnlrp   |         0.868 (n= 99) |    0.131 |         0.319 (n= 99) |   -0.020
    gradcam   |         0.941 (n= 99) |    0.356 |         0.498 (n= 99) |   -0.008
    random    |         0.893 (n= 99) |    0.030 |         0.893 (n= 99) |    0.001

chefer meets the sky goal (0.932 / 0.220; attnlrp too, 0.868 / 0.319); on insertion − deletion
(24 images, 24 steps) Grad-CAM on tokens is 0.006 above chefer on demo:vit, so that goal is
not met. The clean twin calls a plain sky "airplane" too, so blurring the airplane away hardly
lowers its score and its RISE numbers are near 0 for every method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from hookscope.core.experiments.shortcut import shortcut_scenes, sky_mass_table  # noqa: E402
from hookscope.core.loading.models import load_model  # noqa: E402
from hookscope.core.methods import explainers  # noqa: E402

MODELS = ("demo:vit", "demo:vit-clean")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fresh", type=int, default=96, help="fresh airplanes on sky")
    p.add_argument("--rise", type=int, default=24, help="images scored by RISE per method")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = [*explainers.names(explainers.TRANSFORMER), "gradcam", "random"]
    scenes = shortcut_scenes(args.fresh)
    print(f"{len(scenes[0])} scenes ({args.fresh} fresh airplanes on sky + bundled samples)")
    tables = {}
    for spec in MODELS:
        t0 = time.perf_counter()
        tables[spec] = {
            r.method: r for r in sky_mass_table(load_model(spec), methods, scenes, 0, args.rise)
        }
        print(f"{spec}: {time.perf_counter() - t0:.0f} s", flush=True)
    head = f"{'method':<10}" + "".join(f"| {s + ' sky':>21} | {'ins−del':>8} " for s in MODELS)
    print(head)
    print("-" * len(head))
    for m in methods:
        cells = "".join(
            f"| {t[m].sky_mass:>13.3f} (n={t[m].n:>3}) | {t[m].ins_minus_del:>8.3f} "
            for t in tables.values()
        )
        print(f"{m:<10}{cells}")


if __name__ == "__main__":
    main()
