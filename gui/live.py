"""``hookscope.view``: the app opened on the user's own live ``nn.Module``.

napari's ``view_image`` / matplotlib's ``plt.show()`` shape: one call from the code the user
already has. The module is wrapped as it is (``core.loading.live.wrap_model``: never moved,
cast or put in another mode) and goes through the app's one model door. The returned
:class:`LiveView` gives the first run's numbers (``wait``) and closes the window leaving no
hook behind (``close``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import TensorImage, to_rgb
from hookscope.core.loading.live import wrap_model

HEADLESS_PLATFORMS = {"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb"}
"""Qt platform plugins that need no X11 / Wayland display."""

TENSOR_NOTE = "The image tensor goes in as it is: no resize, no normalisation."
"""What the status bar says when ``view`` is given a preprocessed tensor."""

CLOSE_WAIT_MS = 60_000
"""How long ``close()`` waits for a cancelled job (checked before every module's forward)."""

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)
EXTRA_HOOK_DICTS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called")
EXTRA_PRE_DICTS = ("_forward_pre_hooks_with_kwargs",)


@dataclass(frozen=True)
class LiveResult:
    """The numbers of one run of the app on a live module.

    Attributes:
        probs: Class probabilities of the image, (K,) float32 numpy.
        target: The explained class index, or the target text (``box:2``, ``15@mask.png``,
            ``similar:ref.jpg``) when the target is not a plain class.
        cams: CAM layer → map, (H, W) float32 in [0, 1] at the input size.
        cam_method: The CAM method of ``cams`` (None when no CAM ran).
        topk: ``(class index, class name or None, probability)``, best first.
        notes: What the run said the user should know.
        snapshot: Everything the docks show (``core.display.snapshot.Snapshot``).
    """

    probs: np.ndarray
    target: int | str | None
    cams: dict[str, np.ndarray]
    cam_method: str | None
    topk: tuple
    notes: tuple[str, ...]
    snapshot: object

    @classmethod
    def of(cls, snap) -> LiveResult:
        """The result of a snapshot."""
        text = snap.target_text or ""
        plain = snap.target is not None and text in ("", str(snap.target))
        return cls(
            probs=np.asarray(snap.probs),
            target=snap.target if plain else (text or None),
            cams=dict(snap.cams),
            cam_method=snap.cam_method,
            topk=tuple(snap.topk),
            notes=tuple(snap.notes),
            snapshot=snap,
        )


class _CloseWatch(QObject):
    """Tells the view when the user closes its window."""

    def __init__(self, on_close):
        super().__init__()
        self._on_close = on_close

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Close:
            QTimer.singleShot(0, self._on_close)  # after MainWindow.closeEvent has run
        return False


