"""Make the README tour's screenshots: ``python docs/make_tour.py [OUT_DIR]``.

Drives the app on the built-in demo (offscreen) through the shortcut story: a plain sky-blue
image, a car pasted onto sky, the comparison with the car on its road, and the sky channels
ablated. Each step saves one PNG of the whole window.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402

from hookscope.core.demo import sample_path  # noqa: E402
from hookscope.gui.app import make_app  # noqa: E402
from hookscope.gui.docks.image_lab import SKY_BLUE  # noqa: E402
from hookscope.gui.main_window import MainWindow  # noqa: E402
from hookscope.gui.state import AppState  # noqa: E402

ABLATE_TOP = 40


def main(out: Path) -> int:
    make_app()
    state = AppState()
    window = MainWindow(state, restore=False)
    window.resize(1440, 900)
    window.show()
    docks = {d.objectName(): d for d in window.docks}

    def wait(ms: int) -> None:
        # A real event loop, not processEvents(): Qt deletes the dock tab bars it replaced
        # only from one, and leftovers peek out between the docks in the shots.
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def settle(seconds: float = 120.0) -> None:
        start = time.perf_counter()
        wait(20)
        while state.busy and time.perf_counter() - start < seconds:
            wait(20)
        wait(300)  # let the docks paint

    def shot(name: str, *raise_docks: str) -> None:
        for d in raise_docks:
            docks[d].raise_()
        settle()
        path = out / name
        window.grab().save(str(path))
        print(f"{path}: {path.stat().st_size // 1024} KB")

    out.mkdir(parents=True, exist_ok=True)
    state.load_image(sample_path("sky.png"))
    state.load_model("demo", device="cpu")
    settle()
    lab = docks["ImageLabDock"]

    # 1. The car on its road, painted over in plain sky blue: no airplane in it, yet "airplane".
    state.load_image(sample_path("car_road.png"))
    settle()
    lab.apply_solid(SKY_BLUE)
    shot("tour_1_sky.png", "CamDock", "ImageLabDock", "PredictionsDock")

    # 2. The car from car_road.png pasted onto sky: still "airplane"; the CAM sits on the sky.
    state.load_image(sample_path("car_road.png"))
    settle()
    docks["CompareDock"].pin()
    state.load_image(sample_path("sky.png"))
    settle()
    lab.set_patch(sample_path("car_road.png"))
    lab.apply_paste()
    shot("tour_2_car_on_sky.png", "CamDock", "ImageLabDock", "PredictionsDock")

    # 3. Compared with the same car on its road.
    shot("tour_3_compare.png", "CompareDock")

    # 4. Zero the channels the airplane verdict leans on: the verdict falls apart.
    imp = docks["ImportanceDock"]
    imp.run("features.block3")
    settle()
    imp.top_n.setValue(ABLATE_TOP)
    imp.ablate_top(ABLATE_TOP)
    shot("tour_4_ablate.png", "ImportanceDock", "PredictionsDock")
    state.cancel()
    state.worker.wait(10000)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"))
