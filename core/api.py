"""The Python API behind ``hookscope.explain``: a map for your own model, no window.

```python
import hookscope
e = hookscope.explain(model, "cat.png", method="gradcam")
e.map; e.raw; e.target; e.probs; e.layer; e.notes    # e.map: (H, W) float32 in [0, 1]
es = hookscope.explain(model, ["a.png", "b.png"])      # a list in, a list of explanations out
```

The model is the user's object: it is never moved between devices, cast, or left in another
mode, and no hook stays on it (``core.loading.live.fingerprint`` is equal before and after).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from hookscope.core.engine.tree import build_tree, layer_defaults
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.probe import checked_cam_layer
from hookscope.core.loading.images import load_image, preprocess, to_display, to_rgb, to_tensor
from hookscope.core.loading.live import wrap_model
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.methods import explainers
from hookscope.core.methods.explainers import INFO, Explanation, Note


def explain(
    model,
    image,
    method: str = "gradcam",
    *,
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    target=None,
    class_names: Sequence[str] | None = None,
    input_size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 32,
    **params,
) -> Explanation | list[Explanation]:
    """Explain ``model``'s decision on ``image`` with one method of the explainer registry.

    Args:
        model: A live ``nn.Module`` (used as it is), a ``LoadedModel``, or a spec string
            (``"demo"``, ``"torchvision:resnet18"``...).
        image: A path, a PIL image, a numpy (H, W, 3) / (H, W) uint8 array, or a tensor already
            preprocessed: (1, C, H, W) (or (C, H, W)) is one image and goes in as it is. A list
            of those, or an (N, C, H, W) tensor with N > 1, is a batch.
        method: A name of ``hookscope.core.explain.EXPLAINERS`` (``gradcam``, ``scorecam``,
            ``saliency``, ``ig``, ``random``...).
        layer: The CAM layer; default: the app's rule (``core.engine.tree.layer_defaults``).
        layers: Several CAM layers at once (one image): ``e.maps`` has each, ``e.map`` the first.
        target: None (the top-1 class / the output kind's default), a class index or name, a
            grammar string (``box:i``, ``C@mask.png``, ``similar:IMAGE``), a callable
            ``output -> score``; for a batch also one per image (a list).
        class_names: Class names (default: ``model.class_names`` if it has them).
        input_size, mean, std: How images are preprocessed for a live module. With none of them
            (and no ``model.input_spec``) an image goes in at its own size, scaled to [0, 1],
            unnormalised, and ``e.notes`` says so.
        batch_size: Images per forward pass of a batch.
        **params: The method's options (its ``params`` in the registry, e.g. ``steps=32``).

    Returns:
        One :class:`~core.methods.explainers.Explanation` for one image, or a list of them, one
        per image, for a batch. One-pass CAMs on a batch cost one forward and one backward per
        ``batch_size`` images, with the same maps as one image at a time; the other methods run
        image by image.

    Raises:
        HookScopeError: One sentence: unknown method or option, unreadable image, bad layer,
            a target that does not fit the output.
    """
    lm = _loaded(model, class_names, input_size, mean, std)
    rec = explainers.get(method)
    items, batch = _items(image)
    xs, pictures = zip(*(_tensor(item, lm) for item in items))
    names = layers if layers is not None else ([layer] if layer else None)
    if rec.needs_layer and not names:
        names = [_default_layer(lm, xs[0])]
    if layers is not None and len(list(layers)) > 1 and batch:
        raise HookScopeError("Several layers at once take one image; pass layer= for a batch.")
    targets = _targets(target, len(items), batch)
    notes = (Note(INFO, lm.note),) if lm.note else ()
    if not batch:
        e = explainers.explain(
            lm.model,
            xs[0],
            rec.name,
            layers=names,
            target=targets[0],
            class_names=lm.class_names,
            input_spec=_spec_of(lm, xs[0]),
            probs=True,
            **params,
        )
        return _finish(e, pictures[0], lm, notes)
    out: list[Explanation | None] = [None] * len(items)
    for idx in _groups(xs).values():  # native-size images batch with their own size
        es = explainers.explain_batch(
            lm.model,
            torch.cat([xs[i] for i in idx]),
            rec.name,
            layer=names[0] if names else None,
            targets=[targets[i] for i in idx],
            class_names=lm.class_names,
            input_spec=_spec_of(lm, xs[idx[0]]),
            batch_size=batch_size,
            **params,
        )
        for i, e in zip(idx, es):
            out[i] = _finish(e, pictures[i], lm, notes)
    return out


def _loaded(model, class_names, input_size, mean, std) -> LoadedModel:
    """The one door: a live module is wrapped, a spec string loaded, a LoadedModel kept."""
    if isinstance(model, LoadedModel):
        if class_names is not None:
            model = dataclasses.replace(model, class_names=[str(c) for c in class_names])
        return model
    if isinstance(model, (str, Path)):
        lm = load_model(str(model))
        if class_names is not None:
            lm.class_names = [str(c) for c in class_names]
        return lm
    if isinstance(model, nn.Module):
        return wrap_model(model, class_names=class_names, input_size=input_size, mean=mean, std=std)
    raise HookScopeError(
        f"explain needs a torch.nn.Module, a LoadedModel or a spec string, not "
        f"{type(model).__name__}."
    )


def _items(image) -> tuple[list, bool]:
    """The images of ``image`` and whether it was a batch."""
    if isinstance(image, (list, tuple)):
        if not image:
            raise HookScopeError("The list of images is empty.")
        return list(image), True
    if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] > 1:
        return [image[i : i + 1] for i in range(image.shape[0])], True
    return [image], False


def _tensor(item, lm: LoadedModel) -> tuple[torch.Tensor, np.ndarray | None]:
    """(1, C, H, W) model input and the uint8 picture the overlay is drawn on."""
    if isinstance(item, torch.Tensor):
        x = item.detach()
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4 or x.shape[0] != 1:
            raise HookScopeError(
                f"A tensor image must be (1, C, H, W) or (C, H, W), not {tuple(item.shape)}."
            )
        if not x.is_floating_point():
            raise HookScopeError(
                f"A tensor image must be float (already preprocessed), not {x.dtype}."
            )
        spec = lm.input_spec.for_image(x.shape[-1], x.shape[-2])
        picture = to_display(x, spec) if x.shape[1] in (1, 3) else None
        return x, picture
    img = _pil(item)
    spec = lm.input_spec.for_image(*img.size)
    return to_tensor(img, spec), np.asarray(preprocess(img, spec).convert("RGB"))


def _pil(item) -> Image.Image:
    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        a = item
        if (
            a.dtype != np.uint8
            or a.ndim not in (2, 3)
            or (a.ndim == 3 and a.shape[2] not in (1, 3, 4))
        ):
            raise HookScopeError(
                f"A numpy image must be uint8 (H, W), (H, W, 3) or (H, W, 4), not {a.dtype} "
                f"{a.shape}; pass a preprocessed float tensor as a torch tensor."
            )
        a = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
        return to_rgb(Image.fromarray(np.ascontiguousarray(a)))
    raise HookScopeError(
        f"An image must be a path, a PIL image, a numpy uint8 array or a tensor, not "
        f"{type(item).__name__}."
    )


def _spec_of(lm: LoadedModel, x: torch.Tensor):
    return lm.input_spec.for_image(x.shape[-1], x.shape[-2])


_DEFAULT_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Each live module's checked CAM layer per input shape: the check is a dry run plus a CAM."""


def _default_layer(lm: LoadedModel, x: torch.Tensor) -> str:
    """The app's CAM layer for this model (``tree.layer_defaults``, checked as at load)."""
    known = _DEFAULT_LAYERS.setdefault(lm.model, {})
    key = tuple(x.shape[1:])
    if known.get(key) not in dict(lm.model.named_modules()):  # also when a layer was replaced
        known[key] = _checked_default_layer(lm, x)
    return known[key]


def _checked_default_layer(lm: LoadedModel, x: torch.Tensor) -> str:
    tree = build_tree(lm.model, _spec_of(lm, x), example=x, class_names=lm.class_names)
    tree.cam_layer = checked_cam_layer(lm, tree)
    cam = layer_defaults(tree).cam_layers
    if not cam:
        raise HookScopeError(
            "No layer of this model outputs a spatial grid larger than 1x1, so a CAM has "
            "nothing to show; name one with layer=."
        )
    return cam[0]


def _targets(target, n: int, batch: bool) -> list:
    if batch and isinstance(target, (list, tuple)):
        if len(target) != n:
            raise HookScopeError(f"Give one target per image: {len(target)} for {n} images.")
        return list(target)
    return [target] * n


def _groups(xs) -> dict[tuple, list[int]]:
    """Image indices by input shape (images at their own size cannot share a batch)."""
    out: dict[tuple, list[int]] = {}
    for i, x in enumerate(xs):
        out.setdefault(tuple(x.shape), []).append(i)
    return out


def _finish(e: Explanation, picture, lm: LoadedModel, notes) -> Explanation:
    names = tuple(lm.class_names) if lm.class_names else None
    return dataclasses.replace(e, image=picture, class_names=names, notes=(*notes, *e.notes))


__all__ = ["explain"]
