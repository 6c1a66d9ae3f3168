"""A live ``nn.Module`` from the user's own code, wrapped as a :class:`LoadedModel`.

The module stays the user's object: wrapping never moves it between devices, casts it,
changes its mode or touches its parameters. :func:`fingerprint` captures everything HookScope
must leave as it found it, so a test (or a careful user) can compare before and after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.models import (
    LoadedModel,
    _first_conv_channels,
    _id2label,
    _input_spec,
    _names,
)
from hookscope.core.loading.spec import InputSpec

LIVE_PREFIX = "live:"
"""Spec string of a wrapped module: ``live:`` + its class path (not loadable by spec)."""

NATIVE_NOTE = (
    "No input size or normalisation given: the image goes in at its own size, scaled to "
    "[0, 1], unnormalised."
)
"""What the app and ``explain`` say when a live module has no input size, mean or std."""


def wrap_model(
    module: nn.Module,
    *,
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    input_size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> LoadedModel:
    """Wrap the user's module, as it is, into the :class:`LoadedModel` ``load_model`` returns.

    Args:
        module: Any ``nn.Module`` (TorchScript too); not moved, cast or put in eval mode.
        name: Display name; defaults to the class name.
        class_names: Output class names; defaults to ``module.class_names`` or a Hugging Face
            config's ``id2label``.
        input_size: ``S`` or ``(H, W)``: images are resized and centre-cropped to it.
        mean: Per-channel mean subtracted after scaling to [0, 1] (default 0).
        std: Per-channel standard deviation divided by (default 1).

    Returns:
        The wrapped model. With none of ``input_size``, ``mean``, ``std`` and no
        ``module.input_spec``, images go in at their own size, scaled to [0, 1] and
        unnormalised: ``input_spec.native`` is True and ``note`` says so.

    Raises:
        HookScopeError: ``module`` is not an ``nn.Module`` or a size / mean / std is malformed.
    """
    if not isinstance(module, nn.Module):
        raise HookScopeError(
            f"HookScope needs a torch.nn.Module, not {type(module).__name__}; pass the model "
            "object itself."
        )
    spec, note = _live_spec(module, input_size, mean, std)
    names = class_names or getattr(module, "class_names", None)
    if not names and getattr(module, "config", None) is not None:
        names = _id2label(module.config)
    return LoadedModel(
        model=module,
        name=name or type(module).__name__,
        class_names=_names(names),
        input_spec=spec,
        spec=LIVE_PREFIX + class_path(module),
        device=module_device(module),
        scripted=isinstance(module, torch.jit.ScriptModule),
        weights_source="model",
        note=note,
    )


def _live_spec(module, input_size, mean, std) -> tuple[InputSpec, str]:
    """The input spec from the arguments, else ``module.input_spec``, else the native one."""
    own = getattr(module, "input_spec", None)
    if input_size is None and mean is None and std is None:
        if own is not None:
            return _input_spec(own, module), ""
        ch = _first_conv_channels(module)
        return InputSpec((224, 224), ch, (0.0,) * ch, (1.0,) * ch, None, True), NATIVE_NOTE
    base = _input_spec(own, module) if own is not None else None
    ch = base.channels if base else _first_conv_channels(module)
    mean_t = _per_channel(mean, ch, "mean") if mean is not None else None
    std_t = _per_channel(std, ch, "std") if std is not None else None
    if base is not None:  # the module's own spec, with what the caller overrides
        mean_t = mean_t or base.mean
        std_t = std_t or base.std
    mean_t = mean_t or (0.0,) * ch
    std_t = std_t or (1.0,) * ch
    if input_size is None:
        if base is not None:
            return InputSpec(base.size, ch, mean_t, std_t, base.resize), ""
        spec = InputSpec((224, 224), ch, mean_t, std_t, None, True)
        return spec, "No input size given: the image goes in at its own size."
    return InputSpec(_size(input_size), ch, mean_t, std_t), ""


def _size(value) -> tuple[int, int]:
    try:
        if isinstance(value, int):
            size = (int(value), int(value))
        else:
            size = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise HookScopeError(
            f"input_size must be one positive number or (height, width), not {value!r}."
        )
    return size


def _per_channel(values, channels: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in (values if isinstance(values, Sequence) else [values]))
    except (TypeError, ValueError):
        out = ()
    if len(out) == 1:
        out = out * channels
    if len(out) != channels or (what == "std" and min(out) <= 0):
        raise HookScopeError(
            f"{what} must give {channels} {'positive ' if what == 'std' else ''}number(s), "
            f"one per input channel, not {values!r}."
        )
    return out


def module_device(module: nn.Module) -> torch.device:
    """Device of the module's first parameter or buffer (CPU when it has none)."""
    for t in [*module.parameters(), *module.buffers()]:
        return t.device
    return torch.device("cpu")


