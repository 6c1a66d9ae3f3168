"""Images: load any common file as RGB, turn it into a model tensor and back, make edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.spec import InputSpec

MAX_PIXELS = 80_000_000
"""Refuse images above this many pixels (decompression-bomb guard, ~9000×9000)."""

MAX_ASPECT = 100
"""Refuse images more than this many times wider than tall (or taller than wide): resizing
a 400000×1 strip to a model's input would allocate gigabytes for one row of pixels."""
NOTE_KEY = "hookscope.note"
"""``Image.info`` key of a sentence about how the file was read (e.g. NaN pixels)."""

Colour = tuple[int, int, int]


def load_image(path: str | Path) -> Image.Image:
    """Load an image file as 8-bit RGB.

    Handles PNG, JPEG, BMP, WebP and TIFF; grey, palette, CMYK and 16-bit images; RGBA
    composited on white; EXIF orientation; the first frame of animations.

    Raises:
        HookScopeError: One sentence for a missing, unreadable, empty or huge file.
    """
    path = Path(path)
    if not path.is_file():
        raise HookScopeError(f"Image file {path} does not exist.")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise HookScopeError(
                    f"{path.name} is {w}×{h} pixels, more than HookScope opens "
                    f"({MAX_PIXELS // 1_000_000} megapixels); shrink it first."
                )
            if w == 0 or h == 0:
                raise HookScopeError(f"{path.name} has no pixels ({w}×{h}).")
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise HookScopeError(
                    f"{path.name} is {w}×{h} pixels, more elongated than HookScope opens "
                    f"({MAX_ASPECT}:1); crop it to a less elongated shape first."
                )
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except HookScopeError:
        raise
    except Image.DecompressionBombError as exc:
        raise HookScopeError(
            f"{path.name} is too large to open safely (decompression-bomb guard); shrink it first."
        ) from exc
    except UnidentifiedImageError as exc:
        raise HookScopeError(
            f"{path.name} is not an image HookScope can read (PNG, JPEG, BMP, WebP or TIFF)."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise HookScopeError(
            f"{path.name} could not be decoded ({str(exc).rstrip('.')}); it may be truncated."
        ) from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit scaled down).

    A float image is stretched over its finite values; NaN or infinite pixels become black
    and the result's ``info[NOTE_KEY]`` says how many (see :func:`image_notes`).
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        note = None
        if img.mode == "F":
            finite = np.isfinite(arr)
            # One NaN would make the whole range NaN and the whole picture black.
            lo, hi = (
                (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0, 0)
            )
            arr, top = np.where(finite, arr - lo, 0.0), (hi - lo) or 1.0
            bad = int(arr.size - finite.sum())
            if bad:
                note = (
                    f"{bad} of the image's {arr.size} pixels are NaN or infinite; they are "
                    "shown black and left out of its value range."
                )
        else:
            top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out = Image.fromarray(grey, "L").convert("RGB")
        if note:
            out.info[NOTE_KEY] = note
        return out
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def image_notes(img: Image.Image) -> list[str]:
    """Sentences about how the image was read (NaN pixels in a float TIFF), for run notes."""
    note = getattr(img, "info", {}).get(NOTE_KEY)
    return [note] if note else []


