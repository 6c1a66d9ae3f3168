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

Then, for ``--scan-spec`` (resnet18), clicks on a Predictions row (a new target: the probe and
its CAM run again) side by side: idle, and while the Dataset dock scans a folder of
``--scan-images`` images in the worker's long lane (goal: at most idle + 0.2 s; the click waits
at most for the scan's batch in flight, and the two lanes share this machine's cores). Idle
clicks come before and after the scan's, so both halves span the same minutes. The Dataset
dock's own paints (its rows streaming in) are not counted as the click's.
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
SCAN_EXTRA_S = 0.2
"""Goal for a click during a scan: at most this much slower than idle."""
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


def app_times(
    spec: str, repeats: int, scan_images: int = 0
) -> tuple[list[float], list[float], dict, Bare, dict | None]:
    """Click→last dock paint and worker-job seconds for ``repeats`` runs of the app; with
    ``scan_images``, also Predictions clicks idle and during a scan (:func:`during_scan`)."""
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
    # The Dataset dock's paints during a scan are the scan's rows streaming in, not the click's.
    docks = [d for d in win.docks if d.isVisible() and d.objectName() != "DatasetDock"]

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
        timer = QTimer()  # stopped after: a stale timeout must not end a later wait early
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        timer.start(ms)
        loop.exec()
        timer.stop()

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
    side = during_scan(win, state, paints, wait, repeats, scan_images) if scan_images else None
    for w in watched:
        w.removeEventFilter(paints)
    bare.close()
    win.close()
    return click, job, setup, bare, side


def during_scan(win, state, paints, wait, repeats: int, n_images: int) -> dict:
    """Predictions-row clicks → last dock paint: idle, during a Dataset scan, idle again."""
    import tempfile

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest

    pred = next(d for d in win.docks if d.objectName() == "PredictionsDock")
    dataset = next(d for d in win.docks if d.objectName() == "DatasetDock")
    state.load_image(IMAGES[0])
    state.set_auto_run(True)  # a row click sets the target, which reruns
    state.run()
    wait(300_000)

    done = [0]  # clicks so far: rows 1 and 2 alternate, so every click changes the target

    def clicks(count: int, scanning: bool) -> list[float]:
        out = []
        for _ in range(count):
            done[0] += 1
            wait(150)
            if scanning and not dataset.job.running:
                raise SystemExit("the scan ended before the clicks did: raise --scan-images")
            table = pred.table
            rect = table.visualRect(table.model().index(1 + done[0] % 2, 0))
            Paints.last = 0.0
            t0 = time.perf_counter()
            QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            wait(300_000)  # until the run's result (a new target reruns the probe and CAM)
            settle = QEventLoop()
            QTimer.singleShot(150, settle.quit)
            settle.exec()
            out.append(Paints.last - t0)
        return out

    Paints = type(paints)
    clicks(3, False)  # warm-up: the row's first target
    half = max(1, repeats // 2)
    idle = clicks(half, False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for k in range(n_images):
            (folder / f"img_{k:04d}.png").symlink_to(IMAGES[k % len(IMAGES)])
        dataset.set_images(folder)
        dataset.out_edit.setText(str(Path(tmp) / "scan"))
        dataset.run()
        loop = QEventLoop()
        QTimer.singleShot(100, loop.quit)
        while dataset.live is None or not len(dataset.live):  # the scan's first rows landed
            QTimer.singleShot(100, loop.quit)
            loop.exec()
        busy = clicks(repeats, True)
        rows_during = len(dataset.live) if dataset.live is not None else 0
        dataset.job.cancel()
        while dataset.job.running:
            QTimer.singleShot(100, loop.quit)
            loop.exec()
    idle += clicks(repeats - half, False)
    return {
        "idle": idle,
        "scan": busy,
        "rows": rows_during,
        "batch": dataset.scan_settings().batch_size,
        "images": n_images,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="*", default=["demo", "torchvision:resnet18"])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--scan-spec", default="torchvision:resnet18", help="model of the scan test")
    p.add_argument("--scan-images", type=int, default=400, help="images the scan test scans")
    a = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from hookscope.core.engine.runtime import tune_allocator

    tune_allocator()  # main.py does this at start
    for spec in a.specs:
        scan_images = a.scan_images if spec == a.scan_spec else 0
        click, job, setup, bare, side = app_times(spec, a.repeats, scan_images)
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
        if side is not None:
            idle, busy = med(side["idle"]), med(side["scan"])
            verdict = "yes" if busy <= idle + SCAN_EXTRA_S else "no"
            print(
                f"  Predictions click -> docks    idle {idle * 1000:7.1f} ms | during a scan "
                f"{busy * 1000:7.1f} ms  ({(busy - idle) * 1000:+.1f} ms; "
                f"<= idle + {SCAN_EXTRA_S * 1000:.0f} ms: {verdict})"
            )
            print(
                f"    medians of {len(side['idle'])} idle / {len(side['scan'])} scan clicks; "
                f"scan: {side['images']} images, {side['batch']} per batch, "
                f"{side['rows']} rows landed during the clicks; slowest during the scan "
                f"{max(side['scan']) * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
