"""How a layer's output is laid out, read from evidence rather than from type names.

A 4-D output is channels-first (N, C, h, w) or channels-last (N, h, w, C); a 3-D output is
tokens (N, K + h·w, C) with K prefix tokens (class, distillation, registers). One dry run
records every module's input and output; then, innermost first:

- a convolution puts channels on axis 1, a linear layer on the last axis, batch/group norms
  and 2-D pools work on axis 1;
- a layer norm is tested: is its output ``F.layer_norm`` over the last axis or over axis 1?
  (timm's ``LayerNorm2d`` subclasses ``nn.LayerNorm`` yet normalises axis 1);
- a container that returns its child's tensor has the child's layout; otherwise its output's
  channel count is matched against the last layer inside it, and a tie (width == channels)
  is broken by its input's layout when the shape is unchanged;
- shape-preserving layers without parameters keep their input's layout;
- a token count T is split into K + h·w with a grid seen elsewhere in the model (the patch
  embedding's output), the model's ``num_prefix_tokens`` or its token parameters
  (``cls_token``, ``dist_token``, ``reg_token``), else a grid with the input's aspect.

Where the evidence does not decide, the layout says so in one sentence and names the
``--reshape`` (``reshape=``) value that fixes it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, main_tensor
from hookscope.core.errors import HookScopeError

NCHW, NHWC, TOKENS, NONE, UNKNOWN = "nchw", "nhwc", "tokens", "none", "unknown"
MAX_PREFIX = 16
"""Most prefix tokens a token layout may have (class + distillation + registers)."""


class NoGridError(HookScopeError):
    """A layer's output has no spatial grid (a vector, or no tensor)."""


@dataclass(frozen=True)
class Layout:
    """Where a layer's output keeps its channels and its spatial grid.

    Attributes:
        kind: ``nchw``, ``nhwc``, ``tokens``, ``none`` (no spatial grid, e.g. a vector) or
            ``unknown`` (the evidence does not decide: see ``evidence``).
        grid: (h, w) of the spatial grid, or None.
        prefix: Tokens before the grid (``tokens`` only).
        evidence: Why, in a few words; for ``unknown`` one sentence with the fix.
    """

    kind: str
    grid: tuple[int, int] | None = None
    prefix: int = 0
    evidence: str = ""

    @property
    def spatial(self) -> bool:
        """True when the layout has a grid larger than 1×1 (a CAM map can show something)."""
        return (
            self.kind in (NCHW, NHWC, TOKENS)
            and self.grid is not None
            and self.grid[0] * self.grid[1] > 1
        )

    @property
    def channel_dim(self) -> int:
        """Axis of the raw output that holds the channels."""
        return {NCHW: 1, NHWC: 3, TOKENS: 2}.get(self.kind, 1)

    @property
    def reshape(self) -> str:
        """The ``--reshape`` value that states this layout explicitly."""
        if self.kind == TOKENS:
            return f"tokens:{self.prefix}"
        return self.kind

    def to_grid(self, t: torch.Tensor) -> torch.Tensor:
        """Arrange a raw-shaped tensor as (N, C, h, w)."""
        if self.kind == NCHW:
            return t
        if self.kind == NHWC:
            return t.permute(0, 3, 1, 2)
        if self.kind == TOKENS:
            h, w = self.grid
            n, _, c = t.shape
            return t[:, self.prefix :, :].reshape(n, h, w, c).permute(0, 3, 1, 2)
        raise HookScopeError(self.evidence or "This layer's output has no spatial grid.")

    def __str__(self) -> str:
        if self.kind in (NONE, UNKNOWN) or self.grid is None:
            return "-" if self.kind == NONE else "?"
        grid = f"{self.grid[0]}x{self.grid[1]}"
        if self.kind == TOKENS:
            return f"tokens:{self.prefix} {grid}"
        return f"{self.kind} {grid}"


