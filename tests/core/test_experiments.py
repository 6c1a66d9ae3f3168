"""Channel importance, the sanity check, hook code, compare, sessions, and their CLI."""

import json
from pathlib import Path

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
from hookscope.core.experiments.compare import RunView, before_after, compare_runs, top_deltas
from hookscope.core.experiments.importance import channel_importance
from hookscope.core.experiments.interventions import ActEdit, GradEdit, crop_to_mask, paste_object
from hookscope.core.experiments.sanity import cascading_randomization, rankdata, spearman
from hookscope.core.io.hookcode import hook_code
from hookscope.core.io.session import SESSION_VERSION, Session
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.models import load_model
from hookscope.core.reporting import Cancelled, Reporter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = samples_dir()  # the installed resources, found as the app finds them

FACTORY = """
import torchvision

INPUT_SPEC = {"size": 64}


def build():
    return torchvision.models.resnet18()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A resnet18 factory at 64×64, seeded weights saved to a file, and an image."""
    d = tmp_path_factory.mktemp("exp")
    (d / "net.py").write_text(FACTORY)
    spec = f"{d / 'net.py'}:build"
    torch.manual_seed(0)
    lm = load_model(spec)
    torch.save(lm.model.state_dict(), d / "w.pt")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(d / "img.png")
    return {"dir": d, "spec": spec, "weights": str(d / "w.pt"), "image": str(d / "img.png")}


@pytest.fixture(scope="module")
def loaded(files):
    lm = load_model(files["spec"], files["weights"])
    x = to_tensor(load_image(files["image"]), lm.input_spec)
    return lm, x


# -- channel importance -----------------------------------------------------------------------
def planted():
    """Channel 5 of the ReLU carries the evidence for class 1; the rest is weak noise."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    ).eval()
    with torch.no_grad():
        model[0].bias[5] = 1.0
        model[4].weight.mul_(0.1)
        model[4].weight[1, 5] = 5.0
    return model, torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(2))


def test_importance_finds_the_planted_channel():
    model, x = planted()
    before = state_checksum(model)
    seen = []
    res = channel_importance(
        model, x, "1", target=1, batch_size=3, reporter=Reporter(lambda d, t, m: seen.append(d))
    )
    assert res.ranking[0] == 5 and res.drops[5] > 0.3
    assert res.drops[5] > 10 * np.delete(np.abs(res.drops), 5).max()
    assert list(res.ranking) == list(np.argsort(-res.drops, kind="stable"))
    assert res.base_prob == pytest.approx(float(run_probe(model, x, [], 1).probs[0, 1]), abs=1e-6)
    assert seen == [0, 1, 2, 3]  # 8 channels in batches of 3
    one = channel_importance(model, x, "1", target=1, batch_size=1)
    np.testing.assert_allclose(one.probs, res.probs, atol=1e-6)
    assert hook_count(model) == 0 and state_checksum(model) == before


def test_importance_cancel_and_errors():
    model, x = planted()
    rep = Reporter(lambda d, t, m: rep.cancel() if d == 1 else None)
    with pytest.raises(Cancelled):
        channel_importance(model, x, "1", batch_size=2, reporter=rep)
    assert hook_count(model) == 0
    with pytest.raises(HookScopeError, match="no channel dimension"):
        channel_importance(
            nn.Sequential(nn.Flatten(), nn.Linear(3, 2), nn.Flatten(0)), x[:, :, 0, 0], "2"
        )


# -- sanity check -----------------------------------------------------------------------------
def saliency(model, x, target):
    """Plain input-gradient magnitude: needs no other module, fine for the restore tests."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, target], x)
    return g[0].abs().sum(0).numpy()


def test_spearman_matches_the_definition():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    a = np.array([1.0, 2, 3, 4, 5])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.ones(5)) == 0.0
    # Tied ranks: Pearson of average ranks (scipy.stats.spearmanr gives 0.9486833).
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486833, abs=1e-6)


