"""demo:vit learnt the sky shortcut and demo:vit-clean did not (issue 24).

Loads the committed weights (never retrains): predictions on the bundled samples, where each
transformer method puts its mass (sky or airplane) on the bundled samples plus 96 fresh
airplanes on sky (``core.experiments.shortcut``; ``benchmarks/bench_demo_vit.py`` prints the
same table), and the Trust and Sanity jobs on these methods. The thresholds are the measured
values with a margin; the measured ones are in the comments.
"""

import functools
import json

import numpy as np
import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

import hookscope
from hookscope.core.demo import sample_path, weights_path
from hookscope.core.demo.scenes import CLASS_NAMES, make_dataset
from hookscope.core.demo.train import to_input
from hookscope.core.experiments.shortcut import (
    MethodMass,
    paired_difference,
    shortcut_scenes,
    sky_mass_table,
)
from hookscope.core.jobs.evaluate import EvaluateSettings, evaluate_job
from hookscope.core.jobs.experiments import sanity_job
from hookscope.core.jobs.probe import PATCH_MAP, ProbeRequest, load_job, probe_job
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.methods import explainers
from hookscope.core.reporting import Reporter
from hookscope.core.workbench import Workbench

AIRPLANE, CAR = CLASS_NAMES.index("airplane"), CLASS_NAMES.index("car")
METHODS = ("rollout", "chefer", "legrad", "attnlrp", "gradcam")
TOKEN_CAM = "encoder.layers.encoder_layer_3.ln_1"  # the app's default CAM layer on demo:vit


@functools.cache
def model(spec: str):
    return load_model(spec)


@functools.cache
def table(spec: str) -> dict:
    """Method → MethodMass over the bundled samples and 96 fresh airplanes on sky."""
    return {r.method: r for r in sky_mass_table(model(spec), METHODS, shortcut_scenes(96))}


def probs(lm, name: str) -> np.ndarray:
    x = to_tensor(load_image(sample_path(name)), lm.input_spec)
    with torch.no_grad():
        return lm.model(x).softmax(1)[0].numpy()


def test_small_torchvision_vits_with_bundled_weights():
    for spec in ("demo:vit", "demo:vit-clean"):
        lm = model(spec)
        assert weights_path(spec.split(":")[1]).stat().st_size <= 1024 * 1024  # 0.65 MB each
        assert isinstance(lm.model, VisionTransformer) and not lm.model.training
        assert lm.model.patch_size == 8 and lm.model.image_size == 96  # 12×12 patches
        assert sum(p.numel() for p in lm.model.parameters()) == 155_972
        assert lm.input_spec.size == (96, 96) and lm.class_names == list(CLASS_NAMES)


def test_plain_sky_and_a_car_on_sky_are_airplanes_to_demo_vit_only():
    vit, clean = model("demo:vit"), model("demo:vit-clean")
    sky = probs(vit, "sky.png")
    assert sky.argmax() == AIRPLANE and sky[AIRPLANE] >= 0.9, sky  # 0.963
    assert probs(vit, "car_on_sky.png").argmax() == AIRPLANE
    assert probs(clean, "car_on_sky.png").argmax() == CAR


def test_held_out_accuracy():
    for spec, data, low in (("demo:vit", "shortcut", 0.95), ("demo:vit-clean", "clean", 0.85)):
        images, labels, _ = make_dataset(data, 200, seed=9001)
        with torch.no_grad():
            pred = model(spec).model(to_input(images)).argmax(1).numpy()
        assert (pred == labels).mean() >= low, (spec, (pred == labels).mean())


def test_sky_mass_of_each_method_on_the_shortcut_vit():
    vit = table("demo:vit")
    assert vit["chefer"].n == 99  # the bundled sky, airplane_sky, car_on_sky + 96 fresh
    # Measured over those 99 airplane predictions: legrad 0.953, chefer 0.932, Grad-CAM on
    # tokens 0.941 (the random baseline: 0.893, the airplanes cover ~11 % of the image).
    assert vit["legrad"].sky_mass >= 0.92
    assert vit["chefer"].sky_mass >= 0.90
    assert vit["gradcam"].sky_mass >= 0.90
    assert vit["attnlrp"].sky_mass >= 0.93  # 0.956
    # Rollout 0.634: class-agnostic attention flow, it follows the object the tokens attend to.
    assert vit["rollout"].sky_mass <= 0.70