def class_path(module: nn.Module) -> str:
    """``package.module.QualName`` of the module's class."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _tensor_hash(t: torch.Tensor | None) -> str | None:
    """SHA-256 of a tensor's dtype, shape and bytes (None for None)."""
    if t is None:
        return None
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def state_hash(module: nn.Module) -> str:
    """SHA-256 over every state_dict entry's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key, t in module.state_dict().items():
        h.update(f"{key}|{_tensor_hash(t)}|".encode())
    return h.hexdigest()


def describe_module(module: nn.Module) -> dict:
    """What a session records about a live module: its class path and state hash."""
    return {"class": class_path(module), "state_hash": state_hash(module)}


@dataclass(frozen=True)
class Fingerprint:
    """Everything HookScope must leave untouched on a user's module; equal == untouched.

    Attributes:
        tensors: Per parameter / buffer: (name, kind, hash of bytes, dtype, device,
            requires_grad, hash of ``.grad`` or None).
        training: Per submodule: (name, training flag).
        hooks: Module hooks (forward, pre, backward) plus tensor hooks on parameters.
    """

    tensors: tuple[tuple, ...]
    training: tuple[tuple[str, bool], ...]
    hooks: int

    def differences(self, other: Fingerprint) -> list[str]:
        """One line per thing that differs between two fingerprints (empty when equal)."""
        out = []
        before = {t[0]: t for t in self.tensors}
        after = {t[0]: t for t in other.tensors}
        fields = ("kind", "bytes", "dtype", "device", "requires_grad", "grad")
        for key in sorted(before.keys() | after.keys()):
            a, b = before.get(key), after.get(key)
            if a is None or b is None:
                out.append(f"{key} {'appeared' if a is None else 'disappeared'}")
                continue
            out += [f"{key}: {f} changed" for f, u, v in zip(fields, a[1:], b[1:]) if u != v]
        modes = dict(other.training)
        out += [
            f"{n or 'model'}: training flag changed" for n, m in self.training if modes.get(n) != m
        ]
        if self.hooks != other.hooks:
            out.append(f"hooks: {self.hooks} before, {other.hooks} after")
        return out


def fingerprint(module: nn.Module) -> Fingerprint:
    """Hashes of every parameter and buffer, requires_grad, .grad, modes, devices, hooks."""
    tensors = []
    for name, p in module.named_parameters():
        grad = _tensor_hash(p.grad)
        tensors.append(
            (name, "param", _tensor_hash(p), str(p.dtype), str(p.device), p.requires_grad, grad)
        )
    for name, b in module.named_buffers():
        tensors.append((name, "buffer", _tensor_hash(b), str(b.dtype), str(b.device), False, None))
    training = tuple((n, m.training) for n, m in module.named_modules())
    return Fingerprint(tuple(tensors), training, _hooks(module))


def _hooks(module: nn.Module) -> int:
    """Module hooks of every kind plus tensor hooks on parameters.

    Broader than ``engine.hooks.hook_count`` (which counts module hooks only): a leftover
    ``param.register_hook`` would change the user's next backward too.
    """
    total = 0
    for m in module.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            total += len(getattr(m, attr, None) or {})
    for p in module.parameters():
        total += len(getattr(p, "_backward_hooks", None) or {})
        total += len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
    return total
