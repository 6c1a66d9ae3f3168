"""Snapshot: one probe's results as frozen numpy data, ready for a view that never sees tensors.

Built in the worker thread from a :class:`~core.engine.probe.ProbeResult` (and CAM maps), so the GUI
only draws arrays and never runs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hookscope.core.engine.layouts import NHWC, TOKENS, Layout, ModelLayouts
from hookscope.core.engine.outputs import OutputKind, Prediction
from hookscope.core.engine.probe import ProbeResult, tensor_stats
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_display
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Note, as_note


@dataclass(frozen=True)
class LayerCall:
    """One call of one hooked layer, first sample only.

    Attributes:
        layer: Qualified module name.
        call: 0-based call index (a module may run several times per forward).
        part: Name of the main output part (``""`` for a plain tensor).
        shapes: Output part name → full shape (batch included).
        activation: Main output without the batch dim, float32: (C, h, w) for feature maps,
            (K,) for vectors, other ranks kept as they are.
        gradient: Gradient wrt that output, same shape, or None.
        stats: ``{"activation": {...}, "gradient": {...} or None}`` from ``tensor_stats``.
        parts: Every output part (``"output"`` for a plain tensor) → ``{"shape": [...],
            "activation": stats, "gradient": stats or None}``: what ``probe`` prints.
    """

    layer: str
    call: int
    part: str
    shapes: dict[str, tuple[int, ...]]
    activation: np.ndarray
    gradient: np.ndarray | None
    stats: dict[str, dict[str, float] | None]
    parts: dict[str, dict] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        """True for a (C, h, w) feature map."""
        return self.activation.ndim == 3


@dataclass(frozen=True)
class Snapshot:
    """Everything the docks show after one run.

    Attributes:
        model_name: Display name of the model.
        topk: ``(class_index, class_name or None, prob)``, best first.
        target: Explained class index (None for a callable target).
        target_name: Its name, if known.
        probs: Class probabilities of the first sample, (K,) float32.
        layers: Layer name → its calls, in the order the layers were asked for.
        param_grad_norms: Layer → L2 norm of its parameter gradient (None if frozen).
        input_image: The model input as the model saw it, uint8 (H, W, 3).
        input_grad: Gradient of the target score wrt the input (C, H, W), or None.
        input_grad_norm: L2 norm of the whole input gradient (batch included), or None.
        kind: What the model outputs (``kind.kind``: ``classes``, ``dense``, ``detections``,
            ``embedding``), or None.
        predictions: What the Predictions dock lists for the kind: top-k classes (prob),
            classes by pixel share (dense), every detection with its box in input pixels
            (``Prediction.target_text(kind)`` gives ``box:i``); empty for an embedding.
        target_text: The explained target in the ``--target`` grammar (``"15"``, ``"box:2"``,
            ``"15@mask.png"``, ``"similar:ref.jpg"``).
        target_label: One phrase naming it, for titles ("detection 2 (class 62)").
        mask: Dense outputs: predicted class per pixel, int64 (h, w) at the output's size
            (resize with nearest to overlay it on ``input_image``), else None.
        embedding: Embedding outputs: the first sample's embedding (D,) float32, else None.
        target_score: The explained score of the first sample (cosine similarity for
            ``similar:IMAGE``), or None.
        cam_layouts: CAM layer → the layout its output was read with, e.g. ``"tokens:1 14x14"``.
        cams: CAM layer → map (H, W) float32 in [0, 1] at the input size.
        cam_method: Name of the CAM method used (None when no CAM ran).
        input_spec: The input spec used for preprocessing.
        seconds: Wall time of the whole job (probe + CAM + conversion).
        probe_seconds: Wall time of forward + backward only.
        notes: Things the user should know, each a :class:`~core.reporting.Note` (a sentence
            with a ``kind``: ``flat-map``, ``cam-error``, ``target``, ``info``).
        cam_error: Why the CAM failed (no maps; the probe's numbers are still good), or None.
        resolved_target: The target as the probe resolved it (class index or ScoreTarget):
            a click or another method reuses it without a second pass.
    """

    model_name: str
    topk: list[tuple[int, str | None, float]]
    target: int | None
    target_name: str | None
    probs: np.ndarray
    layers: dict[str, list[LayerCall]]
    param_grad_norms: dict[str, float | None]
    input_image: np.ndarray
    input_grad: np.ndarray | None
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    cam_method: str | None = None
    input_spec: InputSpec = field(default_factory=InputSpec)
    seconds: float = 0.0
    probe_seconds: float = 0.0
    notes: tuple[str, ...] = ()
    input_grad_norm: float | None = None
    kind: OutputKind | None = None
    predictions: tuple[Prediction, ...] = ()
    target_text: str = ""
    target_label: str = ""
    mask: np.ndarray | None = None
    embedding: np.ndarray | None = None
    cam_layouts: dict[str, str] = field(default_factory=dict)
    target_score: float | None = None
    cam_error: str | None = None
    resolved_target: Any = None

    @property
    def cam_notes(self) -> tuple[Note, ...]:
        """The notes about the CAM: flat or zero maps, and why it failed."""
        return tuple(n for n in self.notes if getattr(n, "kind", "") in ("flat-map", "cam-error"))

    def call(self, layer: str, call: int = 0) -> LayerCall | None:
        """The given call of ``layer``, or None when it was not recorded."""
        calls = self.layers.get(layer) or []
        return calls[call] if 0 <= call < len(calls) else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat name → array dict of the raw data (for an NPZ export)."""
        out: dict[str, np.ndarray] = {
            "probs": self.probs,
            "input_image": self.input_image,
        }
        if self.input_grad is not None:
            out["input_grad"] = self.input_grad
        for layer, calls in self.layers.items():
            for c in calls:
                key = f"{layer}/call{c.call}"
                out[f"{key}/activation"] = c.activation
                if c.gradient is not None:
                    out[f"{key}/gradient"] = c.gradient
        for layer, cam in self.cams.items():
            out[f"{layer}/cam"] = cam
        return out


def _sample(t: torch.Tensor | None) -> np.ndarray | None:
    """First sample of a batched tensor as float32 numpy (scalars and 1-D kept whole)."""
    if t is None:
        return None
    t = t.detach().float().cpu()
    if t.dim() >= 2:
        t = t[0]
    return np.ascontiguousarray(t.numpy(), dtype=np.float32)


def _as_grid(t: torch.Tensor | None, layout: Layout | None) -> torch.Tensor | None:
    """Channels-last and token outputs as (N, C, h, w), as the layout reader knows them.

    A ViT block's (1, 197, 384) is 384 channels over a 14×14 grid (plus a class token),
    not one 197×384 picture. Another shape than the dry run's (another call) stays as it is.
    """
    if t is None or layout is None or layout.kind not in (NHWC, TOKENS) or t.dim() < 3:
        return t
    try:
        return layout.to_grid(t)
    except (RuntimeError, ValueError, HookScopeError):
        return t


def layer_calls(
    result: ProbeResult, layouts: ModelLayouts | None = None
) -> dict[str, list[LayerCall]]:
    """Convert the probe's records to :class:`LayerCall` lists.

    With ``layouts`` (the dry run's), channels-last and token outputs become (C, h, w) maps.
    """
    out: dict[str, list[LayerCall]] = {}
    for name, recs in result.records.items():
        calls = []
        layout = layouts.layouts.get(name) if layouts is not None else None
        known = layouts.shapes.get(name) if layouts is not None else None
        for rec in recs:
            part = next(iter(rec.outputs), "")
            main = rec.outputs.get(part)
            grad = rec.grads.get(part)
            if main is not None and known is not None and tuple(main.shape[1:]) == known[1:]:
                main, grad = _as_grid(main, layout), _as_grid(grad, layout)
            act = _sample(main) if main is not None else np.zeros((0,), np.float32)
            parts = {}
            for key, t in rec.outputs.items():
                g = rec.grads.get(key)
                parts[key or "output"] = {
                    "shape": list(t.shape),
                    "activation": tensor_stats(t),
                    "gradient": tensor_stats(g) if g is not None else None,
                }
            main_stats = parts.get(part or "output", {})
            calls.append(
                LayerCall(
                    layer=name,
                    call=rec.call,
                    part=part,
                    shapes={k: tuple(v.shape) for k, v in rec.outputs.items()},
                    activation=act,
                    gradient=_sample(grad),
                    stats={
                        "activation": main_stats.get("activation"),
                        "gradient": main_stats.get("gradient"),
                    },
                    parts=parts,
                )
            )
        out[name] = calls
    return out


def make_snapshot(
    result: ProbeResult,
    x: torch.Tensor,
    spec: InputSpec,
    *,
    model_name: str = "",
    cams: dict[str, np.ndarray] | None = None,
    cam_method: str | None = None,
    seconds: float | None = None,
    notes: tuple[str, ...] = (),
    cam_error: str | None = None,
    layouts: ModelLayouts | None = None,
) -> Snapshot:
    """Turn a probe result (and optional CAM maps) into a :class:`Snapshot`.

    Plain-string notes become ``info`` notes (the probe's), ``notes`` keep their kinds.
    """
    return Snapshot(
        model_name=model_name,
        topk=list(result.topk),
        target=result.target,
        target_name=result.target_name,
        probs=result.probs[0].detach().float().cpu().numpy().astype(np.float32),
        layers=layer_calls(result, layouts),
        param_grad_norms=dict(result.param_grad_norms),
        input_image=to_display(x, spec),
        input_grad=_sample(result.input_grad),
        cams={k: np.asarray(v, dtype=np.float32) for k, v in (cams or {}).items()},
        cam_method=cam_method if cams else None,
        input_spec=spec,
        seconds=result.seconds if seconds is None else seconds,
        probe_seconds=result.seconds,
        notes=tuple(as_note(n) for n in (*result.notes, *notes)),
        input_grad_norm=None if result.input_grad is None else float(result.input_grad.norm()),
        kind=result.kind,
        predictions=tuple(result.predictions),
        target_text=result.target_text,
        target_label=result.target_label,
        mask=None if result.mask is None else result.mask.numpy().astype(np.int64),
        embedding=None if result.embedding is None else result.embedding.numpy(),
        cam_layouts={k: str(v) for k, v in getattr(cams, "layouts", {}).items()},
        target_score=result.target_score,
        cam_error=cam_error,
        resolved_target=getattr(result, "resolved_target", None),
    )
