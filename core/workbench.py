"""The workbench: what the user chose and what the last run produced, without Qt.

napari's ``ViewerModel`` shape: a plain object that holds the state and the policy (the
default layers, target validation, region targets), tells listeners what changed, and builds
the request a run needs. The GUI's ``AppState`` adapts it to Qt signals; tests drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hookscope.core.display.colormaps import check_colormap
from hookscope.core.display.snapshot import Snapshot
from hookscope.core.engine.layouts import TOKENS
from hookscope.core.engine.runtime import threads_for
from hookscope.core.engine.targets import RegionTarget, check_target
from hookscope.core.engine.tree import build_tree, layer_defaults
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import apply_image_edits
from hookscope.core.jobs import probe as jobs
from hookscope.core.jobs.probe import ProbeRequest, is_transformer
from hookscope.core.jobs.side_by_side import SideBySide, check_methods, run_probe
from hookscope.core.loading.images import load_image
from hookscope.core.loading.models import LoadedModel
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods.transformers.attention import readable_blocks
from hookscope.core.reporting import Reporter

DEFAULT_CAM_METHOD = "gradcam"

# What a workbench tells its listeners, and with which arguments.
EVENTS = {
    "model": "(): loaded / tree replaced (layers and target reset too)",
    "image": "(): image / image_path / image_edits replaced",
    "spec": "(): the input spec (size / normalisation) changed",
    "layers": "(layers): the ticked layers",
    "target": "(target): class index, grammar text, a RegionTarget or None",
    "selection": "(layer, call): the selected layer and call",
    "cam": "(): CAM method or CAM layers changed",
    "display": "(): colour map or overlay alpha changed (a redraw, no rerun)",
    "auto_run": "(on)",
    "result": "(snapshot): a new result",
    "edits": "(edits): the gradient / activation edit dicts",
    "shapes": "(): the tree's shapes were redone for a new input size",
    "status": "(message): a short information sentence",
    "error": "(message): a one-sentence user error",
    "run": "(): the choices changed and auto-run is on: whoever runs should run now",
}


class Events:
    """Plain callbacks by event name (no Qt): ``connect(name, fn)``, ``emit(name, *args)``."""

    def __init__(self, names=EVENTS):
        self._listeners: dict[str, list[Callable]] = {n: [] for n in names}

    def connect(self, name: str, fn: Callable) -> None:
        """Call ``fn(*args)`` whenever ``name`` is emitted (in the order connected)."""
        self._check(name)
        self._listeners[name].append(fn)

    def disconnect(self, name: str, fn: Callable) -> None:
        """Stop calling ``fn`` for ``name``."""
        self._check(name)
        if fn in self._listeners[name]:
            self._listeners[name].remove(fn)

    def emit(self, name: str, *args) -> None:
        self._check(name)
        for fn in list(self._listeners[name]):
            fn(*args)

    def _check(self, name: str) -> None:
        if name not in self._listeners:
            raise ValueError(f"Unknown event {name!r}; use one of {', '.join(self._listeners)}.")


class Workbench:
    """Model, image, choices and the last result, with the policy that links them.

    Attributes:
        events: :class:`Events` listeners (see :data:`EVENTS`).
        loaded: The :class:`~core.loading.models.LoadedModel`, or None.
        tree: Its :class:`~core.engine.tree.ModuleTree`, or None.
        tree_spec: The input spec the tree's shapes were measured with.
        model_args: What reopens the model (:func:`source_args`).
        image: The input PIL image (RGB), or None; ``image_path`` its file, ``image_edits``
            the image edits that made it from that file.
        input_spec: The spec runs preprocess with.
        layers: Ticked layers; ``cam_method`` / ``cam_layers`` the CAM choice.
        target: None (the kind's default), a class index, grammar text, or a
            :class:`~core.engine.targets.RegionTarget` (a clicked region, in memory).
        edits: Gradient / activation edit dicts applied in every run.
        snapshot: The last result (:class:`~core.display.snapshot.Snapshot`), or None.
    """

    def __init__(self) -> None:
        self.events = Events()
        self.loaded: LoadedModel | None = None
        self.tree = None
        self.tree_spec: InputSpec | None = None
        self.model_args: dict = {}
        self.device = "cpu"
        self.image = None
        self.image_path: str | None = None
        self.image_edits: list[dict] = []
        self.input_spec: InputSpec | None = None
        self.layers: list[str] = []
        self.target = None
        self.selected_layer: str | None = None
        self.selected_call = 0
        self.cam_method: str | None = DEFAULT_CAM_METHOD
        self.cam_layers: list[str] = []
        # A transformer method's own choices; the CAM layers stay for when a CAM is picked again.
        self.cam_blocks: list[str] = []
        self.cam_params: dict = {}
        # Methods shown side by side (empty: off) and their last maps, beside the snapshot.
        self.cam_compare: list[str] = []
        self.side_by_side: SideBySide | None = None
        self.colormap = "viridis"
        self.alpha = 0.5
        self.auto_run = True
        self.topk = 5
        self.snapshot: Snapshot | None = None
        self.edits: list[dict] = []
        self.last_run_seconds: float | None = None

    def _emit(self, name: str, *args) -> None:
        self.events.emit(name, *args)

    def _maybe_run(self) -> None:
        if self.auto_run:
            self._emit("run")

    # -- model --------------------------------------------------------------------------------
    def load(self, source, weights=None, trust_pickle=False, device=None, *, layers=None):
        """Load a spec or a wrapped live model here (no worker) and take it (:meth:`set_model`)."""
        device = device or self.device
        lm, tree = jobs.load_job(Reporter(), source, weights, trust_pickle, device)
        self.set_model(lm, tree, source_args(source, weights, trust_pickle, device), layers)

    def set_model(self, lm, tree, args: dict | None = None, layers=None) -> None:
        """Take a loaded model: default layers (:func:`layer_defaults`), target reset, rerun."""
        self.loaded, self.tree = lm, tree
        self.model_args = dict(args) if args is not None else source_args(lm)
        self.tree_spec = self.input_spec = lm.input_spec
        self.device = str(lm.device)
        defaults = layer_defaults(tree, layers)
        self.layers, self.cam_layers = defaults.layers, defaults.cam_layers
        self.cam_blocks = []  # block names of the last model mean nothing to this one
        if is_transformer(self.cam_method) and not self.transformer_blocks():
            self.cam_method = DEFAULT_CAM_METHOD  # rollout on a CNN: one error sentence per run
        if any(map(is_transformer, self.cam_compare)) and not self.transformer_blocks():
            self.cam_compare = [m for m in self.cam_compare if not is_transformer(m)]
        self.side_by_side = None
        self.target = None
        # Show the deepest feature map first: the layer CAM explains.
        self.selected_layer = (self.cam_layers or self.layers or [None])[0]
        self.selected_call = 0
        self.snapshot = None
        names = {n.name for n in tree.nodes()}
        kept = [d for d in self.edits if d.get("layer") in names]
        if kept != self.edits:  # edits of another model's layers would fail every run
            self.edits = kept
            self._emit("edits", [dict(d) for d in kept])
        for name in ("model", "spec"):
            self._emit(name)
        self._emit("layers", list(self.layers))
        self._emit("target", None)
        self._emit("selection", self.selected_layer or "", 0)
        self._emit("cam")
        if tree.error:
            self._emit("status", tree.error)
        if defaults.unknown:
            self._emit(
                "status",
                f"{lm.name} has no layer named {', '.join(map(repr, defaults.unknown))}; "
                f"hooking {', '.join(self.layers)} instead.",
            )
        self._maybe_run()

    # -- image --------------------------------------------------------------------------------
    def load_image(self, path: str | Path) -> bool:
        """Open an image file; a bad file is an ``error`` event and keeps the current image."""
        try:
            img = load_image(path)
        except HookScopeError as exc:
            self._emit("error", str(exc))
            return False
        self.set_image(img, str(path))
        return True

    def set_image(self, img, path: str | None = None) -> None:
        """Use a PIL image (e.g. pasted from the clipboard) as the input."""
        self.image, self.image_path = img, path
        self.image_edits = []
        self._emit("image")
        self._maybe_run()

    def set_edited_image(self, img, image_edits: list[dict]) -> None:
        """Use ``img``, made from the file at ``image_path`` by ``image_edits``."""
        self.image, self.image_edits = img, [dict(d) for d in image_edits]
        self._emit("image")
        self._maybe_run()

    def edit_comparison(self) -> tuple | None:
        """``(image before the last image edit, the current image, that edit)``, or None.

        What a before / after comparison of the last image edit compares, rebuilt from the file
        and the edits alone, so a reopened session has it again. None without an edit, or for
        an image that has no file (pasted) to rebuild from.

        Raises:
            HookScopeError: The file cannot be read or an edit no longer applies.
        """
        if not self.image_edits or not self.image_path or self.image is None:
            return None
        before = apply_image_edits(load_image(self.image_path), self.image_edits[:-1])
        return before, self.image, dict(self.image_edits[-1])

    # -- edits and input spec -----------------------------------------------------------------
    def set_edits(self, edits: list[dict]) -> None:
        """Replace the gradient / activation edits (dicts as ``GradEdit.to_dict()``) and rerun."""
        edits = [dict(d) for d in edits]
        if edits == self.edits:
            return
        self.edits = edits
        self._emit("edits", [dict(d) for d in edits])
        self._maybe_run()

    def add_edit(self, edit: dict) -> None:
        """Append one edit (an identical one already there is not added twice)."""
        if dict(edit) not in self.edits:
            self.set_edits([*self.edits, dict(edit)])

    def remove_edit(self, index: int) -> None:
        """Drop the edit at ``index``."""
        if 0 <= index < len(self.edits):
            self.set_edits(self.edits[:index] + self.edits[index + 1 :])

    def set_input_spec(self, spec: InputSpec) -> bool:
        """Use an edited size / normalisation; False (an ``error`` event) when it cannot be."""
        if spec == self.input_spec:
            return True
        if spec.channels != (self.input_spec.channels if self.input_spec else spec.channels):
            self._emit("error", "The channel count is fixed by the model's first layer.")
            return False
        self.input_spec = spec
        self._emit("spec")  # the GUI queues a dry run at the new size before the probe
        self._maybe_run()
        return True

    def set_input_size(self, h: int, w: int) -> None:
        """Change only the input size (a typed size is fixed, also for a native spec)."""
        if self.input_spec is not None:
            spec = replace(self.input_spec, size=(int(h), int(w)), resize=None, native=False)
            self.set_input_spec(spec)

    def shapes_stale(self) -> bool:
        """True when the tree's shapes were measured at another input size than the current."""
        if self.loaded is None or self.input_spec is None or self.tree is None:
            return False
        return self.tree_spec is None or self.input_spec.size != self.tree_spec.size

    def apply_shapes(self, loaded, spec: InputSpec, fresh) -> bool:
        """Copy a dry run's shapes at ``spec`` into the tree (nodes keep their identity)."""
        if loaded is not self.loaded or spec != self.input_spec or fresh.error:
            return False
        new = {n.name: n for n in fresh.nodes()}
        for node in self.tree.nodes():
            if node.name in new:
                node.out_shapes, node.calls = new[node.name].out_shapes, new[node.name].calls
        self.tree_spec = spec
        self._emit("shapes")
        return True

    # -- choices ------------------------------------------------------------------------------
    def set_layers(self, layers: list[str]) -> None:
        """Replace the ticked layers (order kept, duplicates dropped)."""
        layers = list(dict.fromkeys(layers))
        if layers == self.layers:
            return
        self.layers = layers
        self._emit("layers", list(layers))
        if self.tree is not None and not any(c in layers for c in self.cam_layers):
            self.cam_layers = layer_defaults(self.tree, layers, fallback=False).cam_layers
            self._emit("cam")
        self._settle_selection()
        self._maybe_run()

    def set_layer_ticked(self, name: str, ticked: bool) -> None:
        """Tick or untick one layer."""
        if ticked and name not in self.layers:
            self.set_layers([*self.layers, name])
        elif not ticked and name in self.layers:
            self.set_layers([n for n in self.layers if n != name])

    def set_target(self, target) -> None:
        """Explain class ``target``, a grammar target, a clicked region, or the default (None)."""
        if target == self.target and type(target) is type(self.target):
            return
        self.target = target
        self._emit("target", target)
        self._maybe_run()

    def check_target(self, text):
        """The target to keep for ``text`` (see :func:`~core.engine.targets.check_target`)."""
        kind = self.output_kind()
        snap = self.snapshot
        n_classes = len(snap.probs) or None if snap is not None else None
        boxes = None
        if snap is not None and snap.kind is not None and snap.kind.kind == "detections":
            boxes = len(snap.predictions)
        names = (self.loaded.class_names if self.loaded else None) or []
        return check_target(text, kind, names, n_classes=n_classes, detections=boxes, app=True)

    def set_target_text(self, text) -> bool:
        """Set the target from text in the ``--target`` grammar; False (an ``error``) if bad.

        The text a clicked region shows (``C@(row,col)``) keeps that region as it is.
        """
        if isinstance(self.target, RegionTarget) and str(text).strip() == str(self.target):
            return True
        try:
            target = self.check_target(text)
        except HookScopeError as exc:
            self._emit("error", str(exc))
            return False
        self.set_target(target)
        return True

    def set_target_region(self, row: int, col: int) -> bool:
        """Explain the class predicted at input pixel (row, col) over its region (a click).

        The region's mask stays in memory (a :class:`RegionTarget`); nothing is written.
        """
        snap = self.snapshot
        if snap is None or snap.mask is None:
            return False
        h, w = snap.input_image.shape[:2]
        mh, mw = snap.mask.shape
        r = min(mh - 1, max(0, int(row * mh / h)))
        c = min(mw - 1, max(0, int(col * mw / w)))
        try:
            target = self.check_target(RegionTarget.at(snap.mask, r, c))
        except HookScopeError as exc:
            self._emit("error", str(exc))
            return False
        self.set_target(target)
        return True

    def output_kind(self):
        """What the model outputs (:class:`~core.engine.outputs.OutputKind`), or None."""
        if self.snapshot is not None and self.snapshot.kind is not None:
            return self.snapshot.kind
        return self.tree.output_kind if self.tree is not None else None

    def select(self, layer: str, call: int = 0) -> None:
        """Select the layer (and call) the analysis views show; only a ticked layer can be."""
        if layer not in self.layers:
            self._emit(
                "status", f"'{layer}' is not hooked: tick its box in the model tree to record it."
            )
            return
        if (layer, call) == (self.selected_layer, self.selected_call):
            return
        self.selected_layer, self.selected_call = layer, call
        self._emit("selection", layer, call)

    def recorded_layers(self) -> list[str]:
        """Ticked layers the last run recorded: the ones a view can show, in tick order."""
        snap = self.snapshot
        return [n for n in self.layers if snap is not None and n in snap.layers]

    def _settle_selection(self) -> None:
        """Keep the selection on a ticked layer with data (a CAM layer first, else the last)."""
        recorded = self.recorded_layers()
        pool = recorded or self.layers
        if self.selected_layer in pool or (self.selected_layer in self.layers and not recorded):
            return
        if pool:
            self.select(next((n for n in self.cam_layers if n in pool), pool[-1]), 0)

    def set_cam(
        self,
        method: str | None = None,
        layers: list[str] | None = None,
        blocks: list[str] | None = None,
        params: dict | None = None,
    ) -> None:
        """Change the CAM method, the CAM layers, or a transformer method's blocks and options
        (``params``, e.g. ``{"fusion": "max"}``), then rerun."""
        changed = False
        if method is not None and method != self.cam_method:
            self.cam_method, changed = method, True
        if layers is not None and list(layers) != self.cam_layers:
            self.cam_layers, changed = list(layers), True
        if blocks is not None and list(blocks) != self.cam_blocks:
            self.cam_blocks, changed = list(blocks), True
        if params is not None and dict(params) != self.cam_params:
            self.cam_params, changed = dict(params), True
        if changed:
            self._emit("cam")
            self._maybe_run()

    def set_compare(self, methods) -> bool:
        """Show ``methods`` side by side (empty: off), then rerun; False (an ``error``) if bad."""
        try:
            methods = list(check_methods(methods))
        except HookScopeError as exc:
            self._emit("error", str(exc))
            return False
        if methods != self.cam_compare:
            self.cam_compare = methods
            self._emit("cam")
            self._maybe_run()
        return True

    def shown_methods(self) -> list[str]:
        """The methods the CAM panel shows: the side-by-side ones when on, else the CAM method
        (a CAM only with a layer to run at; a transformer method needs none)."""
        if self.cam_compare:
            return list(self.cam_compare)
        m = self.cam_method
        return [m] if m and (self.cam_layers or is_transformer(m)) else []

    def transformer_blocks(self) -> list[str]:
        """Blocks a transformer method can read (the CAM dock's Transformer group); empty when
        the dry run saw no token layout or the attention is not readable."""
        layouts = self.tree.layouts if self.tree is not None else None
        if self.loaded is None or layouts is None:
            return []
        if not any(lay.kind == TOKENS for lay in layouts.layouts.values()):
            return []
        return [b.name for b in readable_blocks(self.loaded.model)]  # none: Swin, custom

    def set_display(self, colormap: str | None = None, alpha: float | None = None) -> None:
        """Change the colour map or overlay alpha (a redraw, no rerun); a bad map is an error."""
        if colormap is not None:
            try:
                self.colormap = check_colormap(colormap)
            except HookScopeError as exc:
                self._emit("error", str(exc))
        if alpha is not None:
            self.alpha = float(alpha)
        self._emit("display")

    def set_auto_run(self, on: bool) -> None:
        if on != self.auto_run:
            self.auto_run = on
            self._emit("auto_run", on)
            self._maybe_run()

    def run_choices(self) -> dict:
        """Every choice that decides a run's numbers, as plain data (sessions, a baseline).

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

    def request(self) -> ProbeRequest:
        """What a run of the current choices needs besides the model and the image."""
        return ProbeRequest(
            tuple(self.layers),
            self.target,
            self.cam_method,
            tuple(self.cam_layers),
            spec=self.input_spec,
            k=self.topk,
            edits=tuple(dict(d) for d in self.edits),
            threads=self.threads(),
            cam_blocks=tuple(self.cam_blocks),
            cam_params=dict(self.cam_params),
        )

    def threads(self) -> int | None:
        """Torch threads for a probe of the current model at the current input size."""
        spec = self.input_spec
        default = self.tree_spec or (self.loaded.input_spec if self.loaded else None)
        if spec is None or default is None or self.tree is None:
            return None
        scale = (spec.size[0] * spec.size[1]) / (default.size[0] * default.size[1])
        return threads_for(int(self.tree.macs() * scale))

    def run_now(self, reporter: Reporter | None = None) -> Snapshot | None:
        """Run the probe here (no worker) and take its result; None when not ready."""
        if not self.ready:
            return None
        loaded, start = self.loaded, time.perf_counter()
        compare = tuple(self.cam_compare)
        snap, compared = run_probe(
            reporter or Reporter(), loaded, self.image, self.request(), compare
        )
        self.set_result(snap, loaded, time.perf_counter() - start, compared)
        return snap

    def set_result(
        self, snap: Snapshot, loaded=None, seconds: float | None = None, side_by_side=None
    ) -> bool:
        """Take a finished run's result (and its side-by-side maps, if it made them); False
        when the model changed since it started."""
        if loaded is not None and loaded is not self.loaded:
            return False
        self.last_run_seconds = seconds
        self.snapshot = snap
        self.side_by_side = side_by_side
        self._emit("result", snap)
        self._settle_selection()
        return True

    def agree_with_shown(self) -> str:
        """After a cancel: CAM choice back to what the views show; a sentence saying which."""
        snap = self.snapshot
        if snap is None:
            return "Run cancelled: nothing has been computed yet (Ctrl+R runs again)."
        # Side by side back to what the panes show (off when they show one method's maps).
        compared = list(self.side_by_side.methods) if self.side_by_side is not None else []
        said = "Run cancelled: showing the last finished run."
        if compared != self.cam_compare:
            self.cam_compare = compared
            self._emit("cam")
            if not compared:
                said = "Side by side cancelled: showing the last finished run (turn it on again)."
        shown, wanted = snap.cam_method, self.cam_method
        # A transformer map's key is no layer: only the method goes back.
        shown_layers = self.cam_layers if is_transformer(shown) else list(snap.cams)
        if shown and (shown != wanted or shown_layers != self.cam_layers):
            self.cam_method, self.cam_layers = shown, shown_layers
            self._emit("cam")
            if wanted and wanted != shown:
                return (
                    f"{wanted} cancelled: showing {shown} from the last finished run "
                    "(pick it again to rerun)."
                )
        return said


def shapes_job(reporter: Reporter, model, spec):
    """The dry run at ``spec`` (a worker thread): a tree whose shapes and calls are current."""
    reporter.progress(0, 0, "Measuring shapes…")
    return build_tree(model, spec)


def source_args(source, weights=None, trust_pickle: bool = False, device: str = "cpu") -> dict:
    """What reopens a model source: its spec, or for a live module its description.

    A spec string records ``spec``, ``weights``, ``trust_pickle`` and ``device``. A wrapped
    :class:`LoadedModel` (a live module) records ``live``: the module's class as
    ``module.qualname``, its display name, and the spec it was wrapped with (often empty),
    so a session can say which object it needs to be given again.
    """
    if isinstance(source, LoadedModel):
        cls = type(source.model)
        return {
            "spec": source.spec or "",
            "weights": source.weights,
            "trust_pickle": False,
            "device": str(source.device),
            "live": {"class": f"{cls.__module__}.{cls.__qualname__}", "name": source.name},
        }
    return {"spec": source, "weights": weights, "trust_pickle": trust_pickle, "device": device}
