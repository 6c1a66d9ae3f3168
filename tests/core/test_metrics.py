"""Faithfulness metrics: agreement with pytorch-grad-cam, RISE against a plain re-implementation,
the baselines, the evaluate job and its CLI."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hookscope.core import metrics
from hookscope.core.errors import HookScopeError
from hookscope.core.images import load_image, to_tensor
from hookscope.core.jobs.evaluate import EvaluateSettings, evaluate_job
from hookscope.core.methods.cam import compute_cam
from hookscope.core.methods.metrics import Scorer, blur_kernel, causal_curves, impute
from hookscope.core.models import load_model
from hookscope.core.reporting import Cancelled, Reporter, quiet

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
LAYER = "features.block3"


@pytest.fixture(scope="module")
def demo():
    return load_model("demo:clean")


@pytest.fixture(scope="module")
def case(demo):
    """The clean demo on the car sample at 48² (quick): input, Grad-CAM (ties: many exact
    zeros), target."""
    spec = dataclasses.replace(demo.input_spec, size=(48, 48), resize=None)
    x = to_tensor(load_image(SAMPLES / "car_road.png"), spec)
    cam = compute_cam(demo.model, x, [LAYER], "gradcam", 1)[LAYER]
    assert (cam == 0).sum() > 100
    return x, cam, 1


def smooth_map(size, seed=0):
    """A CAM-like map without ties: smooth blobs plus a little noise, in [0, 1]."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    m = np.zeros((size, size))
    for cy, cx, s in g.random((3, 3)):
        m += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 + 0.05 * s))
    m += 0.01 * g.random((size, size))
    return ((m - m.min()) / np.ptp(m)).astype(np.float32)


@pytest.fixture
def pgc_noise_zero(monkeypatch):
    """pytorch-grad-cam's ROAD classes with the imputation noise set to 0."""
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    defaults = road.NoisyLinearImputer.__init__.__defaults__
    monkeypatch.setattr(road.NoisyLinearImputer.__init__, "__defaults__", (0.0, *defaults[1:]))
    return road


# -- agreement with pytorch-grad-cam ----------------------------------------------------------
def test_confidence_equals_pytorch_grad_cam(demo, case):
    cm = pytest.importorskip("pytorch_grad_cam.metrics.cam_mult_image")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x, cam, t = case
    targets = [ClassifierOutputSoftmaxTarget(t)]
    for sal in (cam, smooth_map(48), 1 - cam):
        drop = metrics.drop_in_confidence(demo.model, x, sal, t)
        inc = metrics.increase_in_confidence(demo.model, x, sal, t)
        assert drop == pytest.approx(
            float(cm.DropInConfidence()(x, sal[None], targets, demo.model)[0]), abs=1e-5
        )
        assert inc == float(cm.IncreaseInConfidence()(x, sal[None], targets, demo.model)[0])


