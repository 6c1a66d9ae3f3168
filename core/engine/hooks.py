"""HookSession: record what named modules saw and produced, and the gradients that came back.

Capture is copy-on-write: a forward hook keeps a detached *reference* to each output and a
``TorchFunctionMode`` watches for in-place operations (``relu_``, ``x += y``, ``out=``,
``inplace=True``). Only a recorded tensor that is about to be overwritten is cloned, just
before the write. That keeps records exact under in-place ops at a fraction of the cost of
cloning everything (resnet50: most conv outputs are never overwritten).

When the session exits nothing watches any more, so a record still sharing memory with a tensor
someone else holds (the model's output, the input, a tensor the autograd graph saved) is cloned
then: records are owned, and a later ``out.add_(1)`` cannot reach them. Tensors only the records
hold (most activations once the forward is over) are kept as they are, without a copy.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from hookscope.core.errors import HookScopeError

Parts = dict[str, torch.Tensor]


def flatten_parts(obj: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Name every tensor inside a (nested) tuple / list / dict / namedtuple / ModelOutput.

    A plain tensor gets the name ``""``; parts are ``"0"``, ``"1"``, ``"logits"``,
    ``"0.hidden"`` and so on.
    """
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    found: list[tuple[str, torch.Tensor]] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            found += flatten_parts(value, join(key))
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for key in obj._fields:
            found += flatten_parts(getattr(obj, key), join(key))
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            found += flatten_parts(value, join(i))
    return found