def test_sanity_restores_weights_bit_for_bit(loaded):
    lm, x = loaded
    model = lm.model
    before = state_checksum(model)
    ids = {k: id(p) for k, p in model.named_parameters()}
    res = cascading_randomization(
        model, x, methods=[saliency], target=3, layers=["fc", "layer4", "layer3"], seed=0
    )
    assert res.steps == ("fc", "layer4", "layer3") and res.target == 3
    assert res.correlations["saliency"].shape == (3,)
    assert len(res.maps["saliency"]) == 3 and res.original["saliency"].shape == (64, 64)
    assert state_checksum(model) == before
    assert {k: id(p) for k, p in model.named_parameters()} == ids
    assert hook_count(model) == 0
    # Same seed, same numbers.
    again = cascading_randomization(
        model, x, methods=[saliency], target=3, layers=["fc", "layer4", "layer3"], seed=0
    )
    np.testing.assert_array_equal(again.correlations["saliency"], res.correlations["saliency"])


def test_sanity_restores_weights_when_cancelled(loaded):
    lm, x = loaded
    before = state_checksum(lm.model)
    rep = Reporter(lambda d, t, m: rep.cancel() if d == 3 else None)
    with pytest.raises(Cancelled):
        cascading_randomization(lm.model, x, methods=[saliency], reporter=rep)
    assert state_checksum(lm.model) == before

    def broken(model, x, target):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cascading_randomization(lm.model, x, methods=[broken], layers=["fc"])
    assert state_checksum(lm.model) == before and hook_count(lm.model) == 0


def test_sanity_correlation_falls_on_the_demo():
    lm = load_model("demo:clean")
    import hookscope.core.demo

    x = to_tensor(load_image(SAMPLES / "car_road.png"), lm.input_spec)
    before = state_checksum(lm.model)
    res = cascading_randomization(
        lm.model, x, methods=["gradcam", "guided-backprop"], cam_layer=hookscope.core.demo.CAM_LAYER
    )
    assert res.steps[0] == "fc" and res.steps[-1] == "features.stem.conv"
    gbp, cam = res.correlations["guided-backprop"], res.correlations["gradcam"]
    assert len(gbp) == len(cam) == len(res.steps) == 13
    # Guided backprop is known to be insensitive to the top layers (Adebayo et al.): it stays
    # close to the original at first and only falls as the lower layers go random.
    assert gbp[0] > 0.6 and gbp[0] > gbp[-1] + 0.3, gbp
    # Grad-CAM depends on the classifier weights, so it decorrelates from the first steps on
    # (how fast depends on the trained weights); with every layer random it is unrelated.
    assert np.abs(cam).mean() < 0.5 and abs(cam[-1]) < 0.5, cam
    assert state_checksum(lm.model) == before and hook_count(lm.model) == 0


def test_sanity_verdict_per_method_in_one_sentence():
    from hookscope.core.experiments.sanity import FAIL_AT, SanityResult

    assert FAIL_AT == 0.5
    res = SanityResult(
        steps=("fc", "conv"),
        correlations={"a": np.array([0.9, 0.49]), "b": np.array([0.9, 0.5])},
        original={},
        maps={},
        target=0,
    )
    assert res.passed("a") and not res.passed("b")
    assert res.verdict("a").startswith("a passes:") and "0.49" in res.verdict("a")
    assert res.verdict("b").startswith("b fails:") and "Adebayo" in res.verdict("b")
    assert all(res.verdict(m).replace("al. ", "").count(". ") == 0 for m in "ab")  # one sentence
    # On the demo, randomising only the classifier leaves guided backprop's map as it was.
    lm = load_model("demo:clean")
    x = to_tensor(load_image(SAMPLES / "car_road.png"), lm.input_spec)
    gbp = cascading_randomization(lm.model, x, methods=["guided-backprop"], layers=["fc"])
    assert gbp.final("guided-backprop") > 0.8 and not gbp.passed("guided-backprop")