class LiveView:
    """The app window on a live module: its first result, and a clean close.

    Attributes:
        model: The user's module (the same object, untouched).
        loaded: Its wrapped ``LoadedModel`` (input spec, class names, note).
        state: The app's ``AppState`` while the window is open, else None.
        window: The ``MainWindow`` while open, else None.
    """

    def __init__(self, app, state, window, loaded):
        self.model = loaded.model
        self.loaded = loaded
        self.state, self.window = state, window
        self._app = app
        self._result: LiveResult | None = None
        self._error: str | None = None
        self._closed = False
        self._loops: list[QEventLoop] = []
        state.resultChanged.connect(self._on_result)
        state.runFailed.connect(self._on_error)
        state.loadFailed.connect(self._on_error)
        self._watch = _CloseWatch(self._on_window_closed)
        window.installEventFilter(self._watch)

    # -- results ----------------------------------------------------------------------------
    @property
    def result(self) -> LiveResult | None:
        """The first run's result, or None while it runs."""
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: float = 60) -> LiveResult:
        """The first run's result, running the Qt event loop until it arrives.

        Args:
            timeout: Seconds to wait at most.

        Raises:
            HookScopeError: The load or the run failed (its sentence), the window was closed
                first, or no result came within ``timeout`` seconds.
        """
        if self._result is None and self._error is None and not self._closed:
            loop = QEventLoop()
            timer = QTimer(loop)
            timer.setSingleShot(True)
            timer.timeout.connect(loop.quit)
            timer.start(int(max(0.0, timeout) * 1000))
            self._loops.append(loop)
            started = time.perf_counter()
            try:
                loop.exec()
            finally:
                self._loops.remove(loop)
            if self._result is None and self._error is None and not self._closed:
                raise HookScopeError(
                    f"No result after {time.perf_counter() - started:.0f} s; the run is still "
                    "going (a slow CAM method or a big model): call wait() again with a "
                    "longer timeout."
                )
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise HookScopeError(self._error)
        raise HookScopeError("The window was closed before the first run finished.")

    def run(self) -> None:
        """Run the Qt event loop until the window closes (what ``block=True`` does)."""
        if not self._closed:
            self._app.exec()
            self._on_window_closed()  # the loop may end before the close watcher's timer

    def _on_result(self, snap) -> None:
        if self._result is None:
            self._result = LiveResult.of(snap)
        self._wake()

    def _on_error(self, message: str) -> None:
        if self._result is None and self._error is None:
            self._error = message
        self._wake()

    def _wake(self) -> None:
        for loop in list(self._loops):
            loop.quit()

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the window; no job runs and no HookScope hook is left on the module after.

        The module keeps its weights, ``requires_grad``, device, dtype and every submodule's
        training flag: runs put it in eval mode only inside the job and restore each flag.
        """
        if self.window is not None and self.window.isVisible():
            self.window.close()
        self._release()

    def _on_window_closed(self) -> None:
        if self.window is not None and not self.window.isVisible():
            self._release()

    def _release(self) -> None:
        """Wait for the worker, drop any hook of ours, let go of the Qt objects."""
        if self._closed:
            return
        self._closed = True
        state, window = self.state, self.window
        state.cancel()
        # No job may touch the module once close() returns; a forward that never ends (the
        # user's own code, which no cancel check reaches) is said, not waited for forever.
        if not state.worker.wait(CLOSE_WAIT_MS):
            warnings.warn(
                f"A HookScope job was still running the model {CLOSE_WAIT_MS // 1000} s after "
                "close(); its forward pass is the model's own code, which cannot be stopped.",
                stacklevel=3,
            )
        self._app.processEvents()  # the worker's last signals, while the docks still exist
        state.blockSignals(True)  # then nothing reaches a deleted dock
        state.worker.blockSignals(True)
        removed = remove_own_hooks(self.model)
        if removed:  # a bug in a job's cleanup: say so rather than hide it
            warnings.warn(f"HookScope removed {removed} hook(s) a job had left.", stacklevel=3)
        window.removeEventFilter(self._watch)
        window.deleteLater()
        self.state = self.window = None
        state.loaded = None  # the app no longer holds the user's module
        self._app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        self._wake()

    def __repr__(self) -> str:
        what = "closed" if self._closed else "open"
        return f"<hookscope LiveView of {self.loaded.name} ({what})>"


def view(
    model,
    image=None,
    *,
    class_names=None,
    input_size=None,
    mean=None,
    std=None,
    layers=None,
    block: bool = True,
    session=None,
) -> LiveView:
    """Open the HookScope app on a live ``nn.Module``.

    Args:
        model: The module, as it is (never moved, cast or left in another mode).
        image: A path, a PIL image, a numpy HWC uint8 array, a preprocessed (1, C, H, W)
            tensor (goes in as it is), or None (a bundled sample).
        class_names: Output class names (default: ``model.class_names`` if any).
        input_size: ``S`` or ``(H, W)`` to resize and centre-crop to; with no size, mean or
            std (and no ``model.input_spec``) the image goes in at its own size, scaled to
            [0, 1], unnormalised, and the app says so.
        mean: Per-channel mean (after scaling to [0, 1]).
        std: Per-channel standard deviation.
        layers: Module names to hook (default: as the app picks).
        block: Run the Qt loop until the window closes. In IPython / Jupyter the call
            returns at once and the window lives beside the notebook (the ``%gui qt`` loop,
            started here if it is not running); with ``block=False`` elsewhere, ``wait()``
            runs the loop (or ``run()`` until the window closes).
        session: A session file saved from this same model: its choices are restored.

    Returns:
        The :class:`LiveView` handle (``wait()``, ``close()``).

    Raises:
        HookScopeError: No display, a malformed argument, or a session from another model.
    """
    check_display()
    saved = _read_session(session, model) if session is not None else None
    loaded = wrap_model(model, class_names=class_names, input_size=input_size, mean=mean, std=std)
    # The given image wins over the session's; a native size is sized by the one shown first.
    first = image if image is not None or saved is None else saved[1]
    loaded, picture = _with_image(loaded, first)
    if saved is not None and image is not None:
        saved = (_without_image(saved[0]), None, saved[2])

    from hookscope.gui.app import AppOptions, open_window

    chosen = list(layers) if layers else (list(saved[0].layers) if saved else None)
    options = AppOptions(
        model=loaded,
        image=picture,
        layers=tuple(chosen) if chosen else None,
        device=str(loaded.device),
    )
    app, state, window = open_window(options)
    handle = LiveView(app, state, window, loaded)
    if saved is not None:
        _restore_when_loaded(window, saved)
    beside_notebook = start_ipython_loop()  # IPython: the loop runs between cells
    if block and not beside_notebook:
        handle.run()
    return handle


def _restore_when_loaded(window, saved) -> None:
    """Once the live module is in the app, restore the session's choices (one run)."""
    from hookscope.gui.session_io import restore

    st = window.state
    st.auto_run = False  # the session's run, not one on the defaults first

    def put() -> None:
        session, image, baseline = saved
        restore(window, session, image, baseline)
        st.auto_run = True

    def loaded() -> None:
        st.modelChanged.disconnect(loaded)
        QTimer.singleShot(0, put)  # once the load has finished setting the defaults

    st.modelChanged.connect(loaded)