# -- what the user can ask for: --reshape nchw|nhwc|tokens:K|HxW ---------------------------------
def parse_reshape(text: str) -> Layout:
    """Parse a ``--reshape`` value into a request (a Layout whose grid may be open).

    ``tokens:K`` leaves the grid to the token count; ``HxW`` fixes the grid and leaves K (or
    the axis order of a 4-D output) to the shape.
    """
    raw = str(text).strip().lower()
    if raw in (NCHW, NHWC):
        return Layout(raw, evidence="--reshape")
    if raw.startswith("tokens"):
        k = raw.partition(":")[2] or "0"
        if not (k.isascii() and k.isdecimal()):  # "²".isdigit() is True
            raise HookScopeError(f"Bad --reshape '{text}': write tokens:K with K prefix tokens.")
        return Layout(TOKENS, None, int(k), "--reshape")
    h, sep, w = raw.partition("x")
    digits = (h + w).isascii() and h.isdecimal() and w.isdecimal()
    if sep and digits and int(h) > 0 and int(w) > 0:
        return Layout("grid", (int(h), int(w)), 0, "--reshape")
    raise HookScopeError(
        f"Bad --reshape '{text}': use nchw, nhwc, tokens:K (K prefix tokens) or HxW (the grid)."
    )


def apply_request(
    request: Layout | str | tuple[int, int], shape: tuple[int, ...], name: str = "this layer"
) -> Layout:
    """The concrete layout a request gives for an output of ``shape``; one sentence if not."""
    if isinstance(request, str):
        request = parse_reshape(request)
    elif isinstance(request, (tuple, list)):
        request = Layout("grid", (int(request[0]), int(request[1])), 0, "reshape=(h, w)")
    shape = tuple(shape)
    kind = request.kind
    if kind in (NCHW, NHWC):
        if len(shape) != 4:
            raise HookScopeError(
                f"Layer '{name}' outputs shape {shape}, not 4-D, so it cannot be {kind}; use "
                "--reshape tokens:K or HxW for tokens."
            )
        grid = shape[2:] if kind == NCHW else shape[1:3]
        return Layout(kind, (int(grid[0]), int(grid[1])), 0, request.evidence)
    if kind == TOKENS:
        if len(shape) != 3:
            raise HookScopeError(f"Layer '{name}' outputs shape {shape}, not tokens (N, T, C).")
        area = shape[1] - request.prefix
        grid = _square(area)
        if grid is None:
            raise HookScopeError(
                f"Layer '{name}' has {shape[1]} tokens; without {request.prefix} prefix tokens "
                f"{area} do not form a square grid, so give the grid with --reshape HxW."
            )
        return Layout(TOKENS, grid, request.prefix, request.evidence)
    h, w = request.grid
    if len(shape) == 3:
        prefix = shape[1] - h * w
        if prefix < 0:
            raise HookScopeError(
                f"Layer '{name}' outputs {shape[1]} tokens, fewer than the {h}x{w} grid asked for."
            )
        return Layout(TOKENS, (h, w), prefix, request.evidence)
    if len(shape) == 4:
        if shape[2:] == (h, w):
            return Layout(NCHW, (h, w), 0, request.evidence)
        if shape[1:3] == (h, w):
            return Layout(NHWC, (h, w), 0, request.evidence)
    raise HookScopeError(f"Layer '{name}' outputs shape {shape}, which has no {h}x{w} grid.")


def _square(area: int) -> tuple[int, int] | None:
    side = math.isqrt(area) if area > 0 else 0
    return (side, side) if side > 0 and side * side == area else None


# -- the dry run -------------------------------------------------------------------------------
@dataclass
class _Call:
    name: str
    module: nn.Module
    start: int
    end: int = -1
    inp: torch.Tensor | None = None
    out: torch.Tensor | None = None
    in_version: int = 0
    version: int = 0  # of ``out`` when the module returned it (in-place ops bump it)
    layout: Layout | None = None
    axis: int | None = None  # channel axis of ``out`` once known (1 or -1)