def test_sanity_guided_backprop_runs_and_restores(loaded):
    lm, x = loaded
    before = state_checksum(lm.model)
    res = cascading_randomization(lm.model, x, methods=["guided-backprop"], layers=["fc", "layer4"])
    assert np.isfinite(res.correlations["guided-backprop"]).all()
    assert state_checksum(lm.model) == before


# -- hook code --------------------------------------------------------------------------------
@pytest.mark.parametrize("with_edits", [False, True])
def test_hook_code_reproduces_run_probe(files, loaded, with_edits):
    lm, x = loaded
    layers = ["relu", "layer1", "layer2.0.conv1", "layer3", "fc"]
    grads = [GradEdit(lm.model, "layer2", scale=2.0), GradEdit(lm.model, "layer1", noise=0.5)]
    acts = [
        ActEdit(lm.model, "layer3", "zero", [0, 5, 7]),
        ActEdit(lm.model, "layer1", "topk", k=9),
    ]
    if not with_edits:
        grads, acts = [], []
    r = run_probe(lm.model, x, layers, target=7, edits=[*grads, *acts])
    code = hook_code(
        files["spec"],
        files["weights"],
        files["image"],
        layers,
        7,
        grads,
        [a.to_dict() for a in acts],
    )
    assert "register_forward_hook" in code and "register_hook" in code
    ns: dict = {}
    exec(compile(code, "<hook code>", "exec"), ns)
    assert ns["target"] == 7 and set(ns["activations"]) == set(layers)
    for name in layers:
        rec = r.records[name][0]
        torch.testing.assert_close(ns["activations"][name], rec.output, rtol=0, atol=1e-6)
        torch.testing.assert_close(ns["gradients"][name], rec.grad_output, rtol=0, atol=1e-6)
    torch.testing.assert_close(ns["input_grad"], r.input_grad, rtol=0, atol=1e-6)
    assert hook_count(ns["model"]) == 0


def test_hook_code_on_the_demo_with_in_place_layers():
    lm = load_model("demo:clean")
    img = str(SAMPLES / "car_road.png")
    occlude = [{"op": "occlude", "box": [0, 0, 30, 30], "colour": [0, 0, 0]}]
    from hookscope.core.experiments.interventions import apply_image_edits

    x = to_tensor(apply_image_edits(load_image(img), occlude), lm.input_spec)
    # bn2's output is changed in place by `out += identity`; relu1 is ReLU(inplace=True).
    layers = ["features.res.bn2", "features.res.relu1", "features.res", "fc"]
    grads = [GradEdit(lm.model, "features.res", clip=1e-3)]
    acts = [ActEdit(lm.model, "features.res.relu1", "mean", [0, 3])]
    edits = [*grads, *acts]
    r = run_probe(lm.model, x, layers, "airplane", class_names=lm.class_names, edits=edits)
    code = hook_code("demo:clean", None, img, layers, "airplane", grads, acts, image_edits=occlude)
    ns: dict = {}
    exec(compile(code, "<hook code>", "exec"), ns)
    assert ns["target"] == lm.class_names.index("airplane")
    for name in layers:
        rec = r.records[name][0]
        torch.testing.assert_close(ns["activations"][name], rec.output, rtol=0, atol=1e-6)
        torch.testing.assert_close(ns["gradients"][name], rec.grad_output, rtol=0, atol=1e-6)
    torch.testing.assert_close(ns["input_grad"], r.input_grad, rtol=0, atol=1e-6)


def test_hook_code_top1_target(files, loaded):
    lm, x = loaded
    r = run_probe(lm.model, x, ["layer4"])
    ns: dict = {}
    exec(hook_code(files["spec"], files["weights"], files["image"], ["layer4"], None, [], []), ns)
    assert ns["target"] == r.target
    torch.testing.assert_close(ns["input_grad"], r.input_grad, rtol=0, atol=1e-6)


