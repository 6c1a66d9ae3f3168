"""Concepts and restricted maps of the app's current image (the CAM dock's concept stack).

``concept_view_job(reporter, loaded, image, spec, layer, ...)`` runs one forward and one
backward of the current image and gives, for the layer:

- with a concept set (a scan folder's ``concepts.json``, :mod:`core.io.concept_outputs`):
  each concept's map ``U_k`` (where it is: the NMF coefficients of every grid position, with
  the folder's directions and shift) and its importance for the target,
  ``importance_k = Σ_p U_k(p) · (w_k · ∂y/∂A(p))`` with y the class's centred logit
  ``z_t − mean_j z_j``, as the concepts job scores them (:mod:`core.experiments.concepts`);
  the importances plus the residual's share add up to ``Σ_p A(p) · ∂y/∂A(p)``;
- with a restriction (a clicked channel or concept): the CAM map restricted to it
  (:mod:`core.methods.conditional`, CRP-style).

``find_concepts_job`` is the Dataset dock's *Find concepts…*: the concepts job on a finished
scan, then ``report.html`` again (with the concepts) and the folder remembered for the layer.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.concepts import centred_score
from hookscope.core.io.concept_outputs import ConceptSet, read_concepts
from hookscope.core.loading.images import to_tensor
from hookscope.core.methods.cam import NEGLIGIBLE
from hookscope.core.methods.conditional import (
    channel_maps,
    concept_maps,
    layer_pass,
    to_input,
)
from hookscope.core.reporting import Reporter, per_batch

NOT_WEIGHTED = frozenset({"eigencam"})
"""CAM methods without a per-channel map: restricted maps use gradcam instead."""


@dataclass(frozen=True)
class ConceptView:
    """The concepts and the restricted map of one image at one layer.

    Attributes:
        layer, method: The layer and the CAM method of the restricted map.
        target: The explained class index (None for another kind of target).
        score: The target score y.
        total: Σ_p A(p) · ∂y/∂A(p) (= y − bias for a pool + linear head); y is the centred
            logit when there are concepts (their importances' score), else the target score.
        importance: (K,) each concept's importance (empty without concepts).
        residual: total − Σ_k importance_k (the NMF residual's and the shift's share).
        maps: (K, H, W) float32, each concept's amount U_k at the input's size, divided by the
            largest amount of any concept (so a weak concept looks weak).
        restricted: The restricted map (H, W) in [0, 1] (ReLU, min-max), or None.
        restricted_sum: Σ_p of the restricted map before the ReLU, at the layer's grid.
        restricted_label: What it is restricted to, e.g. ``"channel 12"``.
        cam_sum: Σ_p of the method's whole map before the ReLU, for the restricted map's score
            (the restricted sums over all channels add up to it).
        folder: The concepts' scan folder, or None.
        notes: What the view had to change (another method, edits left out).
    """

    layer: str
    method: str
    target: int | None
    score: float
    total: float
    importance: np.ndarray
    residual: float
    maps: np.ndarray
    restricted: np.ndarray | None = None
    restricted_sum: float = 0.0
    restricted_label: str = ""
    cam_sum: float = 0.0
    folder: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def share(self) -> np.ndarray:
        """Each concept's importance as a share of ``total`` (NaN when the total is 0)."""
        if not len(self.importance) or self.total == 0:
            return np.full(len(self.importance), np.nan)
        return self.importance / self.total


def coefficients(concepts: ConceptSet, acts: np.ndarray) -> np.ndarray:
    """U (K, h, w): each concept's NMF coefficients at every position of ``acts`` (C, h, w),
    with the folder's directions and shift (scikit-learn's ``NMF.transform``, as the job)."""
    from sklearn.decomposition import NMF

    k, c = concepts.directions.shape
    if acts.shape[0] != c:
        raise HookScopeError(
            f"The concepts in {concepts.folder} were found for {c} channels, but layer "
            f"{concepts.layer} has {acts.shape[0]} here; find the concepts again."
        )
    nmf = NMF(n_components=k, init="nndsvda", max_iter=400, random_state=0)
    nmf.components_ = concepts.directions
    nmf.n_components_, nmf.n_features_in_ = k, c
    pos = acts.transpose(1, 2, 0).reshape(-1, c) + concepts.shift
    u = nmf.transform(np.maximum(pos, 0).astype(np.float32))
    return u.reshape(*acts.shape[1:], k).transpose(2, 0, 1)


def concept_view_job(
    reporter: Reporter,
    loaded,
    image,
    spec,
    layer: str,
    *,
    method: str = "gradcam",
    target=None,
    concepts: ConceptSet | None = None,
    restrict: tuple[str, int] | None = None,
) -> ConceptView:
    """Concept maps and importances of ``image`` at ``layer``, and the map restricted to
    ``restrict`` (``("channel", c)`` or ``("concept", k)``); see the module docstring.

    Raises:
        HookScopeError: A concept restriction without concepts, channels that do not match.
    """
    if restrict is not None and restrict[0] == "concept" and concepts is None:
        raise HookScopeError("No concepts for this layer: Dataset ▸ Find concepts… first.")
    notes = []
    use = method
    if method in NOT_WEIGHTED:
        use = "gradcam"
        notes.append(f"{method} has no per-channel map: the restricted map is gradcam's.")
    x = to_tensor(image, spec or loaded.input_spec)
    reporter.progress(0, 0, f"Concepts of {layer}…")
    with reporter.batch():
        p = layer_pass(loaded.model, x, layer, use, target, class_names=loaded.class_names)
        pc = p  # the pass the importances come from
        if concepts is not None and isinstance(p.target, int):
            # as the concepts job: importance for the centred logit z_t − mean_j z_j
            pc = layer_pass(loaded.model, x, layer, use, centred_score(p.target))
        grads = pc.grads
        if grads is None:  # a perturbation method: one more pass for ∂y/∂A
            grads = layer_pass(loaded.model, x, layer, "hirescam", pc.target).grads
    a, g = p.acts.astype(np.float64), grads.astype(np.float64)
    total = float((a * g).sum())
    importance, maps, u = np.zeros(0), np.zeros((0, *p.input_size), np.float32), None
    if concepts is not None:
        u = coefficients(concepts, p.acts)
        importance = (u * np.einsum("kc,chw->khw", concepts.directions, g)).sum((1, 2))
        top = float(u.max()) if u.size else 0.0
        maps = np.stack([to_input(m, p.input_size, top) for m in u]) if len(u) else maps
    restricted, label, rsum, base = None, "", 0.0, p
    if restrict is not None:
        restricted, label, rsum, base = _restricted(p, pc, u, concepts, restrict, notes)
    return ConceptView(
        layer=layer,
        method=use,
        target=p.target if isinstance(p.target, int) else None,
        score=p.score,
        total=total,
        importance=importance,
        residual=total - float(importance.sum()),
        maps=maps,
        restricted=restricted,
        restricted_sum=rsum,
        restricted_label=label,
        cam_sum=float(base.cam.astype(np.float64).sum()),
        folder=concepts.folder if concepts is not None else None,
        notes=tuple(notes),
    )


def _restricted(p, pc, u, concepts, restrict, notes: list):
    """``(map in [0, 1], label, Σ before the ReLU, the pass it belongs to)`` of a restriction;
    a zero or rounding-noise map adds a note (a finding, not a dark picture)."""
    kind, idx = restrict[0], int(restrict[1])
    if kind == "channel":
        m = channel_maps(p, [idx])[0]
    elif u is not None and 0 <= idx < len(u):
        m = concept_maps(pc, u[idx : idx + 1], concepts.directions[idx : idx + 1])[0]
    else:
        raise HookScopeError(f"There is no concept {idx}: the folder has {len(u)}.")
    # a concept's map is of the concepts' score (pc), so its share is of pc's map
    base = pc if kind == "concept" else p
    restricted, label, rsum = to_input(m, p.input_size), f"{kind} {idx}", float(m.sum())
    terms = float(np.abs(base.field * base.acts).sum())
    if terms <= NEGLIGIBLE * abs(base.score):  # as compute_cam: rounding noise, not a map
        restricted = np.zeros_like(restricted)
        notes.append(
            f"Layer {p.layer} barely feeds the target (Σ|α·A| = {terms:.2g} against a score "
            f"of {base.score:.3g}): its restricted maps are rounding noise, shown as 0."
        )
    elif not restricted.any():
        notes.append(
            f"The map restricted to {label} is 0 after the ReLU: it does not raise the score "
            f"anywhere here (its sum is {rsum:.3g})."
        )
    return restricted, label, rsum, base


# -- which folder holds the concepts of a model's layer -----------------------------------------
_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model → {layer: scan folder with its concepts, the latest found or opened}."""


def remember_concepts(model, folder: str | Path) -> ConceptSet | None:
    """Note that the scan in ``folder`` holds concepts of ``model`` (for its layer); returns
    them, or None when the folder has none or ``model`` has no such layer."""
    concepts = read_concepts(folder)
    if concepts is None or model is None:
        return None
    if concepts.layer not in dict(model.named_modules()):
        return None
    try:
        _KNOWN.setdefault(model, {})[concepts.layer] = concepts
    except TypeError:  # not weak-referenceable
        return None
    return concepts


def forget_concepts(model) -> None:
    """Drop what :func:`remember_concepts` noted for ``model`` (e.g. a test's shared model)."""
    try:
        _KNOWN.pop(model, None)
    except TypeError:
        pass


def concepts_for(model, layer: str | None) -> ConceptSet | None:
    """The concepts of ``model``'s ``layer`` found or opened in this process, or None."""
    if model is None or not layer:
        return None
    try:
        return _KNOWN.get(model, {}).get(layer)
    except TypeError:
        return None


@per_batch
def find_concepts_job(
    reporter: Reporter, loaded, folder, k="auto", *, colormap="viridis", cluster_colors=None
):
    """The concepts job on the finished scan in ``folder``, then its report again (with the
    concepts per cluster, ``colormap`` and ``cluster_colors`` as the scan's); remembers the
    folder for the model's layer (:func:`concepts_for`).

    Returns:
        The :class:`~core.jobs.concepts.ConceptsSummary`.
    """
    from functools import partial

    from hookscope.core.display.colormaps import check_colormap, colorize
    from hookscope.core.engine.guard import state_checksum
    from hookscope.core.io.scan_outputs import open_scan
    from hookscope.core.io.scan_report import write_report
    from hookscope.core.jobs.concepts import concepts_job

    paint = partial(colorize, cmap=check_colormap(colormap))
    ident = open_scan(folder).settings.get("identity", {})
    made = ident.get("weights_sha256")
    if made and made != state_checksum(loaded.model):
        raise HookScopeError(
            f"The scan in {folder} was made with other weights ({ident.get('model')}); load "
            "that model to find its concepts, or scan again with this one."
        )
    summary = concepts_job(reporter, loaded, folder, k)
    reporter.progress(1, 1, "Writing the report")
    write_report(open_scan(folder), colorize=paint, cluster_colors=cluster_colors)
    remember_concepts(loaded.model, folder)
    return summary
