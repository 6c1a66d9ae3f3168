"""Channel atlas: its cost over a forward-only pass, and its memory from 200 to 2,000 images.

Run: python benchmarks/bench_atlas.py [--images 2000] [--repeats 3] [--rss 200,2000]

1. Time, the demo model at its 96² input (``features.block3``, 128 channels, 12×12 grid, top 9),
   on the first N (sorted paths) of a folder of demo scenes written as PNGs, 2 torch threads,
   batch 32, ``workers=0`` (decoding in the measured thread for both), run interleaved after
   one warm-up each:
   - atlas: the whole ``atlas_job`` (listing, decoding, forwards stopped at the layer, the
     per-channel top-k merge, checkpoints, 1,152 crop PNGs, ``atlas.parquet``,
     ``atlas_maps.npy``) into a fresh folder (made and deleted outside the timing);
   - forward only: the same listing (``list_images``) and decoding (``ScanDataset`` +
     ``DataLoader``) and the model's whole forward under ``torch.inference_mode``, nothing kept.
   The receptive field is measured once per model and layer (in the warm-up run; the app and
   the concepts job reuse it): its one-time cost is printed on a line of its own.
   Goal: atlas / forward ≤ 1.15.
2. Peak RSS (VmHWM) of whole ``atlas_job`` runs in fresh processes on 200 and 2,000 images.
   Goal: the larger one at most 100 MB above the smaller one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rss import run_child  # noqa: E402
from scenes import write_scenes  # noqa: E402
from timing import print_table  # noqa: E402

LAYER = "features.block3"

RSS_CHILD = """
from hookscope.core.jobs.atlas import AtlasSettings, atlas_job
lm = load_model("demo")
base = hwm_mb()
s = atlas_job(quiet(), lm, AtlasSettings(a["images"], a["layer"], out=a["out"], workers=0,
                                         batch_size=32, limit=a["n"]))
print(json.dumps({"images": s.images, "seconds": s.seconds, "peak_rss_mb": hwm_mb(),
                  "after_load_mb": base}))
"""


def field_ms(lm) -> float:
    """Milliseconds of one receptive-field measurement of ``LAYER`` (no cache)."""
    import torch

    from hookscope.core.experiments import atlas as atlas_lib

    layout = atlas_lib.layer_layout(lm.model, LAYER, torch.zeros(1, 3, *lm.input_spec.size))
    t0 = time.perf_counter()
    atlas_lib._measure_field(lm.model, LAYER, layout, lm.input_spec.size, 3)
    return (time.perf_counter() - t0) * 1000


def timing(images: Path, n: int, repeats: int, tmp: Path) -> bool:
    import torch

    from hookscope.core.experiments.scan import ScanDataset, collate, list_images
    from hookscope.core.jobs.atlas import AtlasSettings, atlas_job
    from hookscope.core.loading.models import load_model
    from hookscope.core.reporting import quiet

    torch.set_num_threads(2)
    lm = load_model("demo")
    outs = (tmp / f"atlas{i}" for i in range(10**6))  # a fresh folder per run

    def atlas():
        s = AtlasSettings(images, LAYER, out=next(outs), workers=0, batch_size=32, limit=n)
        atlas_job(quiet(), lm, s)

    def forward():
        loader = torch.utils.data.DataLoader(
            ScanDataset(images, list_images(images, n), lm.input_spec),
            batch_size=32,
            collate_fn=collate,
        )
        with torch.inference_mode():
            for batch in loader:
                lm.model(batch["x"])

    pairs = paired_times(atlas, forward, repeats, lambda: _clear(tmp))
    print(f"\nTime: demo model, {n} images of 96², batch 32, {repeats} pairs (interleaved)")
    print(f"receptive field of {LAYER}, once per model and layer: {field_ms(lm):.0f} ms")
    walls = [a[0] / f[0] for a, f in pairs]
    cpus = [a[1] / f[1] for a, f in pairs]
    for j, (a, f) in enumerate(pairs):
        print(
            f"  pair {j + 1}: atlas {a[0]:.2f} s, forward {f[0]:.2f} s, ratio {walls[j]:.3f}"
            f" (process CPU {a[1]:.2f} / {f[1]:.2f} s: {cpus[j]:.3f})"
        )
    print(
        f"  ratio median {statistics.median(walls):.3f}, min {min(walls):.3f}, "
        f"max {max(walls):.3f}; CPU ratio median {statistics.median(cpus):.3f}"
    )
    return print_table(
        [
            (f"forward only ({n} images)", _med_min(f for _, f in pairs), None, None),
            (
                f"atlas of {LAYER}, top 9 ({n} images)",
                _med_min(a for a, _ in pairs),
                (statistics.median(walls), min(walls)),
                1.15,
            ),
        ]
    )


def paired_times(first, second, repeats: int, between) -> list[tuple]:
    """``repeats`` pairs ((wall, CPU) of ``first``, (wall, CPU) of ``second``) after one
    warm-up each; the order inside a pair alternates, so a drift in the machine's load
    falls on both sides alike. ``between`` runs untimed after every call."""
    for fn in (first, second):
        fn()
        between()
    pairs = []
    for j in range(repeats):
        got = {}
        for fn in (first, second) if j % 2 == 0 else (second, first):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            got[fn] = (time.perf_counter() - t0, time.process_time() - c0)
            between()
        pairs.append((got[first], got[second]))
    return pairs


def _med_min(times) -> tuple[float, float]:
    walls = [w for w, _ in times]
    return statistics.median(walls), min(walls)


def _clear(tmp: Path) -> None:
    for done in tmp.glob("atlas*"):
        shutil.rmtree(done)


def rss(images: Path, sizes: list[int], tmp: Path) -> bool:
    print("\nPeak RSS of atlas_job in a fresh process (VmHWM)")
    peaks = {}
    for n in sizes:
        arg = {"images": str(images), "layer": LAYER, "out": str(tmp / f"rss{n}"), "n": n}
        r = run_child(RSS_CHILD, arg)
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
    p.add_argument("--scenes", help="reuse this folder of scenes (written there when empty)")
    a = p.parse_args()
    sizes = [int(s) for s in a.rss.split(",") if s.strip()]
    most = max([a.images, *sizes])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        images = Path(a.scenes) if a.scenes else tmp / "scenes"
        if len(list(images.rglob("*.png"))) < most:
            write_scenes(images, most, "shortcut", seed=1, chunk=500)
            print(f"wrote {most} scenes in {time.perf_counter() - t0:.0f} s")
        ok = timing(images, a.images, a.repeats, tmp)
        ok &= rss(images, sizes, tmp) if sizes else True
    print("\nall goals met" if ok else "\nsome goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