def test_imputation_equals_pytorch_grad_cam(pgc_noise_zero):
    g = np.random.default_rng(3)
    img = g.standard_normal((3, 40, 36)).astype(np.float32)
    for keep in (g.random((40, 36)) < 0.3, smooth_map(40)[:, :36] < 0.5, np.zeros((40, 36), bool)):
        ref = pgc_noise_zero.NoisyLinearImputer(noise=0.0)(
            torch.from_numpy(img), torch.from_numpy(keep.astype(np.float32))
        )
        np.testing.assert_allclose(impute(img, keep), ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("which", ["cam", "smooth"])
def test_road_equals_pytorch_grad_cam(demo, case, pgc_noise_zero, which):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x, cam, t = case
    sal = cam if which == "cam" else smooth_map(48, 1)
    targets = [ClassifierOutputSoftmaxTarget(t)]
    road = pgc_noise_zero
    for p in (10, 50, 80):
        ours = metrics.road(demo.model, x, sal, t, p, "morf", noise=0)
        ref = road.ROADMostRelevantFirst(p)(x, sal[None], targets, demo.model)[0]
        assert ours == pytest.approx(float(ref), abs=1e-4)
        ours = metrics.road(demo.model, x, sal, t, p, "lerf", noise=0)
        ref = road.ROADLeastRelevantFirst(p)(x, sal[None], targets, demo.model)[0]
        assert ours == pytest.approx(float(ref), abs=1e-4)
    ours = metrics.road_combined(demo.model, x, sal, t, noise=0)
    ref = road.ROADCombined()(x, sal[None], targets, demo.model)[0]
    assert ours == pytest.approx(float(ref), abs=1e-4)


def test_road_noise_is_seeded_and_single_calls_match_the_batch(demo, case):
    x, cam, t = case
    sal = smooth_map(48, 2)
    r = metrics.road_scores(demo.model, x, sal, t, (30, 70), noise=0.05, seed=4)
    assert metrics.road(demo.model, x, sal, t, 70, "lerf", 0.05, 4) == pytest.approx(r.lerf[1])
    again = metrics.road_scores(demo.model, x, sal, t, (30, 70), noise=0.05, seed=4)
    np.testing.assert_array_equal(r.morf, again.morf)
    other = metrics.road_scores(demo.model, x, sal, t, (30, 70), noise=0.05, seed=5)
    assert not np.array_equal(r.morf, other.morf)
    assert r.combined == pytest.approx((r.lerf.mean() - r.morf.mean()) / 2)


# -- RISE deletion / insertion, checked against a plain implementation ------------------------
def reflect_gaussian_kernel(size=11, sigma=5.0, truncate=4.0):
    """gaussian_filter of a centred impulse, written out: a sampled normalised Gaussian of
    radius int(truncate * sigma + 0.5), folded back at the borders (scipy's "reflect":
    d c b a | a b c d), in each axis."""
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    row = np.zeros(size)
    c = size // 2
    for offset, w in zip(range(-radius, radius + 1), taps):
        i = c + offset  # where the impulse's mass lands, then reflect into [0, size)
        while not 0 <= i < size:
            i = -i - 1 if i < 0 else 2 * size - i - 1
        row[i] += w
    return np.outer(row, row)


def test_blur_kernel_is_the_reflected_gaussian():
    k = blur_kernel()
    assert k.shape == (11, 11)
    np.testing.assert_allclose(k, reflect_gaussian_kernel(), atol=1e-12)
    assert k.sum() == pytest.approx(1.0)
    assert k[5, 5] == pytest.approx(0.0088326, abs=1e-6)  # nearly flat for sigma 5
    assert k[0, 0] == pytest.approx(0.0077366, abs=1e-6)


def plain_rise(model, x, saliency, target, steps):
    """RISE as its paper's code: one image per step, pixels changed in place."""
    c, h, w = x.shape[1:]
    k = torch.as_tensor(reflect_gaussian_kernel(), dtype=torch.float32)
    weight = torch.zeros(c, c, 11, 11)
    for i in range(c):
        weight[i, i] = k
    blurred = torch.nn.functional.conv2d(x, weight, padding=5)
    order = np.argsort(-saliency.reshape(-1), kind="stable")
    n = math.ceil(h * w / steps)
    out = []
    for start, finish in ((x.clone(), torch.zeros_like(x)), (blurred, x)):
        img, scores = start.clone(), []
        for i in range(steps + 1):
            with torch.no_grad():
                scores.append(float(torch.softmax(model(img), 1)[0, target]))
            idx = torch.from_numpy(order[i * n : (i + 1) * n])
            img.view(1, c, -1)[:, :, idx] = finish.view(1, c, -1)[:, :, idx]
        y = np.asarray(scores)
        out.append((y, (y.sum() - y[0] / 2 - y[-1] / 2) / steps))
    return out


@pytest.mark.parametrize("steps", [7, 24])
def test_deletion_insertion_equal_a_plain_implementation(demo, case, steps):
    x, cam, t = case
    (d_curve, d_auc), (i_curve, i_auc) = plain_rise(demo.model, x, cam, t, steps)
    c = causal_curves(demo.model, x, cam, t, steps)
    np.testing.assert_allclose(c.deletion, d_curve, atol=1e-5)
    np.testing.assert_allclose(c.insertion, i_curve, atol=1e-5)
    assert metrics.deletion_insertion(demo.model, x, cam, t, steps) == pytest.approx(
        (d_auc, i_auc), abs=1e-5
    )
    assert c.pixels_per_step == math.ceil(48 * 48 / steps)


class ViewNet(torch.nn.Module):
    """A model that calls .view on its input: channels-last batches make it fail."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 12 * 12, 5)

    def forward(self, x):
        return self.fc(x.view(x.shape[0], -1))


def test_a_model_that_views_its_input_still_gets_scored():
    model = ViewNet().eval()
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    sal = smooth_map(12, 4)
    (d_curve, d_auc), (i_curve, i_auc) = plain_rise(model, x, sal, 2, 6)
    assert metrics.deletion_insertion(model, x, sal, 2, 6) == pytest.approx((d_auc, i_auc))


# -- localisation and baselines ---------------------------------------------------------------
def test_pointing_game_and_energy_golden():
    sal = np.zeros((40, 40), np.float32)
    sal[10, 30] = 1.0
    sal[20, 20] = 1.0  # a tie: the first maximum in row-major order counts
    sal[30:, :] = 0.25
    mask = np.zeros((40, 40), bool)
    mask[10, 10:16] = True  # 15 px left of the maximum at (10, 30)
    assert metrics.pointing_game(sal, mask, tolerance=15)
    assert not metrics.pointing_game(sal, mask, tolerance=14)
    # The mask holds none of the peaks, only zeros.
    assert metrics.energy_in_mask(sal, mask) == 0.0
    mask[30, :] = True  # one row of 0.25 out of 10 rows + two peaks of 1
    assert metrics.energy_in_mask(sal, mask) == pytest.approx(10 / (2 + 100))
    assert metrics.energy_in_mask(np.zeros((40, 40)), mask) == 0.0
    with pytest.raises(HookScopeError, match="mask"):
        metrics.energy_in_mask(sal, mask[:20])


def test_sobel_baseline_equals_the_tutorials_opencv_recipe():
    cv2 = pytest.importorskip("cv2")
    noise = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for rgb in (np.asarray(load_image(SAMPLES / "airplane_sky.png")), noise):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        gx = cv2.convertScaleAbs(cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3))
        gy = cv2.convertScaleAbs(cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3))
        grad = cv2.addWeighted(gx, 0.5, gy, 0.5, 0).astype(np.float32)
        np.testing.assert_allclose(metrics.sobel_map(rgb), grad / grad.max(), atol=1e-6)


def test_random_baseline_is_seeded_uniform():
    a = metrics.random_map((30, 20), seed=2)
    assert a.shape == (30, 20) and a.dtype == np.float32
    np.testing.assert_array_equal(a, metrics.random_map((30, 20), seed=2))
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.05


def test_bad_inputs_are_one_sentence(demo, case):
    x, cam, t = case
    with pytest.raises(HookScopeError, match="upsample the map"):
        metrics.road_combined(demo.model, x, cam[:10], t)
    with pytest.raises(HookScopeError, match="out of range"):
        metrics.deletion_insertion(demo.model, x, cam, 9, steps=4)
    with pytest.raises(HookScopeError, match="order"):
        metrics.road(demo.model, x, cam, t, 50, order="middle")


# -- the job, the done criterion and the CLI --------------------------------------------------
# Clean demo, Grad-CAM on features.block3 vs the random baseline (seed 0), RISE 96 steps:
# (deletion, insertion) per bundled sample. Lower deletion and higher insertion are better.
GOLDEN = {
    "airplane_on_road": ((0.8631, 0.9081), (0.9274, 0.9079)),
    "airplane_sky": ((0.8181, 0.8963), (0.9626, 0.8245)),
    "bird_grass": ((0.1927, 0.8792), (0.2070, 0.9099)),
    "car_on_sky": ((0.0547, 0.9212), (0.2145, 0.4099)),
    "car_road": ((0.0542, 0.8915), (0.2906, 0.3505)),
    "ship_sea": ((0.1243, 0.6306), (0.1319, 0.3609)),
    "sky": ((0.2969, 0.3286), (0.0451, 0.3296)),
}


@pytest.mark.slow
def test_gradcam_beats_random_on_the_clean_demo_over_the_samples(demo):
    got = {}
    for path in sorted(SAMPLES.glob("*.png")):
        if path.stem.endswith("_mask"):
            continue
        x = to_tensor(load_image(path), demo.input_spec)
        sc = Scorer(demo.model, x, int(demo.model(x).argmax()))
        cam = compute_cam(demo.model, x, [LAYER], "gradcam", sc.target)[LAYER]
        g = causal_curves(demo.model, x, cam, sc.target, scorer=sc)
        r = causal_curves(demo.model, x, metrics.random_map(cam.shape, 0), sc.target, scorer=sc)
        got[path.stem] = ((g.deletion_auc, g.insertion_auc), (r.deletion_auc, r.insertion_auc))
    assert set(got) == set(GOLDEN)
    for name, ((gd, gi), (rd, ri)) in GOLDEN.items():
        assert got[name][0] == pytest.approx((gd, gi), abs=2e-3), name
        assert got[name][1] == pytest.approx((rd, ri), abs=2e-3), name
    mean = np.mean([[*g, *r] for g, r in got.values()], axis=0)
    # Means over the 7 samples: Grad-CAM deletion 0.343 < random 0.397, insertion 0.779 > 0.585.
    assert mean[0] < mean[2] - 0.04
    assert mean[1] > mean[3] + 0.15


def test_evaluate_job_ranks_and_says_who_fails(demo):
    image = load_image(SAMPLES / "car_road.png")
    mask = SAMPLES / "car_road_mask.png"
    settings = EvaluateSettings(("gradcam", "random", "sobel"), LAYER, steps=24)
    r = evaluate_job(quiet(), demo, image, settings, mask)
    assert r.target == 1 and r.target_name == "car"
    assert r.ranking()[0] == "gradcam" and r.best() == "gradcam"
    assert r.ranking()[-1] == "random"
    assert r.baselines_beating("gradcam") == []
    assert "Most faithful here: gradcam" in r.summary()
    g = r.methods["gradcam"]
    assert g.pointing is True and g.energy == pytest.approx(0.7358, abs=2e-3)
    assert g.road_combined == pytest.approx((g.road_lerf - g.road_morf) / 2)
    assert g.score == pytest.approx(g.insertion - g.deletion)
    assert len(g.deletion_curve) == 25 and len(g.morf_curve) == 9
    assert r.to_csv().splitlines()[0].startswith("method,drop,increase,road_morf")


def test_evaluate_job_reports_progress_and_cancels(demo):
    seen = []
    rep = Reporter(lambda d, t, m: seen.append((d, t)))
    sky = load_image(SAMPLES / "sky.png")
    evaluate_job(rep, demo, sky, EvaluateSettings(("random",), LAYER, steps=8))
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def cancel_soon(d, t, m):
        if d > 2:
            rep2.cancel()

    rep2 = Reporter(cancel_soon)
    with pytest.raises(Cancelled):
        evaluate_job(rep2, demo, sky, EvaluateSettings(("gradcam",), LAYER, steps=40))


def test_cli_evaluate_json_shape(capsys):
    from hookscope.gui.command import main

    code = main(
        [
            "evaluate",
            "--model", "demo:clean",
            "--image", str(SAMPLES / "ship_sea.png"),
            "--layer", LAYER,
            "--methods", "gradcam,random",
            "--mask", str(SAMPLES / "ship_sea_mask.png"),
            "--steps", "16",
            "--json",
        ]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == 2
    assert list(out["methods"]) == ["gradcam", "random"]
    keys = ["drop", "increase", "road_morf", "road_lerf", "road_combined", "deletion"]
    keys += ["insertion", "pointing", "energy"]
    assert list(out["methods"]["gradcam"]) == keys
    assert isinstance(out["methods"]["gradcam"]["pointing"], bool)


def test_cli_evaluate_table_and_errors(capsys):
    from hookscope.gui.command import main

    args = ["evaluate", "--model", "demo:clean", "--image", str(SAMPLES / "car_road.png")]
    assert main([*args, "--layer", LAYER, "--methods", "gradcam,sobel", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "ranked by insertion − deletion" in out and "sobel (baseline)" in out
    assert "pointing" not in out  # only with --mask
    assert main([*args, "--layer", LAYER, "--methods", "gradcam,nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown method 'nope'" in err and err.count("\n") == 1
