"""Channel atlas: its cost over a forward-only pass, and its memory from 200 to 2,000 images.

Run: python benchmarks/bench_atlas.py [--images 2000] [--repeats 3] [--rss 200,2000]

1. Time, the demo model at its 96² input (``features.block3``, 128 channels, 12×12 grid, top 9),
   on a folder of N demo scenes written as PNGs, 2 torch threads, batch 32, ``workers=0``
   (decoding in the measured thread for both), run interleaved after one warm-up each:
   - atlas: the whole ``atlas_job`` (listing, decoding, receptive-field measurement, forwards
     stopped at the layer, the per-channel top-k merge, checkpoints, 1,152 crop PNGs,
     ``atlas.parquet``, ``atlas_maps.npy``) into a fresh folder;
   - forward only: the same listing and decoding (``ScanDataset`` + ``DataLoader``) and the
     model's whole forward under ``torch.inference_mode``, nothing kept.
   Goal: atlas / forward ≤ 1.15.
2. Peak RSS (VmHWM) of whole ``atlas_job`` runs in fresh processes on 200 and 2,000 images.
   Goal: the larger one at most 100 MB above the smaller one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import median_times, print_table, ratio  # noqa: E402

LAYER = "features.block3"

RSS_CHILD = """
import json, sys
import torch
torch.set_num_threads(2)
from hookscope.core.jobs.atlas import AtlasSettings, atlas_job
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import quiet
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
a = json.loads(sys.argv[1])
lm = load_model("demo")
base = hwm_mb()
s = atlas_job(quiet(), lm, AtlasSettings(a["images"], a["layer"], out=a["out"], workers=0,
                                         batch_size=32, limit=a["n"]))
print(json.dumps({"images": s.images, "seconds": s.seconds, "peak_rss_mb": hwm_mb(),
                  "after_load_mb": base}))
"""


def write_scenes(root: Path, n: int) -> Path:
    """``n`` demo scenes (shortcut distribution, 96²) as PNGs, made in chunks."""
    from PIL import Image

    from hookscope.core.demo.scenes import make_dataset

    root.mkdir(parents=True, exist_ok=True)
    done = 0
    while done < n:
        images, _, _ = make_dataset("shortcut", min(500, n - done), seed=done + 1)
        for arr in images:
            Image.fromarray(arr).save(root / f"scene_{done:05d}.png")
            done += 1
    return root


def timing(images: Path, n: int, repeats: int, tmp: Path) -> bool:
    import torch

    from hookscope.core.experiments.scan import ScanDataset, collate, list_images
    from hookscope.core.jobs.atlas import AtlasSettings, atlas_job
    from hookscope.core.loading.models import load_model
    from hookscope.core.reporting import quiet

    torch.set_num_threads(2)
    lm = load_model("demo")
    runs = [0]

    def atlas():
        runs[0] += 1
        out = tmp / f"atlas{runs[0]}"
        atlas_job(quiet(), lm, AtlasSettings(images, LAYER, out=out, workers=0, batch_size=32))
        shutil.rmtree(out)

    def forward():
        paths = list_images(images)
        loader = torch.utils.data.DataLoader(
            ScanDataset(images, paths, lm.input_spec), batch_size=32, collate_fn=collate
        )
        with torch.inference_mode():
            for batch in loader:
                lm.model(batch["x"])

    t = median_times({"atlas": atlas, "forward": forward}, repeats)
    print(f"\nTime: demo model, {n} images of 96², batch 32, {repeats} runs each (interleaved)")
    return print_table(
        [
            (f"forward only ({n} images)", t["forward"], None, None),
            (
                f"atlas of {LAYER}, top 9 ({n} images)",
                t["atlas"],
                ratio(t["atlas"], t["forward"]),
                1.15,
            ),
        ]
    )


def rss(images: Path, sizes: list[int], tmp: Path) -> bool:
    print("\nPeak RSS of atlas_job in a fresh process (VmHWM)")
    peaks = {}
    for n in sizes:
        arg = {"images": str(images), "layer": LAYER, "out": str(tmp / f"rss{n}"), "n": n}
        proc = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, json.dumps(arg)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        peaks[n] = r["peak_rss_mb"]
        print(
            f"  {r['images']:>5} images: peak {r['peak_rss_mb']:.0f} MB (after loading the model "
            f"{r['after_load_mb']:.0f} MB), {r['seconds']:.1f} s"
        )
    lo, hi = min(sizes), max(sizes)
    grow = peaks[hi] - peaks[lo]
    ok = grow <= 100
    print(f"  growth {lo} → {hi} images: {grow:+.0f} MB (goal ≤ +100 MB): {'yes' if ok else 'NO'}")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rss", default="200,2000", help="image counts for the memory runs")
    a = p.parse_args()
    sizes = [int(s) for s in a.rss.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        images = write_scenes(tmp / "scenes", max([a.images, *sizes]))
        print(f"wrote {max([a.images, *sizes])} scenes in {time.perf_counter() - t0:.0f} s")
        timed = tmp / "timed"
        timed.mkdir()
        for f in sorted(images.iterdir())[: a.images]:  # the timed folder: the first N
            (timed / f.name).symlink_to(f)
        ok = timing(timed, a.images, a.repeats, tmp)
        ok &= rss(images, sizes, tmp) if sizes else True
    print("\nall goals met" if ok else "\nsome goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
