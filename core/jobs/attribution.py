"""Attribution runs for the Attribution dock: a plain job function and its numpy result.

Kept beside ``core.jobs`` (same ``fn(reporter, ...)`` shape) so the worker can run it; the
result holds numpy only, so the GUI never sees tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from hookscope.core.display.render import attribution_heat, attribution_map
from hookscope.core.engine.outputs import CLASSES, output_kind
from hookscope.core.engine.probe import eval_mode, model_device
from hookscope.core.engine.targets import class_name, describe_target, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_display, to_tensor
from hookscope.core.methods.attribution import ATTRIBUTION_METHODS, attribute
from hookscope.core.reporting import Reporter


def attribution_params(method: str) -> tuple:
    """The options of an attribution method (``core.methods.attribution.Param`` records).

    They come from the registry, so the GUI form, the CLI and the method never disagree.
    """

    return tuple(ATTRIBUTION_METHODS[method].params)


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


def attribution_job(
    reporter: Reporter, loaded, image, method: str, params=None, target=None, *, spec=None
) -> AttributionResult:
    """Run one attribution method on an image (in the worker thread).

    Args:
        reporter: Progress and cancel (passed to the method when it takes one).
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        method: A key of ``core.methods.attribution.ATTRIBUTION_METHODS``.
        params: Keyword parameters for the method (see :func:`attribution_params`).
        target: None (top-1), class index or name.
        spec: Input spec overriding ``loaded.input_spec``.
    """
    if method not in ATTRIBUTION_METHODS:
        raise HookScopeError(
            f"Unknown attribution method '{method}': use one of {', '.join(ATTRIBUTION_METHODS)}."
        )
    start = time.perf_counter()
    spec = spec or loaded.input_spec
    reporter.progress(0, 1, f"{method}…")
    x = to_tensor(image, spec)
    # Resolve top-1 / names once here so the result can say which class it explains.
    with torch.no_grad(), eval_mode(loaded.model):
        output = loaded.model(x.to(model_device(loaded.model)))
    # The whole output, so box:i, C@mask.png and similar:IMAGE resolve as in the probe.
    kind = output_kind(output, loaded.class_names, loaded.model)
    resolved = resolve_target(
        target, output, loaded.class_names, model=loaded.model, spec=spec, kind=kind
    )
    logits = logits_of(output) if kind.kind == CLASSES else None
    entry = ATTRIBUTION_METHODS[method]
    known = {p.name for p in entry.params}
    kwargs = {k: v for k, v in dict(params or {}).items() if k in known}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}  # None = the method's default
    reporter.check()
    out = attribute(
        method,
        loaded.model,
        x,
        resolved,
        class_names=loaded.class_names,
        spec=spec,
        reporter=reporter,
        **kwargs,
    )
    if isinstance(out, dict):  # e.g. {"attribution": ..., ...}
        out = next(iter(out.values()))
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    attr = np.asarray(out, dtype=np.float32)
    if attr.ndim == 4:
        attr = attr[0]
    reporter.progress(1, 1, "Done")
    index = resolved if isinstance(resolved, int) else None
    prob = None
    if index is not None and logits is not None:  # class scores only: never softmax a map
        prob = float(torch.softmax(logits[0].float(), 0)[index])
    return AttributionResult(
        method=method,
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
        target_label=describe_target(resolved, loaded.class_names),
    )
