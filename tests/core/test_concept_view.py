"""Concepts in the app and the report (issue 25): a scan folder's concepts found again in one
image (same importances as the concepts job), restricted maps, and report.html's concepts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.gui.command as main
from hookscope.core.demo.scenes import make_dataset
from hookscope.core.io.concept_outputs import cluster_concepts, concept_strip, read_concepts
from hookscope.core.io.scan_outputs import open_scan
from hookscope.core.jobs.concept_view import (
    concept_view_job,
    concepts_for,
    remember_concepts,
)
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import quiet

LAYER = "features.block3"


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("concept_view")
    images, _, _ = make_dataset("shortcut", 12, seed=5)
    (root / "images").mkdir()
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(root / "images" / f"s{i:02d}.png")
    out = root / "scan"
    args = ["scan", "--model", "demo", "--images", str(root / "images"), "--layer", LAYER]
    args += ["--out", str(out), "--workers", "0", "--clusters", "2", "--concepts", "3"]
    assert main.main(args) == 0
    return open_scan(out)


def test_the_app_finds_the_jobs_concepts_again(demo, scan):
    cs = read_concepts(scan.folder)
    assert cs.layer == LAYER and cs.directions.shape == (3, 128) and len(cs) == 3
    imp = np.load(scan.folder / "concept_importance.npy")
    totals = np.load(scan.folder / "concept_total.npy")
    targets = scan.column("target_idx")
    for row in (0, 5):
        image = load_image(scan.image_path(row))
        v = concept_view_job(
            quiet(), demo, image, demo.input_spec, LAYER, target=int(targets[row]), concepts=cs
        )
        # the stored directions and shift give the job's own importances for this image
        np.testing.assert_allclose(v.importance, imp[row], rtol=1e-4, atol=1e-5)
        assert v.total == pytest.approx(float(totals[row]), rel=1e-4, abs=1e-5)
        # importances + residual = Σ A·∂y/∂A = y − bias (pool + linear head), y the centred
        # logit z_t − mean_j z_j (core.experiments.concepts) and bias centred alike
        b = demo.model.fc.bias.detach().numpy()
        with torch.no_grad():
            z = demo.model(to_tensor(image, demo.input_spec))[0].numpy()
        y, bias = z[v.target] - z.mean(), b[v.target] - b.mean()
        assert v.importance.sum() + v.residual == pytest.approx(y - bias, abs=1e-4)
        # scaled by the largest amount on the grid (bilinear upsampling keeps it ≤ 1)
        assert v.maps.shape == (3, 96, 96) and 0.95 < v.maps.max() <= 1.0


def test_restricted_maps_from_the_view(demo, scan):
    cs = read_concepts(scan.folder)
    image = load_image(scan.image_path(2))
    by_concept = [
        concept_view_job(
            quiet(),
            demo,
            image,
            None,
            LAYER,
            method="hirescam",
            target=0,
            concepts=cs,
            restrict=("concept", k),
        )
        for k in range(3)
    ]
    # a HiResCAM concept-restricted map sums (over the grid) to that concept's importance
    for k, v in enumerate(by_concept):
        assert v.restricted_sum == pytest.approx(float(v.importance[k]), rel=1e-5, abs=1e-7)
        assert v.restricted.shape == (96, 96) and v.restricted_label == f"concept {k}"
        # HiResCAM's whole map sums to Σ A·∂y/∂A: the concepts' maps plus the residual's
        assert v.cam_sum == pytest.approx(v.total, rel=1e-5)
    ch = [
        concept_view_job(quiet(), demo, image, None, LAYER, target=0, restrict=("channel", c))
        for c in (3, 40)
    ]
    assert all(v.restricted is not None and not len(v.importance) for v in ch)
    eig = concept_view_job(
        quiet(), demo, image, None, LAYER, method="eigencam", target=0, restrict=("channel", 3)
    )
    assert eig.method == "gradcam" and "eigencam" in eig.notes[0]
    assert eig.restricted_sum == pytest.approx(ch[0].restricted_sum, rel=1e-6)


def test_report_lists_each_clusters_concepts_with_crops(scan):
    html = (scan.folder / "report.html").read_text()
    ranked = cluster_concepts(scan)
    assert sorted(ranked) == sorted(c.id for c in scan.clusters)
    blocks = html.count("<div class='concepts'>")
    assert blocks == len(scan.clusters)
    # every cluster lists its 3 concepts, each with one strip of crops (data: PNGs)
    assert len(re.findall(r"alt='top patches of concept \d'", html)) == 3 * blocks
    clusters = json.loads((scan.folder / "clusters.json").read_text())
    first = clusters[0]["concepts"][0]
    top = ranked[clusters[0]["id"]][0]
    assert (top.id, top.importance) == (first["id"], pytest.approx(first["importance"]))
    assert top.share is not None and 0 < abs(top.share) < 5
    strip = concept_strip(read_concepts(scan.folder), top.id, 4, 64)
    assert strip.shape[0] == 64 and strip.shape[1] in {64 * n + 3 * (n - 1) for n in (1, 2, 3, 4)}


def test_remember_concepts(demo, scan):
    assert remember_concepts(demo.model, scan.folder).layer == LAYER
    assert concepts_for(demo.model, LAYER).folder == scan.folder
    assert concepts_for(demo.model, "features.block1") is None


def test_auto_concepts_report_each_fit_and_cancel_between_them(demo, scan):
    from hookscope.core.jobs.concepts import concepts_job
    from hookscope.core.reporting import Cancelled, Reporter

    seen: list[str] = []

    def on_progress(done, total, message):
        seen.append(message)
        if message == "Concepts: NMF with 3 concepts":
            rep.cancel()

    rep = Reporter(on_progress)
    before = (scan.folder / "concepts.json").read_bytes()
    with pytest.raises(Cancelled):
        concepts_job(rep, demo, scan.folder, "auto")
    fits = [m for m in seen if "NMF" in m]
    assert fits == [f"Concepts: NMF with {k} concepts" for k in (1, 2, 3)]
    assert (scan.folder / "concepts.json").read_bytes() == before  # nothing written
