"""Object masks, fitted to the model's input exactly as their image is.

One convention for every mask HookScope reads (a region target ``C@mask.png``, Trust's pointing
game and energy, the scan's ``bg_mass``): the mask file gets the image's preprocessing (the
same resize of the shorter side and centre crop as :func:`core.loading.images.to_tensor`), then
a pixel of 128 or more is the object. A mask drawn on a non-square photo therefore covers the
same pixels of the model's input as the object it outlines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, preprocess
from hookscope.core.loading.spec import InputSpec

THRESHOLD = 128
"""A mask pixel at least this bright (after the image's grey conversion) is the object."""


def load_mask(
    source: str | Path | Image.Image, spec: InputSpec, size: tuple[int, int] | None = None
) -> np.ndarray:
    """A mask as the model sees its image: bool (H, W), the image's resize + centre crop.

    Args:
        source: A mask file, or a PIL image of the mask at the photo's size.
        spec: The input spec the photo is preprocessed with.
        size: A grid other than the model input's, e.g. a dense output's (h, w): the fitted
            mask is then resampled to it (nearest), as the output grid covers the input.

    Raises:
        HookScopeError: The mask file is missing or unreadable.
    """
    if isinstance(source, Image.Image):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise HookScopeError(f"Mask file {path} does not exist.")
        img = load_image(path)
    grey = np.asarray(preprocess(img, spec).convert("L"), dtype=np.uint8)
    mask = grey >= THRESHOLD
    if size is not None and mask.shape != tuple(size):
        fitted = Image.fromarray(mask).resize((int(size[1]), int(size[0])), Image.NEAREST)
        mask = np.asarray(fitted, dtype=bool)
    return mask
