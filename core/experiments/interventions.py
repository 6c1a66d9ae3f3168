"""Experiments on a running model: edit a gradient, an activation, or the image.

Each model edit is a small context manager passed to ``run_probe(..., edits=[...])``: it
attaches its hooks on enter and removes every handle on exit, also after errors.

Which numbers a probe shows when edits are active (run_probe enters its HookSession first,
then the edits):

- :class:`GradEdit` registers its tensor hook *after* the session's, and tensor hooks run in
  the order registered. So the record of the edited layer shows the gradient arriving from
  above, before the edit; every layer below (and the input gradient) sees the edited one.
  ``GradEdit.after`` keeps what was passed on.
- :class:`ActEdit` prepends its hooks, so the session records the edited activation (what the
  next layer really received), and the edited layer's gradient is the gradient wrt that
  edited tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from hookscope.core.engine.context import main_tensor
from hookscope.core.engine.hooks import resolve_modules
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, occlude, paste, solid, to_rgb

GRAD_OPS = ("scale", "clip", "zero", "noise")
ACT_OPS = ("zero", "scale", "mean", "topk")


class _Hooks:
    """Owns hook handles; removes them all on exit."""

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def _attach(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        try:
            self._attach()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Remove every hook this edit attached; safe to call twice."""
        while self._handles:
            self._handles.pop().remove()