@dataclass
class Record:
    """What one call of one module saw and produced.

    Attributes:
        module: Qualified module name.
        call: 0-based index of this call within the session (modules may run several times).
        inputs: Positional inputs by part name (``"0"``, ``"1"``...), detached, on CPU.
        outputs: Output tensors by part name (``""`` for a plain tensor), detached, on CPU.
        grads: Gradient wrt each output part, filled during backward.
    """

    module: str
    call: int
    inputs: Parts = field(default_factory=dict)
    outputs: Parts = field(default_factory=dict)
    grads: Parts = field(default_factory=dict)

    @property
    def output(self) -> torch.Tensor | None:
        """The main output: the plain tensor, or the first tensor part."""
        return next(iter(self.outputs.values()), None)

    @property
    def input(self) -> torch.Tensor | None:
        """The first positional input tensor."""
        return next(iter(self.inputs.values()), None)

    @property
    def grad_output(self) -> torch.Tensor | None:
        """Gradient wrt :attr:`output`; None before backward or when it got none."""
        key = next(iter(self.outputs), None)
        return self.grads.get(key) if key is not None else None

    @property
    def nbytes(self) -> int:
        """Bytes held by this record's tensors."""
        tensors = [*self.inputs.values(), *self.outputs.values(), *self.grads.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


def resolve_modules(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Map qualified names to submodules; one clear sentence for a name that is not there."""
    names = list(names)
    if names and isinstance(model, torch.jit.ScriptModule):
        raise HookScopeError(
            "This is a TorchScript model, and TorchScript does not run Python hooks on its "
            "submodules; load the Python model (a .py factory or torchvision spec) to hook layers."
        )
    table = dict(model.named_modules())
    found = {}
    for name in names:
        if name not in table:
            close = [n for n in table if n and (name in n or n.endswith(name.split(".")[-1]))]
            sample = close[:4] or [n for n in table if n][:4]
            raise HookScopeError(
                f"The model has no layer named '{name}'; valid names look like {', '.join(sample)}."
            )
        found[name] = table[name]
    return found


_WRITES_FIRST = -1  # the op always writes its first argument (relu_, __iadd__, copy_ ...)
_OUT_OF_PLACE = -2  # writes only through out= / inplace=True keywords
_KIND: dict[Any, int] = {}  # func -> one of the above, or the position of its `inplace` param


def _classify(func) -> int:
    """How ``func`` may write in place; computed once per function."""
    name = getattr(func, "__name__", "")
    if name.startswith("__i") or name == "__setitem__":
        return _WRITES_FIRST
    if name.endswith("_") and not name.endswith("__"):
        return _WRITES_FIRST
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return _OUT_OF_PLACE
    return params.index("inplace") if "inplace" in params else _OUT_OF_PLACE


def _written_tensor(func, args, kwargs) -> torch.Tensor | None:
    """The tensor an op is about to overwrite, or None for an out-of-place op."""
    if kwargs:
        out = kwargs.get("out")
        if isinstance(out, torch.Tensor):
            return out
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    kind = _KIND.get(func)
    if kind is None:
        kind = _KIND[func] = _classify(func)
    if kind == _WRITES_FIRST:
        return args[0]
    if kwargs and kwargs.get("inplace"):
        return args[0]
    if kind >= 0 and len(args) > kind and args[kind] is True:
        return args[0]
    return None


def _storage_refs(t: torch.Tensor) -> int | None:
    """Strong references to ``t``'s storage (one per tensor or view using it, plus a constant).

    None when this torch cannot tell; callers then assume the storage is shared.
    """
    count = getattr(torch._C, "_storage_Use_Count", None)
    return None if count is None else count(t.untyped_storage()._cdata)


# What a storage held by exactly one tensor reports (the Python storage object may add one).
_ONE_TENSOR = _storage_refs(torch.empty(1))


class _CopyOnWrite(TorchFunctionMode):
    """Clone recorded tensors just before an in-place op overwrites their storage."""

    def __init__(self, session: HookSession):
        super().__init__()
        self.session = session

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = _written_tensor(func, args, kwargs)
        if target is not None and self.session._watched:
            self.session._protect(target)
        return func(*args, **kwargs)


class HookSession:
    """Hooks on named modules for one or more forward (and backward) passes.

    Use as a context manager; every hook handle is removed on exit, also after errors.

    Args:
        model: The model to hook.
        layers: Qualified module names (``model.named_modules()``).
        grads: Also record the gradient wrt each output during backward.
        inputs: Also record each call's positional inputs (forward pre-hook).
        max_bytes: Stop keeping records once they hold this many bytes; ``dropped`` counts
            the calls that were not kept.
        dtype: Store records in this floating dtype (e.g. ``torch.float16`` to halve memory).
        copy: ``"auto"`` clones only what an in-place op would overwrite; ``"always"`` clones
            every captured tensor at once.

    Attributes:
        records: Module name → list of :class:`Record`, one per call, in call order.
        dropped: Number of calls not kept because of ``max_bytes``.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str],
        *,
        grads: bool = True,
        inputs: bool = True,
        max_bytes: int | None = None,
        dtype: torch.dtype | None = None,
        copy: str = "auto",
    ):
        self.model = model
        self.modules = resolve_modules(model, list(dict.fromkeys(layers)))
        self.grads = grads
        self.keep_inputs = inputs
        self.max_bytes = max_bytes
        self.dtype = dtype
        self.copy = copy
        self.records: dict[str, list[Record]] = {name: [] for name in self.modules}
        self.dropped = 0
        self._bytes = 0
        self._handles: list[Any] = []
        self._mode: _CopyOnWrite | None = None
        # storage pointer -> [(parts dict, key, version at capture)] not yet made private
        self._watched: dict[int, list[tuple[Parts, str, torch.Tensor]]] = {}

    # -- lifetime -----------------------------------------------------------------------
    def __enter__(self) -> HookSession:
        try:
            for name, module in self.modules.items():
                if self.keep_inputs:
                    self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
                self._handles.append(module.register_forward_hook(self._post_hook(name)))
            self._mode = _CopyOnWrite(self)
            self._mode.__enter__()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook and stop watching in-place ops; safe to call twice."""
        try:
            if self._mode is not None:
                mode, self._mode = self._mode, None
                mode.__exit__(None, None, None)
        finally:
            while self._handles:
                self._handles.pop().remove()
            self._finish_watch()

    # -- capture ------------------------------------------------------------------------
    def _pre_hook(self, name: str):
        def hook(module, args):
            rec = Record(module=name, call=len(self.records[name]))
            rec.inputs = self._keep(flatten_parts(tuple(args)))
            self.records[name].append(rec)

        return hook

    def _post_hook(self, name: str):
        def hook(module, args, output):
            recs = self.records[name]
            if self.keep_inputs:
                rec = recs[-1]  # made by the pre-hook of this same call
            else:
                rec = Record(module=name, call=len(recs))
                recs.append(rec)
            parts = flatten_parts(output)
            rec.outputs = self._keep(parts)
            if self.grads and torch.is_grad_enabled():
                for key, tensor in parts:
                    if tensor.requires_grad:
                        tensor.register_hook(self._grad_hook(rec, key))
            if self.max_bytes is not None:
                self._bytes += rec.nbytes
                if self._bytes > self.max_bytes:
                    # Keep the call count honest but free the data.
                    self._bytes -= rec.nbytes
                    rec.inputs, rec.outputs = {}, {}
                    self.dropped += 1

        return hook

    def _keep(self, parts: list[tuple[str, torch.Tensor]]) -> Parts:
        kept: Parts = {}
        for key, tensor in parts:
            t = tensor.detach()
            want = self.dtype if self.dtype is not None and t.is_floating_point() else t.dtype
            if t.device.type != "cpu" or want != t.dtype:
                t = t.to(device="cpu", dtype=want)  # a fresh copy: nothing can overwrite it
            elif self.copy == "always":
                t = t.clone()
            elif t.numel():
                # Still shares memory with the live tensor: clone only if something writes it.
                self._watch(kept, key, t)
            kept[key] = t
        return kept

    def _watch(self, parts: Parts, key: str, t: torch.Tensor) -> None:
        ptr = t.untyped_storage().data_ptr()
        self._watched.setdefault(ptr, []).append((parts, key, t._version))

    def _protect(self, target: torch.Tensor) -> None:
        """Called before ``target`` is written in place: privatise records sharing its storage."""
        ptr = target.untyped_storage().data_ptr()
        entries = self._watched.pop(ptr, None)
        if not entries:
            return
        for parts, key, _ in entries:
            if key in parts:
                parts[key] = parts[key].clone()

    def _finish_watch(self) -> None:
        """Make the records owned; warn if code we could not see (C++) overwrote one."""
        stale = [
            (parts, key)
            for entries in self._watched.values()
            for parts, key, version in entries
            if key in parts and parts[key]._version != version
        ]
        self._own()
        if stale:
            warnings.warn(
                f"{len(stale)} recorded tensor(s) were changed in place by code HookScope cannot "
                'watch; rerun with HookSession(copy="always") for exact records.',
                stacklevel=3,
            )

    def _own(self) -> None:
        """Clone records that still share memory with a tensor outside the session."""
        watched, self._watched = self._watched, {}
        for entries in watched.values():
            live = [(parts, key) for parts, key, _ in entries if key in parts]
            if not live:
                continue
            # Our tensors account for len(live) references; any more means someone else
            # (caller, autograd graph, another view) can still write this memory.
            refs = _storage_refs(live[0][0][live[0][1]])
            if refs is None or _ONE_TENSOR is None or refs > _ONE_TENSOR - 1 + len(live):
                for parts, key in live:
                    parts[key] = parts[key].clone()

    def _grad_hook(self, rec: Record, key: str):
        def hook(grad):
            g = grad.detach()
            if self.dtype is not None and g.is_floating_point():
                g = g.to(self.dtype)
            g = g.cpu() if g.device.type != "cpu" else g.clone()
            # A tensor used twice gets its summed gradient once; keep the first we see.
            rec.grads.setdefault(key, g)

        return hook


def hook_count(model: nn.Module) -> int:
    """Number of forward / pre / backward hooks left on any submodule (0 after a clean run)."""
    total = 0
    for m in model.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            total += len(getattr(m, attr, {}) or {})
    return total
