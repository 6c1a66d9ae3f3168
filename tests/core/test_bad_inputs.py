"""Every catalogue case through the core API and the CLI: one sentence, nothing executed."""

import re

import pytest

import hookscope.gui.command as main
from hookscope.core.engine.probe import run_probe
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import image_notes, load_image, to_tensor
from hookscope.core.loading.models import load_model
from tests.catalogue import CASES, cli_args, prepare


def run_core(fields):
    lm = load_model(
        fields["spec"],
        fields["weights"],
        trust_pickle=fields["trust_pickle"],
        device=fields["device"],
    )
    x = to_tensor(load_image(fields["image"]), lm.input_spec)
    if fields["core"] is not None:
        return fields["core"](lm, x, fields)
    if fields["cam"]:
        from hookscope.core.methods.cam import compute_cam, suggest_layer

        layers = fields["layers"] or [suggest_layer(lm.model, x, fields["target"])]
        return compute_cam(
            lm.model, x, layers, "gradcam", fields["target"], class_names=lm.class_names
        )
    return run_probe(lm.model, x, fields["layers"], fields["target"], class_names=lm.class_names)


def test_catalogue_is_big_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_core_api(case, tmp_path, monkeypatch):
    fields = prepare(case, tmp_path, monkeypatch)
    if fields["command"] and fields["core"] is None:
        pytest.skip("a command-line option with no core counterpart")
    if case.message is None:
        r = run_core(fields)
        assert len(r.topk) == 5 and r.input_grad.shape == (1, 3, 224, 224)
        if case.note:
            notes = image_notes(load_image(fields["image"]))
            assert any(re.search(case.note, n) for n in notes), notes
        return
    with pytest.raises(HookScopeError) as err:
        run_core(fields)
    text = str(err.value)
    assert re.search(case.message, text), text
    assert "\n" not in text and text.endswith(".")
    if case.marker:
        assert not (tmp_path / case.marker).exists()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli(case, tmp_path, monkeypatch, capsys):
    fields = prepare(case, tmp_path, monkeypatch)
    try:
        code = main.main(cli_args(fields, tmp_path))
    except SystemExit as exc:  # a usage error: argparse exits as the shell would see it
        code = exc.code
    out, err = capsys.readouterr()
    if case.message is None:
        assert code == 0 and "input gradient norm" in out, err
        if case.note:
            assert re.search(case.note, out), out
        return
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hookscope: "), err
    assert re.search(case.message, lines[0]), lines[0]
    assert "Traceback" not in err
    if case.marker:
        assert not (tmp_path / case.marker).exists()
