"""Concepts (issue 25 §2, partial): NMF of patch activations, the importance identity, and
``concepts.json`` / ``clusters.json`` of a scan folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import hookscope.gui.command as main
from hookscope.core.demo.scenes import make_dataset
from hookscope.core.experiments.atlas import layer_layout
from hookscope.core.experiments.concepts import activations_and_grads, decompose, fit_nmf, patches
from hookscope.core.jobs.concepts import concepts_job
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import quiet

LAYER = "features.block3"


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.fixture(scope="module")
def scan_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("concepts")
    images, _, _ = make_dataset("shortcut", 16, seed=4)
    (root / "images").mkdir()
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(root / "images" / f"s{i:02d}.png")
    out = root / "scan"
    argv = ["scan", "--model", "demo", "--images", str(root / "images"), "--layer", LAYER]
    args = [*argv, "--out", str(out), "--workers", "0", "--clusters", "2", "--concepts", "2"]
    assert main.main(args) == 0
    assert len(json.loads((out / "concepts.json").read_text())) == 2  # scan --concepts K
    assert main.main([*args[:-1], "two"]) == 2  # a bad K: one sentence, before any work
    return root, out


def test_importances_plus_residual_are_the_score_minus_bias(demo, scan_folder):
    root, _ = scan_folder
    x = torch.cat(
        [to_tensor(load_image(p), demo.input_spec) for p in sorted(root.glob("images/*"))[:6]]
    )
    layout = layer_layout(demo.model, LAYER, x)
    targets = np.array([0, 1, 2, 3, 0, 1])
    a, g, y = activations_and_grads(demo.model, LAYER, x, targets, layout)
    assert a.shape == (6, 128, 12, 12) and a.min() >= 0  # after a ReLU: no shift
    nmf, k, _ = fit_nmf(patches(a), 4)
    d = decompose(a, g, nmf, np.zeros(128, np.float32))
    b = demo.model.fc.bias.detach().numpy()
    bias = b[targets] - b.mean()  # y is the centred logit z_t − mean_j z_j
    with torch.no_grad():
        z = demo.model(x).numpy()
    np.testing.assert_allclose(y, z[np.arange(6), targets] - z.mean(1), atol=1e-5)
    # pool + linear head: Σ_p A·∂y/∂A = y − bias, and the concepts + residual add up to it
    np.testing.assert_allclose(d["total"], y - bias, atol=1e-4)
    np.testing.assert_allclose(d["importance"].sum(1) + d["residual"], y - bias, atol=1e-4)
    assert d["maps"].shape == (6, 4, 12, 12) and (d["maps"] >= 0).all()
    # the residual is the share NMF does not explain: small next to the score here
    assert np.abs(d["residual"]).max() < np.abs(y - bias).max()


def test_concepts_json_and_cluster_ranking(demo, scan_folder):
    _, out = scan_folder
    s = concepts_job(quiet(), demo, out, 3, top=4)
    assert s.k == 3 and s.images == 16
    concepts = json.loads((out / "concepts.json").read_text())
    assert [c["id"] for c in concepts] == [0, 1, 2]
    for c in concepts:
        assert len(c["direction"]) == 128 and min(c["direction"]) >= 0
        assert 1 <= len(c["patches"]) <= 4
        for p in c["patches"]:
            x0, y0, x1, y1 = p["box"]
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96 and p["path"].endswith(".png")
    imp = np.load(out / "concept_importance.npy")
    clusters = json.loads((out / "clusters.json").read_text())
    from hookscope.core.io.scan_outputs import open_scan

    labels = open_scan(out).column("cluster")
    for entry in clusters:
        ranked = [c["importance"] for c in entry["concepts"]]
        assert ranked == sorted(ranked, reverse=True) and len(ranked) == 3
        want = imp[labels == entry["id"]].mean(0)
        assert entry["concepts"][0]["importance"] == pytest.approx(float(want.max()), rel=1e-5)
    auto = concepts_job(quiet(), demo, out, "auto", top=2, max_patches=1500)
    assert 2 <= auto.k <= 10 and sorted(auto.errors) == list(range(1, 11))