def _read_session(path, model):
    """``(session, image, baseline)`` of a session file saved from ``model``."""
    from hookscope.gui.session_io import read_session

    session, image, baseline = read_session(path)
    problem = session.live_problem(model, Path(path).name)
    if problem:
        raise HookScopeError(problem)
    return session, image, baseline


def _without_image(session):
    """The session without its image (the caller's image is used instead)."""
    session.image, session.image_edits = None, []
    return session


def _with_image(loaded, image):
    """``(loaded, picture)``: the picture the app opens, the native spec sized to it.

    A live module with a native spec (no input size given) has a placeholder size: the dry
    run that measures the tree's shapes uses the image's own size instead.
    """
    spec = loaded.input_spec
    if isinstance(image, torch.Tensor):
        x = image.detach()
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != spec.channels:
            raise HookScopeError(
                f"The image tensor must be (1, {spec.channels}, H, W), already preprocessed, "
                f"not {tuple(image.shape)}."
            )
        # As it is: its own size (an edit of its picture keeps that size too).
        spec = replace(spec, size=tuple(x.shape[2:]), resize=None, native=True)
        loaded = replace(loaded, input_spec=spec, note=TENSOR_NOTE)
        return loaded, TensorImage.of(x, spec)
    picture = _picture(image)
    if spec.native:
        if isinstance(picture, (str, Path)):
            with Image.open(picture) as im:
                w, h = im.size
        else:
            w, h = picture.size if picture is not None else (224, 224)
        loaded = replace(loaded, input_spec=replace(spec, size=(h, w)))
    return loaded, picture


