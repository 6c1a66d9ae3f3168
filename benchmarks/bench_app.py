"""Click Run → every visible dock repainted, against the bare compute of the same numbers.

Run: python benchmarks/bench_app.py [SPEC ...]   (default: demo torchvision:resnet18; 2 threads)

The app is measured in this process (offscreen Qt): from triggering Run ▸ Run to the last
paint of any widget inside a dock. Runs alternate between two sample images (loaded while
auto-run is off, before the click), so every run changes what the docks show.

The bare baseline is the fastest way to compute the same numbers without the app: in a fresh
Python process's main thread (no Qt loaded), ``run_probe`` then ``cam_from_probe`` (the CAM
from the probe's own records, one pass, as the app does), on the thread count the app picks
for this model (``threads_for`` of its size: one thread for the demo), with the app's
allocator setting, back to back (its best case: run alone every 150 ms, like the clicks, it
sometimes takes 3x as long while OpenMP threads wake up): after each measured click, one
unmeasured run then two measured ones, so both sides share the same minutes of a shared
machine. Medians of ``--repeats`` clicks and of all bare runs, after warm-up. The app's
overhead is click→repainted minus that bare compute, in milliseconds (goal: one frame,
17 ms), and as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hookscope.core.demo import sample_path  # noqa: E402

FRAME_MS = 17
"""Goal for the app's overhead over the bare compute: one frame at 60 Hz."""
IMAGES = [sample_path(n) for n in ("airplane_sky.png", "car_road.png")]

BARE = """
import json, sys, time
import torch
from hookscope.core.engine.runtime import threads_for, tune_allocator
tune_allocator()  # as the app does, so the bare side is not slowed by page faults
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.tree import build_tree
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.methods.cam import cam_from_probe, compute_cam
a = json.loads(sys.argv[1])
lm = load_model(a["spec"])
threads = threads_for(build_tree(lm.model, lm.input_spec).macs())  # the app's choice
if threads is not None:
    torch.set_num_threads(threads)
xs = [to_tensor(load_image(p), lm.input_spec) for p in a["images"]]
runs = [0]
def once(cam):
    x = xs[runs[0] % len(xs)]
    runs[0] += 1
    t = time.perf_counter()
    r = run_probe(lm.model, x, a["layers"], class_names=lm.class_names)
    if cam:
        maps = cam_from_probe(lm.model, x, r, a["cam_layers"], a["cam_method"])
        if maps is None:  # a method the records cannot give: the second pass the app makes too
            compute_cam(lm.model, x, a["cam_layers"], a["cam_method"], r.target)
    return time.perf_counter() - t
for cam in (False, True):
    for _ in range(5):
        once(cam)
print(json.dumps({"threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:  # "K": K runs of each kind back to back, after one unmeasured
    k = int(line)
    out = {}
    for cam in (False, True):
        once(cam)
        out["probe_cam" if cam else "probe"] = [once(cam) for _ in range(k)]
    print(json.dumps(out), flush=True)
"""


class Bare:
    """The bare compute in its own Python process (no Qt loaded), run on request.

    Asked for a few back-to-back runs after every click of the app, so both sides are
    measured in the same minutes of a shared machine.
    """

    def __init__(self, setup: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BARE, json.dumps(setup)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.threads = self._read()["threads"]
        self.times: dict[str, list[float]] = {"probe": [], "probe_cam": []}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the bare process failed (see its error above)")
        return json.loads(line)

    def run(self, k: int = 2) -> None:
        self.proc.stdin.write(f"{k}\n")
        self.proc.stdin.flush()
        for key, values in self._read().items():
            self.times[key] += values

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def app_times(spec: str, repeats: int) -> tuple[list[float], list[float], dict]:
    """Click→last dock paint and worker-job seconds for ``repeats`` runs of the app."""
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
    from PySide6.QtWidgets import QWidget

    from hookscope.gui.app import default_image, make_app
    from hookscope.gui.main_window import MainWindow
    from hookscope.gui.state import AppState

    make_app()
    state = AppState()
    win = MainWindow(state, restore=False)
    win.resize(1440, 900)
    win.show()
    docks = [d for d in win.docks if d.isVisible()]

    class Paints(QObject):
        last = 0.0

        def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
            if event.type() == QEvent.Type.Paint:
                Paints.last = time.perf_counter()
            return False

    results: list = []
    loop = QEventLoop()

    def got(snapshot) -> None:
        results.append(snapshot)
        loop.quit()

    def wait(ms: int) -> None:
        """Run the event loop (idle, as the app's own loop is) for ``ms`` or until a result."""
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    state.resultChanged.connect(got)
    state.load_image(default_image())
    state.load_model(spec)
    wait(300_000)
    if not results:
        raise SystemExit(f"{spec}: the first run did not finish")
    state.set_auto_run(False)
    setup = {
        "spec": spec,
        "images": [str(p) for p in IMAGES],
        "layers": list(state.layers),
        "cam_layers": list(state.cam_layers),
        "cam_method": state.cam_method,
    }
    bare = Bare(setup)
    wait(300)
    paints = Paints()
    # On the docks' own widgets only, so the filter adds nothing to other events.
    watched = [w for d in docks for w in [d, *d.findChildren(QWidget)]]
    for w in watched:
        w.installEventFilter(paints)
    click, job = [], []
    for i in range(repeats + 3):
        state.load_image(IMAGES[i % 2])
        wait(150)
        results.clear()
        Paints.last = 0.0
        t0 = time.perf_counter()
        win.run_action.trigger()
        wait(300_000)
        settle = QEventLoop()
        QTimer.singleShot(150, settle.quit)  # generous: any paint the result caused lands
        settle.exec()
        if i >= 3:
            click.append(Paints.last - t0)
            job.append(results[0].seconds)
            bare.run()  # the bare side now, in the same minutes as this click
    for w in watched:
        w.removeEventFilter(paints)
    bare.close()
    win.close()
    return click, job, setup, bare


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="*", default=["demo", "torchvision:resnet18"])
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from hookscope.core.engine.runtime import tune_allocator

    tune_allocator()  # main.py does this at start
    for spec in a.specs:
        click, job, setup, bare = app_times(spec, a.repeats)
        med = statistics.median
        probe, probe_cam = med(bare.times["probe"]), med(bare.times["probe_cam"])
        print(f"{spec}: layers {setup['layers']}, {setup['cam_method']} on {setup['cam_layers']}")
        print(
            f"  click Run -> docks repainted   {med(click) * 1000:7.1f} ms (median of {a.repeats})"
        )
        print(f"  worker job inside that        {med(job) * 1000:7.1f} ms")
        n, k = bare.threads, len(bare.times["probe_cam"])
        print(f"  bare run_probe                {probe * 1000:7.1f} ms ({n} thread(s))")
        print(f"  bare run_probe + CAM          {probe_cam * 1000:7.1f} ms (one pass, {k} runs)")
        overhead = (med(click) - probe_cam) * 1000
        ratio = med(click) / probe_cam
        verdict = "yes" if overhead <= FRAME_MS else "no"
        print(f"  app overhead                  {overhead:7.1f} ms  (<= {FRAME_MS} ms: {verdict})")
        job_extra = (med(job) - probe_cam) * 1000
        ui = (med(click) - med(job)) * 1000
        print(f"    of which job - bare         {job_extra:7.1f} ms, hand-off + paint {ui:.1f} ms")
        print(f"  app / bare                    {ratio:7.2f}")


if __name__ == "__main__":
    main()
