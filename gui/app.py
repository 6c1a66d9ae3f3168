"""Start the desktop app: ``run(args)`` from ``python main.py [--model ...] [--screenshot F]``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from hookscope.core.demo import sample_path, sample_paths
from hookscope.core.errors import HookScopeError
from hookscope.gui.main_window import MainWindow
from hookscope.gui.state import AppState

DEFAULT_SAMPLE = "airplane_sky.png"
SCREENSHOT_TIMEOUT_S = 180


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), with names QSettings uses."""
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName("HookScope")
    app.setApplicationName("HookScope")
    return app


def default_image():
    """The bundled airplane-on-sky sample, another sample, or None (then a drawn stand-in)."""
    try:
        preferred = sample_path(DEFAULT_SAMPLE)
        samples = [preferred] if preferred.is_file() else sample_paths()
    except HookScopeError:  # not installed: the demo model's load says so in one sentence
        return None
    return str(samples[0]) if samples else None


def drawn_image():
    """A sky with a small plane shape, for when no sample is bundled yet."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (135, 206, 235))
    d = ImageDraw.Draw(img)
    d.polygon([(60, 130), (200, 120), (210, 128), (200, 136), (60, 134)], fill=(90, 90, 100))
    d.polygon([(120, 126), (150, 80), (160, 80), (145, 128)], fill=(80, 80, 90))
    d.polygon([(120, 132), (150, 180), (160, 180), (145, 130)], fill=(80, 80, 90))
    return img


def start(state: AppState, window: MainWindow, args) -> None:
    """Load the model and image the arguments ask for (the demo and a sample by default)."""
    spec = getattr(args, "model", None) or "demo"
    layers = _split(getattr(args, "layers", None))
    image = getattr(args, "image", None)
    if image:
        state.load_image(image)
    if state.image is None:
        path = default_image()
        if path is not None:
            state.load_image(path)
        else:
            state.set_image(drawn_image(), None)
    load = {
        "weights": getattr(args, "weights", None),
        "trust_pickle": bool(getattr(args, "trust_pickle", False)),
        "device": getattr(args, "device", None) or "auto",
        "layers": layers,
    }
    # No fallback model: if the demo is missing, the load error says so in one sentence.
    state.load_model(spec, **load)


def _split(text) -> list[str] | None:
    if not text:
        return None
    if isinstance(text, (list, tuple)):
        return list(text)
    return [s.strip() for s in str(text).split(",") if s.strip()]


def run(args) -> int:
    """Open the main window; with ``args.screenshot`` save it after the first run and exit."""
    app = make_app()
    shot = getattr(args, "screenshot", None)
    state = AppState()
    window = MainWindow(state, restore=not shot)
    window.show()
    code = {"value": 0}
    if shot:
        _arm_screenshot(app, state, window, Path(shot), code)
    QTimer.singleShot(0, lambda: start(state, window, args))
    result = app.exec()
    return code["value"] or result


def _arm_screenshot(app, state: AppState, window: MainWindow, path: Path, code: dict) -> None:
    started = time.perf_counter()

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(path))
        if not ok:
            print(f"hookscope: could not write the screenshot {path}.", file=sys.stderr)
            code["value"] = 2
        state.cancel()
        state.worker.wait(10000)
        app.quit()

    def on_result(_snap) -> None:
        state.resultChanged.disconnect(on_result)
        # Let the docks paint the new result before grabbing.
        QTimer.singleShot(400, save)

    def on_error(message: str) -> None:
        if state.loaded is None and not state.busy:
            print(f"hookscope: {message}", file=sys.stderr)
            code["value"] = 2
            app.quit()

    def timeout() -> None:
        print(
            f"hookscope: no result after {time.perf_counter() - started:.0f} s; "
            "saving the window as it is.",
            file=sys.stderr,
        )
        save()

    state.resultChanged.connect(on_result)
    state.errorRaised.connect(on_error)
    QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, timeout)