# -- compare ----------------------------------------------------------------------------------
def test_compare_numbers():
    base = RunView(
        activations={"a": np.ones((2, 3, 3)), "b": np.zeros(4)},
        gradients={"a": np.full((2, 3, 3), 0.5)},
        cams={"a": np.zeros((8, 8))},
        probs=np.array([0.7, 0.2, 0.1]),
        topk=[(0, "cat", 0.7), (1, "dog", 0.2)],
        label="before",
    )
    run = RunView(
        activations={"a": np.full((2, 3, 3), 3.0), "b": np.zeros(5)},
        gradients={"a": np.full((2, 3, 3), 0.25)},
        cams={"a": np.ones((8, 8))},
        probs=np.array([0.1, 0.3, 0.6]),
        topk=[(2, "car", 0.6), (1, "dog", 0.3)],
        label="after",
    )
    c = compare_runs(base, run)
    assert (c.activations["a"] == 2.0).all() and (c.gradients["a"] == -0.25).all()
    assert (c.cams["a"] == 1.0).all()
    assert c.skipped == {"activation:b": "shape changed from (4,) to (5,)"}
    assert [(d.index, d.name) for d in c.classes] == [(2, "car"), (1, "dog"), (0, "cat")]
    assert c.delta(2) == pytest.approx(0.5) and c.delta(0) == pytest.approx(-0.6)
    assert [d.index for d in c.biggest(2)] == [0, 2]
    # Top-k lists only: a class missing from one list counts as 0 there.
    d = top_deltas(None, None, base.topk, run.topk)
    assert [(x.index, x.before, x.after) for x in d] == [
        (2, 0.0, 0.6),
        (1, 0.2, 0.3),
        (0, 0.7, 0.0),
    ]


def test_compare_probe_runs_with_a_gradient_edit(loaded):
    lm, x = loaded
    layers = ["layer1", "layer3"]
    base = RunView.from_probe(run_probe(lm.model, x, layers, target=2), label="plain")
    edit = GradEdit(lm.model, "layer2", scale=2)
    run = RunView.from_probe(run_probe(lm.model, x, layers, target=2, edits=[edit]))
    c = compare_runs(base, run)
    assert np.abs(c.activations["layer1"]).max() == 0  # the forward did not change
    np.testing.assert_allclose(c.gradients["layer1"], base.gradients["layer1"], rtol=1e-5)
    assert np.abs(c.gradients["layer3"]).max() == 0  # above the edit: unchanged
    np.testing.assert_allclose(c.input_grad, base.input_grad, rtol=1e-5)
    assert all(d.delta == 0 for d in c.classes)


def test_seed_experiment_car_pasted_on_sky_turns_airplane():
    lm = load_model("demo")
    names = lm.class_names
    road = load_image(SAMPLES / "car_road.png")
    mask = Image.open(SAMPLES / "car_road_mask.png")
    car, car_mask, xy = crop_to_mask(road, mask)
    pasted = paste_object(load_image(SAMPLES / "sky.png"), car, car_mask, xy)
    xb, xa = to_tensor(road, lm.input_spec), to_tensor(pasted, lm.input_spec)
    ba = before_after(lm.model, xb, xa, k=4, class_names=names)
    airplane = names.index("airplane")
    assert ba.before[0][1] == "car"
    assert ba.after[0][1] == "airplane"
    delta = {d.index: d.delta for d in ba.classes}
    assert delta[airplane] > 0.3
    # The same through compare (as the GUI does with a pinned baseline).
    base = RunView.from_probe(run_probe(lm.model, xb, ["features.block3"], target=airplane))
    run = RunView.from_probe(run_probe(lm.model, xa, ["features.block3"], target=airplane))
    assert compare_runs(base, run).delta(airplane) == pytest.approx(delta[airplane], abs=1e-5)


# -- sessions ---------------------------------------------------------------------------------
def make_session(files) -> Session:
    return Session(
        model=files["spec"],
        weights=files["weights"],
        image=files["image"],
        image_edits=[{"op": "occlude", "box": [1, 2, 10, 12], "colour": [0, 0, 0]}],
        layers=["layer2", "layer4"],
        target=7,
        cam_method="gradcam",
        cam_layers=["layer4"],
        cam_params={"batch_size": 16},
        grad_edits=[{"kind": "grad", "layer": "layer2", "op": "scale", "value": 2.0}],
        act_edits=[
            {"kind": "act", "layer": "layer3", "op": "zero", "channels": [0, 5], "on": "output"}
        ],
        gui={"dock_state": "AAAA/w==", "zoom": 1.5},
    )


