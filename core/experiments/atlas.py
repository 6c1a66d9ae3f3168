"""Channel atlas: for every channel of a layer, the images of a folder that excite it most.

Yosinski et al.'s deep-visualization toolbox showed per unit the top images of a dataset; this
module holds the numeric parts of the same view for any PyTorch model and the user's folder:

- :class:`AtlasSettings`: every option, frozen and validated (its :meth:`~AtlasSettings.key`
  decides whether an output folder holds the same atlas, for resume);
- :func:`layer_activations`: one forward per batch, stopped at the layer, the output laid out
  as a grid (N, C, h, w) whatever its raw layout (NCHW, NHWC, tokens with prefix tokens);
- :class:`TopK`: a bounded top-k per channel (memory O(channels · k)), merged batch by batch;
  ranks order by value, highest first, ties by image index (sorted path), so the result is
  exactly a full sort of all activations;
- :func:`measure_field`: the receptive field of one cell of the layer, measured from the model
  (the non-zero extent of the gradient of that cell w.r.t. the input), once per layer;
- :func:`cell_box` and :func:`to_image_box`: a cell back to input pixels, then through the
  preprocessing (shorter-side resize + centre crop) to the image's own pixels.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, main_tensor
from hookscope.core.engine.layouts import Layout, analyse, layout_for
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan_settings import (
    check_text,
    settings_from_dict,
    settings_to_dict,
    whole,
)
from hookscope.core.loading.spec import InputSpec

MAX_TOP = 100
"""Most images an atlas keeps per channel."""


@dataclass(frozen=True)
class AtlasSettings:
    """Every option of a channel atlas.

    Attributes:
        images: Folder; every image below it, recursively.
        layer: The layer whose channels are ranked.
        top: Images kept per channel (k).
        out: Output folder (default: ``atlas-<folder name>-<layer>`` in the working directory).
        batch_size: Images per forward.
        workers: Decoding processes (None: one per spare core, at most 4; 0 = in-process).
        limit: Only the first N images (sorted by path).
        model_spec: The spec string the model was loaded from (recorded in atlas.json).
        spec: Input spec; None: the model's own (:meth:`resolve` fills it in).
        reshape: Layout of the layer's output, as for ``compute_cam`` (a name or (h, w)).
        ray: None (local), ``"local"``, ``"auto"`` or a Ray cluster address, as for the scan.
    """

    images: str
    layer: str
    top: int = 9
    out: str | None = None
    batch_size: int = 32
    workers: int | None = None
    limit: int | None = None
    model_spec: str | None = None
    spec: InputSpec | None = None
    reshape: str | tuple[int, int] | None = None
    ray: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        check_text(self, "atlas", {"images": "the image folder", "layer": "a layer"})
        check_text(self, "atlas", optional=("out", "model_spec", "ray"))
        put(self, "top", whole(self.top, 1, "--top", highest=MAX_TOP))
        put(self, "batch_size", whole(self.batch_size, 1, "--batch-size"))
        if self.workers is not None:
            put(self, "workers", whole(self.workers, 0, "--workers"))
        if self.limit is not None:
            put(self, "limit", whole(self.limit, 1, "--limit"))
        if self.spec is not None and not isinstance(self.spec, InputSpec):
            raise HookScopeError(f"The atlas's input spec must be an InputSpec, not {self.spec!r}.")
        if isinstance(self.reshape, list):
            put(self, "reshape", tuple(self.reshape))

    def to_dict(self) -> dict:
        """JSON-ready form; :meth:`from_dict` gives the same object back."""
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AtlasSettings:
        """Inverse of :meth:`to_dict`; an unknown key or a bad value is one sentence."""
        return settings_from_dict(cls, d, "atlas")

    def replace(self, **changes) -> AtlasSettings:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def resolve(self, loaded) -> AtlasSettings:
        """Absolute folder and the model's input spec when none is set.

        Raises:
            HookScopeError: A native-size spec (images of several sizes cannot share a batch).
        """
        spec = self.spec or loaded.input_spec
        if spec.native:
            raise HookScopeError(
                "An atlas needs a fixed input size; load the model with an input size."
            )
        root = Path(self.images).expanduser().resolve()
        return self.replace(images=str(root), spec=spec)

    def key(self) -> dict:
        """What makes two atlases of one model the same (of resolved settings)."""
        if self.spec is None:
            raise HookScopeError("Resolve the atlas settings against the model first.")
        return {
            "layer": self.layer,
            "top": self.top,
            "input_spec": self.spec.to_dict(),
            "images": self.images,
            "reshape": None if self.reshape is None else str(self.reshape),
        }


# -- the layer's output -----------------------------------------------------------------------
class _Stop(Exception):
    """Raised by the capture hook: nothing after the layer is needed."""


def find_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule named ``layer``, else one sentence."""
    module = dict(model.named_modules()).get(layer)
    if module is None or not layer:
        raise HookScopeError(f"The model has no layer named '{layer}'; see `inspect` for names.")
    return module


