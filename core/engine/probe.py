"""One forward and one backward for a target: logits, top-k, records, input gradient."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, main_tensor, model_device
from hookscope.core.engine.hooks import HookSession, Record
from hookscope.core.engine.outputs import (
    CLASSES,
    DENSE,
    DETECTIONS,
    EMBEDDING,
    OutputKind,
    Prediction,
    dense_mask,
    detections,
    output_kind,
    predictions,
)
from hookscope.core.engine.targets import (
    ScoreTarget,
    Target,
    class_name,
    describe_target,
    presolve,
    resolve_target,
    target_scores,
)
from hookscope.core.errors import HookScopeError

DEFAULT_MAX_BYTES = 1 << 30
"""Records beyond 1 GiB are dropped (with a note) so a big model cannot exhaust memory."""


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw.

    Attributes:
        logits: Model scores (N, K), on CPU: class scores; per-class mean over the pixels of
            a dense output; detection scores (1, boxes); the embedding (N, D).
        probs: Softmax of class scores; share of pixels predicted as each class (dense);
            detection scores; empty (N, 0) for an embedding (never softmaxed).
        topk: ``(class_index, class_name or None, value)`` for the first sample, best first:
            probabilities (classes) or pixel shares (dense); empty for detections and
            embeddings (see ``predictions``).
        target: The explained class index (classes, dense), else None.
        target_name: Its name, if known.
        records: Layer name → one :class:`Record` per call, with gradients.
        input_grad: Gradient of the target score wrt the input (1, C, H, W), or None.
        param_grad_norms: Layer → L2 norm of the gradient of its parameters (None if frozen).
        dropped: Calls not kept because of the memory cap.
        seconds: Wall time of forward + backward.
        notes: Things the user should know (e.g. why gradients are missing).
        kind: What the model outputs (:class:`~core.engine.outputs.OutputKind`).
        predictions: What fits the kind: top-k classes, pixel shares, every detection (with
            boxes); empty for an embedding.
        target_text: The target in the ``--target`` grammar (``"15"``, ``"box:0"``...).
        target_label: One phrase describing the target, for titles.
        mask: Dense outputs: predicted class per pixel (h, w) int64 at the output's size.
        embedding: Embedding outputs: the first sample's embedding (D,).
        target_score: The explained score of the first sample (e.g. the cosine similarity of
            ``similar:IMAGE``, the score of ``box:i``), or None.
        resolved_target: The target as resolved on this output (a class index or a
            :class:`~core.engine.targets.ScoreTarget`): a CAM or a click reuses it without
            resolving again (no second embedding of a ``similar:`` reference).
    """

    logits: torch.Tensor
    probs: torch.Tensor
    topk: list[tuple[int, str | None, float]]
    target: int | None
    target_name: str | None
    records: dict[str, list[Record]]
    input_grad: torch.Tensor | None
    param_grad_norms: dict[str, float | None] = field(default_factory=dict)
    dropped: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    kind: OutputKind | None = None
    predictions: tuple[Prediction, ...] = ()
    target_text: str = ""
    target_label: str = ""
    mask: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    target_score: float | None = None
    resolved_target: Any = None