# -- gradient edits ---------------------------------------------------------------------------
class GradEdit(_Hooks):
    """Change the gradient flowing back through a layer's output.

    Exactly one operation: ``scale=k`` (multiply), ``clip=c`` (clamp to ±c), ``zero=True``,
    or ``noise=s`` (add Gaussian noise with std ``s`` × the gradient's own std, seeded).
    The edit applies to every call of the module (a reused module is edited each time).

    Args:
        model: The model holding the layer.
        layer: Qualified module name.
        scale: Factor to multiply the gradient by.
        clip: Bound for ``clamp(-clip, clip)``.
        zero: Replace the gradient by zeros.
        noise: Relative noise level.
        seed: Seed of the noise generator (reset on every enter).

    Attributes:
        before: Gradient that arrived at the output, per call (detached, CPU).
        after: Gradient passed on below, per call.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        *,
        scale: float | None = None,
        clip: float | None = None,
        zero: bool = False,
        noise: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        given = {
            "scale": scale,
            "clip": clip,
            "zero": True if zero else None,
            "noise": noise,
        }
        ops = [(k, v) for k, v in given.items() if v is not None]
        if len(ops) != 1:
            raise HookScopeError(
                f"A gradient edit needs exactly one of scale, clip, zero or noise, got {len(ops)}."
            )
        self.op, value = ops[0]
        self.value = 0.0 if self.op == "zero" else float(value)
        if self.op == "clip" and self.value < 0:
            raise HookScopeError(f"A gradient clip bound must be ≥ 0, not {self.value:g}.")
        if self.op == "noise" and self.value < 0:
            raise HookScopeError(f"A gradient noise level must be ≥ 0, not {self.value:g}.")
        self.layer = layer
        self.seed = int(seed)
        self.module = resolve_modules(model, [layer])[layer]
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []
        self._gen: torch.Generator | None = None

    def _attach(self) -> None:
        self.before, self.after = [], []
        self._gen = torch.Generator(device="cpu").manual_seed(self.seed)
        self._handles.append(self.module.register_forward_hook(self._forward_hook))

    def _forward_hook(self, module, args, output):
        out = main_tensor(output)
        if out is not None and out.requires_grad and torch.is_grad_enabled():
            out.register_hook(self._tensor_hook)

    def _tensor_hook(self, grad: torch.Tensor) -> torch.Tensor:
        new = self.apply(grad)
        self.before.append(grad.detach().cpu().clone())
        self.after.append(new.detach().cpu().clone())
        return new

    def apply(self, grad: torch.Tensor) -> torch.Tensor:
        """The edited gradient (the noise op draws from this edit's generator)."""
        if self.op == "scale":
            return grad * self.value
        if self.op == "clip":
            return grad.clamp(-self.value, self.value)
        if self.op == "zero":
            return torch.zeros_like(grad)
        if self._gen is None:
            self._gen = torch.Generator(device="cpu").manual_seed(self.seed)
        # Noise is drawn on the CPU so a seed gives the same numbers on every device.
        draw = torch.randn(grad.shape, generator=self._gen, dtype=grad.dtype)
        std = grad.detach().float().std() if grad.numel() > 1 else grad.new_zeros(())
        return grad + draw.to(grad.device) * (self.value * std.to(grad.dtype))

    def to_dict(self) -> dict:
        """Plain-data form (sessions, hook code, the CLI)."""
        d = {"kind": "grad", "layer": self.layer, "op": self.op, "value": self.value}
        if self.op == "noise":
            d["seed"] = self.seed
        return d

    def describe(self) -> str:
        """Short label such as ``layer2: gradient ×2``."""
        return describe_edit(self.to_dict())


# -- activation edits -------------------------------------------------------------------------
class ActEdit(_Hooks):
    """Change what a layer outputs (forward hook) or receives (forward pre-hook).

    Operations on channels (dim 1): ``zero`` the chosen channels, ``scale`` them by
    ``value``, replace them by their ``mean`` over the spatial dims, or keep only the
    ``topk`` channels by mean activation (per sample) and zero the rest.

    Args:
        model: The model holding the layer.
        layer: Qualified module name.
        op: One of ``zero``, ``scale``, ``mean``, ``topk``.
        channels: Channel indices; None means all channels; an empty list changes nothing.
        value: Factor for ``scale``.
        k: How many channels ``topk`` keeps.
        on: ``output`` (forward hook) or ``input`` (the first positional input).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        op: str = "zero",
        channels: Iterable[int] | None = None,
        *,
        value: float | None = None,
        k: int | None = None,
        on: str = "output",
    ):
        super().__init__()
        if op not in ACT_OPS:
            raise HookScopeError(f"Unknown activation edit '{op}': use {', '.join(ACT_OPS)}.")
        if on not in ("output", "input"):
            raise HookScopeError(f"An activation edit works on output or input, not '{on}'.")
        if op == "scale" and value is None:
            raise HookScopeError("A scale edit needs a factor (value).")
        if op == "topk" and (k is None or int(k) < 0):
            raise HookScopeError("A top-k edit needs k, the number of channels to keep (≥ 0).")
        self.layer, self.op, self.on = layer, op, on
        self.channels = None if channels is None else [int(c) for c in channels]
        if any(c < 0 for c in self.channels or ()):
            # Python would wrap -1 to the last channel: an edit of a channel nobody named.
            raise HookScopeError(
                f"Channel {min(self.channels)} of '{layer}' does not exist: channels are "
                "numbered from 0."
            )
        self.value = None if value is None else float(value)
        self.k = None if k is None else int(k)
        self.module = resolve_modules(model, [layer])[layer]

    def _attach(self) -> None:
        # Prepended so HookScope's own recorder sees the edited tensor.
        if self.on == "output":
            h = self.module.register_forward_hook(self._forward_hook, prepend=True)
        else:
            h = self.module.register_forward_pre_hook(self._pre_hook, prepend=True)
        self._handles.append(h)

    def _forward_hook(self, module, args, output):
        if isinstance(output, torch.Tensor):
            return self.apply(output)
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            return type(output)([self.apply(output[0]), *output[1:]])
        raise HookScopeError(
            f"Layer '{self.layer}' returns {type(output).__name__}; activation edits need a "
            "tensor (or a tuple starting with one)."
        )

    def _pre_hook(self, module, args):
        if not args or not isinstance(args[0], torch.Tensor):
            raise HookScopeError(
                f"Layer '{self.layer}' takes no tensor as its first input, so it cannot be edited."
            )
        return (self.apply(args[0]), *args[1:])

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """The edited tensor (the input is never changed in place)."""
        if t.dim() < 2:
            raise HookScopeError(
                f"Layer '{self.layer}' gives a tensor of shape {tuple(t.shape)}, which has no "
                "channel dimension to edit."
            )
        n = t.shape[1]
        if self.op == "topk":
            spatial = tuple(range(2, t.dim()))
            score = t.detach().mean(dim=spatial) if spatial else t.detach()
            keep = torch.zeros_like(score, dtype=torch.bool)
            k = min(self.k, n)
            if k:
                keep.scatter_(1, score.topk(k, dim=1).indices, True)
            sel = ~keep.reshape(*keep.shape, *([1] * (t.dim() - 2)))
            return torch.where(sel, torch.zeros((), dtype=t.dtype, device=t.device), t)
        chans = list(range(n)) if self.channels is None else self.channels
        if not chans:
            return t
        bad = [c for c in chans if not 0 <= c < n]
        if bad:
            raise HookScopeError(
                f"Layer '{self.layer}' has {n} channels (0 to {n - 1}), so channel {bad[0]} "
                "is out of range."
            )
        sel = torch.zeros(n, dtype=torch.bool, device=t.device)
        sel[torch.tensor(chans, device=t.device)] = True
        sel = sel.reshape(1, n, *([1] * (t.dim() - 2)))
        if self.op == "zero":
            return torch.where(sel, torch.zeros((), dtype=t.dtype, device=t.device), t)
        if self.op == "scale":
            return torch.where(sel, t * self.value, t)
        spatial = tuple(range(2, t.dim()))
        mean = t.mean(dim=spatial, keepdim=True).expand_as(t) if spatial else t
        return torch.where(sel, mean, t)

    def to_dict(self) -> dict:
        """Plain-data form (sessions, hook code, the CLI)."""
        d: dict[str, Any] = {"kind": "act", "layer": self.layer, "op": self.op, "on": self.on}
        if self.op != "topk":
            d["channels"] = self.channels
        if self.op == "scale":
            d["value"] = self.value
        if self.op == "topk":
            d["k"] = self.k
        return d

    def describe(self) -> str:
        """Short label such as ``layer2: zero channels 0, 5, 7``."""
        return describe_edit(self.to_dict())


# -- plain-data edits -------------------------------------------------------------------------
def edit_from_dict(model: nn.Module, d: dict) -> GradEdit | ActEdit:
    """Build a :class:`GradEdit` or :class:`ActEdit` from its ``to_dict()`` form."""
    kind = d.get("kind")
    try:
        if kind == "grad":
            op = d["op"]
            if op not in GRAD_OPS:
                raise HookScopeError(f"Unknown gradient edit '{op}': use {', '.join(GRAD_OPS)}.")
            kw: dict[str, Any] = {"zero": True} if op == "zero" else {op: float(d["value"])}
            return GradEdit(model, d["layer"], seed=int(d.get("seed", 0)), **kw)
        if kind == "act":
            return ActEdit(
                model,
                d["layer"],
                d.get("op", "zero"),
                d.get("channels"),
                value=d.get("value"),
                k=d.get("k"),
                on=d.get("on", "output"),
            )
    except KeyError as exc:
        raise HookScopeError(f"The {kind} edit {d} lacks the field {exc.args[0]!r}.") from None
    raise HookScopeError(f"Unknown edit kind {kind!r}: use grad or act.")


def describe_edit(d: dict) -> str:
    """One-line label of an edit dict, for lists and figure titles."""
    layer, op = d.get("layer", "?"), d.get("op", "?")
    if d.get("kind") == "grad":
        text = {
            "scale": f"gradient ×{d.get('value', 0):g}",
            "clip": f"gradient clipped to ±{d.get('value', 0):g}",
            "zero": "gradient zeroed",
            "noise": f"gradient + noise {d.get('value', 0):g}σ (seed {d.get('seed', 0)})",
        }.get(op, op)
        return f"{layer}: {text}"
    chans = d.get("channels")
    which = "all channels" if chans is None else "channels " + ", ".join(map(str, chans))
    text = {
        "zero": f"zero {which}",
        "scale": f"scale {which} ×{d.get('value') or 0:g}",
        "mean": f"{which} → spatial mean",
        "topk": f"keep top {d.get('k')} channels",
    }.get(op, op)
    where = " (input)" if d.get("on") == "input" else ""
    return f"{layer}{where}: {text}"


def parse_edit_flag(flag: str, text: str) -> dict:
    """Parse a CLI edit flag into an edit dict.

    Args:
        flag: ``grad-scale``, ``grad-clip``, ``grad-noise`` (``LAYER=VALUE``), ``grad-zero``
            (``LAYER``) or ``ablate`` (``LAYER:0,5,7``).
        text: The flag's value.
    """
    text = text.strip()
    if flag in ("grad-scale", "grad-clip", "grad-noise"):
        layer, sep, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not layer.strip() or number is None or not np.isfinite(number):
            raise HookScopeError(f"write LAYER=NUMBER, e.g. layer2=2, not '{text}'")
        return {"kind": "grad", "layer": layer.strip(), "op": flag[5:], "value": number}
    if flag == "grad-zero":
        if not text or "=" in text or ":" in text:
            raise HookScopeError(f"write a layer name, e.g. layer2, not '{text}'")
        return {"kind": "grad", "layer": text, "op": "zero", "value": 0.0}
    if flag == "ablate":
        layer, sep, chans = text.rpartition(":")
        try:
            channels = [int(c) for c in chans.split(",") if c.strip()]
        except ValueError:
            channels = []
        if not sep or not layer.strip() or not channels:
            raise HookScopeError(f"write LAYER:CHANNELS, e.g. layer2:0,5,7, not '{text}'")
        if min(channels) < 0:
            raise HookScopeError(f"channels are numbered from 0, so '{text}' names none")
        return {"kind": "act", "layer": layer.strip(), "op": "zero", "channels": channels}
    raise HookScopeError(f"Unknown edit flag '{flag}'.")


# -- image edits ------------------------------------------------------------------------------
IMAGE_OPS = ("paste", "solid", "occlude")


def paste_object(
    img: Image.Image,
    patch: Image.Image,
    mask: Image.Image | np.ndarray | None,
    xy: tuple[int, int],
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """Paste the masked part of ``patch`` onto a copy of ``img`` with its top-left at ``xy``.

    Args:
        img: Background image.
        patch: The object's image (e.g. a whole scene it was cut from).
        mask: Where the object is: a bool/uint8 array or an "L"/"1" image of the patch's size
            (nonzero = object); None uses the patch's alpha, or pastes the whole patch.
        xy: Top-left corner in ``img`` pixels (may be partly outside).
        size: Resize patch and mask to (w, h) first.
    """

    if isinstance(mask, np.ndarray):
        arr = mask.astype(bool).astype(np.uint8) * 255 if mask.dtype == bool else mask
        mask = Image.fromarray(np.asarray(arr, dtype=np.uint8), "L")
    elif mask is not None:
        mask = mask.convert("L")
    if mask is None and patch.mode in ("RGBA", "LA"):
        mask = patch.getchannel("A")
    if mask is not None and mask.size != patch.size:
        raise HookScopeError(
            f"The mask is {mask.size[0]}×{mask.size[1]} but the patch is "
            f"{patch.size[0]}×{patch.size[1]}; use the mask made with that patch."
        )
    if size is not None:
        size = (int(size[0]), int(size[1]))
        patch = patch.resize(size, Image.BILINEAR)
        mask = mask.resize(size, Image.BILINEAR) if mask is not None else None
    return paste(img, patch.convert("RGB"), xy, mask)


def crop_to_mask(patch: Image.Image, mask: Image.Image | np.ndarray):
    """Cut the object's bounding box out of ``patch`` and its mask (for dragging it around).

    Returns:
        ``(patch_crop, mask_crop, (left, top))``; the whole patch when the mask is empty.
    """
    m = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask) > 0
    if not m.any():
        return patch.copy(), Image.fromarray(m.astype(np.uint8) * 255, "L"), (0, 0)
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    crop = Image.fromarray(m[box[1] : box[3], box[0] : box[2]].astype(np.uint8) * 255, "L")
    return patch.crop(box), crop, (box[0], box[1])


def apply_image_edits(img: Image.Image, edits: Sequence[dict], load=None) -> Image.Image:
    """Replay a list of image edit dicts (as stored in a session) on ``img``.

    Edit dicts: ``{"op": "solid", "colour": [r, g, b]}`` (the whole image one colour),
    ``{"op": "occlude", "box": [l, t, r, b], "colour": [r, g, b]}``,
    ``{"op": "paste", "patch": path, "mask": path or None, "xy": [x, y], "size": [w, h]}``.

    Args:
        img: Starting image.
        edits: Edits, applied in order.
        load: Function path → PIL image (default ``core.loading.images.load_image``; masks are read
            as greyscale with pillow).
    """

    out = to_rgb(img)
    for d in edits:
        op = d.get("op")
        if op == "solid":
            out = solid(tuple(d.get("colour", (0, 0, 0))), size=out.size)
        elif op == "occlude":
            out = occlude(out, tuple(d["box"]), tuple(d.get("colour", (0, 0, 0))))
        elif op == "paste":
            patch = (load or load_image)(d["patch"])
            mask = Image.open(d["mask"]).convert("L") if d.get("mask") else None
            out = paste_object(out, patch, mask, tuple(d.get("xy", (0, 0))), d.get("size"))
        else:
            raise HookScopeError(f"Unknown image edit {op!r}: use {', '.join(IMAGE_OPS)}.")
    return out