def _capture(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's first output for input ``x``; the forward stops right after it."""
    box: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        t = main_tensor(out)
        if t is None:
            raise HookScopeError("The atlas layer outputs no tensor; pick another layer.")
        box.append(t)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        forward_model(model, x)
    except _Stop:
        pass
    except HookScopeError as exc:
        if not isinstance(exc.__cause__, _Stop):
            raise
    finally:
        handle.remove()
    if not box:
        raise HookScopeError("The atlas layer was not called by the model's forward pass.")
    return box[0]


def layer_layout(model: nn.Module, layer: str, x: torch.Tensor, reshape=None) -> Layout:
    """The layer's layout at input ``x`` (one dry run, cached by the engine)."""
    module = find_layer(model, layer)
    analyse(model, x[:1])
    with eval_mode(model), torch.no_grad():
        raw = _capture(model, module, x[:1])
    return layout_for(model, layer, raw, tuple(x[:1].shape), reshape)


def layer_activations(
    model: nn.Module, layer: str, x: torch.Tensor, layout: Layout
) -> torch.Tensor:
    """The layer's output for batch ``x`` as float32 (N, C, h, w), on the CPU."""
    module = find_layer(model, layer)
    with eval_mode(model), torch.inference_mode():
        raw = _capture(model, module, x)
        return layout.to_grid(raw).float().cpu()


# -- top-k per channel ------------------------------------------------------------------------
class TopK:
    """The k highest per-image maxima of every channel, with where they are and their maps.

    Order: value descending, then image index ascending (a full sort's order). NaN counts as
    -inf. Memory: O(C · k · h · w) for the maps, O(C · k) for the rest. ``crops`` (C, k) holds
    whatever the caller attaches to an entry (the atlas job: its crop's pixels, or None); it
    moves with its entry and is not part of :meth:`state`.
    """

    def __init__(self, channels: int, k: int, grid: tuple[int, int]):
        self.k, self.grid = k, grid
        self.values = np.full((channels, k), -np.inf, np.float32)
        self.index = np.full((channels, k), -1, np.int64)
        self.row = np.zeros((channels, k), np.int32)
        self.col = np.zeros((channels, k), np.int32)
        self.maps = np.zeros((channels, k, *grid), np.float16)
        self.crops = np.full((channels, k), None, object)

    def add(self, acts: torch.Tensor | np.ndarray, index: np.ndarray) -> tuple[np.ndarray, ...]:
        """Merge a batch: ``acts`` (N, C, h, w) float32, ``index`` (N,) image indices.

        Returns:
            The entries that came in from this batch: (channels, slots, batch positions).
        """
        a = np.asarray(acts, np.float32)
        n, c, h, w = a.shape
        none = np.zeros(0, np.int64)
        if n == 0:
            return none, none, none
        flat = a.reshape(n, c, h * w)
        arg = flat.argmax(2)  # first maximum, row-major; a NaN wins (numpy propagates it)
        val = np.take_along_axis(flat, arg[..., None], 2)[..., 0]
        bad = np.isnan(val)
        if bad.any():  # only maps holding a NaN pay for the mask: NaN counts as -inf
            rows = flat[bad]
            rows = np.where(np.isnan(rows), -np.inf, rows)
            arg[bad] = rows.argmax(1)
            val[bad] = np.take_along_axis(rows, arg[bad][:, None], 1)[:, 0]
        val = np.where(np.isnan(val), -np.inf, val).T  # (C, N)
        # only channels where the batch reaches the k-th value can change (>=: a tie may win
        # on the image index); late in a folder that is a few of them
        ch = np.flatnonzero(val.max(1) >= self.values[:, -1])
        if not len(ch):
            return none, none, none
        return self._merge(ch, a, val[ch], arg.T[ch], np.asarray(index, np.int64), w)

    def _merge(self, ch, a, val, arg, index, w) -> tuple[np.ndarray, ...]:
        """Merge the batch's ``val`` / ``arg`` (len(ch), N) into channels ``ch``; returns the
        new entries as (channels, slots, batch positions)."""
        k = self.k
        idx = np.broadcast_to(index, val.shape)
        all_v = np.concatenate([self.values[ch], val], 1)
        all_i = np.concatenate([self.index[ch], idx], 1)
        # empty slots (-1) sort last among equal -inf values
        tie = np.where(all_i < 0, np.iinfo(np.int64).max, all_i)
        order = np.lexsort((tie, -all_v.astype(np.float64)), axis=1)[:, :k]
        from_old = order < k
        col = ch[:, None]
        # keep the old entries in their new order, then fill in only the batch's (a late
        # batch brings a few: gathering all its maps would cost more than the merge)
        src = np.where(from_old, order, 0)
        maps, rows, cols = self.maps[col, src], self.row[col, src], self.col[col, src]
        crops = self.crops[col, src]
        where, slot = np.nonzero(~from_old)
        new = order[where, slot] - k
        channel = ch[where]
        maps[where, slot] = a[new, channel]
        pick = arg[where, new]
        rows[where, slot], cols[where, slot], crops[where, slot] = pick // w, pick % w, None
        self.maps[ch], self.row[ch], self.col[ch], self.crops[ch] = maps, rows, cols, crops
        self.values[ch] = np.take_along_axis(all_v, order, 1)
        self.index[ch] = np.take_along_axis(all_i, order, 1)
        return channel, slot, new

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint (``from_state`` gives the same object back)."""
        return {k: getattr(self, k) for k in ("values", "index", "row", "col", "maps")}

    @classmethod
    def from_state(cls, state) -> TopK:
        maps = np.asarray(state["maps"])
        top = cls(maps.shape[0], maps.shape[1], tuple(maps.shape[2:]))
        for k in ("values", "index", "row", "col", "maps"):
            setattr(top, k, np.asarray(state[k]))
        return top


# -- receptive field --------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """Where a cell of the layer looks in the model's input.

    A cell (r, c) covers input rows ``[r·sy + y0, r·sy + y1)`` and columns
    ``[c·sx + x0, c·sx + x1)``, clipped to the input.

    Attributes:
        stride: (sy, sx), input pixels per grid step (input size / grid).
        offset: (y0, y1, x0, x1) relative to the cell's origin.
        input_size: (H, W) of the model input.
        how: ``"measured"`` (the gradient's extent), ``"cell"`` (the measured field covers
            the whole input, as after global attention: the crop is the cell's own patch) or
            ``"footprint"`` (:func:`footprint`).
    """

    stride: tuple[float, float]
    offset: tuple[float, float, float, float]
    input_size: tuple[int, int]
    how: str


def _extent(nonzero: np.ndarray) -> tuple[int, int]:
    hits = np.flatnonzero(nonzero)
    return (int(hits[0]), int(hits[-1]) + 1) if len(hits) else (0, 0)


_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model → {(layer, input size, channels, layout): Field}: measured once per process."""


def measure_field(
    model: nn.Module, layer: str, layout: Layout, input_size: tuple[int, int], channels: int = 3
) -> Field:
    """Measure the receptive field of the layer's middle cell from the model.

    The gradient of that cell (summed over channels) w.r.t. two random inputs; the field is
    the box of input pixels where either is non-zero (two inputs, so a ReLU or a max-pool that
    is off at one pixel for one input does not shrink it). Every other cell is the same
    box moved by the stride. The field is the architecture's, not the weights': it is kept
    per model, so the next atlas or concepts of the layer do not pay the backward again.
    """
    key = (layer, tuple(input_size), int(channels), str(layout))
    try:
        cache = _FIELDS.setdefault(model, {})
    except TypeError:  # not weak-referenceable
        cache = {}
    if key not in cache:
        cache[key] = _measure_field(model, layer, layout, input_size, channels)
    return cache[key]


def _measure_field(model, layer, layout, input_size, channels) -> Field:
    module = find_layer(model, layer)
    h_in, w_in = input_size
    gh, gw = layout.grid
    r0, c0 = gh // 2, gw // 2
    gen = torch.Generator().manual_seed(0)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(2, channels, h_in, w_in, generator=gen).to(device).requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        raw = _capture(model, module, x)
        cell = layout.to_grid(raw)[:, :, r0, c0].sum()
        (grad,) = torch.autograd.grad(cell, x, allow_unused=True)
    if grad is None:
        raise HookScopeError(f"Layer '{layer}' does not depend on the input; pick another layer.")
    nz = (grad.detach().abs().sum((0, 1)) > 0).cpu().numpy()
    y0, y1 = _extent(nz.any(1))
    x0, x1 = _extent(nz.any(0))
    sy, sx = h_in / gh, w_in / gw
    if (y0, y1, x0, x1) == (0, h_in, 0, w_in) and gh * gw > 1:
        return Field((sy, sx), (0.0, sy, 0.0, sx), (h_in, w_in), "cell")
    off = (y0 - r0 * sy, y1 - r0 * sy, x0 - c0 * sx, x1 - c0 * sx)
    return Field((sy, sx), tuple(float(v) for v in off), (h_in, w_in), "measured")


def footprint(field: Field) -> Field:
    """The cell's own share of the input: one stride, centred on its receptive field.

    Where a grid map (a concept map, a CAM) puts a cell when upsampled; the whole field of a
    deep cell is mostly its surroundings.
    """
    sy, sx = field.stride
    oy0, oy1, ox0, ox1 = field.offset
    cy, cx = (oy0 + oy1) / 2, (ox0 + ox1) / 2
    off = (cy - sy / 2, cy + sy / 2, cx - sx / 2, cx + sx / 2)
    return Field(field.stride, off, field.input_size, "footprint")


def cell_box(field: Field, row: int, col: int) -> tuple[float, float, float, float]:
    """Input-pixel box (x0, y0, x1, y1) of cell (row, col), clipped to the input."""
    sy, sx = field.stride
    oy0, oy1, ox0, ox1 = field.offset
    h, w = field.input_size
    return (
        min(max(col * sx + ox0, 0.0), w),
        min(max(row * sy + oy0, 0.0), h),
        min(max(col * sx + ox1, 0.0), w),
        min(max(row * sy + oy1, 0.0), h),
    )


def to_image_box(
    box: tuple[float, float, float, float], image_size: tuple[int, int], spec: InputSpec
) -> tuple[int, int, int, int]:
    """A box in model-input pixels → the image's own pixels (inverse of ``preprocess``).

    ``preprocess`` resizes the image (width W, height H) to (W', H') with the shorter side at
    ``spec.resize`` (or just covering ``spec.size``), then centre-crops ``spec.size``; so an
    input x is image x ``(x + left) · W / W'``. Edges are rounded outwards.
    """
    width, height = image_size
    h, w = spec.size
    scale = spec.resize / min(width, height) if spec.resize else max(h / height, w / width)
    new_w, new_h = max(w, round(width * scale)), max(h, round(height * scale))
    left, top = (new_w - w) // 2, (new_h - h) // 2
    fx, fy = width / new_w, height / new_h
    x0, y0, x1, y1 = box
    ix0 = max(0, math.floor((x0 + left) * fx + 1e-9))
    iy0 = max(0, math.floor((y0 + top) * fy + 1e-9))
    ix1 = min(width, math.ceil((x1 + left) * fx - 1e-9))
    iy1 = min(height, math.ceil((y1 + top) * fy - 1e-9))
    return ix0, iy0, max(ix1, ix0 + 1), max(iy1, iy0 + 1)
