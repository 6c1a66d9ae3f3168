"""Numpy rendering helpers and the NPZ + JSON sidecar writer."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hookscope.core.display.mosaic import channel_order, tile
from hookscope.core.display.render import (
    blend,
    gradient_to_rgb,
    normalize,
    normalize_signed,
    upsample,
)
from hookscope.core.errors import HookScopeError
from hookscope.core.io.export import load_arrays, save_arrays, sidecar_path


def test_normalize_min_max_and_constant():
    np.testing.assert_allclose(normalize(np.array([2.0, 4.0, 6.0])), [0.0, 0.5, 1.0])
    assert not normalize(np.full((3, 3), 7.0)).any()
    assert not normalize(np.array([np.nan, np.nan])).any()
    np.testing.assert_allclose(normalize(np.array([0.0, 5.0, 10.0]), 0, 20), [0, 0.25, 0.5])


def test_normalize_signed_puts_zero_in_the_middle():
    np.testing.assert_allclose(normalize_signed(np.array([-2.0, 0.0, 1.0])), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(normalize_signed(np.array([-2.0, 4.0]), limit=2.0), [0.0, 1.0])
    np.testing.assert_array_equal(normalize_signed(np.zeros(3)), [0.5, 0.5, 0.5])


def test_upsample_is_bilinear_half_pixel():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    ref = F.interpolate(torch.from_numpy(a)[None, None], size=(6, 8), mode="bilinear")[0, 0]
    np.testing.assert_allclose(upsample(a, (6, 8)), ref.numpy())
    assert upsample(np.zeros((2, 3, 4)), (5, 5)).shape == (2, 5, 5)


def test_tile_grid_and_lookup():
    fmap = np.stack([np.full((4, 5), c, np.float32) + np.eye(4, 5) for c in range(10)])
    tiles = tile(fmap, pad=1)
    assert (tiles.rows, tiles.cols, tiles.tile) == (3, 4, (4, 5))
    assert tiles.image.shape == (3 * 4 + 2, 4 * 5 + 3)
    assert np.nanmax(tiles.image) == 1.0 and np.nanmin(tiles.image) == 0.0
    assert tiles.channel_at(0, 0) == 0
    assert tiles.channel_at(5, 6) == 5  # row 1, col 1
    assert tiles.channel_at(4, 0) is None  # the gap between rows
    assert tiles.channel_at(10, 18) is None  # tile 11 does not exist
    picked = tile(fmap, order=np.array([3, 7]), cols=2)
    assert picked.order.tolist() == [3, 7] and picked.image.shape == (4, 11)
    by_mean = channel_order(fmap, "mean")
    assert by_mean[0] == 9 and by_mean[-1] == 0


def test_blend_and_gradient_rgb():
    base = np.zeros((2, 2, 3), np.uint8)
    top = np.full((2, 2, 3), 200, np.uint8)
    assert blend(base, top, 0.25)[0, 0, 0] == 50
    g = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    rgb = gradient_to_rgb(g)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert abs(float(rgb.mean()) - 127.5) < 3


def test_npz_round_trip_with_sidecar(tmp_path):
    maps = {"layer3": np.random.rand(8, 8).astype(np.float32), "layer4.1.conv2": np.ones((4, 4))}
    settings = {"method": "gradcam", "target": 3, "size": (224, 224), "path": tmp_path}
    npz, side = save_arrays(tmp_path / "maps.npz", maps, settings)
    assert side == sidecar_path(npz) == tmp_path / "maps.json"
    arrays, meta = load_arrays(npz)
    assert set(arrays) == {"layer3", "layer4.1.conv2"}
    np.testing.assert_array_equal(arrays["layer3"], maps["layer3"])
    assert meta["settings"]["method"] == "gradcam" and meta["settings"]["size"] == [224, 224]
    assert meta["arrays"]["layer4.1.conv2"] == {
        "shape": [4, 4],
        "dtype": "float64",
        "min": 1.0,
        "max": 1.0,
    }
    assert json.loads(side.read_text())["format"] == "hookscope-arrays/1"
    npz2, _ = save_arrays(tmp_path / "noext", {"a": torch.zeros(2)})
    assert npz2.name == "noext.npz" and load_arrays(npz2)[0]["a"].shape == (2,)


def test_missing_npz_is_one_sentence(tmp_path):
    with pytest.raises(HookScopeError, match="does not exist"):
        load_arrays(tmp_path / "nope.npz")
