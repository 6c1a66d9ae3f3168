"""LeGrad (Bousselham et al. 2024, "LeGrad: An Explainability Method for Vision Transformers
via Feature Formation Sensitivity"), equal to torchcam 0.5.0's ``LeGrad``.

For each chosen block l, its tokens are projected to class scores by the model's own head
(``s^l``), and ``∂s^l_c/∂A^l`` is taken for that block's attention probabilities only; the
positive part is averaged over heads and queries, the prefix keys dropped, the block maps
averaged and min-max scaled. Each chosen block's input is detached during the pass, so one
backward of ``Σ_l s^l_c`` gives every block its own gradient (torchcam runs one per block).

An embedding tower (Hugging Face CLIP / SigLIP vision models, a timm model without a
classifier) has no classes: its projection is the model's own pooling (and projection), and
``s^l`` is the target's score of block l's embedding, for ``similar:IMAGE`` the cosine
similarity to the reference image's embedding (the paper's open-vocabulary LeGrad, with an
image embedding in place of a text one).
"""

from __future__ import annotations

import torch
from torch import nn

from hookscope.core.engine.outputs import output_kind
from hookscope.core.engine.targets import target_scores
from hookscope.core.errors import HookScopeError
from hookscope.core.methods.transformers.attention import (
    AttentionTap,
    find_blocks,
    pick_blocks,
    token_grid,
)
from hookscope.core.methods.transformers.common import forward_with, patch_map

DEFAULT_BLOCKS = 4
"""Blocks used when none are named: the last four, as torchcam's example."""


def score_projection(model: nn.Module):
    """The model's own head as a map from a block's tokens (B, T, C) to its output tensor:
    class scores (B, K), or for an embedding tower its embedding (B, D).

    torchvision ``VisionTransformer``: ``heads(encoder.ln(tokens.mean(1)))`` (torchcam's);
    timm ``VisionTransformer``: ``forward_head(norm(tokens))`` (the pooled features when it has
    no classifier); Hugging Face image classifiers: their own pooling and ``classifier``
    (:func:`_hf_projection`); CLIP / SigLIP vision towers: :func:`_hf_tower_projection`.

    Raises:
        HookScopeError: A model with none of these heads.
    """
    encoder = getattr(model, "encoder", None)
    ln, heads = getattr(encoder, "ln", None), getattr(model, "heads", None)
    if isinstance(ln, nn.Module) and isinstance(heads, nn.Module):
        return lambda tokens: heads(ln(tokens.mean(dim=1)))
    norm, head = getattr(model, "norm", None), getattr(model, "forward_head", None)
    if isinstance(norm, nn.Module) and callable(head):
        return lambda tokens: head(norm(tokens))
    hf = _hf_projection(model) or _hf_tower_projection(model)
    if hf is not None:
        return hf
    raise HookScopeError(
        "legrad projects each block's tokens through the model's head, and this model has "
        "none of torchvision's encoder.ln + heads, timm's norm + forward_head, a Hugging Face "
        "image classifier's (ViT, DeiT, BEiT, DINOv2, CLIP, SigLIP) pooling + classifier or a "
        "CLIP / SigLIP vision tower's pooling."
    )


def _hf_tower_projection(model: nn.Module):
    """A Hugging Face CLIP / SigLIP vision tower's embedding, as its forward makes it.

    CLIP: ``post_layernorm`` of the class token (then ``visual_projection`` when the model
    has one); SigLIP: ``head(post_layernorm(tokens))``, its attention-pooling head.
    """
    inner = getattr(model, "vision_model", model)
    kind = getattr(getattr(model, "config", None), "model_type", "")
    post = getattr(inner, "post_layernorm", None)
    if not isinstance(post, nn.Module):
        return None
    if kind.startswith("clip"):
        proj = getattr(model, "visual_projection", None)
        if isinstance(proj, nn.Module):
            return lambda tokens: proj(post(tokens[:, 0]))
        return lambda tokens: post(tokens[:, 0])
    head = getattr(inner, "head", None)
    if kind.startswith("siglip") and isinstance(head, nn.Module):
        return lambda tokens: head(post(tokens))
    return None


