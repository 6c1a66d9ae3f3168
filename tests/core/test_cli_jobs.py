"""The CLI runs the app's jobs: what it prints or saves equals the job's result exactly."""

import json
from pathlib import Path

import numpy as np
import pytest

from hookscope.core.engine.runtime import torch_threads
from hookscope.core.jobs.attribution import attribution_job
from hookscope.core.jobs.probe import probe_job
from hookscope.core.loading.images import load_image
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import quiet
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "resources" / "samples" / "car_on_sky.png"
LAYERS = ["features.block2", "features.block3.conv"]


def hookscope(*args):
    r = run_cli(*args, "--model", "demo", "--image", str(IMAGE), threads=1)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def demo():
    return load_model("demo"), load_image(IMAGE)


def test_probe_json_prints_the_probe_jobs_numbers(demo):
    lm, img = demo
    out = json.loads(hookscope("probe", "--layers", ",".join(LAYERS), "--json").stdout)
    snap = probe_job(quiet(), lm, img, LAYERS, threads=1)
    assert [(t["index"], t["name"], t["prob"]) for t in out["topk"]] == snap.topk
    assert out["topk"][0]["prob"] == float(snap.probs[snap.topk[0][0]])
    assert (out["target"], out["target_name"]) == (snap.target, snap.target_name)
    assert out["input_grad_norm"] == snap.input_grad_norm > 0
    for name in LAYERS:
        calls = out["layers"][name]["calls"]
        assert [c["parts"] for c in calls] == [c.parts for c in snap.layers[name]]
        assert out["layers"][name]["param_grad_norm"] == snap.param_grad_norms[name]


def test_cam_npz_holds_the_probe_jobs_maps(demo, tmp_path):
    lm, img = demo
    out = tmp_path / "maps.npz"
    hookscope("cam", "--layers", ",".join(LAYERS), "--target", "2", "--out", str(out))
    snap = probe_job(quiet(), lm, img, LAYERS, 2, "gradcam", LAYERS, threads=1)
    with np.load(out) as z:
        assert sorted(z.files) == sorted(LAYERS)
        for name in LAYERS:
            np.testing.assert_array_equal(z[name], snap.cams[name])
    meta = json.loads(out.with_suffix(".json").read_text())["settings"]
    assert meta["target"] == 2 and meta["target_prob"] == float(snap.probs[2])


def test_attribute_npz_holds_the_attribution_jobs_arrays(demo, tmp_path):
    lm, img = demo
    out = tmp_path / "sal.npz"
    hookscope("attribute", "--method", "saliency", "--out", str(out))
    with torch_threads(1):
        r = attribution_job(quiet(), lm, img, "saliency")
    with np.load(out) as z:
        np.testing.assert_array_equal(z["attribution"], r.attribution)
        np.testing.assert_array_equal(z["map"], r.map2d)
    assert r.map2d.shape == lm.input_spec.size and r.map2d.max() > 0
    meta = json.loads(out.with_suffix(".json").read_text())["settings"]
    assert (meta["target"], meta["target_prob"]) == (r.target, r.target_prob)
