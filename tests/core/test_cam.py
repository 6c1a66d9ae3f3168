"""CAM family: agreement with pytorch-grad-cam, targets, layers, tokens, errors, cancel."""

import contextlib
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from hookscope.core.demo import samples_dir
from hookscope.core.engine.hooks import HookSession, hook_count
from hookscope.core.engine.probe import run_probe
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import edit_from_dict
from hookscope.core.jobs.probe import load_job, probe_job
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.methods.cam import CAM_METHODS, cam_from_probe, compute_cam
from hookscope.core.reporting import Cancelled, Reporter
from tests.core.conftest import image

# Our method name -> pytorch-grad-cam's class; the peer is imported only by the tests using it.
REFERENCE = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
}
SAMPLES = samples_dir()  # the installed resources, found as the app finds them
SLOW = {"scorecam", "ablationcam"}  # 512 forward passes each: use a smaller input


def pytorch_grad_cam():
    """The peer library and its classifier target, or skip the calling test."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return pgc, ClassifierOutputTarget


def test_registry_has_the_eight_methods():
    assert list(CAM_METHODS) == list(REFERENCE)


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_agrees_with_pytorch_grad_cam(resnet, method):
    pgc, ClassifierOutputTarget = pytorch_grad_cam()

    class _FlippedEigenCAM(pgc.EigenCAM):
        """pytorch-grad-cam's EigenCAM with the other SVD sign."""

        def get_cam_image(self, *args, **kwargs):
            return -super().get_cam_image(*args, **kwargs)

    x = image(64 if method in SLOW else 224)
    mine = compute_cam(resnet, x, ["layer4"], method, target=7, batch_size=32)["layer4"]
    with getattr(pgc, REFERENCE[method])(resnet, [resnet.layer4]) as ref_cam:
        ref_cam.batch_size = 32
        ref = ref_cam(x, [ClassifierOutputTarget(7)])[0]
    diff = float(np.abs(mine - ref).max())
    if method == "eigencam" and diff > 1e-4:
        with _FlippedEigenCAM(resnet, [resnet.layer4]) as flipped:
            diff = float(np.abs(mine - flipped(x, None)[0]).max())
    assert mine.shape == (x.shape[2], x.shape[3]) and mine.dtype == np.float32
    assert mine.min() == 0.0 and mine.max() == pytest.approx(1.0)
    print(f"{method}: max abs diff vs pytorch-grad-cam {diff:.2e}")
    assert diff <= 1e-4, f"{method}: max abs diff {diff}"
    assert hook_count(resnet) == 0


