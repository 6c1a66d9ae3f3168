"""One explainer registry and one metric table: every consumer lists them, maps follow one rule."""

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import hookscope.core.demo
from hookscope.core import explain as public
from hookscope.core.display.render import attribution_map, magnitude_map, normalize
from hookscope.core.errors import HookScopeError
from hookscope.core.jobs import attribution as attribution_jobs
from hookscope.core.jobs import evaluate
from hookscope.core.loading.images import load_image, to_display, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.methods import explainers, metrics
from hookscope.core.methods.attribution import ATTRIBUTION_METHODS, attribute
from hookscope.core.methods.cam import CAM_METHODS, compute_cam

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
LAYER = hookscope.core.demo.CAM_LAYER
CAMS = list(CAM_METHODS)
ATTRS = list(ATTRIBUTION_METHODS)
TRANSFORMERS = ["rollout", "chefer", "legrad", "attnlrp"]  # tests/core/test_transformers.py
SLOW = {"scorecam", "ablationcam", "smoothgrad", "ig", "occlusion"}


@pytest.fixture(scope="module")
def demo():
    lm = load_model("demo")
    x = to_tensor(load_image(SAMPLES / "car_road.png"), lm.input_spec)
    return lm, x


def test_the_registry_holds_every_way_to_a_map():
    assert public.EXPLAINERS is explainers.EXPLAINERS
    assert list(explainers.EXPLAINERS) == [*CAMS, *ATTRS, "random", "sobel", *TRANSFORMERS, "lrp"]
    assert explainers.names(explainers.CAM) == CAMS
    assert explainers.names(explainers.ATTRIBUTION) == [*ATTRS, "lrp"]  # tests/core/test_lrp.py
    assert explainers.names(explainers.BASELINE) == ["random", "sobel"]
    assert {k for k, r in explainers.EXPLAINERS.items() if r.slow} == SLOW
    assert explainers.get("scorecam").cost == "forwards per channel"
    assert explainers.get("ig").cost == "steps" and explainers.get("gradcam").cost == "one pass"
    assert all(explainers.get(k).needs_layer for k in CAMS)
    assert explainers.get("guided-gradcam").needs_layer
    assert not explainers.get("saliency").needs_layer and not explainers.get("sobel").needs_layer
    assert explainers.get("ig").params == ATTRIBUTION_METHODS["ig"].params  # the one Param table
    # One name everywhere; the old spelling is an alias only (sessions, scripts).
    assert "guided_backprop" not in explainers.EXPLAINERS
    assert explainers.get("guided_backprop").name == "guided-backprop"
    with pytest.raises(HookScopeError, match="Unknown method 'lime'"):
        explainers.get("lime")


def _parser():
    from hookscope.gui.command import build_parser

    return build_parser()


def _choices(parser, command: str, flag: str):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    return next(a for a in p._actions if flag in a.option_strings).choices


def test_every_method_list_is_the_registrys():
    from hookscope.gui.docks import attribution as attribution_dock
    from hookscope.gui.docks import cam as cam_dock
    from hookscope.gui.docks import sanity as sanity_dock

    reg = explainers.EXPLAINERS
    assert evaluate.method_names() == list(reg)
    assert set(evaluate.DEFAULT_METHODS) == {k for k in reg if k in CAMS and k not in SLOW} | {
        "random",
        "sobel",
    }
    assert list(cam_dock.METHODS) == explainers.names(explainers.CAM)
    assert set(cam_dock.SLOW_METHODS) == {k for k in CAMS if reg[k].slow}
    assert list(attribution_dock.METHODS) == explainers.names(explainers.ATTRIBUTION)
    assert list(attribution_jobs.METHODS) == explainers.names(explainers.ATTRIBUTION)
    assert list(sanity_dock.METHODS) == [k for k in reg if reg[k].kind != explainers.CAM]
    parser = _parser()
    cams = explainers.names(explainers.CAM)
    assert list(_choices(parser, "cam", "--method")) == [*cams, *TRANSFORMERS]
    assert list(_choices(parser, "scan", "--method")) == [*cams, *TRANSFORMERS, "lrp"]
    assert list(_choices(parser, "attribute", "--method")) == explainers.names(
        explainers.ATTRIBUTION
    )


def test_every_metric_list_is_the_metric_table():
    from hookscope.gui.docks import trust

    assert evaluate.FIELDS == tuple(metrics.METRICS)
    assert evaluate.BETTER == {
        **{k: m.better for k, m in metrics.METRICS.items()},
        "score": "higher",
    }
    assert list(trust.HEADERS) == ["score", *metrics.METRICS]
    assert {k for k, m in metrics.METRICS.items() if m.needs_mask} == {"pointing", "energy"}
    assert metrics.METRICS["deletion"].arrow == "↓" and metrics.METRICS["insertion"].arrow == "↑"


