"""Proof that a run left the model as it found it: weights checksum and training flags."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from core.engine.hooks import hook_count


def state_checksum(model: nn.Module) -> str:
    """SHA-256 over every state_dict entry's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def training_flags(model: nn.Module) -> list[bool]:
    """Every submodule's ``training`` flag, in ``modules()`` order."""
    return [m.training for m in model.modules()]


def fingerprint(model: nn.Module) -> tuple[str, tuple[bool, ...], int]:
    """(weights checksum, training flags, hooks left) — equal before and after any run."""

    return state_checksum(model), tuple(training_flags(model)), hook_count(model)
