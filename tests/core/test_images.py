"""Images: every format and mode, preprocessing geometry, round trips, edits, bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import (
    load_image,
    occlude,
    paste,
    preprocess,
    solid,
    to_display,
    to_tensor,
)
from hookscope.core.loading.spec import InputSpec


def gradient_rgb(w=40, h=30):
    xs = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    ys = np.linspace(0, 255, h, dtype=np.uint8)[:, None, None]
    arr = np.concatenate(
        [
            np.broadcast_to(xs, (h, w, 1)),
            np.broadcast_to(ys, (h, w, 1)),
            np.full((h, w, 1), 90, np.uint8),
        ],
        axis=2,
    )
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff", "webp", "jpg"])
def test_every_format_loads_as_rgb(tmp_path, ext):
    img = gradient_rgb()
    path = tmp_path / f"g.{ext}"
    img.save(path, **({"lossless": True} if ext == "webp" else {}))
    got = load_image(path)
    assert got.mode == "RGB" and got.size == (40, 30)
    tol = 12 if ext == "jpg" else 0
    assert np.abs(np.asarray(got, int) - np.asarray(img, int)).max() <= tol


def test_grey_palette_cmyk(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").getpixel((0, 0)) == (77, 77, 77)
    Image.new("RGB", (4, 4), (10, 200, 30)).convert("P", palette=Image.ADAPTIVE).save(
        tmp_path / "p.png"
    )
    assert load_image(tmp_path / "p.png").getpixel((1, 1)) == (10, 200, 30)
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    r, g, b = load_image(tmp_path / "c.jpg").getpixel((1, 1))
    assert r > 240 and g < 15 and b < 15  # pure red


def test_rgba_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    img.putpixel((1, 0), (0, 0, 255, 255))
    img.save(tmp_path / "a.png")
    got = load_image(tmp_path / "a.png")
    assert got.getpixel((0, 0)) == (255, 255, 255)
    assert got.getpixel((1, 0)) == (0, 0, 255)


def test_sixteen_bit_grey_scales_to_eight(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "16.png")
    got = np.asarray(load_image(tmp_path / "16.png"))[0, :, 0]
    assert got.tolist() == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (20, 40)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "a.gif").getpixel((4, 4)) == (255, 0, 0)


def test_resize_shorter_side_then_centre_crop():
    img = Image.new("RGB", (200, 100), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 40, 100))  # left fifth white
    spec = InputSpec(size=(50, 50), mean=(0, 0, 0), std=(1, 1, 1))
    shown = np.asarray(preprocess(img, spec))
    assert shown.shape == (50, 50, 3)
    assert shown.max() == 0  # the crop keeps the middle half: all black
    spec_resize = InputSpec(size=(50, 50), mean=(0, 0, 0), std=(1, 1, 1), resize=60)
    assert preprocess(img, spec_resize).size == (50, 50)


def test_round_trip_to_tensor_and_back():
    img = gradient_rgb(64, 48)
    spec = InputSpec(size=(48, 64))
    x = to_tensor(img, spec)
    assert x.shape == (1, 3, 48, 64) and x.dtype == torch.float32
    assert (
        abs(float(x[0, 0].mean()) - (np.asarray(img)[..., 0].mean() / 255 - 0.485) / 0.229) < 1e-3
    )
    back = to_display(x, spec)
    assert np.abs(back.astype(int) - np.asarray(img, int)).max() <= 1


def test_one_channel_model_gets_grey():
    spec = InputSpec(size=(28, 28), channels=1, mean=(0.5,), std=(0.5,))
    x = to_tensor(solid((255, 255, 255), size=(28, 28)), spec)
    assert x.shape == (1, 1, 28, 28) and torch.allclose(x, torch.ones_like(x))
    assert to_display(x, spec).shape == (28, 28, 3)


def test_solid_paste_occlude():
    spec = InputSpec(size=(32, 48))
    sky = solid((135, 206, 235), spec)
    assert sky.size == (48, 32) and sky.getpixel((10, 10)) == (135, 206, 235)
    patch = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    patch.putpixel((0, 0), (0, 0, 0, 0))
    pasted = paste(sky, patch, (10, 5))
    assert pasted.getpixel((11, 6)) == (255, 0, 0)
    assert pasted.getpixel((10, 5)) == (135, 206, 235)  # transparent corner keeps the sky
    assert sky.getpixel((11, 6)) == (135, 206, 235)  # the original is untouched
    hidden = occlude(sky, (0, 0, 8, 8), (0, 0, 0))
    assert hidden.getpixel((7, 7)) == (0, 0, 0) and hidden.getpixel((8, 8)) == (135, 206, 235)


def test_bad_image_files(tmp_path):
    with pytest.raises(HookScopeError, match="does not exist"):
        load_image(tmp_path / "none.png")
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(HookScopeError, match="is not an image HookScope can read"):
        load_image(tmp_path / "notes.png")
    gradient_rgb(200, 200).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(HookScopeError, match="could not be decoded.*truncated"):
        load_image(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    with pytest.raises(HookScopeError, match="too large|more than HookScope opens"):
        load_image(tmp_path / "bomb.png")


def test_one_pixel_image_still_preprocesses(tmp_path):
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "one.png")
    x = to_tensor(load_image(tmp_path / "one.png"), InputSpec(size=(16, 16)))
    assert x.shape == (1, 3, 16, 16)
