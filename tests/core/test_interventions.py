"""Gradient, activation and image edits: what a probe shows with them, with exact numbers."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hookscope.core.demo import samples_dir
from hookscope.core.engine.guard import state_checksum
from hookscope.core.engine.hooks import hook_count
from hookscope.core.engine.probe import run_probe
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import (
    ActEdit,
    GradEdit,
    apply_image_edits,
    crop_to_mask,
    edit_from_dict,
    parse_edit_flag,
    paste_object,
)
from hookscope.core.loading.models import load_model

SAMPLES = samples_dir()  # the installed resources, found as the app finds them


@pytest.fixture(scope="module")
def resnet():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, x


def golden():
    """The reference tutorial's Linear(3,4) → ReLU → Linear(4,1) with x = [1, 1, 1]."""
    fc1, fc2 = nn.Linear(3, 4), nn.Linear(4, 1)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.0, 2, 3], [-4, -5, -6], [7, 8, 9], [-10, -11, -12]]))
        fc1.bias.copy_(torch.tensor([1.0, 2, 3, 4]))
        fc2.weight.copy_(torch.tensor([[1.0, 2, 3, 4]]))
        fc2.bias.copy_(torch.tensor([1.0]))
    return nn.Sequential(fc1, nn.ReLU(), fc2), torch.ones(1, 3)


# -- gradient edits ---------------------------------------------------------------------------
def test_golden_gradient_doubled_at_relu():
    model, x = golden()
    r0 = run_probe(model, x, ["1"], target=0)
    assert r0.input_grad.tolist() == [[22.0, 26.0, 30.0]]
    edit = GradEdit(model, "1", scale=2.0)
    r = run_probe(model, x, ["0", "1"], target=0, edits=[edit])
    assert r.logits.item() == 89.0  # the forward is untouched
    assert r.input_grad.tolist() == [[44.0, 52.0, 60.0]]
    # The record of the edited layer shows the gradient from above, before the edit ...
    assert r.records["1"][0].grad_output.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    # ... and every layer below sees the doubled one.
    assert r.records["0"][0].grad_output.tolist() == [[2.0, 0.0, 6.0, 0.0]]
    assert edit.after[0].tolist() == [[2.0, 4.0, 6.0, 8.0]]
    assert hook_count(model) == 0


def test_grad_scale_doubles_every_gradient_below(resnet):
    model, x = resnet
    before = state_checksum(model)
    r0 = run_probe(model, x, ["layer1", "layer2", "layer3"], target=3)
    r = run_probe(
        model,
        x,
        ["layer1", "layer2", "layer3"],
        target=3,
        edits=[GradEdit(model, "layer2", scale=2)],
    )
    ratio = float(r.input_grad.norm() / r0.input_grad.norm())
    assert ratio == pytest.approx(2.0, abs=1e-4)
    assert torch.allclose(r.input_grad, 2 * r0.input_grad, rtol=1e-5, atol=0)
    assert torch.allclose(
        r.records["layer1"][0].grad_output, 2 * r0.records["layer1"][0].grad_output
    )
    # At and above the edited layer nothing changes (pre-edit gradient shown).
    for name in ("layer2", "layer3"):
        assert torch.equal(r.records[name][0].grad_output, r0.records[name][0].grad_output)
    assert torch.equal(r.logits, r0.logits)
    assert hook_count(model) == 0 and state_checksum(model) == before


def test_grad_clip_bounds_the_gradient_below(resnet):
    model, x = resnet
    c = 1e-4
    edit = GradEdit(model, "layer2", clip=c)
    r = run_probe(model, x, ["layer2"], target=3, edits=[edit])
    assert edit.before[0].abs().max() > 10 * c  # the clip really bit
    assert edit.after[0].abs().max() <= c
    assert torch.equal(edit.after[0], edit.before[0].clamp(-c, c))
    assert torch.equal(r.records["layer2"][0].grad_output, edit.before[0])
    assert hook_count(model) == 0


def test_grad_zero_cuts_the_input_gradient(resnet):
    model, x = resnet
    r = run_probe(model, x, ["layer1"], target=3, edits=[GradEdit(model, "layer2", zero=True)])
    assert torch.count_nonzero(r.input_grad) == 0  # every path runs through layer2
    assert torch.count_nonzero(r.records["layer1"][0].grad_output) == 0
    assert hook_count(model) == 0