class LayoutRecorder:
    """Context manager: hooks every module for one forward and records what layouts need.

    Use around a forward pass (:func:`analyse` does it), then call :meth:`report`.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.calls: list[_Call] = []
        self._open: dict[int, list[_Call]] = {}
        self._handles: list = []
        self._tick = 0

    def __enter__(self):
        if isinstance(self.model, torch.jit.ScriptModule):  # it refuses Python hooks
            raise HookScopeError(
                "This is a TorchScript model, and TorchScript does not run Python hooks on its "
                "submodules, so HookScope cannot read its layers' layouts; load the Python "
                "model (a .py factory or torchvision spec) to explain a layer."
            )
        try:
            for name, module in self.model.named_modules():
                if not name:
                    continue
                self._handles.append(module.register_forward_pre_hook(self._pre(name)))
                self._handles.append(module.register_forward_hook(self._post(name)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        while self._handles:
            self._handles.pop().remove()
        return False

    def _pre(self, name):
        def hook(module, args):
            inp = main_tensor(args)
            call = _Call(name, module, self._tick, inp=inp)
            call.in_version = inp._version if inp is not None else 0
            self._tick += 1
            self._open.setdefault(id(module), []).append(call)

        return hook

    def _post(self, name):
        def hook(module, args, output):
            stack = self._open.get(id(module))
            call = stack.pop() if stack else _Call(name, module, self._tick)
            call.end = self._tick
            self._tick += 1
            call.out = output if isinstance(output, torch.Tensor) else None
            call.version = output._version if call.out is not None else 0
            self.calls.append(call)

        return hook

    def report(self, input_shape: tuple[int, ...]) -> ModelLayouts:
        """Decide every recorded module's layout (last call of each)."""
        return _decide(self.calls, tuple(input_shape), self.model)


@dataclass(frozen=True)
class ModelLayouts:
    """Layouts of one model at one input size.

    Attributes:
        layouts: Module name → layout of its last call's output.
        calls: Module name → calls in one forward.
        order: Module names in the order their last call ended.
        alias: Module name → the innermost single-call module returning the very same
            tensor (``layer4`` → ``layer4.2``); CAM maps of the two are identical.
        shapes: Module name → shape of its last call's output tensor.
    """

    layouts: dict[str, Layout]
    calls: dict[str, int]
    order: list[str]
    alias: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def cam_candidates(self) -> list[str]:
        """Layers a CAM can explain, in forward order: grid larger than 1×1, one call, one
        name per output tensor (the innermost)."""
        return [
            n
            for n in self.order
            if self.layouts[n].spatial and self.calls.get(n) == 1 and self.alias.get(n, n) == n
        ]

    def default_layer(self) -> str | None:
        """The last CAM candidate (structure only; :func:`core.methods.cam.suggest_layer` also
        checks the map is not constant)."""
        cands = self.cam_candidates()
        return cands[-1] if cands else None


def _decide(calls: list[_Call], input_shape: tuple[int, ...], model: nn.Module) -> ModelLayouts:
    batch = input_shape[0]
    in_hw = input_shape[-2:] if len(input_shape) == 4 else None
    producer: dict[int, _Call] = {}
    grids: list[tuple[tuple[int, int], str]] = []
    ordered = sorted(calls, key=lambda c: c.end)
    hint = _prefix_hint(model, ordered)
    for c in ordered:
        c.layout = _layout_of(c, ordered, producer, grids, batch, in_hw, hint)
        if c.out is not None:
            producer.setdefault(_tid(c.out, c.version), c)
            if c.layout.kind in (NCHW, NHWC) and c.layout.grid:
                grids.append((c.layout.grid, c.name))
    layouts: dict[str, Layout] = {}
    counts: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    last_end: dict[str, int] = {}
    modules: dict[str, nn.Module] = {}
    for c in ordered:
        modules[c.name] = c.module
        counts[c.name] = counts.get(c.name, 0) + 1
        layouts[c.name] = c.layout
        last_end[c.name] = c.end
        if c.out is not None:
            shapes[c.name] = tuple(c.out.shape)
    groups: dict[tuple[int, int], list[str]] = {}
    for c in ordered:
        if c.out is not None and last_end[c.name] == c.end and counts[c.name] == 1:
            groups.setdefault(_tid(c.out, c.version), []).append(c.name)
    alias: dict[str, str] = {}
    for names in groups.values():
        # One name per tensor: the innermost block returning it (at least two children with
        # parameters), e.g. layer4.2 rather than its last activation, a norm+activation pair
        # or the whole trunk ``layer4``.
        blocks = [n for n in names if _is_block(modules[n])]
        parents = [n for n in names if any(modules[n].children())]
        keep = (blocks or parents or names)[0]
        for n in names:
            if n != keep:
                alias[n] = keep
    order = sorted(layouts, key=lambda n: last_end[n])
    return ModelLayouts(layouts, counts, order, alias, shapes)