def test_cam_maps_are_compute_cams(demo):
    lm, x = demo
    for name in CAMS:
        e = explainers.explain(lm.model, x, name, layers=[LAYER], target=1)
        ref = compute_cam(lm.model, x, [LAYER], name, 1)[LAYER]
        np.testing.assert_array_equal(e.map, ref)
        assert e.layer == LAYER and e.target == 1 and e.map.dtype == np.float32


def test_attribution_maps_follow_the_one_rule(demo):
    lm, x = demo
    fast = {"smoothgrad": {"samples": 4}, "ig": {"steps": 8}, "occlusion": {"stride": 16}}
    for name in ATTRS:
        opts = fast.get(name, {})
        e = explainers.explain(lm.model, x, name, target=1, input_spec=lm.input_spec, **opts)
        raw = attribute(name, lm.model, x, 1, spec=lm.input_spec, **opts)
        np.testing.assert_allclose(e.raw, raw, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(e.map, normalize(np.abs(raw).sum(0)), atol=1e-6, err_msg=name)
        assert e.map.shape == (96, 96) and e.map.min() == 0 and e.map.max() == 1, name
    a = np.array([[[1.0, -2.0]], [[-3.0, 0.5]]], dtype=np.float32)  # (C=2, H=1, W=2)
    np.testing.assert_allclose(attribution_map(a, True), [[-2.0, -1.5]])
    np.testing.assert_allclose(attribution_map(a, False), [[4.0, 2.5]])
    np.testing.assert_allclose(magnitude_map(a), [[1.0, 0.0]])  # |.|-sum 4, 2.5 → min-max


def test_baselines_and_evaluate_use_the_registry(demo):
    lm, x = demo
    r = explainers.explain(lm.model, x, "random", target=1, seed=3)
    np.testing.assert_array_equal(r.map, metrics.random_map((96, 96), 3))
    s = explainers.explain(lm.model, x, "sobel", target=1, input_spec=lm.input_spec)
    np.testing.assert_array_equal(s.map, metrics.sobel_map(to_display(x, lm.input_spec)))
    for name in ("gradcam", "saliency", "sobel"):
        got = evaluate.saliency_map(name, lm.model, x, LAYER, 1, spec=lm.input_spec)
        ref = explainers.explain(
            lm.model, x, name, layers=[LAYER], target=1, input_spec=lm.input_spec
        ).map
        np.testing.assert_array_equal(got, ref)
    with pytest.raises(HookScopeError, match="gradcam does not take steps"):
        explainers.explain(lm.model, x, "gradcam", layers=[LAYER], steps=3)


def test_explanation_resolves_the_target_and_notes_flat_maps(demo):
    lm, x = demo
    e = explainers.explain(
        lm.model, x, "gradcam", layers=[LAYER], target="car", class_names=lm.class_names, probs=True
    )
    assert e.target == 1 and e.target_label == "class 1 (car)"
    assert e.probs.shape == (4,) and int(e.probs.argmax()) == 1
    assert e.probs.sum() == pytest.approx(1, abs=1e-6)
    flat = explainers.explain(
        lm.model, torch.zeros_like(x), "sobel", target=0, input_spec=lm.input_spec
    )
    assert [n.kind for n in flat.notes] == [explainers.FLAT]


def test_batches_equal_single_images(demo):
    lm, _ = demo
    xs = torch.cat(
        [to_tensor(load_image(p), lm.input_spec) for p in sorted(SAMPLES.glob("*.png"))[:5]]
    )
    batch = explainers.explain_batch(lm.model, xs, "gradcam++", layer=LAYER, batch_size=2)
    for i, b in enumerate(batch):
        one = explainers.explain(lm.model, xs[i : i + 1], "gradcam++", layers=[LAYER], probs=True)
        np.testing.assert_allclose(b.map, one.map, atol=1e-5)
        np.testing.assert_allclose(b.probs, one.probs, atol=1e-6)
        assert b.target == one.target


def test_evaluate_settings_are_frozen_validated_plain_data():
    s = evaluate.EvaluateSettings(("gradcam", "guided_backprop", "random"), "layer4", 3, steps=8)
    assert s.methods == ("gradcam", "guided-backprop", "random") and s.percentiles == (
        10,
        20,
        30,
        40,
        50,
        60,
        70,
        80,
        90,
    )
    assert evaluate.EvaluateSettings.from_dict(s.to_dict()) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 3
    with pytest.raises(HookScopeError, match="Unknown method 'lime'"):
        evaluate.EvaluateSettings(("lime",), "layer4")
    with pytest.raises(HookScopeError, match="gradcam needs a layer"):
        evaluate.EvaluateSettings(("gradcam",))
    with pytest.raises(HookScopeError, match="steps must be at least 2"):
        evaluate.EvaluateSettings(("random",), steps=1)
    with pytest.raises(HookScopeError, match="Unknown evaluate settings: colour"):
        evaluate.EvaluateSettings.from_dict({"colour": 1})