class LeftRight(nn.Module):
    """Class 0 reads a 'red' channel that only the left half has, class 1 a 'blue' right half."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 2, stride=2, bias=False), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.zero_()
            self.features[0].weight[0, 0] = 0.25  # red
            self.features[0].weight[1, 2] = 0.25  # blue

    def forward(self, x):
        f = self.features(x)
        return f.mean(dim=(2, 3))


def left_red_right_blue():
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, :, :16] = 1.0
    x[0, 2, :, 16:] = 1.0
    return x + 0.05 * torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"])
def test_each_class_lights_up_its_own_half(method):
    model, x = LeftRight(), left_red_right_blue()
    for cls, half in ((0, slice(0, 16)), (1, slice(16, 32))):
        m = compute_cam(model, x, ["features"], method, target=cls)["features"]
        assert m[:, half].sum() / m.sum() > 0.8


def test_target_forms_agree():
    model, x = LeftRight(), left_red_right_blue()
    by_index = compute_cam(model, x, ["features"], target=1)["features"]
    by_name = compute_cam(model, x, ["features"], target="blue", class_names=["red", "blue"])
    by_call = compute_cam(model, x, ["features"], target=lambda out: out[:, 1].sum())
    np.testing.assert_array_equal(by_index, by_name["features"])
    np.testing.assert_allclose(by_index, by_call["features"], atol=1e-6)
    with pytest.raises(HookScopeError, match="Unknown class name 'green'"):
        compute_cam(model, x, ["features"], target="green", class_names=["red", "blue"])


def test_several_layers_in_one_call_equal_separate_calls(resnet):
    x = image(96, seed=3)
    layers = ["layer1", "layer2.1.conv2", "layer3", "layer4"]
    together = compute_cam(resnet, x, layers, "gradcam", target=3)
    for name in layers:
        alone = compute_cam(resnet, x, [name], "gradcam", target=3)[name]
        np.testing.assert_allclose(together[name], alone, atol=1e-5)


def test_model_left_untouched(resnet):
    model = copy.deepcopy(resnet).train()
    model.layer2.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {p: p.requires_grad for p in model.parameters()}
    compute_cam(model, image(96), ["layer2", "layer4"], "gradcam++")
    assert model.training and not model.layer2.training and model.layer3.training
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad == flags[p] for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert hook_count(model) == 0


def test_in_place_ops_after_the_layer(resnet):
    """bn2 is followed by `out += identity` and ReLU(inplace=True): map from the true tensors."""
    x = image(128, seed=5)
    mine = compute_cam(resnet, x, ["layer4.1.bn2"], "gradcam", target=11)["layer4.1.bn2"]
    ref_model = copy.deepcopy(resnet)
    with HookSession(ref_model, ["layer4.1.bn2"], grads=True) as s:
        ref_model(x)[0, 11].backward()
    rec = s.records["layer4.1.bn2"][0]
    a, g = rec.output, rec.grad_output
    cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True).clamp(min=0)
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    ref = ((up - up.min()) / (up.max() - up.min())).numpy()
    np.testing.assert_allclose(mine, ref, atol=1e-5)


def test_frozen_parameters_still_give_maps(resnet):
    model = copy.deepcopy(resnet).requires_grad_(False)
    m = compute_cam(model, image(96), ["layer3"], "gradcam")["layer3"]
    assert m.max() == pytest.approx(1.0)
    assert all(not p.requires_grad for p in model.parameters())


def test_constant_map_is_zeros_not_nan():
    model = LeftRight()
    x = torch.zeros(1, 3, 32, 32)  # nothing red or blue: features are all 0
    m = compute_cam(model, x, ["features"], "gradcam", target=0)["features"]
    assert np.isfinite(m).all() and not m.any()


def test_vit_tokens_on_a_square_grid():
    torch.manual_seed(0)
    vit = torchvision.models.vit_b_16().eval()
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision zero-inits the head
    x = image(224, seed=2)
    layer = "encoder.layers.encoder_layer_11.ln_1"
    m = compute_cam(vit, x, [layer], "gradcam")[layer]
    assert m.shape == (224, 224) and m.std() > 0.05
    explicit = compute_cam(vit, x, [layer], "gradcam", reshape=(14, 14))[layer]
    np.testing.assert_allclose(m, explicit, atol=1e-6)
    with pytest.raises(HookScopeError) as err:
        compute_cam(vit, x, ["heads"], "gradcam")
    assert str(err.value).startswith("Layer 'heads' outputs shape (1, 1000), which has no spatial")
    assert "encoder_layer_11.ln_1" in str(err.value)
    assert hook_count(vit) == 0


def test_layer_without_spatial_map_is_one_sentence(resnet):
    with pytest.raises(HookScopeError) as err:
        compute_cam(resnet, image(64), ["fc"])
    assert str(err.value) == (
        "Layer 'fc' outputs shape (1, 1000), which has no spatial grid for a CAM map; "
        "pick a convolutional or token layer such as 'layer4.1'."
    )
    with pytest.raises(HookScopeError, match="no layer named 'layer9'.*conv1"):
        compute_cam(resnet, image(64), ["layer9"])
    with pytest.raises(HookScopeError, match="Unknown CAM method 'gradcam3'"):
        compute_cam(resnet, image(64), ["layer4"], "gradcam3")
    assert hook_count(resnet) == 0


def test_cancel_from_the_progress_callback_stops_scorecam(resnet):
    calls = []

    def on_progress(done, total, message):
        calls.append((done, total))
        reporter.cancel()

    reporter = Reporter(on_progress)
    with pytest.raises(Cancelled):
        compute_cam(resnet, image(64), ["layer4"], "scorecam", batch_size=16, reporter=reporter)
    assert len(calls) == 1 and calls[0][1] == 512
    assert hook_count(resnet) == 0


def test_ablationcam_reports_progress_per_batch(resnet):
    seen = []
    compute_cam(
        resnet,
        image(64),
        ["layer4"],
        "ablationcam",
        batch_size=128,
        reporter=Reporter(lambda d, t, m: seen.append((d, t))),
    )
    # Real units from the start (issue 16): 0 of 512 channels before the first batch.
    assert seen == [(0, 512), (128, 512), (256, 512), (384, 512), (512, 512)]


def test_swin_channels_last_output_agrees_with_pytorch_grad_cam():
    pgc, ClassifierOutputTarget = pytorch_grad_cam()
    torch.manual_seed(0)
    swin = torchvision.models.swin_t().eval()
    x = image(224, seed=4)
    mine = compute_cam(swin, x, ["features.7"], "gradcam", target=5)["features.7"]
    nhwc = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
    with pgc.GradCAM(swin, [swin.features[7]], reshape_transform=nhwc) as cam:
        ref = cam(x, [ClassifierOutputTarget(5)])[0]
    assert mine.std() > 0.05
    assert float(np.abs(mine - ref).max()) <= 1e-4
    assert hook_count(swin) == 0


def test_cam_from_the_probe_equals_its_own_pass(resnet):
    x = image(96)
    layers = ["layer3", "layer4", "layer4.1.relu"]  # the last one is called twice
    probe = run_probe(resnet, x, [*layers, "fc"])
    for method, cls in CAM_METHODS.items():
        got = cam_from_probe(resnet, x, probe, layers, method)
        if not cls.one_pass:  # ScoreCAM and AblationCAM need forwards of their own
            assert got is None, method
            continue
        ref = compute_cam(resnet, x, layers, method, probe.target)
        for name in layers:
            np.testing.assert_allclose(got[name], ref[name], atol=1e-6, err_msg=method)
        assert max(m.std() for m in got.values()) > 0.05
    # When the records cannot give the same numbers it says so, and the caller runs the CAM.
    assert cam_from_probe(resnet, x, probe, ["layer2"], "gradcam") is None  # not probed
    assert cam_from_probe(resnet, x, probe, layers, "gradcam3") is None  # compute_cam says why
    half = run_probe(resnet, x, layers, dtype=torch.float16)
    assert cam_from_probe(resnet, x, half, layers, "gradcam") is None
    forward_only = run_probe(resnet, x, layers, grads=False)
    assert cam_from_probe(resnet, x, forward_only, layers, "gradcam") is None
    eigen = cam_from_probe(resnet, x, forward_only, ["layer4"], "eigencam")["layer4"]
    np.testing.assert_allclose(eigen, compute_cam(resnet, x, "layer4", "eigencam")["layer4"])
    with pytest.raises(HookScopeError, match="Layer 'fc' outputs shape \\(1, 1000\\)"):
        cam_from_probe(resnet, x, probe, ["fc"], "gradcam")
    assert hook_count(resnet) == 0


def test_probe_job_cams_equal_compute_cam_with_and_without_edits(monkeypatch):
    lm, _ = load_job(Reporter(), "demo")
    img = load_image(SAMPLES / "car_road.png")
    x = to_tensor(img, lm.input_spec)
    layers = ["features.block2", "features.block3", "fc"]
    cam_layer = "features.block3"
    for edits in (
        [],
        [{"kind": "grad", "layer": cam_layer, "op": "scale", "value": 2.0}],
        [{"kind": "act", "layer": "features.block2", "op": "zero", "channels": [0, 1]}],
    ):
        with monkeypatch.context() as m:
            if not edits:  # the probe's records stand in for the CAM's own pass
                m.setattr(
                    "hookscope.core.methods.cam.compute_cam",
                    lambda *a, **k: pytest.fail("second pass"),
                )
            snap = probe_job(Reporter(), lm, img, layers, 1, "gradcam++", [cam_layer], edits=edits)
        with contextlib.ExitStack() as stack:
            for d in edits:
                stack.enter_context(edit_from_dict(lm.model, d))
            ref = compute_cam(lm.model, x, cam_layer, "gradcam++", 1)[cam_layer]
        np.testing.assert_allclose(snap.cams[cam_layer], ref, atol=1e-6, err_msg=str(edits))
        assert ref.std() > 0.05
    assert hook_count(lm.model) == 0
