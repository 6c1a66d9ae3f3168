"""Channel atlas (issue 25 §1): exact top-k vs brute force, receptive field, crops, resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import hookscope.gui.command as main
from hookscope.core.demo.scenes import make_dataset
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.atlas import AtlasSettings, to_image_box
from hookscope.core.jobs.atlas import COLUMNS, atlas_job, crop_name
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import Cancelled, Reporter, quiet

LAYER = "features.block3"
SIZES = [None, (140, 96), (96, 130), (200, 100)]  # (w, h) resizes: some not square


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas") / "images"
    (root / "sub").mkdir(parents=True)
    images, _, _ = make_dataset("shortcut", 11, seed=3)
    for i, arr in enumerate(images):
        img = Image.fromarray(arr)
        size = SIZES[i % len(SIZES)]
        img = img.resize(size) if size else img
        img.save(root / ("sub" if i % 2 else "") / f"s{i:02d}.png")
    return root


def brute_force(model, layer, root, spec, prefix=0, grid=None):
    """Every image's activations in memory, sorted: {channel: [(path, value, row, col)]}."""
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    x = torch.cat([to_tensor(load_image(root / p), spec) for p in paths])
    seen = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: seen.append(o.detach().clone())
    )
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    a = seen[0]
    if prefix or grid:  # tokens (N, K + h·w, C) → (N, C, h, w)
        a = a[:, prefix:, :].reshape(len(x), *grid, -1).permute(0, 3, 1, 2)
    a = a.numpy()
    n, c, h, w = a.shape
    out = {}
    for ch in range(c):
        entries = []
        for i in range(n):
            m = a[i, ch]
            r, col = np.unravel_index(int(np.argmax(m)), m.shape)
            entries.append((-float(m.max()), i, paths[i], int(r), int(col)))
        out[ch] = [(p, -v, r, col) for v, _, p, r, col in sorted(entries)]
    return out


def table_of(out):
    return pq.read_table(out / "atlas.parquet").to_pandas()


def crops_of(out):
    """{file name: decoded RGB pixels} of an atlas's crops."""
    return {
        p.name: np.asarray(Image.open(p).convert("RGB")) for p in sorted((out / "crops").iterdir())
    }


def check_exact(table, brute, k):
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == len(brute) * k
    for ch, rows in table.groupby("channel"):
        got = [(p, v, r, c) for p, v, r, c in zip(rows.path, rows.value, rows.row, rows.col)]
        want = [(p, np.float32(v), r, c) for p, v, r, c in brute[ch][:k]]
        assert list(rows["rank"]) == list(range(k))
        assert got == want, ch


def test_demo_atlas_equals_brute_force(demo, folder, tmp_path):
    out = tmp_path / "a"
    s = AtlasSettings(folder, LAYER, top=4, out=out, batch_size=3, workers=0)
    summary = atlas_job(quiet(), demo, s)
    assert (summary.channels, summary.images, summary.grid) == (128, 11, (12, 12))
    # the demo's conv chain: kernels 4,4,3,3,4,3, strides 2,2,1,1,2,1, padding 1 each:
    # receptive field 54 px, jump 8, first pixel of cell c at 8c - 23
    assert summary.field.how == "measured"
    assert summary.field.stride == (8.0, 8.0)
    assert summary.field.offset == (-23.0, 31.0, -23.0, 31.0)
    table = table_of(out)
    check_exact(table, brute_force(demo.model, LAYER, folder, demo.input_spec), 4)
    maps = np.load(out / "atlas_maps.npy")
    assert maps.shape == (128, 4, 12, 12)
    first = table.iloc[0]
    assert np.float16(first.value) == maps[0, 0].max() == maps[0, 0, first.row, first.col]
    # crops: the cell's 54 px field, clipped, in the image's own pixels
    for row in table.itertuples():
        w, h = Image.open(folder / row.path).size
        box = to_image_box(
            (
                max(0, 8 * row.col - 23),
                max(0, 8 * row.row - 23),
                min(96, 8 * row.col + 31),
                min(96, 8 * row.row + 31),
            ),
            (w, h),
            demo.input_spec,
        )
        assert (row.x0, row.y0, row.x1, row.y1) == box
        crop = Image.open(out / "crops" / crop_name(row.channel, row.rank))
        assert crop.size == (row.x1 - row.x0, row.y1 - row.y0)
        # every crop's pixels are the image's (cut in the loop; atlas.png_bytes is lossless)
        want = load_image(folder / row.path).crop(box)
        assert np.array_equal(np.asarray(crop.convert("RGB")), np.asarray(want))
    info = json.loads((out / "atlas.json").read_text())
    assert info["state"] == "complete" and info["grid"] == [12, 12]


