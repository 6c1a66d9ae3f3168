"""AppState: the one object holding what the user chose and what the last run produced.

Docks read it and listen to its signals; they change it through its setters. A dock never
calls another dock. Model loads and runs go through the :class:`~gui.worker.Worker`, so the
UI thread never runs torch.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal

from hookscope.core.display.snapshot import Snapshot
from hookscope.core.engine.outputs import CLASSES, DENSE, DETECTIONS, EMBEDDING
from hookscope.core.engine.runtime import threads_for
from hookscope.core.engine.targets import connected_region, parse_target, parse_target_text
from hookscope.core.engine.tree import build_tree, layer_defaults
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs import probe as jobs
from hookscope.core.loading.images import load_image
from hookscope.core.loading.spec import InputSpec
from hookscope.core.workbench import source_args
from hookscope.gui.figures import check_colormap
from hookscope.gui.worker import Worker

DEFAULT_CAM_METHOD = "gradcam"


class AppState(QObject):
    """Model, image, choices and the last result, with change signals.

    Signals:
        modelChanged(): ``loaded`` / ``tree`` replaced (layers and target reset too).
        imageChanged(): ``image`` / ``image_path`` replaced.
        specChanged(): the input spec (size / normalisation) was edited.
        layersChanged(list): the ticked layers.
        targetChanged(object): class index, a target in the ``--target`` grammar (``box:2``,
            ``15@mask.png``, ``similar:ref.jpg``) or None (the kind's default).
        selectionChanged(str, int): selected layer and call.
        camChanged(): CAM method or layers changed.
        displayChanged(): colour map or overlay alpha changed (redraw, no rerun).
        autoRunChanged(bool)
        resultChanged(object): a new :class:`~core.display.snapshot.Snapshot`.
        runFailed(str): a run failed with this sentence (also sent to errorRaised).
        busyChanged(bool), progress(done, total, message)
        errorRaised(str): one-sentence user error (shown in the status bar).
        loadFailed(str): opening a model or image failed (also sent to errorRaised).
        statusMessage(str): a short information message for the status bar.
        editsChanged(list): the gradient / activation edit dicts of the probe.
        shapesChanged(): the tree's output shapes were redone for a new input size (same
            nodes, new ``out_shapes`` / ``calls``).
    """

    modelChanged = Signal()
    imageChanged = Signal()
    specChanged = Signal()
    layersChanged = Signal(list)
    targetChanged = Signal(object)
    selectionChanged = Signal(str, int)
    camChanged = Signal()
    displayChanged = Signal()
    autoRunChanged = Signal(bool)
    resultChanged = Signal(object)
    runFailed = Signal(str)
    runCancelled = Signal()
    busyChanged = Signal(bool)
    progress = Signal(int, int, str)
    errorRaised = Signal(str)
    loadFailed = Signal(str)
    statusMessage = Signal(str)
    editsChanged = Signal(list)
    shapesChanged = Signal()

    def __init__(self, worker: Worker | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker or Worker(self)
        self.worker.busyChanged.connect(self.busyChanged)
        self.worker.progress.connect(self.progress)
        self.worker.cancelled.connect(self._on_cancelled)
        self.loaded = None  # core.loading.models.LoadedModel
        self.tree = None  # core.engine.tree.ModuleTree
        self.tree_spec: InputSpec | None = None  # the input its shapes were measured with
        self.model_args: dict = {}
        self.device = "cpu"
        self.image = None  # PIL RGB
        self.image_path: str | None = None
        self.input_spec: InputSpec | None = None
        self.layers: list[str] = []
        self.target: int | str | None = None  # a str is the --target grammar (box:i...)
        self.selected_layer: str | None = None
        self.selected_call = 0
        self.cam_method: str | None = DEFAULT_CAM_METHOD
        self.cam_layers: list[str] = []
        self.colormap = "viridis"
        self.alpha = 0.5
        self.auto_run = True
        self.topk = 5
        self.snapshot: Snapshot | None = None
        self.edits: list[
            dict
        ] = []  # core.experiments.interventions edit dicts, applied in every run
        self.image_edits: list[dict] = []  # image edit dicts that made ``image`` from the file
        self.last_run_seconds: float | None = None
        self._run_id: int | None = None
        self._run_started = 0.0

    # -- model / image ------------------------------------------------------------------------
    def load_model(
        self,
        spec,
        weights: str | None = None,
        trust_pickle: bool = False,
        device: str | None = None,
        *,
        layers: list[str] | None = None,
        on_done=None,
        on_error=None,
        quiet: bool = False,
    ) -> int:
        """Load a model in the worker; on success it replaces the current one and reruns.

        ``spec`` is a spec string or an already wrapped ``LoadedModel`` (a live module, see
        ``core.loading.live.wrap_model``): one door for both. A failed load keeps the current
        model and emits ``errorRaised`` and ``loadFailed`` (only ``on_error`` when ``quiet``,
        e.g. for a start-up fallback).
        """
        device = device or self.device
        args = source_args(spec, weights, trust_pickle, device)

        def done(result):
            lm, tree = result
            self._set_model(lm, tree, args, layers)
            if on_done is not None:
                on_done()

        def failed(message):
            if not quiet:
                self.errorRaised.emit(message)
                self.loadFailed.emit(message)
            if on_error is not None:
                on_error(message)

        self.statusMessage.emit(f"Loading {getattr(spec, 'name', spec)}…")
        return self.worker.submit(
            jobs.load_job,
            spec,
            weights,
            trust_pickle,
            device,
            kind="load",
            on_result=done,
            on_error=failed,
        )

    def _set_model(self, lm, tree, args: dict, layers: list[str] | None) -> None:
        self.loaded, self.tree, self.model_args = lm, tree, args
        self.tree_spec = lm.input_spec
        self.device = str(lm.device)
        self.input_spec = lm.input_spec
        names = {n.name for n in tree.nodes()}
        defaults = layer_defaults(tree, layers)
        unknown, picked = defaults.unknown, defaults.layers
        self.layers = picked
        self.cam_layers = defaults.cam_layers
        self.target = None
        # Show the deepest feature map first: the layer CAM explains.
        self.selected_layer = (self.cam_layers or picked or [None])[0]
        self.selected_call = 0
        self.snapshot = None
        kept = [d for d in self.edits if d.get("layer") in names]
        if kept != self.edits:  # edits of another model's layers would fail every run
            self.edits = kept
            self.editsChanged.emit(list(kept))
        self.modelChanged.emit()
        self.specChanged.emit()
        self.layersChanged.emit(list(self.layers))
        self.targetChanged.emit(None)
        self.selectionChanged.emit(self.selected_layer or "", 0)
        self.camChanged.emit()
        if tree.error:
            self.statusMessage.emit(tree.error)
        if unknown:
            self.statusMessage.emit(
                f"{lm.name} has no layer named {', '.join(map(repr, unknown))}; hooking "
                f"{', '.join(picked)} instead."
            )
        self._maybe_run()

    def load_image(self, path: str | Path) -> bool:
        """Open an image file; a bad file emits ``errorRaised`` and keeps the current image."""
        try:
            img = load_image(path)
        except HookScopeError as exc:
            self.errorRaised.emit(str(exc))
            self.loadFailed.emit(str(exc))
            return False
        self.set_image(img, str(path))
        return True

    def set_image(self, img, path: str | None = None) -> None:
        """Use a PIL image (e.g. pasted from the clipboard) as the input."""
        self.image, self.image_path = img, path
        self.image_edits = []
        self.imageChanged.emit()
        self._maybe_run()

    def set_edited_image(self, img, image_edits: list[dict]) -> None:
        """Use ``img``, made from the file at ``image_path`` by ``image_edits`` (for sessions)."""
        self.image, self.image_edits = img, [dict(d) for d in image_edits]
        self.imageChanged.emit()
        self._maybe_run()

    # -- experiments --------------------------------------------------------------------------
    def set_edits(self, edits: list[dict]) -> None:
        """Replace the gradient / activation edits (dicts as ``GradEdit.to_dict()``) and rerun."""
        edits = [dict(d) for d in edits]
        if edits == self.edits:
            return
        self.edits = edits
        self.editsChanged.emit([dict(d) for d in edits])
        self._maybe_run()

    def add_edit(self, edit: dict) -> None:
        """Append one edit (an identical one already there is not added twice)."""
        if dict(edit) not in self.edits:
            self.set_edits([*self.edits, dict(edit)])

    def remove_edit(self, index: int) -> None:
        """Drop the edit at ``index``."""
        if 0 <= index < len(self.edits):
            self.set_edits(self.edits[:index] + self.edits[index + 1 :])

    def set_input_spec(self, spec: InputSpec) -> None:
        """Use an edited size / normalisation for preprocessing."""
        if spec == self.input_spec:
            return
        if spec.channels != (self.input_spec.channels if self.input_spec else spec.channels):
            self.errorRaised.emit("The channel count is fixed by the model's first layer.")
            return
        self.input_spec = spec
        self.specChanged.emit()
        self._refresh_shapes()
        self._maybe_run()

    def _refresh_shapes(self) -> None:
        """Redo the dry run at the new input size, so the tree's shapes follow the runs.

        Queued before the probe in the worker; the nodes keep their identity (the tree view
        keeps its expansion and selection), only their shapes and call counts change.
        """
        loaded, spec = self.loaded, self.input_spec
        if loaded is None or spec is None or self.tree is None:
            return
        if self.tree_spec is not None and spec.size == self.tree_spec.size:
            return

        def done(fresh) -> None:
            if loaded is not self.loaded or spec != self.input_spec or fresh.error:
                return
            new = {n.name: n for n in fresh.nodes()}
            for node in self.tree.nodes():
                if node.name in new:
                    node.out_shapes, node.calls = new[node.name].out_shapes, new[node.name].calls
            self.tree_spec = spec
            self.shapesChanged.emit()

        self.worker.submit(
            _shapes_job, loaded.model, spec, kind="shapes", on_result=done, on_error=lambda _: None
        )

    def set_input_size(self, h: int, w: int) -> None:
        """Change only the input size."""
        if self.input_spec is not None:
            # A typed size is a fixed size, also for a live module's native (own-size) spec.
            spec = replace(self.input_spec, size=(int(h), int(w)), resize=None, native=False)
            self.set_input_spec(spec)

    # -- choices ------------------------------------------------------------------------------
    def set_layers(self, layers: list[str]) -> None:
        """Replace the ticked layers (order kept, duplicates dropped)."""
        layers = list(dict.fromkeys(layers))
        if layers == self.layers:
            return
        self.layers = layers
        self.layersChanged.emit(list(layers))
        if self.tree is not None and not any(c in layers for c in self.cam_layers):
            self.cam_layers = layer_defaults(self.tree, layers, fallback=False).cam_layers
            self.camChanged.emit()
        self._settle_selection()
        self._maybe_run()

    def set_layer_ticked(self, name: str, ticked: bool) -> None:
        """Tick or untick one layer."""
        if ticked and name not in self.layers:
            self.set_layers([*self.layers, name])
        elif not ticked and name in self.layers:
            self.set_layers([n for n in self.layers if n != name])

    def set_target(self, target: int | str | None) -> None:
        """Explain class ``target``, a grammar target (``box:2``...) or the default (None)."""
        if target == self.target:
            return
        self.target = target
        self.targetChanged.emit(target)
        self._maybe_run()

    def set_target_text(self, text: str) -> bool:
        """Set the target from text typed by the user, in the ``--target`` grammar.

        A class index or name, ``C@mask.png`` (dense), ``box:i`` (detections) or
        ``similar:IMAGE`` (embeddings); empty is the kind's default. A bad one emits
        ``errorRaised`` (one sentence) and keeps the previous target.
        """
        try:
            target = self._check_target(text)
        except HookScopeError as exc:
            self.errorRaised.emit(str(exc))
            return False
        self.set_target(target)
        return True

    def output_kind(self):
        """What the model outputs (:class:`~core.engine.outputs.OutputKind`), or None."""
        if self.snapshot is not None and self.snapshot.kind is not None:
            return self.snapshot.kind
        return self.tree.output_kind if self.tree is not None else None

    def _check_target(self, text) -> int | str | None:
        """The target to store for ``text``: an int for a class, else the grammar text."""
        request = parse_target_text(text)
        kind = self.output_kind()
        names = (self.loaded.class_names if self.loaded else None) or []
        which = kind.kind if kind is not None else None
        if request.form == "class":
            if request.value is None:
                return None
            if which in (DETECTIONS, EMBEDDING):
                raise HookScopeError(_wrong_form(request.text, kind))
            n_classes = kind.num_classes if kind is not None else None
            if n_classes is None and self.snapshot is not None:
                n_classes = len(self.snapshot.probs) or None
            return parse_target(request.value, names, n_classes or len(names))
        wanted = {"region": DENSE, "box": DETECTIONS, "similar": EMBEDDING}[request.form]
        if which is not None and which != wanted:
            raise HookScopeError(_wrong_form(request.text, kind))
        if request.form == "box":
            snap = self.snapshot
            if snap is not None and snap.kind is not None and snap.kind.kind == DETECTIONS:
                n = len(snap.predictions)
                if n == 0:
                    raise HookScopeError(
                        "The model detected nothing in this image, so there is no box to explain."
                    )
                if request.value >= n:
                    raise HookScopeError(
                        f"There is no detection {request.value}: the model found {n} "
                        f"(box:0 to box:{n - 1})."
                    )
            return f"box:{request.value}"
        path = Path(request.path).expanduser()
        if not path.is_file():
            what = "Mask file" if request.form == "region" else "Reference image"
            raise HookScopeError(f"{what} {path} does not exist.")
        if request.form == "similar":
            return f"similar:{path}"
        c = parse_target(request.value, names, kind.num_classes if kind else None)
        return f"{c}@{path}"

    def set_target_region(self, row: int, col: int) -> bool:
        """Explain the class predicted at input pixel (row, col) over its region (a click).

        The region is written as a mask PNG, so the target stays plain ``C@mask.png`` text
        (sessions and the CLI's ``--target`` reproduce it).
        """
        snap = self.snapshot
        if snap is None or snap.mask is None:
            return False
        h, w = snap.input_image.shape[:2]
        mh, mw = snap.mask.shape
        r = min(mh - 1, max(0, int(row * mh / h)))
        c = min(mw - 1, max(0, int(col * mw / w)))
        cls, region = connected_region(snap.mask, r, c)
        return self.set_target_text(f"{cls}@{save_region_mask(region, r, c)}")

    def select(self, layer: str, call: int = 0) -> None:
        """Select the layer (and call) the analysis docks show.

        Only a ticked layer can be shown: selecting another one keeps the selection and says
        how to record it, so a dock never goes blank while its Layer box names another layer.
        """
        if layer not in self.layers:
            self.statusMessage.emit(
                f"'{layer}' is not hooked: tick its box in the model tree to record it."
            )
            return
        if (layer, call) == (self.selected_layer, self.selected_call):
            return
        self.selected_layer, self.selected_call = layer, call
        self.selectionChanged.emit(layer, call)

    def recorded_layers(self) -> list[str]:
        """Ticked layers the last run recorded: the ones a dock can show, in tick order."""
        snap = self.snapshot
        return [n for n in self.layers if snap is not None and n in snap.layers]

    def _settle_selection(self) -> None:
        """Keep the selection on a ticked layer with data (a CAM layer first, else the last).

        Before the first run (or for a layer ticked since the last one) any ticked layer does.
        """
        recorded = self.recorded_layers()
        pool = recorded or self.layers
        if self.selected_layer in pool or (self.selected_layer in self.layers and not recorded):
            return
        if not pool:
            return
        pick = next((n for n in self.cam_layers if n in pool), pool[-1])
        self.select(pick, 0)

    def set_cam(self, method: str | None = None, layers: list[str] | None = None) -> None:
        """Change the CAM method and/or the CAM layers, then rerun."""
        changed = False
        if method is not None and method != self.cam_method:
            self.cam_method, changed = method, True
        if layers is not None and list(layers) != self.cam_layers:
            self.cam_layers, changed = list(layers), True
        if changed:
            self.camChanged.emit()
            self._maybe_run()

    def set_display(self, colormap: str | None = None, alpha: float | None = None) -> None:
        """Change the colour map or overlay alpha (a redraw, no rerun).

        An unknown colour map emits ``errorRaised`` and keeps the current one.
        """
        if colormap is not None:
            try:
                self.colormap = check_colormap(colormap)
            except HookScopeError as exc:
                self.errorRaised.emit(str(exc))
        if alpha is not None:
            self.alpha = float(alpha)
        self.displayChanged.emit()

    def set_auto_run(self, on: bool) -> None:
        if on != self.auto_run:
            self.auto_run = on
            self.autoRunChanged.emit(on)
            self._maybe_run()

    def run_choices(self) -> dict:
        """Every choice that decides a run's numbers, as plain data (sessions, a pinned baseline).

        The model is not in it (see ``model_args``); the image is its path plus its edits.
        """
        return {
            "image": self.image_path,
            "image_edits": [dict(d) for d in self.image_edits],
            "input_spec": self.input_spec.to_dict() if self.input_spec else None,
            "layers": list(self.layers),
            "target": self.target,
            "cam_method": self.cam_method,
            "cam_layers": list(self.cam_layers),
            "edits": [dict(d) for d in self.edits],
        }

    # -- running ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True when there is a model and an image to run on."""
        return self.loaded is not None and self.image is not None

    @property
    def busy(self) -> bool:
        return self.worker.busy

    def run(self) -> int | None:
        """Run the probe on the current choices (cancels a run in progress)."""
        if not self.ready:
            return None
        import time

        loaded = self.loaded
        self._run_started = time.perf_counter()
        self._run_id = self.worker.submit(
            jobs.probe_job,
            loaded,
            self.image,
            list(self.layers),
            self.target,
            self.cam_method,
            list(self.cam_layers),
            spec=self.input_spec,
            k=self.topk,
            edits=[dict(d) for d in self.edits],
            threads=self._threads(),
            kind="probe",
            on_result=lambda snap: self._on_result(loaded, snap),
            on_error=self._on_run_error,
        )
        return self._run_id

    def _threads(self) -> int | None:
        """Torch threads for a probe of the current model at the current input size."""
        spec, default = self.input_spec, self.tree_spec or self.loaded.input_spec
        if spec is None:
            return None
        scale = (spec.size[0] * spec.size[1]) / (default.size[0] * default.size[1])
        return threads_for(int(self.tree.macs() * scale))

    def cancel(self) -> None:
        """Cancel the running job and anything queued."""
        self.worker.cancel()

    def _maybe_run(self) -> None:
        if self.auto_run:
            self.run()

    def _on_result(self, loaded, snap: Snapshot) -> None:
        if loaded is not self.loaded:  # the model changed while this ran: stale
            return
        import time

        self.last_run_seconds = time.perf_counter() - self._run_started
        self.snapshot = snap
        self.resultChanged.emit(snap)
        self._settle_selection()

    def _on_run_error(self, message: str) -> None:
        self.runFailed.emit(message)
        self.errorRaised.emit(message)

    def _on_cancelled(self, job_id: int, kind: str) -> None:
        if kind == "probe" and job_id == self._run_id:
            self.statusMessage.emit(self._agree_with_shown())
            self.runCancelled.emit()

    def _agree_with_shown(self) -> str:
        """After a cancel: CAM controls back to what the docks show; a sentence saying which.

        The cancelled run's CAM choice (e.g. a slow scorecam) would otherwise sit in the Method
        box above the last finished run's map.
        """
        snap = self.snapshot
        if snap is None:
            return "Run cancelled: nothing has been computed yet (Ctrl+R runs again)."
        shown = snap.cam_method
        wanted = self.cam_method
        if shown and (shown != wanted or list(snap.cams) != self.cam_layers):
            self.cam_method, self.cam_layers = shown, list(snap.cams)
            self.camChanged.emit()
            if wanted and wanted != shown:
                return (
                    f"{wanted} cancelled: showing {shown} from the last finished run "
                    "(pick it again to rerun)."
                )
        return "Run cancelled: showing the last finished run."


REGION_DIR = Path(tempfile.gettempdir()) / "hookscope-regions"

_FORMS = {
    CLASSES: "a class index or name",
    DENSE: "a class index or name (its predicted pixels), C@mask.png, or a click on the mask",
    DETECTIONS: "box:i, or a click on a box",
    EMBEDDING: "similar:IMAGE (the Reference image… button)",
}


def _wrong_form(text: str, kind) -> str:
    return (
        f"The target '{text}' does not fit this model, whose output is {kind.kind} "
        f"{tuple(kind.shape)}; use {_FORMS[kind.kind]}."
    )


def save_region_mask(mask: np.ndarray, row: int, col: int, folder: Path | None = None) -> Path:
    """Write a region clicked at (row, col) as a white-on-black PNG (reused when there).

    Its name says where the click was, for titles ("the region in region-r40-c72.png"); a
    folder named by the content keeps two regions clicked at the same place apart.
    """
    img = (np.asarray(mask, dtype=bool) * 255).astype(np.uint8)
    digest = hashlib.sha1(img.tobytes() + str(img.shape).encode()).hexdigest()[:12]
    folder = (folder or REGION_DIR) / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"region-r{row}-c{col}.png"
    if not path.is_file():
        Image.fromarray(img).save(path)
    return path


def _shapes_job(reporter, model, spec):
    """The dry run at ``spec`` (worker thread): a tree whose shapes and calls are current."""
    reporter.progress(0, 0, "Measuring shapes…")
    return build_tree(model, spec)
