"""Jobs for the experiment docks: channel importance, sanity check, before / after predictions.

Same ``fn(reporter, ...)`` shape as ``core.jobs`` so the GUI worker runs them off the UI
thread; results are frozen dataclasses of numpy data, so the docks never see tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from hookscope.core.engine.guard import state_checksum
from hookscope.core.engine.targets import class_name
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.compare import before_after
from hookscope.core.experiments.importance import channel_importance
from hookscope.core.experiments.sanity import cascading_randomization
from hookscope.core.loading.images import to_tensor
from hookscope.core.methods.explainers import CAM, get
from hookscope.core.reporting import Reporter, per_batch


@dataclass(frozen=True)
class SanityReport:
    """A cascading randomisation and the proof that the real weights came back.

    Attributes:
        result: The :class:`~core.experiments.sanity.SanityResult` (numpy maps and correlations).
        methods: Method names in plot order.
        checksum_before: ``core.engine.guard.state_checksum`` before the run.
        checksum_after: The same after it (equal when the weights were restored).
        target_name: Name of the explained class, if known.
    """

    result: object
    methods: tuple[str, ...]
    checksum_before: str
    checksum_after: str
    target_name: str | None = None

    @property
    def restored(self) -> bool:
        return self.checksum_before == self.checksum_after


@per_batch
def importance_job(
    reporter: Reporter, loaded, image, layer: str, target=None, *, spec=None, batch_size: int = 32
):
    """Rank the channels of ``layer`` by the target-probability drop when each is zeroed.

    Args:
        batch_size: Ablated copies of the input per forward pass.

    Returns:
        A :class:`~core.experiments.importance.ChannelImportance` (numpy arrays only).
    """

    x = to_tensor(image, spec or loaded.input_spec)
    return channel_importance(
        loaded.model,
        x,
        layer,
        target,
        class_names=loaded.class_names,
        batch_size=batch_size,
        reporter=reporter,
    )


@per_batch
def sanity_job(
    reporter: Reporter,
    loaded,
    image,
    methods=("gradcam", "guided-backprop"),
    cam_layer: str | None = None,
    target=None,
    *,
    spec=None,
) -> SanityReport:
    """Cascading weight randomisation for ``methods``; the weights are checked after.

    CAM methods without a ``cam_layer`` are dropped (guided backprop needs none).

    The randomisation runs on a copy of the model (``copy.deepcopy``): its weights stay
    randomised for most of the run, which no per-batch lock could hide from the app's clicks,
    so those run on the real model meanwhile (each map is one ``reporter.batch()``, for the
    cores). A model that cannot be copied is randomised in place, holding it for the whole run.
    """

    methods = tuple(m for m in methods if cam_layer or get(m).kind != CAM)
    if not methods:
        raise HookScopeError("The sanity check needs a CAM layer: tick a feature-map layer.")
    x = to_tensor(image, spec or loaded.input_spec)
    with reporter.batch():
        before = state_checksum(loaded.model)
        try:
            model = copy.deepcopy(loaded.model)
        except Exception:  # an uncopyable module (a handle, a lock): randomise the real one
            model = None

    def run(on):
        return cascading_randomization(
            on,
            x,
            methods=methods,
            cam_layer=cam_layer,
            target=target,
            class_names=loaded.class_names,
            keep_maps=False,
            reporter=reporter,
        )

    try:
        if model is not None:
            result = run(model)
        else:
            with reporter.batch():  # one batch: the whole run
                result = run(loaded.model)
    finally:
        with reporter.batch():
            after = state_checksum(loaded.model)
    return SanityReport(
        result=result,
        methods=tuple(result.correlations),
        checksum_before=before,
        checksum_after=after,
        target_name=class_name(result.target, loaded.class_names),
    )


@dataclass(frozen=True)
class BeforeAfterResult:
    """Predictions before and after an image edit (numpy / plain data only).

    Attributes:
        before, after: Top-k lists ``(class_index, class_name or None, prob)``.
        classes: :class:`~core.experiments.compare.ClassDelta` for the union of both lists.
        edit: The image edit dict that was applied.
    """

    before: list
    after: list
    classes: list
    edit: dict


def before_after_job(
    reporter: Reporter, loaded, image_before, image_after, edit: dict, *, spec=None, k: int = 5
) -> BeforeAfterResult:
    """Top-k of an image before and after an edit (one forward each, no gradients)."""

    spec = spec or loaded.input_spec
    reporter.progress(0, 1, "Predicting before and after…")
    ba = before_after(
        loaded.model,
        to_tensor(image_before, spec),
        to_tensor(image_after, spec),
        k=k,
        class_names=loaded.class_names,
    )
    reporter.progress(1, 1, "Done")
    return BeforeAfterResult(list(ba.before), list(ba.after), list(ba.classes), dict(edit))


def channel_mean(a: np.ndarray | None) -> np.ndarray | None:
    """A (C, h, w) map averaged over channels; 2-D kept; anything else None (for the views)."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3:
        return a.mean(0)
    return a if a.ndim == 2 else None
