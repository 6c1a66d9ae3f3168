"""Dataset scan (issue 15): batched maps, the output folder, resume, SpRAy, report, Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.gui.command as main
from hookscope.core.demo.scenes import CLASS_NAMES, make_dataset
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import (
    folder_labels,
    list_images,
    resize_map,
    spray,
)
from hookscope.core.io.scan_outputs import ROW_COLUMNS, open_scan
from hookscope.core.jobs.scan import ScanSettings, scan_job
from hookscope.core.loading.models import load_model
from hookscope.core.methods.cam import CAM_METHODS, compute_cam, compute_cam_batch
from hookscope.core.reporting import Cancelled, Reporter, quiet

LAYER = "features.block3"
N = 64


def write_scenes(root, n: int, seed: int):
    """Demo scenes of the clean distribution in ImageFolder layout, masks alongside."""
    images, labels, masks = make_dataset("clean", n, seed=seed)
    for k, (img, lab, m) in enumerate(zip(images, labels, masks)):
        rel = f"{CLASS_NAMES[lab]}/scene_{k:03d}.png"
        for sub, arr in (("images", img), ("masks", m.astype(np.uint8) * 255)):
            (root / sub / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / sub / rel)
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("scenes"), N, seed=123)


@pytest.fixture(scope="module")
def shortcut():
    return load_model("demo")


@pytest.fixture(scope="module")
def clean():
    return load_model("demo:clean")


@pytest.fixture(scope="module")
def shortcut_scan(scenes, shortcut, tmp_path_factory):
    images, masks = scenes
    out = tmp_path_factory.mktemp("scan_shortcut") / "out"
    summary = scan_job(
        quiet(), shortcut, ScanSettings(images, LAYER, masks=masks, out=out, workers=0)
    )
    return summary, open_scan(out)


# -- the per-batch function -------------------------------------------------------------------
@pytest.mark.parametrize("method", [m for m, c in CAM_METHODS.items() if c.one_pass])
def test_batched_maps_equal_one_image_maps(shortcut, method):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 96, 96)
    targets = [0, 3, 1]
    maps, logits = compute_cam_batch(shortcut.model, x, LAYER, method, targets)
    for i in range(3):
        one = compute_cam(shortcut.model, x[i : i + 1], LAYER, method, targets[i])[LAYER]
        np.testing.assert_allclose(maps[i], one, atol=2e-5)
    with torch.no_grad():
        np.testing.assert_allclose(logits.numpy(), shortcut.model(x).numpy(), atol=1e-4)


def test_batched_cam_refuses_perturbation_methods(shortcut):
    with pytest.raises(HookScopeError, match="image by image"):
        compute_cam_batch(shortcut.model, torch.zeros(2, 3, 96, 96), LAYER, "scorecam")


def test_resize_map_is_bilinear_half_pixel():
    m = np.zeros((4, 4), np.float32)
    m[:, 2:] = 1.0
    # Half-pixel centres: output column j samples input x = (j + 0.5) * 4 / 2 - 0.5 = 0.5, 2.5.
    np.testing.assert_allclose(resize_map(m, 2), [[0.0, 1.0], [0.0, 1.0]])
    assert resize_map(m, 4) is not None and resize_map(m, 4).dtype == np.float32


# -- the folder -------------------------------------------------------------------------------
def test_imagefolder_labels_only_when_every_folder_is_a_class():
    names = ["airplane", "car"]
    assert folder_labels(["car/a.png", "Airplane/b.png"], names) == [1, 0]
    assert folder_labels(["car/a.png", "truck/b.png"], names) is None
    assert folder_labels(["a.png", "car/b.png"], names) is None
    assert folder_labels(["0/a.png", "3/b.png"], None) == [0, 3]


# -- the output folder ------------------------------------------------------------------------
def test_outputs_have_the_documented_shape(shortcut_scan, scenes):
    summary, scan = shortcut_scan
    images, _ = scenes
    assert summary.complete and summary.rows == N and summary.errors == 0
    assert scan.table.column_names[: len(ROW_COLUMNS)] == list(ROW_COLUMNS)
    assert {"cluster", "x", "y"} <= set(scan.table.column_names)
    assert scan.maps.dtype == np.float16 and scan.maps.shape == (N, 64, 64)
    paths = scan.column("path").tolist()
    assert paths == list_images(images)  # table order: sorted relative paths
    assert set(scan.column("label")) <= set(CLASS_NAMES)
    correct = scan.column("correct")
    assert all(
        c == (lab == p) for c, lab, p in zip(correct, scan.column("label"), scan.column("pred"))
    )
    assert np.all((scan.column("bg_mass") >= 0) & (scan.column("bg_mass") <= 1))
    clusters = json.loads((scan.folder / "clusters.json").read_text())
    assert [c["id"] for c in clusters] == list(range(len(clusters)))
    assert sorted((c["size"] for c in clusters), reverse=True) == [c["size"] for c in clusters]
    assert sum(c["size"] for c in clusters) == N
    for c in clusters:
        assert set(c) >= {"id", "size", "mean_bg_mass", "labels", "preds", "mean_map", "examples"}
        assert (scan.folder / c["mean_map"]).is_file()
        rows = scan.rows_of(c["id"])
        assert c["size"] == len(rows)
        assert c["mean_bg_mass"] == pytest.approx(float(np.mean(scan.column("bg_mass")[rows])))
        assert sum(c["labels"].values()) == c["size"]
        assert set(c["examples"]) <= set(np.asarray(paths)[rows])
    assert len(set(scan.column("cluster"))) == len(clusters)


def test_rows_equal_the_cam_command(shortcut_scan, scenes, tmp_path):
    """A row of maps.npy is ``cam --out x.npz`` of that image, resized to S (float16)."""
    _, scan = shortcut_scan
    images, _ = scenes
    for row in (0, 41, N - 1):
        npz = tmp_path / f"cam{row}.npz"
        argv = ["cam", "--model", "demo", "--image", str(images / scan.column("path")[row])]
        assert main.main([*argv, "--layers", LAYER, "--out", str(npz)]) == 0
        ref = np.load(npz)[LAYER]
        assert ref.shape == (96, 96)
        diff = np.abs(scan.map(row) - resize_map(ref, 64).astype(np.float16).astype(np.float32))
        assert diff.max() <= 1e-3  # one float16 step near 1 is 9.8e-4


@pytest.mark.slow
def test_shortcut_model_has_a_background_cluster_the_clean_twin_has_not(
    shortcut_scan, scenes, clean, tmp_path
):
    """Done-when: >= 10 % of images in clusters with mean bg_mass >= 0.7 vs < 10 %."""
    images, masks = scenes

    def share_in_background_clusters(scan):
        big = [c for c in scan.clusters if c.mean_bg_mass is not None and c.mean_bg_mass >= 0.7]
        return sum(c.size for c in big) / len(scan), max(c.share for c in big) if big else 0.0

    _, short = shortcut_scan
    total, largest = share_in_background_clusters(short)
    assert largest >= 0.10  # one such cluster holds at least 10 % of the images
    assert total > 0.9  # in fact nearly every image: the shortcut model looks at the background
    scan_job(
        quiet(), clean, ScanSettings(images, LAYER, masks=masks, out=tmp_path / "clean", workers=0)
    )
    total_clean, _ = share_in_background_clusters(open_scan(tmp_path / "clean"))
    assert total_clean < 0.10
    assert float(np.mean(open_scan(tmp_path / "clean").column("bg_mass"))) < 0.5


# -- resume, cancel, errors, escaping ---------------------------------------------------------
class StopAfter(Reporter):
    """Cancels once ``n`` images are done."""

    def __init__(self, n):
        super().__init__(self._on)
        self.n = n

    def _on(self, done, total, message):
        if message == "Scanning" and done >= self.n:
            self.cancel()


def test_cancel_leaves_a_partial_output_and_a_rerun_resumes(
    scenes, shortcut, shortcut_scan, tmp_path
):
    images, masks = scenes
    out = tmp_path / "resume"
    settings = ScanSettings(
        images, LAYER, masks=masks, out=out, workers=0, batch_size=8, chunk_rows=8, limit=24
    )
    with pytest.raises(Cancelled):
        scan_job(StopAfter(8), shortcut, settings)
    partial = open_scan(out)
    assert not partial.complete and len(partial) == 8
    assert partial.maps.shape == (8, 64, 64)
    assert partial.column("cluster").tolist() == [-1] * 8  # not clustered yet
    summary = scan_job(quiet(), shortcut, settings)
    assert (summary.resumed, summary.computed, summary.rows) == (8, 16, 24)
    _, whole = shortcut_scan  # limit=24 takes the first 24 paths of the table order
    done = open_scan(out)
    assert done.complete and not (out / "parts").exists()
    assert done.column("path").tolist() == whole.column("path")[:24].tolist()
    np.testing.assert_allclose(done.column("prob"), whole.column("prob")[:24], atol=1e-5)
    maps, ref = np.asarray(done.maps, np.float32), np.asarray(whole.maps[:24], np.float32)
    assert np.abs(maps - ref).max() < 2e-3
    # A finished folder reruns without computing anything; other settings are refused.
    again = scan_job(quiet(), shortcut, settings)
    assert (again.computed, again.resumed) == (0, 24)
    fewer = scan_job(quiet(), shortcut, settings.replace(limit=16))
    assert (fewer.computed, fewer.rows, len(open_scan(out))) == (0, 16, 16)  # what was asked
    with pytest.raises(HookScopeError, match="another method"):
        scan_job(quiet(), shortcut, settings.replace(method="layercam"))


def test_corrupt_image_is_a_row_and_names_are_escaped(shortcut, tmp_path):
    root = tmp_path / "odd"
    root.mkdir()
    rng = np.random.default_rng(0)
    # "/" cannot be in a file name: the script tag spans a folder and a file, the same path.
    for name in ("<script>alert(1)</script>.png", "plain.png", "b & 'q'.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(root / name)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    assert main.main(["scan", "--model", "demo", "--images", str(root), "--out", str(out),
                      "--layer", LAYER, "--workers", "0"]) == 0  # fmt: skip
    scan = open_scan(out)
    errors = dict(zip(scan.column("path"), scan.column("error")))
    assert errors["broken.png"] is not None and "broken.png" in errors["broken.png"]
    assert sum(e is not None for e in errors.values()) == 1
    assert np.isnan(scan.column("bg_mass")).all()  # no masks: bg_mass is null
    broken = scan.column("path").tolist().index("broken.png")
    assert scan.column("cluster")[broken] == -1 and not np.asarray(scan.maps[broken]).any()
    html = (out / "report.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
    assert "b &amp; &#x27;q&#x27;.png" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_cli_rejects_bad_options_with_one_sentence(tmp_path, capsys):
    code = main.main(["scan", "--model", "demo", "--images", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hookscope: ") and err.count("\n") == 0 and "does not exist" in err


# -- SpRAy ------------------------------------------------------------------------------------
def test_spray_finds_the_number_of_groups_by_eigengap():
    rng = np.random.default_rng(0)
    maps = []
    for group, size in ((0, 30), (1, 20), (2, 12)):  # a blob in three different places
        for _ in range(size):
            cy, cx = [(6, 6), (6, 25), (25, 16)][group] + rng.normal(0, 1.0, 2)
            yy, xx = np.mgrid[:32, :32]
            maps.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0))
    res = spray(np.stack(maps))
    assert res.n_clusters == 3
    assert res.labels.tolist() == [0] * 30 + [1] * 20 + [2] * 12  # numbered by size
    assert res.xy.shape == (62, 2) and np.isfinite(res.xy).all()
    two = spray(np.stack(maps), 2, embed=False)
    assert two.n_clusters == 2 and two.embedding == "none"
    assert len(set(two.labels[:30].tolist())) == 1  # a group is never split


# -- Ray --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_local_equals_local(scenes, shortcut, shortcut_scan, tmp_path):
    pytest.importorskip("ray")
    images, masks = scenes
    out = tmp_path / "ray"
    settings = ScanSettings(
        images, LAYER, masks=masks, out=out, ray="local", limit=24, batch_size=8
    )
    summary = scan_job(quiet(), shortcut, settings)
    assert summary.computed == 24
    ray_scan = open_scan(out)
    _, local = shortcut_scan
    for col in ("path", "label", "pred", "target", "correct"):
        assert ray_scan.column(col).tolist() == local.column(col)[:24].tolist()
    np.testing.assert_allclose(ray_scan.column("prob"), local.column("prob")[:24], atol=1e-5)
    np.testing.assert_allclose(ray_scan.column("bg_mass"), local.column("bg_mass")[:24], atol=1e-3)
    ray_maps = np.asarray(ray_scan.maps, np.float32)
    assert np.abs(ray_maps - np.asarray(local.maps[:24], np.float32)).max() < 2e-3
