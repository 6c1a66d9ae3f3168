"""How every engine function runs a model: eval mode, its device, the forward call, the tensor read.

The bottom of the engine: probes, CAMs, attributions, the tree's dry run, layout analysis,
embeddings, metrics and experiments all use these four helpers, so a rule written here (restore
each module's own training flag; a forward error is one sentence) holds everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from hookscope.core.engine.hooks import flatten_parts
from hookscope.core.errors import HookScopeError
from hookscope.core.reporting import Cancelled


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run in eval mode, then give every submodule back its OWN training flag.

    A model may mix modes on purpose (a frozen BatchNorm in eval inside a training model):
    restoring one flag for all (``model.train(was)``) would silently change the user's model.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode  # not m.train(): that would recurse over the children's flags


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter or buffer (CPU for a parameter-free model)."""
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


def forward_model(model: nn.Module, x: torch.Tensor):
    """Call the model, turning its failures into one-sentence :class:`HookScopeError`."""
    try:
        return model(x)
    except (HookScopeError, Cancelled):
        raise
    except RuntimeError as exc:
        text = str(exc)
        native = native_size(model)
        if native is not None and tuple(x.shape[-2:]) != native:
            h, w = native
            raise HookScopeError(
                f"The model failed on a {x.shape[-2]}×{x.shape[-1]} input "
                f"({text.splitlines()[0][:120]}): it needs its native input size, {h}×{w}; "
                f"set the input size to {h}×{w}."
            ) from exc
        if "channels" in text or "size mismatch" in text or "shape" in text:
            raise HookScopeError(
                f"The model rejected an input of shape {tuple(x.shape)} "
                f"({text.splitlines()[0][:160]}); check the input size and channel count."
            ) from exc
        raise HookScopeError(
            f"The model's forward pass failed with RuntimeError: {text.splitlines()[0][:200]}."
        ) from exc
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise HookScopeError(
            f"The model's forward pass failed with {type(exc).__name__}: {first}."
        ) from exc


def native_size(model: nn.Module) -> tuple[int, int] | None:
    """(H, W) a model only runs at, when it says so (timm's ``fixed_input_size``, e.g.
    EfficientFormer, whose attention biases are built for one grid), else None."""
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, Mapping) and cfg.get("fixed_input_size"):
        size = cfg.get("input_size")
        if isinstance(size, (tuple, list)) and len(size) == 3:
            return int(size[1]), int(size[2])
    return None


def output_field(output: Any, name: str) -> torch.Tensor | None:
    """The tensor under key / attribute ``name`` of a dict or ModelOutput, else None."""
    if isinstance(output, Mapping):
        value = output.get(name)
    else:
        value = getattr(output, name, None)
    return value if isinstance(value, torch.Tensor) else None


def main_tensor(output: Any, kind: Any = None) -> torch.Tensor | None:
    """The tensor HookScope reads from an output.

    Args:
        output: A model's or a module's output (tensor, tuple, list, dict, ModelOutput).
        kind: The model output's :class:`~core.engine.outputs.OutputKind`: its scores, dense
            scores or embedding (``kind.field``). None (a layer's output): its first tensor,
            in :func:`~core.engine.hooks.flatten_parts` order, or None when it holds none.

    Raises:
        HookScopeError: A detection output (no single score tensor), or a missing field.
    """
    if kind is None:
        parts = flatten_parts(output)
        return parts[0][1] if parts else None
    if kind.kind == "detections":  # core.engine.outputs.DETECTIONS (that module imports this)
        raise HookScopeError("A detection model has no single score tensor; use box:i targets.")
    if kind.field in ("", None) and isinstance(output, torch.Tensor):
        return output
    if kind.field == "0":
        return output[0]
    value = output_field(output, kind.field)
    if value is None:
        raise HookScopeError(f"The model output has no '{kind.field}' tensor this time.")
    return value