def test_grad_noise_is_seeded(resnet):
    model, x = resnet

    def run(seed):
        return run_probe(
            model, x, [], target=3, edits=[GradEdit(model, "layer3", noise=0.5, seed=seed)]
        )

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.input_grad, b.input_grad)
    assert not torch.allclose(a.input_grad, c.input_grad)


def test_grad_edit_needs_one_op_and_a_real_layer(resnet):
    model, _ = resnet
    with pytest.raises(HookScopeError, match="exactly one"):
        GradEdit(model, "layer2", scale=2, clip=1)
    with pytest.raises(HookScopeError, match="no layer named 'layer9'"):
        GradEdit(model, "layer9", scale=2)


def test_hooks_removed_after_an_error(resnet):
    model, x = resnet
    with pytest.raises(HookScopeError, match="channel 999 is out of range"):
        run_probe(
            model,
            x,
            ["layer2"],
            edits=[GradEdit(model, "layer2", scale=2), ActEdit(model, "layer2", "zero", [999])],
        )
    assert hook_count(model) == 0


# -- activation edits -------------------------------------------------------------------------
def test_golden_feature_edit_and_input_edit():
    model, x = golden()
    # Scale relu's channel 0 (7 → 14): output 89 + 7 = 96; the record shows the edited tensor.
    r = run_probe(model, x, ["1"], target=0, edits=[ActEdit(model, "1", "scale", [0], value=2)])
    assert r.logits.item() == 96.0
    assert r.records["1"][0].output.tolist() == [[14.0, 0.0, 27.0, 0.0]]
    # Zero fc2's input channel 2 (27 → 0): output 1 * 7 + 1 = 8.
    r = run_probe(model, x, [], target=0, edits=[ActEdit(model, "2", "zero", [2], on="input")])
    assert r.logits.item() == 8.0
    assert hook_count(model) == 0


def test_ablate_none_is_exact_and_all_changes(resnet):
    model, x = resnet
    r0 = run_probe(model, x, ["layer2"], target=3)
    r = run_probe(model, x, ["layer2"], target=3, edits=[ActEdit(model, "layer2", "zero", [])])
    assert torch.equal(r.logits, r0.logits) and torch.equal(r.input_grad, r0.input_grad)
    r = run_probe(model, x, ["layer2"], target=3, edits=[ActEdit(model, "layer2", "zero")])
    assert torch.count_nonzero(r.records["layer2"][0].output) == 0
    assert (r.logits - r0.logits).abs().max() > 0.1
    r = run_probe(
        model, x, ["layer2"], target=3, edits=[ActEdit(model, "layer2", "zero", [0, 5, 7])]
    )
    out = r.records["layer2"][0].output
    assert torch.count_nonzero(out[:, [0, 5, 7]]) == 0
    assert torch.equal(out[:, 1], r0.records["layer2"][0].output[:, 1])
    assert not torch.equal(r.logits, r0.logits)
    assert hook_count(model) == 0


def test_channel_ops_numbers():
    t = torch.tensor([[[[1.0, 3.0]], [[10.0, 20.0]], [[-1.0, -3.0]]]])  # (1, 3, 1, 2)
    m = nn.Sequential(nn.Identity())
    assert ActEdit(m, "0", "mean", [1]).apply(t)[0, :, 0].tolist() == [
        [1.0, 3.0],
        [15.0, 15.0],
        [-1.0, -3.0],
    ]
    assert ActEdit(m, "0", "topk", k=1).apply(t)[0, :, 0].tolist() == [
        [0.0, 0.0],
        [10.0, 20.0],
        [0.0, 0.0],
    ]
    assert ActEdit(m, "0", "scale", [0, 2], value=-1).apply(t)[0, :, 0, 1].tolist() == [
        -3.0,
        20.0,
        3.0,
    ]