def _picture(image):
    """A path (kept, so sessions can record it), a PIL RGB image, or None."""
    if image is None:
        from hookscope.gui.app import default_image

        return default_image()
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise HookScopeError(f"Image file {image} does not exist.")
        return str(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        arr = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if (
            arr.dtype != np.uint8
            or arr.ndim not in (2, 3)
            or (arr.ndim == 3 and arr.shape[2] not in (3, 4))
        ):
            raise HookScopeError(
                f"A numpy image must be uint8 (H, W), (H, W, 3) or (H, W, 4), not "
                f"{arr.dtype} {arr.shape}; pass a float tensor already preprocessed instead."
            )
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
    raise HookScopeError(
        f"image must be a path, a PIL image, a numpy uint8 array or a tensor, not "
        f"{type(image).__name__}."
    )


def check_display() -> None:
    """Raise one sentence when Qt has no display to open a window on (Linux without X11,
    Wayland or an offscreen platform), instead of letting Qt abort the process."""
    if QApplication.instance() is not None or not sys.platform.startswith("linux"):
        return
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform in HEADLESS_PLATFORMS:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise HookScopeError(
        "There is no display to open the HookScope window on (DISPLAY and WAYLAND_DISPLAY "
        "are unset): run it on a desktop, or use hookscope.explain for maps without a window."
    )


def _ipython_shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def ipython_qt_loop() -> bool:
    """True inside IPython / Jupyter with a Qt event loop running (``%gui qt``)."""
    shell = _ipython_shell()
    loop = getattr(shell, "active_eventloop", None) if shell is not None else None
    return bool(loop) and str(loop).startswith("qt")


def start_ipython_loop() -> bool:
    """Inside IPython / Jupyter, make sure Qt's loop runs between cells; True when it does.

    As napari does: a notebook that did not type ``%gui qt`` (or whose ``%gui qt`` failed, see
    :func:`_repair_ipython_qt`) gets it here, so the window lives beside the notebook instead
    of blocking the kernel. Outside IPython this is False and nothing changes.
    """
    shell = _ipython_shell()
    if shell is None or ipython_qt_loop():
        return shell is not None
    try:
        _repair_ipython_qt()
        shell.enable_gui("qt")
    except Exception:  # whatever IPython says: fall back to running the loop in view()
        return False
    return ipython_qt_loop()


def _repair_ipython_qt() -> None:
    """Give IPython's Qt shim the QApplication that recent PySide6 (6.10) hides from it.

    ``IPython.external.qt_for_kernel`` builds its ``QtGui`` by copying the ``__dict__`` of
    PySide6's modules, which PySide6 fills lazily: a class nobody used yet is missing, so
    ``%gui qt`` fails with "module 'PySide6.QtPrintSupport' has no attribute 'QApplication'".
    """
    shim = sys.modules.get("IPython.external.qt_for_kernel")
    if shim is not None and not hasattr(shim.QtGui, "QApplication"):
        shim.QtGui.QApplication = QApplication


def remove_own_hooks(module) -> int:
    """Remove hooks HookScope's code registered on ``module`` (the user's own stay).

    Jobs remove their hooks in ``finally``; this is the last guard of ``close()``.

    Returns:
        How many were removed (0 when every job cleaned up).
    """
    removed = 0
    for m in module.modules():
        for attr in HOOK_DICTS:
            hooks = getattr(m, attr, None) or {}
            for key, fn in list(hooks.items()):
                if _ours(fn):
                    del hooks[key]
                    for extra in EXTRA_HOOK_DICTS + EXTRA_PRE_DICTS:
                        (getattr(m, extra, None) or {}).pop(key, None)
                    removed += 1
    for p in module.parameters():
        for attr in ("_backward_hooks", "_post_accumulate_grad_hooks"):
            hooks = getattr(p, attr, None) or {}
            for key, fn in list(hooks.items()):
                if _ours(fn):
                    del hooks[key]
                    removed += 1
    return removed


def _ours(fn) -> bool:
    fn = getattr(fn, "func", fn)  # functools.partial
    fn = getattr(fn, "__func__", fn)  # bound method
    return (getattr(fn, "__module__", "") or "").startswith("hookscope.")
