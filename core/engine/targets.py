"""What to explain: turning a user's target (None, index, class name, callable) into a score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from core.errors import HookScopeError

Target = int | str | Callable[[torch.Tensor], torch.Tensor] | None


def logits_of(output: Any) -> torch.Tensor:
    """Return the class-score tensor from a model output (tensor, tuple, dict, ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, dict):
        for key in ("logits", "out"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for part in output:
            if isinstance(part, torch.Tensor):
                return part
    raise HookScopeError(
        f"The model returned {type(output).__name__}, not a tensor of class scores; "
        "wrap it so forward returns logits."
    )


def resolve_target(
    target: Target, logits: torch.Tensor, class_names: Sequence[str] | None = None
) -> int | Callable[[torch.Tensor], torch.Tensor]:
    """Resolve ``target`` against the first sample's logits.

    Args:
        target: None for the top-1 class, a class index, a class name (or a digit string),
            or a callable mapping the model output to a score.
        logits: Model scores, shape (N, K) or (N, ...).
        class_names: Names used to look up a string target.

    Returns:
        A class index, or the callable unchanged.
    """
    if callable(target):
        return target
    n_classes = logits.detach().reshape(logits.shape[0], -1).shape[1]
    if target is None:
        return int(logits.detach().reshape(logits.shape[0], -1)[0].argmax())
    return parse_target(target, class_names, n_classes)


def parse_target(
    target: int | str, class_names: Sequence[str] | None, n_classes: int | None
) -> int:
    """Class index for an index or a typed index / class name (any case).

    Raises:
        HookScopeError: Unknown name, or an index outside ``0 .. n_classes - 1``.
    """
    if isinstance(target, str):
        text = target.strip()
        if text.lstrip("-").isdigit():
            target = int(text)
        else:
            names = [n.lower() for n in (class_names or [])]
            if text.lower() not in names:
                hint = f" (e.g. {', '.join(list(class_names)[:4])})" if class_names else ""
                raise HookScopeError(
                    f"Unknown class name '{text}': use a class index or one of the "
                    f"model's class names{hint}."
                )
            target = names.index(text.lower())
    if isinstance(target, bool) or not isinstance(target, int):
        raise HookScopeError(f"A target must be a class index or name, not {target!r}.")
    if n_classes and not 0 <= target < n_classes:
        raise HookScopeError(
            f"Target class {target} is out of range: the model has {n_classes} classes "
            f"(0 to {n_classes - 1})."
        )
    return target


def target_scores(target: int | Callable, output: Any) -> torch.Tensor:
    """Return one score per sample, shape (N,), for a resolved target."""
    if callable(target):
        score = target(output)
        if not isinstance(score, torch.Tensor):
            score = torch.as_tensor(score)
        return score.reshape(-1) if score.dim() else score.reshape(1)
    logits = logits_of(output)
    return logits.reshape(logits.shape[0], -1)[:, target]


def class_name(index: int, class_names: Sequence[str] | None) -> str | None:
    """Return the name of class ``index`` or None when unnamed."""
    if class_names and 0 <= index < len(class_names):
        return class_names[index]
    return None
