"""Proof that a run left the model as it found it (weights, training flags), and quick cancel."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from hookscope.core.engine.hooks import hook_count
from hookscope.core.reporting import Reporter


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


class cancel_checks:  # noqa: N801 - a context manager used like a function
    """Check ``reporter`` for cancel before every module's forward: a stop within one layer.

    Without it a cancel waits for the whole forward (ScoreCAM scores 32 masked images per
    forward: seconds on resnet50). Handles are removed on exit, also after errors and cancel.
    """

    def __init__(self, model: nn.Module, reporter: Reporter):
        self.model, self.reporter, self.handles = model, reporter, []

    def __enter__(self):
        def check(module, args):
            self.reporter.check()

        try:
            for m in self.model.modules():
                self.handles.append(m.register_forward_pre_hook(check))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        while self.handles:
            self.handles.pop().remove()
        return False
