"""AppState: the one object holding what the user chose and what the last run produced.

Docks read it and listen to its signals; they change it through its setters. A dock never
calls another dock. Model loads and runs go through the :class:`~gui.worker.Worker`, so the
UI thread never runs torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from hookscope.core.display.snapshot import Snapshot
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs import probe as jobs
from hookscope.core.jobs.side_by_side import run_probe
from hookscope.core.loading.images import load_image
from hookscope.core.loading.spec import InputSpec
from hookscope.core.workbench import DEFAULT_CAM_METHOD, Workbench, shapes_job, source_args
from hookscope.gui.worker import Worker

__all__ = ["DEFAULT_CAM_METHOD", "AppState"]


def _forward(name: str) -> property:
    """An attribute that lives in the workbench (read and written there)."""
    return property(
        lambda self: getattr(self.wb, name),
        lambda self, value: setattr(self.wb, name, value),
        doc=f"The workbench's ``{name}``.",
    )


class AppState(QObject):
    """The Qt face of a :class:`~core.workbench.Workbench`: its events as signals, runs in
    the worker.

    State and policy (defaults, target checks, region clicks) live in ``self.wb``; the
    attributes below read and write it, the setters forward to it, and each workbench event
    comes out as the signal of the same meaning.

    Signals:
        modelChanged(): ``loaded`` / ``tree`` replaced (layers and target reset too).
        imageChanged(): ``image`` / ``image_path`` replaced.
        specChanged(): the input spec (size / normalisation) was edited.
        layersChanged(list): the ticked layers.
        targetChanged(object): class index, a target in the ``--target`` grammar (``box:2``,
            ``15@mask.png``, ``similar:ref.jpg``), a clicked region (``RegionTarget``, shown
            as ``15@(40,72)``) or None (the kind's default).
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
        conceptsChanged(str): concepts of this layer were found or opened (a scan folder's
            ``concepts.json``, ``core.jobs.concept_view.concepts_for``).
        conditionChanged(object): the CAM restriction, ``(layer, "channel" | "concept",
            index)`` or None (a click on a channel or a concept).
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
    conceptsChanged = Signal(str)
    conditionChanged = Signal(object)

    def __init__(self, worker: Worker | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker or Worker(self)
        self.worker.busyChanged.connect(self.busyChanged)
        self.worker.progress.connect(self.progress)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.abandoned.connect(lambda _id, _kind, text: self.statusMessage.emit(text))
        self.wb = Workbench()
        self._connect_workbench()
        self._run_id: int | None = None
        self._run_started = 0.0
        self.condition: tuple[str, str, int] | None = None  # a view choice: no rerun
        self.modelChanged.connect(lambda: self.set_condition(None))

    # The workbench's state, read and written through the adapter as before.
    loaded = _forward("loaded")
    tree = _forward("tree")
    tree_spec = _forward("tree_spec")
    model_args = _forward("model_args")
    device = _forward("device")
    image = _forward("image")
    image_path = _forward("image_path")
    image_edits = _forward("image_edits")
    input_spec = _forward("input_spec")
    layers = _forward("layers")
    target = _forward("target")
    selected_layer = _forward("selected_layer")
    selected_call = _forward("selected_call")
    cam_method = _forward("cam_method")
    cam_layers = _forward("cam_layers")
    cam_blocks = _forward("cam_blocks")
    cam_params = _forward("cam_params")
    cam_compare = _forward("cam_compare")
    side_by_side = _forward("side_by_side")
    colormap = _forward("colormap")
    alpha = _forward("alpha")
    auto_run = _forward("auto_run")
    topk = _forward("topk")
    snapshot = _forward("snapshot")
    edits = _forward("edits")
    last_run_seconds = _forward("last_run_seconds")

    def _connect_workbench(self) -> None:
        """Each workbench event as its Qt signal; a wanted run goes to the worker."""
        on = self.wb.events.connect
        on("model", self.modelChanged.emit)
        on("image", self.imageChanged.emit)
        on("spec", self._on_spec)
        on("layers", self.layersChanged.emit)
        on("target", self.targetChanged.emit)
        on("selection", self.selectionChanged.emit)
        on("cam", self.camChanged.emit)
        on("display", self.displayChanged.emit)
        on("auto_run", self.autoRunChanged.emit)
        on("result", self.resultChanged.emit)
        on("edits", self.editsChanged.emit)
        on("shapes", self.shapesChanged.emit)
        on("status", self.statusMessage.emit)
        on("error", self.errorRaised.emit)
        on("run", self.run)

    def _on_spec(self) -> None:
        self.specChanged.emit()
        self._refresh_shapes()  # queued before the probe the spec change asks for

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
        self.wb.set_model(lm, tree, args, layers)

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
        self.wb.set_image(img, path)

    def set_edited_image(self, img, image_edits: list[dict]) -> None:
        """Use ``img``, made from the file at ``image_path`` by ``image_edits`` (for sessions)."""
        self.wb.set_edited_image(img, image_edits)

    # -- experiments --------------------------------------------------------------------------
    def set_edits(self, edits: list[dict]) -> None:
        """Replace the gradient / activation edits (dicts as ``GradEdit.to_dict()``) and rerun."""
        self.wb.set_edits(edits)

    def add_edit(self, edit: dict) -> None:
        """Append one edit (an identical one already there is not added twice)."""
        self.wb.add_edit(edit)

    def remove_edit(self, index: int) -> None:
        """Drop the edit at ``index``."""
        self.wb.remove_edit(index)

    def set_input_spec(self, spec: InputSpec) -> None:
        """Use an edited size / normalisation for preprocessing."""
        self.wb.set_input_spec(spec)

    def _refresh_shapes(self) -> None:
        """Redo the dry run at the new input size, so the tree's shapes follow the runs.

        Queued before the probe in the worker; the nodes keep their identity (the tree view
        keeps its expansion and selection), only their shapes and call counts change.
        """
        if not self.wb.shapes_stale():
            return
        loaded, spec = self.loaded, self.input_spec
        self.worker.submit(
            shapes_job,
            loaded.model,
            spec,
            kind="shapes",
            on_result=lambda fresh: self.wb.apply_shapes(loaded, spec, fresh),
            on_error=lambda _: None,
        )

    def set_input_size(self, h: int, w: int) -> None:
        """Change only the input size (a typed size is fixed, also for a native spec)."""
        self.wb.set_input_size(h, w)

    # -- choices ------------------------------------------------------------------------------
    def set_layers(self, layers: list[str]) -> None:
        """Replace the ticked layers (order kept, duplicates dropped)."""
        self.wb.set_layers(layers)

    def set_layer_ticked(self, name: str, ticked: bool) -> None:
        """Tick or untick one layer."""
        self.wb.set_layer_ticked(name, ticked)

    def set_target(self, target: int | str | None) -> None:
        """Explain class ``target``, a grammar target (``box:2``...), a clicked region
        (``RegionTarget``) or the default (None)."""
        self.wb.set_target(target)

    def set_target_text(self, text: str) -> bool:
        """Set the target from text typed by the user, in the ``--target`` grammar.

        A class index or name, ``C@mask.png`` (dense), ``box:i`` (detections) or
        ``similar:IMAGE`` (embeddings); empty is the kind's default. A bad one emits
        ``errorRaised`` (one sentence) and keeps the previous target.
        """
        return self.wb.set_target_text(text)

    def output_kind(self):
        """What the model outputs (:class:`~core.engine.outputs.OutputKind`), or None."""
        return self.wb.output_kind()

    def set_target_region(self, row: int, col: int) -> bool:
        """Explain the class predicted at input pixel (row, col) over its region (a click).

        The region's mask stays in memory (``core.engine.targets.RegionTarget``, shown as
        ``C@(row,col)``); a saved session writes it next to its file.
        """
        return self.wb.set_target_region(row, col)

    def select(self, layer: str, call: int = 0) -> None:
        """Select the layer (and call) the analysis docks show (only a ticked one)."""
        self.wb.select(layer, call)

    def recorded_layers(self) -> list[str]:
        """Ticked layers the last run recorded: the ones a dock can show, in tick order."""
        return self.wb.recorded_layers()

    def set_cam(
        self,
        method: str | None = None,
        layers: list[str] | None = None,
        blocks: list[str] | None = None,
        params: dict | None = None,
    ) -> None:
        """Change the CAM method, the CAM layers, or a transformer method's blocks and
        options, then rerun."""
        self.wb.set_cam(method, layers, blocks, params)

    def set_compare(self, methods: list[str]) -> bool:
        """Show these methods side by side in the CAM dock (empty: off), then rerun."""
        return self.wb.set_compare(methods)

    def shown_methods(self) -> list[str]:
        """The methods the CAM dock shows (the side-by-side ones when on)."""
        return self.wb.shown_methods()

    def transformer_blocks(self) -> list[str]:
        """Blocks a transformer method can read (empty: no Transformer group)."""
        return self.wb.transformer_blocks()

    def set_display(self, colormap: str | None = None, alpha: float | None = None) -> None:
        """Change the colour map or overlay alpha (a redraw, no rerun).

        An unknown colour map emits ``errorRaised`` and keeps the current one.
        """
        self.wb.set_display(colormap, alpha)

    def set_condition(self, condition: tuple[str, str, int] | None) -> None:
        """Restrict the CAM dock's extra map to ``(layer, "channel" | "concept", index)`` (a
        click on a channel or a concept), or None for no restricted map."""
        if condition is not None:
            layer, kind, index = condition
            condition = (str(layer), str(kind), int(index))
        if condition != self.condition:
            self.condition = condition
            self.conditionChanged.emit(condition)

    def set_auto_run(self, on: bool) -> None:
        self.wb.set_auto_run(on)

    def run_choices(self) -> dict:
        """Every choice that decides a run's numbers, as plain data (sessions, a pinned baseline).

        The model is not in it (see ``model_args``); the image is its path plus its edits.
        """
        return self.wb.run_choices()

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
        loaded = self.loaded
        self._run_started = time.perf_counter()
        # the probe, then each compared method if any (one job, one cancel)
        self._run_id = self.worker.submit(
            run_probe,
            loaded,
            self.image,
            self.wb.request(),
            tuple(self.cam_compare),
            kind="probe",
            on_result=lambda res: self._on_result(loaded, *res),
            on_error=self._on_run_error,
        )
        return self._run_id

    def cancel(self) -> None:
        """Cancel the running job and anything queued."""
        self.worker.cancel()

    def _maybe_run(self) -> None:
        if self.auto_run:
            self.run()

    def _on_result(self, loaded, snap: Snapshot, side_by_side=None) -> None:
        # A result of a model replaced while it ran is stale: the workbench drops it.
        seconds = time.perf_counter() - self._run_started
        self.wb.set_result(snap, loaded, seconds, side_by_side)

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
        return self.wb.agree_with_shown()
