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


def _on_object(concept: dict, masks) -> float:
    """Share of a concept's top-patch pixels on the object (mask > 127)."""
    on = total = 0
    for p in concept["patches"]:
        m = np.asarray(Image.open(masks / p["path"])) > 127
        x0, y0, x1, y1 = p["box"]
        on, total = on + int(m[y0:y1, x0:x1].sum()), total + (y1 - y0) * (x1 - x0)
    return on / total


def _scan_with_concepts(root, variant: str, spec: str):
    """A fresh folder of 160 scenes with masks, scanned by ``spec``, concepts auto."""
    from hookscope.core.demo.scenes import CLASS_NAMES

    images, labels, masks = make_dataset(variant, 160, seed=77)
    for i, (arr, lab, m) in enumerate(zip(images, labels, masks, strict=True)):
        rel = f"{CLASS_NAMES[lab]}/s{i:03d}.png"
        for sub, a in (("images", arr), ("masks", m.astype(np.uint8) * 255)):
            (root / sub / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(root / sub / rel)
    out = root / "scan"
    argv = ["scan", "--model", spec, "--images", str(root / "images"), "--layer", LAYER]
    argv += ["--masks", str(root / "masks"), "--out", str(out), "--workers", "0"]
    assert main.main([*argv, "--concepts", "auto"]) == 0
    concepts = json.loads((out / "concepts.json").read_text())
    clusters = json.loads((out / "clusters.json").read_text())
    return out, concepts, clusters


@pytest.mark.slow
def test_concept_goals_on_the_shortcut_model_and_its_clean_twin(tmp_path):
    """Issue 25's goals: the shortcut model's airplane concept is sky; the clean twin's is
    the airplane (measured: 100 % off, 64 % on; 67 % with seed 79)."""
    from hookscope.core.io.scan_outputs import open_scan

    root = tmp_path / "shortcut"
    _, concepts, clusters = _scan_with_concepts(root, "shortcut", "demo")
    planes = [c for c in clusters if max(c["preds"], key=c["preds"].get) == "airplane"]
    top = max(planes, key=lambda c: c["size"])["concepts"][0]["id"]
    assert 1 - _on_object(concepts[top], root / "masks") >= 0.9

    root = tmp_path / "clean"
    out, concepts, _ = _scan_with_concepts(root, "clean", "demo:clean")
    imp = np.load(out / "concept_importance.npy")
    explained = np.asarray(open_scan(out).column("target_idx"), float) == 0  # airplane
    best = int(np.argmax(np.nanmean(imp[explained], 0)))
    assert _on_object(concepts[best], root / "masks") >= 0.6
