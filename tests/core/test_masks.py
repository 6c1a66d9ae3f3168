"""One mask convention: a mask gets exactly its photo's preprocessing (resize + centre crop)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hookscope.core.engine.targets import DenseTarget, resolve_target
from hookscope.core.experiments.scan import decode_item
from hookscope.core.jobs import evaluate
from hookscope.core.loading.images import load_image, preprocess
from hookscope.core.loading.masks import load_mask
from hookscope.core.loading.spec import InputSpec

SPEC = InputSpec(size=(64, 64))  # a square input: a 160x96 photo loses 21 px left and right
BOX = (slice(20, 60), slice(70, 110))  # the object: right of centre, in rows 20-59


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A non-square photo (160x96) with a red object off-centre, and its mask alongside."""
    root = tmp_path_factory.mktemp("masks")
    photo = np.full((96, 160, 3), (20, 60, 90), np.uint8)
    photo[BOX] = (250, 10, 10)
    mask = np.zeros((96, 160), np.uint8)
    mask[BOX] = 255
    (root / "images").mkdir()
    (root / "masks").mkdir()
    Image.fromarray(photo).save(root / "images" / "photo.png")
    Image.fromarray(mask).save(root / "masks" / "photo.png")
    return root


def object_pixels(folder) -> np.ndarray:
    """Where the model's input shows the object: its red pixels after the image's preprocessing."""
    seen = np.asarray(preprocess(load_image(folder / "images" / "photo.png"), SPEC), np.int32)
    return (seen[..., 0] >= 128) & (seen[..., 2] < 128)


def test_region_target_trust_and_scan_use_the_same_pixels(folder):
    mask_file = folder / "masks" / "photo.png"
    expected = object_pixels(folder)
    assert expected.shape == (64, 64) and 500 < expected.sum() < 1500

    # The region target C@mask.png of a dense model whose output grid is the input's.
    torch.manual_seed(0)
    dense = nn.Conv2d(3, 2, 1)
    out = dense(torch.zeros(1, 3, 64, 64))
    region = resolve_target(f"1@{mask_file}", out, spec=SPEC)
    assert isinstance(region, DenseTarget)
    region_mask = region.mask.numpy() > 0
    # Trust's pointing game / energy-in-mask region, and the scan's bg_mass mask.
    trust_mask = evaluate._region(str(mask_file), SPEC, (64, 64))
    scan_mask = decode_item(folder / "images", "photo.png", SPEC, folder / "masks")["mask"].numpy()

    for m in (region_mask, trust_mask, scan_mask, load_mask(mask_file, SPEC)):
        assert m.dtype == bool and m.shape == (64, 64)
        np.testing.assert_array_equal(m, expected)

    # The old region convention (the raw mask squeezed to the grid) missed a third of it.
    squeezed = np.asarray(Image.open(mask_file).resize((64, 64), Image.NEAREST)) >= 128
    overlap = (squeezed & expected).sum() / (squeezed | expected).sum()
    assert overlap < 0.7


def test_a_coarser_output_grid_gets_the_fitted_mask_resampled(folder):
    mask_file = folder / "masks" / "photo.png"
    out = nn.Conv2d(3, 2, 4, stride=4)(torch.zeros(1, 3, 64, 64))  # a 16x16 grid
    region = resolve_target(f"1@{mask_file}", out, spec=SPEC)
    fitted = load_mask(mask_file, SPEC)
    # PIL's nearest takes the centre pixel of each 4x4 cell (source 4i + 2).
    np.testing.assert_array_equal(region.mask.numpy() > 0, fitted[2::4, 2::4])
    assert region.mask.shape == (16, 16)


def test_a_pil_mask_and_a_file_mask_agree(folder):
    mask_file = folder / "masks" / "photo.png"
    pil = Image.open(mask_file)
    np.testing.assert_array_equal(evaluate._region(pil, SPEC, (64, 64)), load_mask(mask_file, SPEC))