def _is_block(m: nn.Module) -> bool:
    return sum(1 for c in m.children() if any(True for _ in c.parameters())) >= 2


def _prefix_hint(model: nn.Module, calls: list[_Call]) -> tuple[int, str] | None:
    """Prefix tokens the model declares: ``num_prefix_tokens`` (timm) or token parameters."""
    roots = {id(model): model} | {id(c.module): c.module for c in calls}
    for m in roots.values():
        k = getattr(m, "num_prefix_tokens", None)
        if isinstance(k, int) and k >= 0:
            return k, "num_prefix_tokens"
    total, seen = 0, set()
    for m in roots.values():
        for pname, p in m.named_parameters(recurse=False):
            if id(p) in seen or not pname.lower().endswith(("token", "tokens")):
                continue
            seen.add(id(p))
            if p.dim() == 3 and p.shape[0] == 1:
                total += int(p.shape[1])
    return (total, "token parameters") if total else None


def _layout_of(c, ordered, producer, grids, batch, in_hw, hint) -> Layout:
    y = c.out
    if y is None:
        return Layout(NONE, evidence="not a tensor")
    shape = tuple(y.shape)
    if y.dim() not in (3, 4):
        return Layout(NONE, evidence=f"{y.dim()}-D output")
    if shape[0] != batch:
        return Layout(NONE, evidence=f"first axis {shape[0]} is not the input's batch {batch}")
    axis, why = _channel_axis(c, ordered, producer)
    if axis is None:
        return _guess(c, shape, grids, in_hw, hint)
    c.axis = axis
    if y.dim() == 4:
        kind = NCHW if axis == 1 else NHWC
        grid = shape[2:] if axis == 1 else shape[1:3]
        return Layout(kind, (int(grid[0]), int(grid[1])), 0, why)
    if axis == 1 and shape[2] <= 1:
        return Layout(NONE, evidence=f"a {shape[1]}-channel vector")
    if axis == 1:
        return Layout(
            UNKNOWN,
            evidence=(
                f"Layer '{c.name}' outputs {shape} with channels on axis 1 and a sequence last; "
                "pass --reshape HxW to read it as tokens."
            ),
        )
    return _tokens(c.name, shape, grids, in_hw, hint, why)


def _channel_axis(c: _Call, ordered, producer) -> tuple[int | None, str]:
    """Channel axis (1 or -1) of ``c.out`` from the module's own computation, or None."""
    m, y = c.module, c.out
    leaf = not any(True for _ in m.children())
    weight = getattr(m, "weight", None)
    weight = weight if isinstance(weight, torch.Tensor) else None
    if leaf and weight is not None:
        if weight.dim() == 4 and y.dim() == 4:
            return 1, "convolution"
        if weight.dim() == 2 and weight.shape[0] == y.shape[-1] and not _is_norm(m):
            return -1, "linear layer over the last axis"
    if leaf and hasattr(m, "normalized_shape"):
        axis = _norm_axis(m, c.inp if c.inp is not None else y)
        if axis is not None:
            return axis, "layer norm " + ("over axis 1" if axis == 1 else "over the last axis")
    if leaf and (hasattr(m, "running_mean") or isinstance(m, nn.GroupNorm)) and y.dim() == 4:
        return 1, "batch/group norm (axis 1)"
    if leaf and (hasattr(m, "kernel_size") or hasattr(m, "output_size")):
        return 1, "pooling (axis 1)"  # torch pools keep channels on axis 1, pool the rest
    if not leaf:
        inner = producer.get(_tid(y, c.version))
        if inner is not None and inner.axis is not None and inner is not c:
            return inner.axis, f"returns {inner.name}'s output"
        last = _last_inner(c, ordered)
        if last is not None:
            ch = last.out.shape[last.axis]
            first, end = y.shape[1] == ch, y.shape[-1] == ch
            if first != end:
                return (1 if first else -1), f"{ch} channels as in {last.name}"
            if first and end:
                src = producer.get(id(c.inp)) if c.inp is not None else None
                if (
                    src is not None
                    and src.axis is not None
                    and tuple(c.inp.shape) == tuple(y.shape)
                ):
                    return src.axis, f"same shape as its input from {src.name}"
                return last.axis, f"as {last.name}"
    src = _source(c, producer)
    if src is not None and src.axis is not None and tuple(c.inp.shape) == tuple(y.shape):
        return src.axis, f"keeps the layout of {src.name}"
    return None, ""