def test_edit_dicts_round_trip(resnet):
    model, _ = resnet
    edits = [
        GradEdit(model, "layer2", scale=2.0),
        GradEdit(model, "layer1", noise=0.3, seed=4),
        ActEdit(model, "layer3", "topk", k=5),
        ActEdit(model, "fc", "scale", [1, 2], value=0.5, on="input"),
    ]
    for e in edits:
        assert edit_from_dict(model, e.to_dict()).to_dict() == e.to_dict()
    assert edits[0].describe() == "layer2: gradient ×2"
    assert edits[3].describe() == "fc (input): scale channels 1, 2 ×0.5"


def test_parse_cli_flags():
    assert parse_edit_flag("grad-scale", "layer1.0.conv1=2") == {
        "kind": "grad",
        "layer": "layer1.0.conv1",
        "op": "scale",
        "value": 2.0,
    }
    assert parse_edit_flag("ablate", "layer2:0,5,7")["channels"] == [0, 5, 7]
    assert parse_edit_flag("grad-zero", "layer2")["op"] == "zero"
    for flag, text in [("grad-scale", "layer2"), ("grad-clip", "=1"), ("ablate", "layer2:x")]:
        with pytest.raises(HookScopeError, match="write LAYER"):
            parse_edit_flag(flag, text)


# -- image edits ------------------------------------------------------------------------------
def test_paste_object_uses_the_mask():
    sky = Image.new("RGB", (20, 20), (135, 206, 235))
    patch = Image.new("RGB", (6, 4), (200, 0, 0))
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    out = np.asarray(paste_object(sky, patch, mask, (10, 5)))
    red = (out == (200, 0, 0)).all(-1)
    assert red.sum() == 6 and red[6:8, 12:15].all()
    assert (np.asarray(sky) == (135, 206, 235)).all()  # the input is untouched
    crop, cmask, (left, top) = crop_to_mask(patch, mask)
    assert crop.size == (3, 2) and (left, top) == (2, 1) and np.asarray(cmask).all()


def test_apply_image_edits(tmp_path):
    patch = tmp_path / "p.png"
    Image.new("RGB", (4, 4), (0, 255, 0)).save(patch)
    img = Image.new("RGB", (16, 16), (0, 0, 0))
    out = apply_image_edits(
        img,
        [
            {"op": "solid", "colour": [135, 206, 235]},
            {"op": "occlude", "box": [0, 0, 2, 2], "colour": [9, 9, 9]},
            {"op": "paste", "patch": str(patch), "mask": None, "xy": [8, 8]},
        ],
    )
    a = np.asarray(out)
    assert tuple(a[0, 0]) == (9, 9, 9) and tuple(a[5, 5]) == (135, 206, 235)
    assert tuple(a[9, 9]) == (0, 255, 0) and tuple(a[7, 7]) == (135, 206, 235)


# -- the demo: the headline experiments -----------------------------------------------
def test_demo_gradient_doubled():
    from hookscope.core.loading.images import load_image, to_tensor

    lm = load_model("demo")
    x = to_tensor(load_image(SAMPLES / "car_on_sky.png"), lm.input_spec)
    r0 = run_probe(lm.model, x, ["features.block1"], target=None)
    r = run_probe(
        lm.model, x, ["features.block1"], edits=[GradEdit(lm.model, "features.res", scale=2)]
    )
    assert torch.allclose(r.input_grad, 2 * r0.input_grad, rtol=1e-4, atol=1e-12)
    assert float(r.input_grad.norm() / r0.input_grad.norm()) == pytest.approx(2.0, abs=1e-4)
    assert hook_count(lm.model) == 0


def test_scorecam_sees_activation_edits(resnet):
    """ScoreCAM's fast scoring copy must not drop the user's hooks."""
    import copy

    from hookscope.core.methods.cam import compute_cam

    model, x = resnet
    with ActEdit(model, "fc", op="zero"):
        edited = compute_cam(model, x, ["layer4"], "scorecam", target=3, batch_size=64)["layer4"]
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.fc.weight.zero_()
        twin.fc.bias.zero_()
    same = compute_cam(twin, x, ["layer4"], "scorecam", target=3, batch_size=64)["layer4"]
    plain = compute_cam(model, x, ["layer4"], "scorecam", target=3, batch_size=64)["layer4"]
    assert np.abs(edited - same).max() < 1e-5
    assert np.abs(edited - plain).max() > 1e-2
    assert hook_count(model) == 0