def _hf_projection(model: nn.Module):
    """A Hugging Face ``...ForImageClassification``'s pooling + classifier, as its forward does."""
    classifier = getattr(model, "classifier", None)
    base = getattr(model, getattr(model, "base_model_prefix", "") or "-", None)
    base = base if base is not None else getattr(model, "vision_model", None)
    if not isinstance(classifier, nn.Linear) or base is None:
        return None
    kind = getattr(getattr(model, "config", None), "model_type", "")
    ln = getattr(base, "layernorm", None)
    if kind == "clip":  # the un-normed patch tokens' mean
        return lambda tokens: classifier(tokens[:, 1:].mean(1))
    if kind == "siglip":
        return lambda tokens: classifier(base.post_layernorm(tokens).mean(1))
    if kind.startswith("dinov2") and isinstance(ln, nn.Module):  # [class, mean of the patches]
        first = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
        return lambda t: classifier(torch.cat([ln(t)[:, 0], ln(t)[:, first:].mean(1)], 1))
    if kind == "beit" and isinstance(ln, nn.Module) and isinstance(base.pooler, nn.Module):
        return lambda tokens: classifier(base.pooler(ln(tokens)))
    if isinstance(ln, nn.Module):  # ViT, DeiT: the normed class token
        return lambda tokens: classifier(ln(tokens)[:, 0])
    return None


def legrad(model, x: torch.Tensor, target, *, blocks=None):
    """LeGrad map of ``target`` for ``model`` on ``x`` (1, C, H, W).

    Args:
        target: A class index (classifiers), or a resolved score target (``similar:IMAGE``'s
            :class:`~core.engine.targets.SimilarityTarget`, a callable of the model output):
            each block's projection is handed to it in the model output's own form.

    Returns:
        ((h, w) float32 map in [0, 1] over the patches, names of the blocks used).
    """
    if not isinstance(target, int) and not callable(target):
        raise HookScopeError("legrad explains a class or a similar:IMAGE target.")
    found = find_blocks(model, "legrad")
    chosen = pick_blocks(found, blocks, "legrad") if blocks else found[-DEFAULT_BLOCKS:]
    project = score_projection(model)
    prefix, grid = token_grid(model, x, chosen[-1], "legrad")
    projected: list[torch.Tensor] = []
    handles = [
        b.module.register_forward_hook(lambda m, a, out: projected.append(project(_tokens(out))))
        for b in chosen
    ]
    tap = AttentionTap(chosen, grads=True, cut=True)
    try:
        output = forward_with(model, x, tap, grad=False)  # the cut blocks switch gradients on
    finally:
        for h in handles:
            h.remove()
    tap.probabilities()  # every block ran
    with torch.enable_grad():  # the caller may be inside no_grad
        score = sum(_block_score(target, p, output) for p in projected)
        grads = torch.autograd.grad(score, tap.sources())
    with torch.no_grad():
        per_block = [g.relu().mean(dim=(1, 2))[0, prefix:] for g in tap.gradients(list(grads))]
        row = torch.stack(per_block).mean(0)
    return patch_map(row, grid), [b.name for b in chosen]


def _tokens(out):
    """A block's output tokens (older Hugging Face layers return a tuple)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _block_score(target, projected: torch.Tensor, output) -> torch.Tensor:
    """One block's score: its class score, or the target's score of it as the model's output."""
    if isinstance(target, int):
        return projected[:, target].sum()
    return target_scores(target, _as_output(projected, output)).sum()


def _as_output(main: torch.Tensor, output):
    """``main`` in the form of the model's ``output``, so any target reads it as the real one.

    A tensor stays a tensor; a Hugging Face ``ModelOutput`` (or dict) becomes one of the same
    type holding only ``main`` in the field the output's kind reads (``image_embeds``,
    ``pooler_output``, ``logits``, ...).

    Raises:
        HookScopeError: An output of another form (a tuple, a custom object).
    """
    if isinstance(output, torch.Tensor):
        return main
    field = output_kind(output).field
    if isinstance(output, dict) and field in output:
        return type(output)(**{field: main})
    raise HookScopeError(
        f"legrad hands each block's projection to the target as the model's output, and "
        f"cannot rebuild this model's {type(output).__name__} output; use chefer instead."
    )