def run_probe(
    model: nn.Module,
    x: torch.Tensor,
    layers: Iterable[str],
    target: Target = None,
    *,
    class_names: Sequence[str] | None = None,
    k: int = 5,
    grads: bool = True,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    dtype: torch.dtype | None = None,
    edits: Sequence = (),
    input_spec=None,
) -> ProbeResult:
    """Run one forward and one backward with hooks on ``layers``.

    Gradients come from ``torch.autograd.grad`` on the input and the hooked layers'
    parameters, so the model's ``.grad`` fields are never touched and frozen models still
    give input and activation gradients.

    Args:
        model: Any module; run in eval mode, the user's modes restored after.
        x: Input batch (N, C, H, W); the first sample is explained.
        layers: Qualified module names to record.
        target: None (the kind's default: top-1 class, most-predicted class, detection 0,
            embedding norm), class index or name, a grammar string (``C``, ``C@mask.png``,
            ``box:i``, ``similar:IMAGE``), or callable(output) -> score.
        class_names: For names in top-k and string targets.
        k: How many classes to list.
        grads: False for a forward-only probe.
        max_bytes: Cap on recorded bytes (see :class:`HookSession`); None for no cap.
        dtype: Storage dtype for records (e.g. ``torch.float16``).
        edits: Context managers entered around the pass (e.g. interventions).
        input_spec: Preprocessing of the reference image of ``similar:IMAGE``.
    """
    layers = list(dict.fromkeys(layers))
    device = model_device(model)
    notes: list[str] = []
    x = x.detach().to(device).clone().requires_grad_(grads)
    # A similar:IMAGE reference is embedded before any hook: not recorded, not edited.
    target = presolve(target, model, input_spec)
    start = time.perf_counter()
    with eval_mode(model), torch.enable_grad() if grads else torch.no_grad():
        session = HookSession(model, layers, grads=grads, max_bytes=max_bytes, dtype=dtype)
        with session, contextlib.ExitStack() as stack:
            for edit in edits:
                stack.enter_context(edit)
            output = forward_model(model, x)
            kind = output_kind(output, class_names, model)
            _check_output(output, kind)
            resolved = resolve_target(
                target, output, class_names, model=model, spec=input_spec, kind=kind
            )
            input_grad, norms = None, {}
            with torch.no_grad():
                first = target_scores(resolved, output).detach().reshape(-1)
            score = float(first[0]) if first.numel() else None
            if grads:
                input_grad, norms = _backward(session, output, resolved, x, notes)
    seconds = time.perf_counter() - start
    silent = [name for name, recs in session.records.items() if not recs]
    if silent:
        raise HookScopeError(
            f"Layer '{silent[0]}' did not run in the forward pass, so nothing was recorded; "
            "pick a layer the forward actually calls."
        )
    if session.dropped:
        notes.append(
            f"{session.dropped} layer call(s) were not kept because records passed the "
            "memory cap; hook fewer layers or raise the cap."
        )
    logits, probs, mask, emb = _scores(output, kind)
    k = k if kind.kind != DETECTIONS else 10**6
    preds = predictions(output, kind, class_names, k=k, size=tuple(x.shape[-2:]))
    topk = [(p.index, p.name, p.score) for p in preds] if kind.kind in (CLASSES, DENSE) else []
    index = resolved if isinstance(resolved, int) else None
    if isinstance(resolved, ScoreTarget) and kind.kind == DENSE:
        index = resolved.index
    if isinstance(resolved, ScoreTarget):
        text = resolved.text
    else:
        text = str(resolved) if isinstance(resolved, int) else ""
    return ProbeResult(
        logits=logits,
        probs=probs,
        topk=topk,
        target=index,
        target_name=class_name(index, class_names) if index is not None else None,
        records=session.records,
        input_grad=input_grad,
        param_grad_norms=norms,
        dropped=session.dropped,
        seconds=seconds,
        notes=tuple(notes),
        kind=kind,
        predictions=tuple(preds),
        target_text=text,
        target_label=describe_target(resolved, class_names),
        mask=mask,
        embedding=emb,
        target_score=score,
        resolved_target=resolved,
    )


def _scores(output, kind: OutputKind):
    """``(logits, probs, mask, embedding)`` of a probe, as :class:`ProbeResult` documents."""
    if kind.kind == DETECTIONS:
        s = detections(output, kind)[0]["scores"].detach().float().cpu()[None]
        return s, s, None, None
    t = main_tensor(output, kind).detach().float().cpu()
    if kind.kind == DENSE:
        mask = dense_mask(output, kind)
        flat = t.argmax(1).reshape(t.shape[0], -1)
        share = torch.stack(
            [torch.bincount(f, minlength=t.shape[1]).float() / f.numel() for f in flat]
        )
        return t.mean(dim=(2, 3)), share, mask, None
    if kind.kind == EMBEDDING:
        return t, torch.zeros(t.shape[0], 0), None, t[0].clone()
    logits = t.reshape(t.shape[0], -1)
    return logits, torch.softmax(logits, dim=1), None, None


def _check_output(output, kind: OutputKind) -> None:
    if kind.kind == DETECTIONS:
        logits = torch.cat([o["scores"].reshape(-1) for o in detections(output, kind)])
    else:
        logits = main_tensor(output, kind)
    if logits.is_floating_point() and not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).sum())
        raise HookScopeError(
            f"The model's output has {bad} NaN or Inf value(s), so there is nothing to explain; "
            "check its weights and input normalisation."
        )


def _backward(session: HookSession, output, resolved, x, notes):
    score = target_scores(resolved, output).sum()
    if not score.requires_grad:
        notes.append(
            "The output does not depend on the input through autograd (the forward detaches "
            "or runs under no_grad), so there are no gradients."
        )
        return None, {}
    params: dict[str, list[torch.Tensor]] = {
        name: [p for p in m.parameters() if p.requires_grad] for name, m in session.modules.items()
    }
    flat = list({id(p): p for ps in params.values() for p in ps}.values())
    got = torch.autograd.grad(score, [x, *flat], allow_unused=True)
    by_id = {id(p): g for p, g in zip(flat, got[1:])}
    norms: dict[str, float | None] = {}
    for name, ps in params.items():
        gs = [by_id[id(p)] for p in ps if by_id[id(p)] is not None]
        norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in gs))) if gs else None
    input_grad = got[0].detach().cpu() if got[0] is not None else None
    return input_grad, norms


def tensor_stats(t: torch.Tensor) -> dict[str, float]:
    """Mean, std, min, max and fraction of exact zeros of a tensor."""
    f = t.detach().float()
    if f.numel() == 0:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "zeros": 0.0}
    return {
        "mean": float(f.mean()),
        "std": float(f.std()) if f.numel() > 1 else 0.0,
        "min": float(f.min()),
        "max": float(f.max()),
        "zeros": float((f == 0).float().mean()),
    }
