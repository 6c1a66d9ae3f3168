"""Jobs the app's worker and the CLI both run: load a model, probe it and compute CAMs."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from hookscope.core.display.snapshot import make_snapshot
from hookscope.core.engine import layouts as layouts_cache
from hookscope.core.engine.guard import cancel_checks
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.runtime import torch_threads
from hookscope.core.engine.targets import RegionTarget, parse_target_text
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import edit_from_dict
from hookscope.core.loading.images import image_notes, to_tensor
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods import explainers
from hookscope.core.methods.cam import CAM_METHODS, cam_from_probe, compute_cam, suggest_layer
from hookscope.core.reporting import CAM, DONE, LOADING, PROBING, VIEWS, Note, Reporter, as_note


def load_job(reporter: Reporter, source, weights=None, trust_pickle=False, device="cpu"):
    """Load a model and describe its tree (the dry run) off the UI thread.

    Args:
        reporter: Progress and cancel.
        source: A spec string (``core.loading.models.load_model``) or an already wrapped
            :class:`~core.loading.models.LoadedModel` (a live module: used as it is, never
            moved, so ``weights``, ``trust_pickle`` and ``device`` are ignored).
        weights: State_dict file for a spec.
        trust_pickle: Allow a pickled module for a spec.
        device: Device for a spec.

    Returns:
        ``(LoadedModel, ModuleTree)``.
    """
    if isinstance(source, LoadedModel):
        lm = source
        reporter.progress(0, 2, f"Reading {lm.name}…", LOADING)
    else:
        reporter.progress(0, 2, f"Loading {source}…", LOADING)
        lm = load_model(source, weights, trust_pickle=trust_pickle, device=device)
    reporter.progress(1, 2, "Reading the module tree…", LOADING)
    tree = build_tree(lm.model, lm.input_spec, class_names=lm.class_names)
    tree.cam_layer = checked_cam_layer(lm, tree)
    reporter.progress(2, 2, "Model loaded", DONE)
    return lm, tree


def checked_cam_layer(lm, tree) -> str | None:
    """The checked default CAM layer on a seeded input, or None to keep the structural one.

    A ViT's last blocks have a grid, yet only their class token reaches the head, so the
    structural default would draw a flat map: token models take the last layer whose map is
    not flat. Other models take the backbone's last stage output, unless its gradient is zero.
    """
    layouts = tree.layouts
    last = layouts.default_layer() if layouts is not None else None
    if last is None:
        return None
    spec = lm.input_spec
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, spec.channels, *spec.size, generator=gen)
    kw = {"class_names": lm.class_names, "input_spec": spec}
    try:
        if layouts.layouts[last].kind == "tokens":
            return suggest_layer(lm.model, x, **kw)
        # Other models: the last stage in front of the head (not SSDlite's head branches),
        # and one Grad-CAM pass checks its gradient is not zero (an FPN level no box uses).
        pick = suggest_layer(lm.model)
        notes = compute_cam(lm.model, x, [pick], "gradcam", **kw).notes
        if any("gradient at" in n or "barely feeds" in n for n in notes):
            pick = suggest_layer(lm.model, x, **kw)
    except HookScopeError:
        return None
    return pick if pick != last else None


@dataclass(frozen=True)
class ProbeRequest:
    """Every choice of one probe run, validated (the workbench builds it; sessions store it).

    Attributes:
        layers: Layer names to hook.
        target: None (the output kind's default), a class index or name, the grammar of
            ``core.engine.targets`` (``C``, ``C@mask.png``, ``C@(row,col)``, ``box:i``,
            ``similar:IMAGE``), a :class:`~core.engine.targets.RegionTarget`, or a callable
            (not saveable).
        cam_method: A key of ``core.methods.cam.CAM_METHODS``, a transformer method of the
            explainer registry (kind ``transformer``: one map, :data:`PATCH_MAP`), or None.
        cam_layers: Layers to compute CAM maps for.
        cam_blocks: Transformer blocks a transformer method reads (empty: its default).
        cam_params: Options of a transformer method (e.g. ``{"fusion": "max"}``); options
            the method does not take are left out, so one dict serves every method.
        spec: Input spec overriding the model's (edited size / normalisation), or None.
        k: Top-k size.
        edits: Gradient / activation edit dicts (``core.experiments.interventions``), active
            during the probe and the CAM, so every view shows the edited model.
        threads: Intra-op threads (``core.engine.runtime.threads_for``); None: as is.
        batch_size: Forward batch size of ScoreCAM / AblationCAM.
        reshape: Layout of the CAM layers' outputs (``nchw``, ``nhwc``, ``tokens:K``, ``HxW``,
            or a dict layer → one of those); None reads it from the evidence.
    """

    layers: tuple[str, ...] = ()
    target: Any = None
    cam_method: str | None = None
    cam_layers: tuple[str, ...] = ()
    spec: InputSpec | None = None
    k: int = 5
    edits: tuple[dict, ...] = ()
    threads: int | None = None
    batch_size: int = 32
    reshape: Any = None
    cam_blocks: tuple[str, ...] = ()
    cam_params: Any = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "layers", _names(self.layers, "layers"))
        put(self, "cam_layers", _names(self.cam_layers or (), "cam_layers"))
        put(self, "cam_blocks", _names(self.cam_blocks or (), "cam_blocks"))
        put(self, "cam_params", dict(self.cam_params or {}))
        put(self, "edits", tuple(dict(d) for d in self.edits or ()))
        if self.cam_method is not None and self.cam_method not in map_methods():
            raise HookScopeError(
                f"Unknown CAM method '{self.cam_method}': use one of {', '.join(map_methods())}."
            )
        if isinstance(self.target, RegionTarget):
            pass
        elif isinstance(self.target, str):
            parse_target_text(self.target)  # a malformed grammar is one sentence here
        elif not (self.target is None or callable(self.target) or _is_index(self.target)):
            raise HookScopeError(f"A target must be a class index or name, not {self.target!r}.")
        for name, low in (("k", 1), ("batch_size", 1), ("threads", 1)):
            value = getattr(self, name)
            if value is None and name == "threads":
                continue
            if not _is_index(value) or value < low:
                raise HookScopeError(f"{name} must be a whole number of at least {low}.")
        if self.spec is not None and not isinstance(self.spec, InputSpec):
            raise HookScopeError("spec must be an InputSpec.")

    def replace(self, **changes) -> ProbeRequest:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON data (a clicked region as its compact mask); see :meth:`from_dict`."""
        if callable(self.target):
            raise HookScopeError("A callable target cannot be saved; use the --target grammar.")
        target = self.target
        if isinstance(target, RegionTarget):
            target = {"region": target.to_dict()}
        return {
            "layers": list(self.layers),
            "target": target,
            "cam_method": self.cam_method,
            "cam_layers": list(self.cam_layers),
            "spec": self.spec.to_dict() if self.spec is not None else None,
            "k": self.k,
            "edits": [dict(d) for d in self.edits],
            "threads": self.threads,
            "batch_size": self.batch_size,
            "reshape": self.reshape,
            "cam_blocks": list(self.cam_blocks),
            "cam_params": dict(self.cam_params),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ProbeRequest:
        """The request :meth:`to_dict` wrote; an unknown key is one sentence."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise HookScopeError(f"Unknown probe setting '{unknown[0]}'.")
        data = dict(data)
        target = data.get("target")
        if isinstance(target, dict) and "region" in target:
            data["target"] = RegionTarget.from_dict(target["region"])
        if data.get("spec") is not None:
            data["spec"] = InputSpec.from_dict(data["spec"])
        return cls(**data)


PATCH_MAP = "patch map"
"""The snapshot's ``cams`` key of a transformer method's one map (it belongs to no layer)."""


def map_methods() -> list[str]:
    """What a probe's ``cam_method`` may be: the CAMs, then the transformer methods."""
    return [*CAM_METHODS, *explainers.names(explainers.TRANSFORMER)]


def is_transformer(method: str | None) -> bool:
    """True for a transformer method of the explainer registry (rollout, chefer...)."""
    return method in explainers.names(explainers.TRANSFORMER)


def _names(values, what: str) -> tuple[str, ...]:
    values = () if values is None else values
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise HookScopeError(f"{what} must be a list of layer names.")
    return tuple(dict.fromkeys(values))


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def probe_job(reporter: Reporter, loaded, image, request, *options, **named):
    """Preprocess, probe (forward + backward), compute CAMs, and convert to a Snapshot.

    Args:
        reporter: Progress and cancel; cancel is also checked before every module's forward.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        request: A :class:`ProbeRequest`; or, as before, the layer names followed by the
            request's other fields (``target``, ``cam_method``, ``cam_layers``, ``spec=``...).

    Returns:
        A :class:`~core.display.snapshot.Snapshot`; a CAM that failed is its ``cam_error``
        (and a ``cam-error`` note), the probe's numbers are still there.
    """
    if not isinstance(request, ProbeRequest):
        request = ProbeRequest(request, *options, **named)
    elif options or named:
        raise TypeError("probe_job takes a ProbeRequest or the options, not both.")
    # The whole job, snapshot included: switching the thread count back and forth between
    # its parts would restart torch's thread pool mid-job.
    with torch_threads(request.threads):
        return _probe(reporter, loaded, image, request, time.perf_counter())


def _probe(reporter: Reporter, loaded, image, req: ProbeRequest, start: float):
    spec = req.spec or loaded.input_spec
    # No made-up "1 / 3" steps: a busy message, then real units (channels) from slow CAMs.
    reporter.progress(0, 0, "Forward and backward…", PROBING)
    x = to_tensor(image, spec)
    result = run_probe(
        loaded.model,
        x,
        list(req.layers),
        req.target,
        class_names=loaded.class_names,
        k=req.k,
        input_spec=spec,
        edits=[
            cancel_checks(loaded.model, reporter),
            *[edit_from_dict(loaded.model, d) for d in req.edits],
        ],
    )
    notes = [as_note(n) for n in image_notes(image)]  # e.g. NaN pixels left out of a float TIFF
    cams, cam_notes, error = _map_part(reporter, loaded, x, req, result, spec)
    notes += cam_notes
    reporter.progress(0, 0, "Preparing the views…", VIEWS)
    snap = make_snapshot(
        result,
        x,
        spec,
        model_name=loaded.name,
        cams=cams,
        cam_method=req.cam_method,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
        cam_error=error,
        layouts=layouts_cache.cached(loaded.model, x.shape),  # the tree's dry run, no forward
    )
    reporter.progress(1, 1, "Done", DONE)
    return snap


def _map_part(reporter: Reporter, loaded, x, req: ProbeRequest, result, spec):
    """``(maps, notes, error)`` of the request's CAM or transformer method, edits active."""
    transformer = is_transformer(req.cam_method)
    cam_layers = list(req.cam_layers) if req.cam_method and not transformer else []
    if not (cam_layers or transformer):
        return {}, [], None
    where = ", ".join(cam_layers or req.cam_blocks) or "its default blocks"
    reporter.progress(0, 0, f"{req.cam_method} for {where}…", CAM)
    with contextlib.ExitStack() as stack:
        for d in req.edits:  # fresh hooks: the CAM explains the edited model too
            stack.enter_context(edit_from_dict(loaded.model, d))
        # The probe's resolved target: box:i, a region, a similar: reference are not
        # resolved (nor embedded) again.
        target = result.resolved_target
        if transformer:
            return _transformer_map(loaded, x, req, target, spec)
        # With edits the records may hold an activation before or after its edit, so
        # only an unedited probe stands in for the CAM's own pass.
        probe = None if req.edits else result
        return _cams(reporter, loaded, x, cam_layers, req, target, probe, spec)


def _transformer_map(loaded, x, req: ProbeRequest, target, spec):
    """A transformer method's one map as ``({PATCH_MAP: map}, notes, error)``."""
    rec = explainers.get(req.cam_method)
    takes = {p.name for p in rec.params}
    params = {k: v for k, v in req.cam_params.items() if k in takes}
    try:
        e = explainers.explain(
            loaded.model,
            x,
            rec.name,
            layers=list(req.cam_blocks) or None,
            target=target,
            class_names=loaded.class_names,
            input_spec=spec,
            **params,
        )
    except HookScopeError as exc:
        return {}, [Note("cam-error", str(exc))], str(exc)
    notes = [Note("flat-map" if n.kind == explainers.FLAT else "info", n.text) for n in e.notes]
    return {PATCH_MAP: e.map}, notes, None


def _cams(reporter: Reporter, loaded, x, layers, req: ProbeRequest, target, probe, spec):
    """``(maps, notes, error)``: CAM maps and their flat-result notes, or ``({}, [note],
    why)`` when the method fails on these layers.

    Gradient methods on layers ``probe`` recorded need no second pass.
    """
    try:
        maps = None
        if probe:
            maps = cam_from_probe(
                loaded.model, x, probe, layers, req.cam_method, reshape=req.reshape
            )
        if maps is None:
            maps = compute_cam(
                loaded.model,
                x,
                list(layers),
                req.cam_method,
                target,
                class_names=loaded.class_names,
                batch_size=req.batch_size,
                reporter=reporter,
                reshape=req.reshape,
                input_spec=spec,
            )
        return maps, [as_note(n, "flat-map") for n in getattr(maps, "notes", ())], None
    except HookScopeError as exc:
        return {}, [Note("cam-error", str(exc))], str(exc)