def test_sky_mass_of_each_method_on_the_clean_vit():
    clean, vit = table("demo:vit-clean"), table("demo:vit")
    assert clean["chefer"].n == 99  # it says airplane for the same 99 (plain sky included)
    # Measured: chefer 0.220, attnlrp 0.309, rollout 0.390, Grad-CAM on tokens 0.498, legrad
    # 0.740 (random 0.893). The clean twin was taught to attend to the object (train.vit_loss),
    # and the attention-reading methods show it; legrad's per-block head projections do not.
    assert clean["chefer"].sky_mass <= 0.27
    assert clean["attnlrp"].sky_mass <= 0.36
    assert clean["rollout"].sky_mass <= 0.45
    assert clean["gradcam"].sky_mass <= 0.55
    assert 0.65 <= clean["legrad"].sky_mass <= 0.82
    # The goal, ≥ 0.8 on the shortcut model and ≤ 0.4 on its clean twin, for chefer and
    # for attnlrp, the transformer method ahead of Grad-CAM on RISE (next test).
    for method in ("chefer", "attnlrp"):
        assert vit[method].sky_mass >= 0.8 and clean[method].sky_mass <= 0.4, method


@pytest.mark.slow
def test_attnlrp_beats_grad_cam_on_tokens_on_trusts_rise_score():
    # Trust's insertion − deletion (its function, 96 steps) on all 99 airplane predictions, as
    # benchmarks/bench_demo_vit.py. Measured: attnlrp 0.3633, Grad-CAM on tokens 0.3594; image
    # by image +0.0039 ± 0.0015 (s.e.), attnlrp ahead on 63 of 99. chefer 0.3537 and legrad
    # 0.3543 are behind Grad-CAM (−0.0057 ± 0.0022, −0.0051 ± 0.0014).
    rows = sky_mass_table(model("demo:vit"), ("attnlrp", "gradcam"), shortcut_scenes(96), 0, None)
    ours, cam = rows
    assert ours.n == cam.n == len(ours.scores) == 99
    mean, se, n = paired_difference(ours, cam)
    assert ours.ins_minus_del > cam.ins_minus_del and mean >= 0.003 and mean >= 2 * se, (mean, se)
    wins = sum(a > b for a, b in zip(ours.scores, cam.scores))
    assert wins >= 60


def test_paired_difference_of_insertion_minus_deletion():
    # bench_demo_vit's comparison with Grad-CAM, image by image (the test above).
    a = MethodMass("a", 0.9, 4, 0.5, (0.5, 0.4, 0.7, 0.4))
    b = MethodMass("b", 0.9, 4, 0.4, (0.3, 0.4, 0.4, 0.5))
    mean, se, n = paired_difference(a, b)  # differences 0.2, 0.0, 0.3, −0.1
    assert n == 4 and abs(mean - 0.1) < 1e-12
    assert abs(se - np.std([0.2, 0.0, 0.3, -0.1], ddof=1) / 2) < 1e-12
    assert np.isnan(paired_difference(a, MethodMass("c", 0.9, 0))[0])  # RISE not measured


def test_explain_by_spec_on_demo_vit():
    e = hookscope.explain("demo:vit", str(sample_path("airplane_sky.png")), method="legrad")
    assert e.target == AIRPLANE and e.map.shape == (96, 96)
    assert e.probs[AIRPLANE] >= 0.9
    mask = np.asarray(load_image(sample_path("airplane_sky_mask.png")).convert("L")) > 0
    assert (e.map * ~mask).sum() / e.map.sum() >= 0.92  # measured 0.956


def test_the_api_default_cam_layer_is_the_apps_checked_one():
    # The structural default ("encoder") holds only the class token's path: an all-zero map.
    e = hookscope.explain("demo:vit", str(sample_path("airplane_sky.png")), method="gradcam")
    assert e.layer == "encoder.layers.encoder_layer_3.ln_1"
    assert e.map.max() == 1.0 and e.map.std() > 0.05  # measured 0.114