def _fit(img: Image.Image, spec: InputSpec) -> Image.Image:
    """Resize the shorter side, then centre-crop to ``spec.size`` (torchvision's recipe).

    A ``native`` spec keeps the image at its own size.
    """
    if spec.native:
        return img
    h, w = spec.size
    if spec.resize:
        scale = spec.resize / min(img.size)
    else:
        scale = max(h / img.height, w / img.width)
    new = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
    if new[0] * new[1] > MAX_PIXELS:  # an in-memory strip (pasted, edited) not checked at load
        raise HookScopeError(
            f"The image is {img.width}×{img.height} pixels: resizing it for the model's "
            f"{w}×{h} input would make {new[0]}×{new[1]}, more than HookScope allocates "
            f"({MAX_PIXELS // 1_000_000} megapixels); crop it to a less elongated shape first."
        )
    if new != img.size:
        img = img.resize(new, Image.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def preprocess(img: Image.Image, spec: InputSpec) -> Image.Image:
    """The image the model sees, before normalisation (resized, cropped, grey if 1-channel)."""
    img = _fit(to_rgb(img), spec)
    return img.convert("L") if spec.channels == 1 else img


class TensorImage(Image.Image):
    """An already preprocessed model input: goes to the model as it is, shows as its picture.

    ``hookscope.view(model, image=tensor)`` hands the app one of these, so every job that calls
    :func:`to_tensor` gets the user's tensor unchanged while the docks show (and image edits
    start from) its display picture; an edit makes a plain image, preprocessed as usual.
    """

    tensor: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, spec: InputSpec) -> TensorImage:
        """Wrap a (1, C, H, W) or (C, H, W) tensor; ``spec`` denormalises its picture."""
        x = x.detach()
        x = x[None] if x.dim() == 3 else x
        if x.dim() != 4 or x.shape[0] != 1:
            raise HookScopeError(
                f"An image tensor must be (1, C, H, W) or (C, H, W), not {tuple(x.shape)}."
            )
        img = Image.fromarray(to_display(x, spec))
        img.__class__ = cls  # the picture's pixels, plus the tensor the model gets
        img.tensor = x
        return img


def to_tensor(img: Image.Image, spec: InputSpec) -> torch.Tensor:
    """Image → normalised float32 tensor of shape (1, C, H, W) for the model.

    A :class:`TensorImage` gives its own tensor unchanged.
    """
    if isinstance(img, TensorImage):
        return img.tensor
    arr = np.asarray(preprocess(img, spec), dtype=np.float32) / 255.0
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    mean = np.asarray(spec.mean, dtype=np.float32)[: spec.channels]
    std = np.asarray(spec.std, dtype=np.float32)[: spec.channels]
    arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def to_display(x: torch.Tensor, spec: InputSpec) -> np.ndarray:
    """Model tensor (1, C, H, W) or (C, H, W) → uint8 RGB array (H, W, 3) for showing."""
    t = x.detach().cpu().float()
    t = t[0] if t.dim() == 4 else t
    mean = torch.tensor(spec.mean[: t.shape[0]]).view(-1, 1, 1)
    std = torch.tensor(spec.std[: t.shape[0]]).view(-1, 1, 1)
    arr = ((t * std + mean).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else np.ascontiguousarray(arr)


def solid(colour: Colour, spec: InputSpec | None = None, size: tuple[int, int] | None = None):
    """A plain-colour RGB image at the model's input size (or ``size`` as (w, h))."""
    if size is None:
        h, w = spec.size if spec is not None else (224, 224)
        size = (w, h)
    return Image.new("RGB", size, tuple(int(c) for c in colour))


def paste(
    img: Image.Image, patch: Image.Image, xy: tuple[int, int], mask: Image.Image | None = None
) -> Image.Image:
    """Return a copy of ``img`` with ``patch`` pasted at ``xy`` (top-left); RGBA alpha is used."""
    out = to_rgb(img).copy()
    if mask is None and patch.mode in ("RGBA", "LA"):
        mask = patch.getchannel("A")
    out.paste(patch.convert("RGB"), tuple(int(v) for v in xy), mask)
    return out


def occlude(img: Image.Image, box: tuple[int, int, int, int], colour: Colour = (0, 0, 0)):
    """Return a copy of ``img`` with the box (left, top, right, bottom) filled with ``colour``."""
    out = to_rgb(img).copy()
    left, top, right, bottom = (int(v) for v in box)
    ImageDraw.Draw(out).rectangle((left, top, right - 1, bottom - 1), fill=tuple(colour))
    return out