def test_session_round_trip(files, tmp_path):
    s = make_session(files)
    path = s.save(tmp_path / "exp.hookscope.json")
    back = Session.load(path)
    assert back == s and back.version == SESSION_VERSION
    assert json.loads(path.read_text())["layers"] == ["layer2", "layer4"]
    assert Session.from_json(s.to_json()) == s


def test_session_with_a_moved_image(files, tmp_path):
    s = make_session(files)
    s.image = str(tmp_path / "photos" / "gone.png")
    path = s.save(tmp_path / "exp.json")
    with pytest.raises(HookScopeError) as err:
        Session.load(path)
    text = str(err.value)
    assert text.startswith(f"The session's image {s.image} is missing (moved or deleted)")
    assert str(tmp_path) in text and text.count(". ") == 0 and text.endswith(".")
    # Moved next to the session file: found there, path updated.
    Image.new("RGB", (4, 4)).save(tmp_path / "gone.png")
    assert Session.load(path).image == str(tmp_path / "gone.png")


def test_session_bad_files(tmp_path):
    p = tmp_path / "s.json"
    p.write_text('{"model": "demo", "version": 99}')
    with pytest.raises(HookScopeError, match="newer HookScope"):
        Session.load(p)
    p.write_text("{oops")
    with pytest.raises(HookScopeError, match="not valid JSON"):
        Session.load(p)


# -- command line -----------------------------------------------------------------------------
def cli(capsys, *args):
    """Run main.main in-process (fast); return (exit code, stdout, stderr)."""
    from hookscope.gui.command import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_probe_edits(files, capsys):
    common = ["probe", "--model", files["spec"], "--weights", files["weights"], "--image"]
    common += [files["image"], "--layers", "layer3", "--target", "5", "--device", "cpu", "--json"]
    runs = {}
    for key, extra in {
        "plain": [],
        "doubled": ["--grad-scale", "layer2=2"],
        "ablated": ["--ablate", "layer2:0,5,7", "--ablate", "layer3:1"],
    }.items():
        code, out, err = cli(capsys, *common, *extra)
        assert code == 0, err
        runs[key] = json.loads(out)
    plain, doubled, ablated = runs["plain"], runs["doubled"], runs["ablated"]
    ratio = doubled["input_grad_norm"] / plain["input_grad_norm"]
    assert f"{ratio:.4f}" == "2.0000"
    assert doubled["edits"] == ["layer2: gradient ×2"] and doubled["topk"] == plain["topk"]
    assert ablated["topk"] != plain["topk"]
    assert ablated["edits"] == ["layer2: zero channels 0, 5, 7", "layer3: zero channels 1"]


def test_cli_importance_json(files, capsys):
    code, out, err = cli(
        capsys,
        *["importance", "--model", files["spec"], "--weights", files["weights"]],
        *["--image", files["image"], "--layer", "layer1", "--top", "6", "--batch-size", "32"],
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    drops = [c["drop"] for c in res["channels"]]
    assert len(drops) == 6 and drops == sorted(drops, reverse=True)
    assert res["layer"] == "layer1" and 0 < res["base_prob"] < 1


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--grad-scale", "layer2", "write LAYER=NUMBER"),
        ("--grad-clip", "layer2=abc", "write LAYER=NUMBER"),
        ("--ablate", "layer2", "write LAYER:CHANNELS"),
        ("--ablate", "layer9:1", "no layer named 'layer9'"),
    ],
)
def test_cli_bad_edit_flags(files, capsys, flag, value, words):
    args = ["probe", "--model", files["spec"], "--image", files["image"], "--layers", "fc"]
    code, out, err = cli(capsys, *args, flag, value)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and words in err and err.startswith("hookscope:")