def _tid(t: torch.Tensor, version: int) -> tuple[int, int]:
    return id(t), version


def _source(c: _Call, producer) -> _Call | None:
    """The call whose output is ``c``'s input (same tensor, same version), if hooked."""
    if c.inp is None:
        return None
    return producer.get(_tid(c.inp, c.in_version))


def _is_norm(m: nn.Module) -> bool:
    return hasattr(m, "normalized_shape") or hasattr(m, "running_mean")


def _last_inner(c: _Call, ordered) -> _Call | None:
    """The last call inside ``c`` (a descendant) whose channel axis is known."""
    prefix = c.name + "."
    best = None
    for d in ordered:
        if d.end >= c.end:
            break
        if d.start > c.start and d.name.startswith(prefix) and d.axis is not None:
            best = d
    return best


def _norm_axis(m: nn.Module, like: torch.Tensor) -> int | None:
    """Which axis a layer norm normalises, by running it on a seeded random input."""
    ns = tuple(getattr(m, "normalized_shape", ()) or ())
    if len(ns) != 1 or like.dim() < 3:
        return None
    gen = torch.Generator().manual_seed(0)
    # Axis 1 and the last axis keep their sizes; the others shrink (only which axis matters).
    small = (1, like.shape[1], *([3] * (like.dim() - 3)), like.shape[-1])
    p = next(iter(m.parameters()), None)
    dtype = p.dtype if p is not None else torch.float32
    x = torch.randn(small, generator=gen).to(like.device, dtype)
    weight = getattr(m, "weight", None)
    bias = getattr(m, "bias", None)
    eps = float(getattr(m, "eps", 1e-5) or 1e-5)
    try:
        with torch.no_grad():
            y = m(x).float()
    except Exception:
        return None
    if y is None or not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return None
    x = x.float()
    w = weight.detach().float() if isinstance(weight, torch.Tensor) else None
    b = bias.detach().float() if isinstance(bias, torch.Tensor) else None
    with torch.no_grad():
        if x.shape[-1] == ns[0]:
            last = F.layer_norm(x, ns, w, b, eps)
            if torch.allclose(y, last, atol=1e-4, rtol=1e-4):
                return -1
        if x.shape[1] == ns[0]:
            first = F.layer_norm(x.movedim(1, -1), ns, w, b, eps).movedim(-1, 1)
            if torch.allclose(y, first, atol=1e-4, rtol=1e-4):
                return 1
    return None


def _guess(c, shape, grids, in_hw, hint) -> Layout:
    """No layer-level evidence: match the shape against the grids the model shows."""
    known = {g for g, _ in grids} | set(_stride_grids(in_hw))
    if len(shape) == 4:
        first, last = tuple(shape[2:]) in known, tuple(shape[1:3]) in known
        if first != last:
            kind = NCHW if first else NHWC
            grid = shape[2:] if first else shape[1:3]
            return Layout(kind, (int(grid[0]), int(grid[1])), 0, "grid seen in the model")
        return Layout(
            UNKNOWN,
            evidence=(
                f"Cannot tell whether layer '{c.name}' with output {shape} is channels-first "
                "or channels-last; pass --reshape nchw or --reshape nhwc."
            ),
        )
    return _tokens(c.name, shape, grids, in_hw, hint, "")


