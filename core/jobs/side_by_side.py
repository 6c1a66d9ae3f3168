"""Several explanation methods side by side on one image and one target (the CAM dock).

Each method runs through the one entry point a single method uses, :func:`probe_job` with
the request's ``cam_method`` replaced, so a pane shows exactly the map that method shows
alone (same target, blocks, options and edits). The run of the request itself stays the
result the other views show; the compared maps come beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hookscope.core.display.figures import ColorBar, Panel, cam_panels, cam_target
from hookscope.core.display.snapshot import Snapshot
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.probe import (
    PATCH_MAP,
    ProbeRequest,
    map_methods,
    probe_job,
)
from hookscope.core.methods import explainers
from hookscope.core.reporting import Progress, Reporter

TRANSFORMER_DEFAULT = ("rollout", "chefer", "legrad", "attnlrp")
"""What a model with readable attention compares first (issue 24's four)."""
CAM_DEFAULT = ("gradcam", "gradcam++", "xgradcam", "layercam")
"""What a CNN compares first: the one-pass CAMs (no per-channel cost)."""


def choices(transformer: bool) -> list[str]:
    """Methods a model can compare: the transformer methods when it has blocks, the CAMs."""
    cams = explainers.names(explainers.CAM)
    return [*explainers.names(explainers.TRANSFORMER), *cams] if transformer else cams


def defaults(transformer: bool) -> list[str]:
    """The registered ones of :data:`TRANSFORMER_DEFAULT` (or :data:`CAM_DEFAULT`)."""
    wanted = TRANSFORMER_DEFAULT if transformer else CAM_DEFAULT
    known = set(choices(transformer))
    return [m for m in wanted if m in known]


def check_methods(methods) -> tuple[str, ...]:
    """The methods to compare, in order, duplicates dropped; empty is allowed (off).

    Raises:
        HookScopeError: Not a list of names, or an unknown method (one sentence).
    """
    if isinstance(methods, str) or not all(isinstance(m, str) for m in methods or ()):
        raise HookScopeError("Side by side takes a list of method names.")
    known = map_methods()
    for m in methods or ():
        if m not in known:
            raise HookScopeError(
                f"'{m}' cannot be shown side by side: use some of {', '.join(known)}."
            )
    return tuple(dict.fromkeys(methods or ()))


def pane_key(method: str, layer: str, maps: int = 1) -> str:
    """A pane's name: the method when it made one map (a transformer method's, or one CAM
    layer's: the CAM layers list names it), else ``method · layer``."""
    return method if maps == 1 or layer == PATCH_MAP else f"{method} · {layer}"


@dataclass(frozen=True)
class SideBySide:
    """The maps of several methods for one run.

    Attributes:
        snapshot: The run of the request itself (what every other view shows).
        methods: The methods compared, in order.
        maps: Pane name (:func:`pane_key`) → (H, W) float32 map in [0, 1], in method order.
        method_of: Pane name → its method.
        notes: Method → its notes (flat maps, why it failed), as the single run gives them.
        errors: Method → why it gave no map (one sentence).
    """

    snapshot: Snapshot
    methods: tuple[str, ...]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    method_of: dict[str, str] = field(default_factory=dict)
    notes: dict[str, tuple] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def note_lines(self) -> list[str]:
        """Every method's notes and errors, each line naming its method."""
        lines = [f"{m}: {self.errors[m]}" for m in self.methods if m in self.errors]
        for m in self.methods:
            lines += [f"{m}: {n}" for n in self.notes.get(m, ()) if str(n) != self.errors.get(m)]
        return lines


class _StepReporter(Reporter):
    """One method's part of the job: its progress says which method, cancel is the job's."""

    def __init__(self, outer: Reporter, method: str, step: int, steps: int):
        super().__init__()
        self.outer, self.prefix = outer, f"{method} ({step} / {steps})"

    @property
    def cancelled(self) -> bool:
        return self.outer.cancelled

    def check(self) -> None:
        self.outer.check()

    def progress(self, done: int, total: int, message: str = "", stage: str = "") -> None:
        self.last = Progress(done, total, message, stage)
        self.outer.progress(done, total, f"{self.prefix}: {message}", stage)


def run_probe(
    reporter: Reporter, loaded, image, request: ProbeRequest, methods=()
) -> tuple[Snapshot, SideBySide | None]:
    """The app's run: the probe, or with ``methods`` to compare, :func:`side_by_side_job`
    (whose snapshot is that same probe's). Returns (snapshot, side-by-side maps or None)."""
    if methods:
        compared = side_by_side_job(reporter, loaded, image, request, methods)
        return compared.snapshot, compared
    return probe_job(reporter, loaded, image, request), None


def side_by_side_job(
    reporter: Reporter, loaded, image, request: ProbeRequest, methods
) -> SideBySide:
    """Run ``request``, then every method of ``methods`` on the same image and target.

    A method equal to the request's own reuses its maps; the others rerun the probe with
    only the method changed (no layer recorded). A method that fails is an error sentence,
    not a failed job.
    """
    methods = check_methods(methods)
    if not methods:
        raise HookScopeError("Pick at least one method to show side by side.")
    own = request.cam_method in methods
    steps = len(methods) + (not own)
    first = request.cam_method if own else "probe"
    base = probe_job(_StepReporter(reporter, first, 1, steps), loaded, image, request)
    maps, method_of, notes, errors = {}, {}, {}, {}
    step = 1
    for method in methods:
        snap = base
        if method != request.cam_method:
            step += 1
            sub = _StepReporter(reporter, method, step, steps)
            snap = probe_job(sub, loaded, image, request.replace(cam_method=method, layers=()))
        for layer, m in snap.cams.items():
            key = pane_key(method, layer, len(snap.cams))
            maps[key], method_of[key] = m, method
        notes[method] = tuple(snap.cam_notes)
        if snap.cam_error:
            errors[method] = snap.cam_error
        elif not snap.cams:  # a CAM without a ticked CAM layer
            errors[method] = "no map: tick a layer in the CAM layers list."
    return SideBySide(base, methods, maps, method_of, notes, errors)


def side_by_side_figure(result: SideBySide, cmap: str, alpha: float = 0.5) -> list[Panel]:
    """The input and one overlay per pane, titled ``method · target``; the bar on the last.

    What the CAM dock shows in Side by side and what its Save writes.
    """
    snap = result.snapshot
    panels, _ = cam_panels(
        snap.input_image, result.maps, target=cam_target(snap), cmap=cmap, alpha=alpha
    )
    bar = ColorBar(cmap, 0.0, 1.0, "map")
    return [*panels[:-1], panels[-1]._replace(bar=bar)]


def read_choices(data: dict, blocks: list[str]) -> tuple[dict, list[str]]:
    """A session's Transformer-group and Side-by-side choices, checked against this model.

    Args:
        data: ``{"blocks": [...], "method_params": {...}, "side_by_side": [...]}`` as saved
            (data from a file: every entry is checked).
        blocks: The blocks this model's transformer methods can read (empty: none).

    Returns:
        ``({"blocks", "params", "compare"}, notes)``: what to restore, and one sentence per
        entry that was dropped.
    """
    notes: list[str] = []
    wanted = _as_list(data.get("blocks"))
    kept_blocks = [b for b in wanted if isinstance(b, str) and b in blocks]
    if len(kept_blocks) != len(wanted) or wanted is not data.get("blocks", wanted):
        notes.append("The session's transformer blocks that this model lacks were dropped.")
    params = {}
    raw = data.get("method_params") or {}
    for name, value in raw.items() if isinstance(raw, dict) else ():
        param = _transformer_param(name)
        if param is not None and _fits(param, value):
            params[name] = value
        else:
            notes.append(f"The session's method option {name}={value!r:.40} was dropped.")
    compare = []
    if not isinstance(data.get("side_by_side", []), list):
        notes.append("The session's side-by-side entry is not a list of methods; it was dropped.")
    for m in _as_list(data.get("side_by_side")):
        usable = isinstance(m, str) and m in choices(bool(blocks))
        compare += [m] if usable else []
        if not usable:
            notes.append(f"The session's side-by-side method {m!r:.40} is not available here.")
    return {"blocks": kept_blocks, "params": params, "compare": compare}, notes


def _as_list(value) -> list:
    """``value`` when it is a list; anything else (a string, a number) is no list: empty."""
    return value if isinstance(value, list) else []


def _transformer_param(name):
    """The transformer methods' option called ``name`` (a registry Param), or None."""
    for method in explainers.names(explainers.TRANSFORMER):
        for p in explainers.get(method).params:
            if p.name == name:
                return p
    return None


def _fits(param, value) -> bool:
    if param.choices:
        return value in param.choices
    if param.type is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, param.type) and not isinstance(value, bool)
