"""Start the desktop app: ``run(options)`` for ``python main.py [--model ...]`` and ``view``.

:class:`AppOptions` is what the window opens with; the command line
(``gui.command``) and ``hookscope.view`` (``gui.live``) both build one.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from hookscope.core.demo import sample_path, sample_paths
from hookscope.core.errors import HookScopeError
from hookscope.gui.main_window import MainWindow
from hookscope.gui.state import AppState

DEFAULT_SAMPLE = "airplane_sky.png"
SCREENSHOT_TIMEOUT_S = 180


@dataclass(frozen=True)
class AppOptions:
    """What the window opens with.

    Attributes:
        model: A spec string (``demo``, ``torchvision:resnet18``...) or an already wrapped
            ``LoadedModel`` (a live module from ``hookscope.view``).
        weights: State_dict file applied to a spec's model.
        trust_pickle: Allow a pickled full model (a spec).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (a spec; a live module stays put).
        image: An image file path, a PIL image, or None (a bundled sample).
        layers: Module names to hook, or None (the default rule).
        screenshot: Save the window to this PNG after the first run, then quit.
        restore_layout: Restore the dock layout the user left (QSettings).
        session: A session file to open instead of ``model`` (``--session``); the code it
            names runs only with ``trust_pickle`` / ``trust_factory`` (no dialog asks).
        trust_factory: Let the session's ``file.py:factory`` run (``--trust-factory``).
        run: A folder written by ``hookscope.watch`` to show in the Training panel (``--run``).
    """

    model: Any = "demo"
    weights: str | None = None
    trust_pickle: bool = False
    device: str = "auto"
    image: Any = None
    layers: tuple[str, ...] | None = None
    screenshot: str | None = None
    restore_layout: bool = True
    session: str | None = None
    trust_factory: bool = False
    run: str | None = None

    @classmethod
    def from_args(cls, args) -> AppOptions:
        """The options of an argparse namespace (missing attributes take the defaults)."""
        if isinstance(args, cls):
            return args
        layers = _split(getattr(args, "layers", None))
        shot = getattr(args, "screenshot", None)
        return cls(
            model=getattr(args, "model", None) or "demo",
            weights=getattr(args, "weights", None),
            trust_pickle=bool(getattr(args, "trust_pickle", False)),
            device=getattr(args, "device", None) or "auto",
            image=getattr(args, "image", None),
            layers=tuple(layers) if layers else None,
            screenshot=shot,
            restore_layout=not shot,
            session=getattr(args, "session", None),
            trust_factory=bool(getattr(args, "trust_factory", False)),
            run=getattr(args, "run", None),
        )


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


def start(state: AppState, window: MainWindow, options) -> None:
    """Load the model and image the options ask for (the demo and a sample by default).

    Args:
        state: The app state.
        window: Its main window.
        options: :class:`AppOptions` (an argparse namespace is read with ``from_args``).
    """
    options = AppOptions.from_args(options)
    if options.run:
        window.open_training_run(options.run)
    image = options.image
    if isinstance(image, (str, Path)) and str(image):
        state.load_image(str(image))
    elif image is not None:  # a PIL image from hookscope.view
        state.set_image(image, None)
    if state.image is None:
        path = default_image()
        if path is not None:
            state.load_image(path)
        else:
            state.set_image(drawn_image(), None)
    if options.session:
        from hookscope.gui import session_io

        # The flags of this run decide what code the session may run; nothing asks.
        trust = {"pickle": options.trust_pickle, "factory": options.trust_factory}
        session_io.open_session(window, options.session, trust=trust)
        return
    load = {
        "weights": options.weights,
        "trust_pickle": options.trust_pickle,
        "device": options.device,
        "layers": list(options.layers) if options.layers else None,
    }
    # No fallback model: if the demo is missing, the load error says so in one sentence.
    state.load_model(options.model, **load)


def _split(text) -> list[str] | None:
    if not text:
        return None
    if isinstance(text, (list, tuple)):
        return list(text)
    return [s.strip() for s in str(text).split(",") if s.strip()]


def open_window(options: AppOptions) -> tuple[QApplication, AppState, MainWindow]:
    """Create the app, state and shown window; the load starts when the event loop runs."""
    app = make_app()
    state = AppState()
    window = MainWindow(state, restore=options.restore_layout and not options.screenshot)
    window.show()
    QTimer.singleShot(0, lambda: start(state, window, options))
    return app, state, window


def run(options) -> int:
    """Open the main window and run the event loop until it closes.

    Args:
        options: :class:`AppOptions` (or an argparse namespace, read with ``from_args``);
            with ``screenshot`` the window is saved after the first run and the app exits.
    """
    options = AppOptions.from_args(options)
    app, state, window = open_window(options)
    code = {"value": 0}
    if options.screenshot:
        _arm_screenshot(app, state, window, Path(options.screenshot), code)
    result = app.exec()
    if state.worker.left_behind:
        # A cancelled load's code never returned: its thread cannot be stopped or joined, so
        # end the process here (quitting the app always quits).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code["value"] or result)
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
    # Owned by the window and stopped on quit: a pending timeout must not fire into whatever
    # the process does next (the tests run the app in-process, one window after another).
    timer = QTimer(window)
    timer.setSingleShot(True)
    timer.timeout.connect(timeout)
    app.aboutToQuit.connect(timer.stop)
    timer.start(SCREENSHOT_TIMEOUT_S * 1000)
