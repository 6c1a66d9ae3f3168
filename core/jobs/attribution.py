"""Attribution runs for the Attribution dock: a plain job function and its numpy result.

Kept beside ``core.jobs`` (same ``fn(reporter, ...)`` shape) so the worker can run it; the
result holds numpy only, so the GUI never sees tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hookscope.core.display.render import attribution_heat, attribution_map
from hookscope.core.engine.targets import class_name, describe_target
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_display, to_tensor
from hookscope.core.methods.explainers import ATTRIBUTION, EXPLAINERS, explain, get
from hookscope.core.reporting import Reporter

METHODS = tuple(k for k, r in EXPLAINERS.items() if r.kind == ATTRIBUTION)
"""The attribution methods of the explainer registry, in its order."""


def attribution_params(method: str) -> tuple:
    """The options of an attribution method (``core.methods.attribution.Param`` records).

    They come from the registry, so the GUI form, the CLI and the method never disagree.
    """

    return tuple(get(method).params)


@dataclass(frozen=True)
class AttributionResult:
    """One attribution run as numpy data (the GUI never sees tensors).

    Attributes:
        method: Key of ``core.methods.attribution.ATTRIBUTION_METHODS``.
        params: The parameters used.
        target: Explained class index (None for a callable target).
        target_name: Its name, if known.
        attribution: Raw attribution (C, H, W) float32 (or (H, W) for map-only methods).
        input_image: The model input as the model saw it, uint8 (H, W, 3).
        signed: Whether the sign of the attribution matters.
        title: Display name of the method.
        seconds: Wall time.
        map2d: The (H, W) map the app shows and the CLI saves as ``map``
            (``core.display.render.attribution_map``).
        heat: |attribution| in [0, 1] (``core.display.render.attribution_heat``).
        target_prob: Softmax probability of the target class (None without class scores).
        target_label: One phrase naming the target ("class 3 (cat)", "detection 2 (dog)").
        map01: The registry's (H, W) map in [0, 1] (``core.methods.explainers``: the channel
            sum of |attribution|, min-max), what Trust and the Python API score and show.
    """

    method: str
    params: dict
    target: int | None
    target_name: str | None
    attribution: np.ndarray
    input_image: np.ndarray
    signed: bool = True
    title: str = ""
    seconds: float = 0.0
    map2d: np.ndarray | None = None
    heat: np.ndarray | None = None
    target_prob: float | None = None
    target_label: str = ""
    map01: np.ndarray | None = None


def attribution_job(
    reporter: Reporter, loaded, image, method: str, params=None, target=None, *, spec=None
) -> AttributionResult:
    """Run one attribution method on an image (in the worker thread).

    Args:
        reporter: Progress and cancel (passed to the method when it takes one).
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        method: An attribution of the explainer registry (:data:`METHODS`).
        params: Keyword parameters for the method (see :func:`attribution_params`).
        target: None (top-1), class index or name.
        spec: Input spec overriding ``loaded.input_spec``.
    """
    entry = get(method)
    if entry.kind != ATTRIBUTION:
        raise HookScopeError(
            f"{method} is not an attribution method: use one of {', '.join(METHODS)}."
        )
    start = time.perf_counter()
    spec = spec or loaded.input_spec
    reporter.progress(0, 1, f"{entry.name}…")
    x = to_tensor(image, spec)
    known = {p.name for p in entry.params}
    kwargs = {k: v for k, v in dict(params or {}).items() if k in known}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}  # None = the method's default
    reporter.check()
    # The registry resolves the target on the whole output (box:i, C@mask.png, similar:IMAGE
    # as in the probe) and gives the probabilities of class scores.
    e = explain(
        loaded.model,
        x,
        entry.name,
        target=target,
        class_names=loaded.class_names,
        input_spec=spec,
        reporter=reporter,
        probs=True,
        **kwargs,
    )
    attr = e.raw
    reporter.progress(1, 1, "Done")
    index = e.target if isinstance(e.target, int) else None
    prob = None
    if index is not None and e.probs is not None:  # class scores only: never softmax a map
        prob = float(e.probs[index])
    return AttributionResult(
        method=entry.name,
        params=kwargs,
        signed=entry.signed,
        title=entry.title,
        target=index,
        target_name=class_name(index, loaded.class_names) if index is not None else None,
        attribution=np.ascontiguousarray(attr),
        input_image=to_display(x, spec),
        seconds=time.perf_counter() - start,
        map2d=attribution_map(attr, entry.signed),
        heat=attribution_heat(attr),
        target_prob=prob,
        target_label=describe_target(e.target, loaded.class_names),
        map01=e.map,
    )