def _stride_grids(in_hw) -> list[tuple[int, int]]:
    if not in_hw:
        return []
    h, w = int(in_hw[0]), int(in_hw[1])
    out = []
    for s in (1, 2, 4, 8, 14, 16, 32, 64):
        out.append((h // s, w // s))
        out.append((-(-h // s), -(-w // s)))
    return [g for g in out if g[0] > 0 and g[1] > 0]


def _tokens(name, shape, grids, in_hw, hint, why) -> Layout:
    """Split (N, T, C) into K prefix tokens + an h×w grid."""
    n_tok = int(shape[1])
    by_area: dict[int, tuple[tuple[int, int], str]] = {}
    for g, src in grids:
        by_area.setdefault(g[0] * g[1], (g, f"the {g[0]}x{g[1]} grid of {src}"))
    if hint is not None:
        k, what = hint
        area = n_tok - k
        if area > 1:
            found = by_area.get(area) or _aspect_grid(area, in_hw)
            if found is not None:
                grid, src = found
                return Layout(TOKENS, grid, k, f"{what} = {k}, {src}")
    for area in sorted(by_area, reverse=True):
        k = n_tok - area
        if 0 <= k <= MAX_PREFIX and area > k:
            grid, src = by_area[area]
            return Layout(TOKENS, grid, k, f"{src} + {k} prefix token(s)")
    for k in range(0, MAX_PREFIX + 1):
        found = _aspect_grid(n_tok - k, in_hw)
        if found is not None and found[0][0] * found[0][1] > k:
            return Layout(TOKENS, found[0], k, f"{found[1]} + {k} prefix token(s)")
    return Layout(
        UNKNOWN,
        evidence=(
            f"Layer '{name}' outputs {n_tok} tokens that do not split into prefix tokens and a "
            "grid seen in the model; pass --reshape HxW (the token grid) or tokens:K."
        ),
    )


def _aspect_grid(area: int, in_hw) -> tuple[tuple[int, int], str] | None:
    """An h×w grid of ``area`` cells with exactly the input's aspect ratio."""
    if area <= 0:
        return None
    if in_hw:
        hh, ww = int(in_hw[0]), int(in_hw[1])
        g = math.gcd(hh, ww)
        a, b = hh // g, ww // g
        s2, rem = divmod(area, a * b)
        s = math.isqrt(s2) if s2 > 0 else 0
        if rem == 0 and s > 0 and s * s == s2:
            return (a * s, b * s), "a grid with the input's aspect"
        return None
    sq = _square(area)
    return (sq, "a square grid") if sq else None


# -- analysis, cached per model and input size -------------------------------------------------
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _key(model: nn.Module, x_shape) -> tuple:
    return (tuple(x_shape[1:]), sum(1 for _ in model.modules()))


def remember(model: nn.Module, x_shape, report: ModelLayouts) -> None:
    """Keep ``report`` for ``model`` at this input size (the tree's dry run calls this)."""
    _CACHE.setdefault(model, {})[_key(model, x_shape)] = report


def cached(model: nn.Module, x_shape) -> ModelLayouts | None:
    """Layouts already found for ``model`` at this input size, or None."""
    return _CACHE.get(model, {}).get(_key(model, x_shape))


def analyse(model: nn.Module, x: torch.Tensor) -> ModelLayouts:
    """Layouts of every module for input ``x`` (one no-grad forward; cached)."""
    hit = cached(model, x.shape)
    if hit is not None:
        return hit
    with eval_mode(model), LayoutRecorder(model) as rec, torch.no_grad():
        forward_model(model, x[:1])
    report = rec.report(tuple(x[:1].shape))
    remember(model, x.shape, report)
    return report


def layout_for(
    model: nn.Module, name: str, raw: torch.Tensor, x_shape, request: Any = None
) -> Layout:
    """The layout of layer ``name`` whose output is ``raw``: a request, else the evidence.

    Raises:
        HookScopeError: One sentence when the layout cannot be decided or has no grid.
    """
    shape = tuple(raw.shape)
    if request is not None:
        return apply_request(request, shape, name)
    report = cached(model, x_shape) if x_shape is not None else latest(model)
    found = report.layouts.get(name) if report is not None else None
    if found is not None and report.shapes.get(name, shape)[1:] != shape[1:]:
        found = None  # another call of the module (or another input size): decide afresh
    if found is None:
        found = Layout(NCHW, tuple(shape[2:]), 0, "4-D output") if raw.dim() == 4 else None
        if raw.dim() == 3:
            found = _tokens(name, shape, [], None, None, "")
    if found is None or found.kind == NONE:
        raise NoGridError(
            f"Layer '{name}' outputs shape {shape}, which has no spatial grid for a CAM map; "
            "pick a convolutional or token layer."
        )
    if found.kind == UNKNOWN:
        raise HookScopeError(found.evidence)
    return found


def latest(model: nn.Module) -> ModelLayouts | None:
    """The layouts analysed most recently for ``model``, at any input size."""
    entries = _CACHE.get(model) or {}
    return next(reversed(entries.values()), None) if entries else None
