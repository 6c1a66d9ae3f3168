"""The inspect / probe commands as a user runs them: output, JSON, exit codes, one-line errors."""

import json

import pytest
from PIL import Image

from tests.cli import run_cli

run = run_cli


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "orange.png"
    Image.new("RGB", (300, 200), (250, 140, 20)).save(path)
    return path


def test_inspect_json():
    p = run("inspect", "--model", "torchvision:resnet18", "--json", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    by_name = {r["name"]: r for r in rows}
    assert set(rows[0]) >= {"name", "type", "out_shape", "params"}
    assert by_name["layer4.1.conv2"] == {
        **by_name["layer4.1.conv2"],
        "type": "Conv2d",
        "out_shape": [1, 512, 7, 7],
        "params": 2_359_296,
    }
    assert by_name["layer1.0.relu"]["calls"] == 2


def test_inspect_text():
    p = run("inspect", "--model", "torchvision:resnet18")
    assert p.returncode == 0
    assert "resnet18: 11,689,512 parameters" in p.stdout
    assert "1x512x7x7" in p.stdout


def test_inspect_text_prints_names_you_can_paste_into_layers(capsys):
    import torchvision

    import hookscope.gui.command as main

    assert main.main(["inspect", "--model", "torchvision:resnet18"]) in (0, None)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("module"))
    header, rows = lines[at], lines[at + 1 :]
    assert header.split() == ["module", "type", "output", "params", "calls", "layout"]
    assert lines[1] == "output: classes 1x1000; last layer with a spatial grid: layer4.1"
    names = [row.split()[0] for row in rows]
    # Every full dotted name, in the model's own order: what --layers takes.
    assert names == [n for n, _ in torchvision.models.resnet18().named_modules() if n]
    row = next(r for r in rows if r.split()[0] == "layer4.1.conv2")
    assert row.startswith("    layer4.1.conv2 ")  # two levels deep: indented twice
    assert row.split()[1:] == ["Conv2d", "1x512x7x7", "2,359,296", "nchw", "7x7"]
    # Columns line up whatever the depth: each starts where its header does.
    for col in ("type", "output"):
        start = header.index(col)
        assert all(r[start - 2 : start] == "  " and r[start] != " " for r in rows)
    assert next(r for r in rows if r.split()[0] == "layer1.0.relu").split()[-3:] == [
        "×2",
        "nchw",
        "56x56",
    ]
    assert next(r for r in rows if r.split()[0] == "avgpool").endswith("nchw 1x1")


def test_probe_json(image):
    p = run(
        "probe",
        "--model",
        "torchvision:resnet18",
        "--image",
        str(image),
        "--layers",
        "layer4,layer1.0.relu",
        "--target",
        "goldfish",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["target"] == 1 and out["target_name"] == "goldfish"
    assert len(out["topk"]) == 5 and set(out["topk"][0]) == {"index", "name", "prob"}
    assert out["input_grad_norm"] > 0
    relu = out["layers"]["layer1.0.relu"]["calls"]
    assert [c["call"] for c in relu] == [0, 1]
    act = relu[0]["parts"]["output"]["activation"]
    assert act["min"] >= 0 and 0 < act["zeros"] < 1
    assert out["layers"]["layer4"]["param_grad_norm"] > 0


def test_probe_text(image):
    p = run("probe", "--model", "torchvision:resnet18", "--image", str(image), "--layers", "fc")
    assert p.returncode == 0, p.stderr
    assert "input gradient norm" in p.stdout and "activation" in p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "--model", "torchvision:nope"], "torchvision has no model named 'nope'"),
        (
            [
                "probe",
                "--model",
                "torchvision:resnet18",
                "--image",
                "missing.png",
                "--layers",
                "fc",
            ],
            "Image file missing.png does not exist.",
        ),
        (
            ["probe", "--model", "torchvision:resnet18", "--image", "IMAGE", "--layers", "fc9"],
            "The model has no layer named 'fc9'",
        ),
        (
            [
                "probe",
                "--model",
                "torchvision:resnet18",
                "--image",
                "IMAGE",
                "--layers",
                "fc",
                "--target",
                "5000",
            ],
            "Target class 5000 is out of range",
        ),
        (["probe", "--model", "torchvision:resnet18"], "the following arguments are required"),
    ],
)
def test_errors_are_one_sentence_and_exit_2(args, message, image):
    p = run(*[str(image) if a == "IMAGE" else a for a in args])
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