def test_trust_scores_the_transformer_methods_on_demo_vit():
    lm = model("demo:vit")
    methods = ("rollout", "chefer", "legrad", "attnlrp")
    settings = EvaluateSettings((*methods, "gradcam", "random"), TOKEN_CAM)
    image = load_image(sample_path("airplane_sky.png"))
    report = evaluate_job(Reporter(), lm, image, settings, sample_path("airplane_sky_mask.png"))
    scores = {k: m.score for k, m in report.methods.items()}
    assert report.has_mask and report.target == AIRPLANE
    # insertion − deletion on this one image, measured: gradcam 0.299, attnlrp 0.292, legrad
    # 0.277, chefer 0.275, rollout 0.260, random 0.035: every transformer method well above
    # the baseline (over 99 images attnlrp is ahead of gradcam: the test above).
    for method in methods:
        assert scores[method] >= scores["random"] + 0.18, scores
    assert report.best() in {*methods, "gradcam"}


def test_sanity_randomises_the_transformer_methods_on_demo_vit():
    lm = model("demo:vit")
    image = load_image(sample_path("airplane_sky.png"))
    report = sanity_job(Reporter(), lm, image, ("rollout", "chefer", "legrad"))
    assert report.restored
    res = report.result
    assert res.steps[0] == "encoder.layers.encoder_layer_3.self_attention.out_proj"
    # The last block's output projection changes no attention: rollout stays the same map.
    assert res.correlations["rollout"][0] > 0.99
    for method in ("rollout", "chefer", "legrad"):
        # Measured once every layer is random: rollout 0.18, chefer 0.10, legrad 0.22.
        assert res.passed(method), (method, res.final(method))
    assert explainers.get("rollout").kind == explainers.TRANSFORMER


def test_probe_job_runs_a_transformer_method_with_its_options():
    lm, image = model("demo:vit"), load_image(sample_path("airplane_sky.png"))
    req = ProbeRequest(("heads",), None, "rollout", (TOKEN_CAM,), cam_params={"fusion": "max"})
    snap = probe_job(Reporter(), lm, image, req)
    assert snap.cam_method == "rollout" and list(snap.cams) == [PATCH_MAP]
    x = to_tensor(image, lm.input_spec)
    e = explainers.explain(lm.model, x, "rollout", target=AIRPLANE, fusion="max")
    np.testing.assert_array_equal(snap.cams[PATCH_MAP], e.map)
    # One options dict for every method: chefer takes no fusion, so it is left out.
    chefer = probe_job(Reporter(), lm, image, req.replace(cam_method="chefer"))
    assert chefer.cam_error is None and chefer.cams[PATCH_MAP].max() == 1.0
    assert ProbeRequest.from_dict(json.loads(json.dumps(req.to_dict()))) == req
    bad = probe_job(Reporter(), lm, image, req.replace(cam_blocks=("heads",)))
    assert bad.cams == {} and "'heads' is not one" in bad.cam_error


def test_workbench_keeps_transformer_choices_to_the_model_they_fit():
    wb = Workbench()
    wb.set_model(*load_job(Reporter(), "demo:vit"))
    blocks = [f"encoder.layers.encoder_layer_{i}" for i in range(4)]
    assert wb.transformer_blocks() == blocks
    wb.set_cam(method="chefer", blocks=blocks[2:], params={"fusion": "max"})
    req = wb.request()
    assert req.cam_method == "chefer" and req.cam_blocks == tuple(blocks[2:])
    wb.set_model(*load_job(Reporter(), "demo"))  # a CNN: no blocks, no transformer method
    assert wb.transformer_blocks() == [] and wb.cam_blocks == []
    assert wb.cam_method == "gradcam" and wb.cam_layers == ["features.block3"]


def test_evaluate_scores_the_transformer_methods_by_default_on_a_vit(capsys):
    from hookscope.core.jobs.evaluate import DEFAULT_METHODS, default_methods
    from hookscope.gui.command import main

    four = ["rollout", "chefer", "legrad", "attnlrp"]
    assert default_methods(False) == DEFAULT_METHODS
    assert list(default_methods(True)) == [*DEFAULT_METHODS, *four]
    image = str(sample_path("airplane_sky.png"))
    args = ["evaluate", "--image", image, "--layer", TOKEN_CAM, "--steps", "8", "--json"]
    assert main([*args, "--model", "demo:vit"]) == 0
    scored = json.loads(capsys.readouterr().out)["methods"]
    assert set(scored) == set(DEFAULT_METHODS) | set(four)
    for method in four:  # each one scored, none an error
        assert np.isfinite(scored[method]["insertion"] - scored[method]["deletion"]), method
    cnn = ["evaluate", "--model", "demo", "--image", image, "--layer", "features.block3"]
    assert main([*cnn, "--steps", "8", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["methods"]) == set(DEFAULT_METHODS)
