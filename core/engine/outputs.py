"""What a model outputs: class scores, dense per-pixel scores, detections or an embedding.

The kind decides what a target means, what the Predictions list shows and what is never done
(a dense output is never flattened into K·H·W classes, an embedding is never softmaxed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hookscope.core.engine.context import main_tensor
from hookscope.core.engine.context import output_field as _field
from hookscope.core.errors import HookScopeError

CLASSES, DENSE, DETECTIONS, EMBEDDING = "classes", "dense", "detections", "embedding"
KINDS = (CLASSES, DENSE, DETECTIONS, EMBEDDING)

# ModelOutput fields that hold an embedding, most specific first.
EMBEDDING_FIELDS = ("image_embeds", "embeddings", "embedding", "pooler_output", "text_embeds")


@dataclass(frozen=True)
class OutputKind:
    """What kind of output a model gives.

    Attributes:
        kind: One of :data:`KINDS`.
        shape: Shape of the main tensor: (N, K) class scores, (N, K, H, W) dense scores,
            (N, D) embedding; for detections ``(N, boxes of the first image)``.
        field: Where the main tensor sits in the output (``""`` for a plain tensor,
            ``"logits"``, ``"out"``, ``"image_embeds"``..., ``"scores"`` for detections).
        note: One sentence when the kind was a guess (and how to choose), else None.
        scoring: For set-prediction detectors (DETR's ``logits`` + ``pred_boxes``):
            ``softmax`` (the last class is "no object") or ``sigmoid`` (Conditional and
            Deformable DETR); empty otherwise.
    """

    kind: str
    shape: tuple[int, ...]
    field: str = ""
    note: str | None = None
    scoring: str = ""

    @property
    def num_classes(self) -> int | None:
        """K for class scores and dense outputs, else None."""
        return self.shape[1] if self.kind in (CLASSES, DENSE) and len(self.shape) > 1 else None


def is_detections(output: Any) -> bool:
    """True for detections: a list of per-image dicts with ``boxes``, ``labels`` and
    ``scores`` (torchvision), or a set prediction with ``logits`` (N, Q, K) and
    ``pred_boxes`` (N, Q, 4) (Hugging Face DETR and its kin)."""
    if _set_prediction(output) is not None:
        return True
    return (
        isinstance(output, (list, tuple))
        and len(output) > 0
        and all(isinstance(o, Mapping) and "boxes" in o and "scores" in o for o in output)
    )


def _set_prediction(output: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(logits, pred_boxes)`` of a DETR-style output, else None."""
    if isinstance(output, torch.Tensor) or isinstance(output, (list, tuple)):
        return None
    logits, boxes = _field(output, "logits"), _field(output, "pred_boxes")
    if logits is None or boxes is None or logits.dim() != 3 or boxes.dim() != 3:
        return None
    if boxes.shape[-1] != 4 or logits.shape[:2] != boxes.shape[:2]:
        return None
    return logits, boxes


def _scoring(logits: torch.Tensor, class_names, model) -> tuple[str, str | None]:
    """Softmax with a "no object" class (DETR) or sigmoid (Conditional/Deformable DETR)."""
    k = int(logits.shape[-1])
    config = getattr(model, "config", None)
    n = getattr(config, "num_labels", None) if config is not None else None
    n = n if isinstance(n, int) else (len(class_names) if class_names else None)
    if n is not None and k == n:
        return "sigmoid", None
    if n is not None and k == n + 1:
        return "softmax", None
    return "softmax", (
        f"HookScope reads the model's {k} scores per query as DETR's softmax with a last "
        "no-object class; the model's config would tell (it has no num_labels)."
    )


def detections(output: Any, kind: OutputKind | None = None, size=None) -> list[dict]:
    """Per image a dict of ``boxes`` (x0, y0, x1, y1), ``labels`` and ``scores``.

    torchvision detectors give this already. A DETR-style output is read as its own
    post-processing does: per query the best class that is not "no object" (softmax) or the
    best sigmoid score; queries the model calls no object (softmax: no-object wins; sigmoid:
    best score under 0.5) are left out; most confident first, so ``box:0`` is the surest.
    Scores keep their autograd graph (a ``box:i`` target backpropagates through them).

    Args:
        output: The model output.
        kind: Its :class:`OutputKind` (the scoring rule); None reads it from the output.
        size: (H, W) of the input, to give boxes in input pixels; None leaves DETR's boxes
            normalised to [0, 1].
    """
    pair = _set_prediction(output)
    if pair is None:
        return list(output)
    logits, boxes = pair
    scoring = kind.scoring if kind is not None and kind.scoring else _scoring(logits, None, None)[0]
    if scoring == "sigmoid":
        scores, labels = logits.sigmoid().max(-1)
        keep = scores.detach() >= 0.5
    else:
        scores, labels = logits.softmax(-1)[..., :-1].max(-1)
        keep = logits.detach().argmax(-1) != logits.shape[-1] - 1
    cx, cy, w, h = boxes.detach().float().unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    if size is not None:
        xyxy = xyxy * torch.tensor([size[1], size[0], size[1], size[0]], dtype=xyxy.dtype)
    out = []
    for i in range(logits.shape[0]):
        idx = torch.nonzero(keep[i]).reshape(-1)
        idx = idx[scores[i, idx].detach().argsort(descending=True)]
        out.append({"boxes": xyxy[i, idx], "labels": labels[i, idx], "scores": scores[i, idx]})
    return out


def output_kind(
    output: Any, class_names: Sequence[str] | None = None, model: Any = None
) -> OutputKind:
    """Classify a model output (from the dry run or any forward).

    Args:
        output: What ``model(x)`` returned.
        class_names: The model's class names, if known (a 2-D output with names is scores).
        model: The model, for ``num_classes`` (timm: 0 means a headless embedding model).

    Raises:
        HookScopeError: One sentence when the output is none of the four kinds.
    """
    pair = _set_prediction(output)
    if pair is not None:
        scoring, note = _scoring(pair[0], class_names, model)
        kind = OutputKind(DETECTIONS, (0, 0), "logits", note, scoring)
        dets = detections(output, kind)
        return OutputKind(DETECTIONS, (len(dets), len(dets[0]["scores"])), "logits", note, scoring)
    if is_detections(output):
        return OutputKind(DETECTIONS, (len(output), int(output[0]["scores"].shape[0])), "scores")
    if isinstance(output, torch.Tensor):
        logits, name = output, ""
    else:
        name = next((k for k in ("logits", "out") if _field(output, k) is not None), None)
        logits = _field(output, name) if name else None
    if logits is None:
        for key in EMBEDDING_FIELDS:
            emb = _field(output, key)
            if emb is not None and emb.dim() == 2:
                return OutputKind(EMBEDDING, tuple(emb.shape), key)
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            logits, name = output[0], "0"
        else:
            raise HookScopeError(
                f"The model returned {_describe(output)}, not a tensor of class scores, a "
                "dense map, detections or an embedding; wrap it so forward returns one of those."
            )
    shape = tuple(logits.shape)
    _check_scores(logits)
    if logits.dim() == 4:
        return OutputKind(DENSE, shape, name)
    if logits.dim() == 2:
        n_classes = getattr(model, "num_classes", None)
        if class_names and len(class_names) == shape[1]:
            return OutputKind(CLASSES, shape, name)
        if isinstance(n_classes, int) and n_classes == 0:
            return OutputKind(EMBEDDING, shape, name)
        if isinstance(n_classes, int) and n_classes == shape[1]:
            return OutputKind(CLASSES, shape, name)
        note = (
            f"The output {shape} has no class names, so HookScope reads it as {shape[1]} "
            "class scores; if it is an embedding, explain it with --target similar:IMAGE."
        )
        return OutputKind(CLASSES, shape, name, note)
    raise HookScopeError(
        f"The model outputs a tensor of shape {shape}, which is neither class scores (N, K), "
        "a dense map (N, K, H, W) nor an embedding (N, D); make forward return one of those "
        "or pass a callable target."
    )


def _check_scores(t: torch.Tensor) -> None:
    """One sentence for a main tensor no target can be read from (empty, complex, integer)."""
    shape = tuple(t.shape)
    if t.is_complex():
        raise HookScopeError(
            f"The model outputs complex numbers ({str(t.dtype).removeprefix('torch.')}, shape "
            f"{shape}), which have no largest score to explain; make forward return real "
            "scores (e.g. its .abs() or .real)."
        )
    if not t.is_floating_point():
        raise HookScopeError(
            f"The model outputs {str(t.dtype).removeprefix('torch.')} numbers (shape {shape}), "
            "through which no gradient flows; make forward return float scores."
        )
    if t.numel() == 0 or (t.dim() > 1 and t.shape[1] == 0):
        raise HookScopeError(
            f"The model outputs an empty tensor of shape {shape}, so there is no score to "
            "explain; make forward return at least one score per image."
        )


def _describe(output: Any) -> str:
    if isinstance(output, Mapping):
        return f"a dict with keys {', '.join(map(str, list(output)[:5]))}"
    return type(output).__name__


def batch_size(output: Any) -> int:
    """Number of samples in an output of any kind."""
    pair = _set_prediction(output)
    if pair is not None:
        return int(pair[0].shape[0])
    if is_detections(output):
        return len(output)
    return int(main_tensor(output, output_kind(output)).shape[0])


@dataclass(frozen=True)
class Prediction:
    """One row of the Predictions list, whatever the kind.

    Attributes:
        index: Class index (classes, dense) or detection index i (detections, ``box:i``).
        name: Class name, or None.
        score: Probability (classes), share of pixels predicted as the class (dense) or the
            detection's score (detections).
        label: The detected class (detections), else None.
        box: ``(x0, y0, x1, y1)`` in input pixels (detections), else None.
    """

    index: int
    name: str | None
    score: float
    label: int | None = None
    box: tuple[float, float, float, float] | None = None

    def target_text(self, kind: str) -> str:
        """What to type as ``--target`` for this row."""
        return f"box:{self.index}" if kind == DETECTIONS else str(self.index)


def _name(i: int, names: Sequence[str] | None) -> str | None:
    return str(names[i]) if names and 0 <= i < len(names) else None


def predictions(
    output: Any,
    kind: OutputKind,
    class_names: Sequence[str] | None = None,
    k: int = 5,
    size: tuple[int, int] | None = None,
) -> list[Prediction]:
    """What fits the kind, first sample: top-k probabilities, pixel shares or detections.

    Embeddings give an empty list: softmaxing an embedding would be meaningless. ``size``
    (the input's H, W) puts a DETR-style model's normalised boxes in input pixels.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise HookScopeError(f"The number of top classes to list must be at least 1, not {k}.")
    if kind.kind == DETECTIONS:
        det = detections(output, kind, size)[0]
        labels = det.get("labels")
        rows = []
        for i, (box, score) in enumerate(zip(det["boxes"].detach(), det["scores"].detach())):
            label = int(labels[i]) if labels is not None else None
            rows.append(
                Prediction(
                    i,
                    _name(label, class_names) if label is not None else None,
                    float(score),
                    label,
                    tuple(float(v) for v in box.tolist()),
                )
            )
        return rows
    if kind.kind == EMBEDDING:
        return []
    t = main_tensor(output, kind).detach().float().cpu()
    if kind.kind == DENSE:
        pred = t[0].argmax(0)
        share = torch.bincount(pred.reshape(-1), minlength=t.shape[1]).float() / pred.numel()
        values, idx = share.topk(min(k, t.shape[1]))
        return [
            Prediction(int(i), _name(int(i), class_names), float(v))
            for v, i in zip(values, idx)
            if v > 0
        ]
    probs = torch.softmax(t.reshape(t.shape[0], -1)[0], 0)
    values, idx = probs.topk(min(k, probs.shape[0]))
    return [Prediction(int(i), _name(int(i), class_names), float(v)) for v, i in zip(values, idx)]


def dense_mask(output: Any, kind: OutputKind) -> torch.Tensor:
    """Predicted class per pixel of the first sample, (H, W) int64, at the output's size."""
    return main_tensor(output, kind)[0].detach().argmax(0).cpu()