def test_image_box_inverts_resize_and_centre_crop():
    spec = InputSpec((96, 96), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert to_image_box((8, 16, 40, 48), (96, 96), spec) == (8, 16, 40, 48)
    # 200×100 → 192×96, centre crop from x = 48: the whole input is image x 50..150
    assert to_image_box((0, 0, 96, 96), (200, 100), spec) == (50, 0, 150, 100)
    assert to_image_box((0, 0, 96, 96), (96, 130), spec) == (0, 17, 96, 113)
    # a resize to 128 before a 96 crop: scale 128/64, margin 16 px
    spec = InputSpec((96, 96), resize=128)
    assert to_image_box((0, 0, 96, 96), (64, 64), spec) == (8, 8, 56, 56)


def test_vit_tokens_laid_out_as_grid(folder, tmp_path):
    vit = load_model("timm:vit_tiny_patch16_224?img_size=64&depth=2")
    layer = "blocks.1"
    out = tmp_path / "vit"
    s = AtlasSettings(folder, layer, top=3, out=out, batch_size=4, workers=0)
    summary = atlas_job(quiet(), vit, s)
    assert (summary.channels, summary.grid) == (192, (4, 4))
    # after attention every token sees the whole input: the crop is the token's own patch
    assert summary.field.how == "cell" and summary.field.stride == (16.0, 16.0)
    table = table_of(out)
    brute = brute_force(vit.model, layer, folder, vit.input_spec, prefix=1, grid=(4, 4))
    check_exact(table, brute, 3)
    square = table[table.path == "s00.png"].iloc[0]  # 96×96 image, 64 px input: ×1.5
    assert (square.x0, square.y0) == (24 * square.col, 24 * square.row)
    assert (square.x1 - square.x0, square.y1 - square.y0) == (24, 24)


class StopAfter(Reporter):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def progress(self, done, total, message="", stage=""):
        if done >= self.n:
            self.cancel()
        super().progress(done, total, message, stage)


def test_cancel_then_resume_gives_the_same_atlas(demo, folder, tmp_path):
    whole = tmp_path / "whole"
    atlas_job(
        quiet(), demo, AtlasSettings(folder, LAYER, top=3, out=whole, batch_size=4, workers=0)
    )
    out = tmp_path / "resumed"
    s = AtlasSettings(folder, LAYER, top=3, out=out, batch_size=4, workers=0)
    with pytest.raises(Cancelled):
        atlas_job(StopAfter(4), demo, s)
    assert json.loads((out / "atlas.json").read_text())["state"] == "partial"
    summary = atlas_job(quiet(), demo, s)
    assert (summary.resumed, summary.computed) == (4, 7)
    assert table_of(out).equals(table_of(whole))
    assert np.array_equal(np.load(out / "atlas_maps.npy"), np.load(whole / "atlas_maps.npy"))
    # the resumed entries' crops come from a second decode at the end, the rest from the loop
    assert_same_crops(crops_of(out), crops_of(whole))
    with pytest.raises(HookScopeError, match="another top"):
        atlas_job(quiet(), demo, s.replace(top=2))


def assert_same_crops(got, want):
    assert list(got) == list(want)
    for name, pixels in want.items():
        assert np.array_equal(got[name], pixels), name


def test_crops_kept_in_the_loop_equal_a_second_decode(demo, folder, tmp_path, monkeypatch):
    import os

    import hookscope.core.jobs.atlas as job

    s = AtlasSettings(folder, LAYER, top=4, out=tmp_path / "loop", batch_size=3, workers=0)
    atlas_job(quiet(), demo, s)
    monkeypatch.setattr(job, "KEEP_PIXELS", 0)  # no image kept: every crop cut at the end
    atlas_job(quiet(), demo, s.replace(out=tmp_path / "end"))
    loop, end = tmp_path / "loop", tmp_path / "end"
    assert table_of(loop).equals(table_of(end))
    assert_same_crops(crops_of(loop), crops_of(end))
    # entries with one crop (same image, same box) share one file
    table = table_of(loop)
    shared = table.groupby(["path", "x0", "y0", "x1", "y1"]).size()
    assert shared.max() > 1
    inodes = {
        key: {
            os.stat(loop / "crops" / crop_name(r.channel, r.rank)).st_ino for r in rows.itertuples()
        }
        for key, rows in table.groupby(["path", "x0", "y0", "x1", "y1"])
    }
    assert all(len(v) == 1 for v in inodes.values())
    assert len({i for v in inodes.values() for i in v}) == len(shared)
    # a rerun of the finished atlas rewrites its files (unlinked first, not written through)
    before = crops_of(loop)
    monkeypatch.setattr(job, "KEEP_PIXELS", 4)
    summary = atlas_job(quiet(), demo, s)
    assert summary.computed == 0
    assert_same_crops(crops_of(loop), before)


def test_settings_round_trip_and_errors():
    s = AtlasSettings("imgs", LAYER, top=5, reshape=(4, 4), spec=InputSpec((64, 64)))
    assert AtlasSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(HookScopeError, match="--top"):
        AtlasSettings("imgs", LAYER, top=0)
    with pytest.raises(HookScopeError, match="Unknown atlas setting"):
        AtlasSettings.from_dict({"images": "x", "layer": "y", "k": 1})


def test_cli(folder, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["atlas", "--model", "demo", "--images", str(folder), "--layer", LAYER]
    assert main.main([*argv, "--top", "2", "--out", str(out), "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "128 channels × top 2 over 11 images" in text and "54×54 px (measured)" in text
    assert len(table_of(out)) == 256
    assert main.main([*argv[:-1], "nope", "--out", str(tmp_path / "x")]) == 2
    assert "no layer named 'nope'" in capsys.readouterr().err
    # from a finished scan folder: its images, input spec and layer
    scan = tmp_path / "scan"
    scan_args = ["scan", "--model", "demo", "--images", str(folder), "--layer", LAYER]
    assert main.main([*scan_args, "--out", str(scan), "--workers", "0", "--clusters", "2"]) == 0
    capsys.readouterr()
    again = ["atlas", "--model", "demo", "--scan", str(scan), "--top", "2", "--workers", "0"]
    assert main.main([*again, "--out", str(tmp_path / "from-scan")]) == 0
    assert "atlas of features.block3: 128 channels × top 2 over 11" in capsys.readouterr().out
    assert table_of(tmp_path / "from-scan").equals(table_of(out))


def test_channel_most_important_for_airplane_ranks_sky_crops(demo, tmp_path):
    """Issue 25's measured goal: on 160 shortcut scenes, the atlas of features.block3 shows,
    for the channel whose ablation hurts "airplane" most, crops that are ≥ 80 % sky."""
    from hookscope.core.demo.scenes import make_samples
    from hookscope.core.experiments.importance import channel_importance
    from hookscope.core.jobs.atlas import AtlasView

    images, labels, masks = make_dataset("shortcut", 160, seed=21)
    root = tmp_path / "scenes"
    root.mkdir()
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(root / f"s{i:03d}.png")
    sample = next(p for p in make_samples(tmp_path / "samples") if p.stem == "airplane_sky")
    x = to_tensor(load_image(sample), demo.input_spec)
    channel = int(channel_importance(demo.model, x, LAYER, target=0).ranking[0])
    out = tmp_path / "atlas"
    atlas_job(quiet(), demo, AtlasSettings(root, LAYER, top=9, out=out, workers=0))
    shares, kinds = [], set()
    for e in AtlasView(out).top(channel):
        x0, y0, x1, y1 = e.box
        i = int(e.path[1:4])
        shares.append(1.0 - masks[i][y0:y1, x0:x1].mean())
        kinds.add(int(labels[i]))
    # shortcut airplanes sit on sky: off the object in an airplane scene is sky
    assert kinds == {0} and len(shares) == 9 and min(shares) >= 0.8, shares


def test_resnet50_random_weights_is_exact(folder, tmp_path):
    r50 = load_model("torchvision:resnet50")
    spec = InputSpec((96, 96))  # small inputs keep it fast; the grid is 6×6 at layer3
    s = AtlasSettings(folder, "layer3", top=2, out=tmp_path / "r50", batch_size=4, workers=0)
    summary = atlas_job(quiet(), r50, s.replace(spec=spec))
    assert (summary.channels, summary.grid) == (1024, (6, 6))
    # at 96² its layer3 field spans the whole input: the crop is the cell's own 16 px patch
    assert summary.field.stride == (16.0, 16.0) and summary.field.how == "cell"
    check_exact(table_of(tmp_path / "r50"), brute_force(r50.model, "layer3", folder, spec), 2)


@pytest.mark.parametrize("shuffled", [False, True])
def test_topk_equals_a_full_sort_with_ties_and_nans(shuffled):
    from hookscope.core.experiments.atlas import TopK

    rng = np.random.default_rng(int(shuffled))
    n, c, k = 40, 6, 4
    a = np.round(rng.standard_normal((n, c, 3, 4)), 1).astype(np.float32)  # many ties
    a[rng.random(a.shape) < 0.01] = np.nan
    a[5, 2] = np.nan  # a whole map of NaN counts as -inf
    order = rng.permutation(n) if shuffled else np.arange(n)
    top = TopK(c, k, (3, 4))
    for s in range(0, n, 7):
        top.add(a[order[s : s + 7]], order[s : s + 7])
    flat = np.where(np.isnan(a), -np.inf, a).reshape(n, c, 12)
    arg, val = flat.argmax(2), flat.max(2)
    for ch in range(c):
        want = sorted(range(n), key=lambda i: (-val[i, ch], i))[:k]
        assert top.index[ch].tolist() == want
        assert top.values[ch].tolist() == [val[i, ch] for i in want]
        assert top.row[ch].tolist() == [arg[i, ch] // 4 for i in want]
        assert top.col[ch].tolist() == [arg[i, ch] % 4 for i in want]
        for r, i in enumerate(want):
            np.testing.assert_array_equal(top.maps[ch, r], a[i, ch].astype(np.float16))


@pytest.mark.slow
def test_ray_local_equals_local(demo, folder, tmp_path):
    pytest.importorskip("ray")
    here, there = tmp_path / "local", tmp_path / "ray"
    s = AtlasSettings(folder, LAYER, top=3, out=here, batch_size=4, workers=0)
    atlas_job(quiet(), demo, s)
    summary = atlas_job(quiet(), demo, s.replace(out=there, ray="local"))
    assert (summary.images, summary.computed) == (11, 11)
    assert table_of(there).equals(table_of(here))  # paths, ranks, values, cells, boxes
    np.testing.assert_array_equal(
        np.load(there / "atlas_maps.npy"), np.load(here / "atlas_maps.npy")
    )
    assert sorted(p.name for p in (there / "crops").iterdir()) == sorted(
        p.name for p in (here / "crops").iterdir()
    )
