"""The diagnosis rules on synthetic statistics, and on the two bundled example trainings."""

import runpy
from pathlib import Path

import numpy as np
import pytest

from hookscope.core.training import diagnose as dg
from hookscope.core.training.store import COLUMNS, TEXT, RunData, read_run

ROOT = Path(__file__).resolve().parents[2]


def run_of(rows: list[dict], layers=("a", "b", "c")) -> RunData:
    cols = {}
    for c in COLUMNS:
        values = [r.get(c) for r in rows]
        if c in TEXT:
            cols[c] = np.array([v or "" for v in values], dtype=str)
        else:
            cols[c] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return RunData({"layers": list(layers)}, cols)


def grads(norms: dict[str, list[float]], **extra) -> list[dict]:
    return [
        {
            "step": 10 * j,
            "kind": "param",
            "module": m,
            "param": f"{m}.weight",
            "grad_norm": g,
            "update_ratio": 1e-3,
            **extra,
        }
        for m, series in norms.items()
        for j, g in enumerate(series)
    ]


def test_a_layer_far_below_the_largest_for_three_records_is_vanishing():
    rows = grads({"a": [1e-5, 1e-5, 1e-5, 1e-5], "b": [1e-2, 5e-4, 2e-4, 2e-3], "c": [1.0] * 4})
    found = dg.diagnose(run_of(rows))
    assert [(f.rule, f.layer, f.step) for f in found] == [("vanishing", "a", 0)]
    assert found[0].sentence == (
        "Vanishing gradients in a: from step 0 its gradient norm is 1.0e-05 of the largest "
        "layer's for 3 records or more; scale it up with a tensor hook."
    )
    assert "register_hook(lambda g: g * 100)" in found[0].hook
    # b dips below 1e-3 x the top only twice in a row by step 30: not yet three records
    rows = grads({"b": [1.0, 1e-4, 1e-4, 1.0], "c": [1.0] * 4})
    assert dg.diagnose(run_of(rows)) == []


def test_growth_of_a_hundred_times_or_an_inf_is_exploding():
    rows = grads({"a": [1.0, 1.5, 40.0, 150.0, 2.0, 2.0], "c": [1.0] * 6})
    (f,) = dg.diagnose(run_of(rows))
    assert (f.rule, f.layer, f.step) == ("exploding", "a", 30)
    assert "grew 150× between steps 0 and 30" in f.sentence
    rows = grads({"a": [1.0, 1.0], "c": [1.0, 1.0]}) + [
        {
            "step": 20,
            "kind": "param",
            "module": "c",
            "param": "c.weight",
            "grad_norm": np.inf,
            "grad_inf": 3.0,
            "update_ratio": 1e-3,
        }
    ]
    found = dg.diagnose(run_of(rows))
    assert [(f.rule, f.layer, f.step) for f in found] == [("exploding", "c", 20)]
    assert "holds Inf at step 20" in found[0].sentence


def test_dead_and_saturated_units_must_hold_for_three_records():
    mod = [
        {"step": 5 * j, "kind": "module", "module": "b", "act_zero": z, "act_saturated": s}
        for j, (z, s) in enumerate([(0.2, 0.1), (0.95, 0.92), (0.97, 0.95), (0.99, 0.97)])
    ]
    found = dg.diagnose(run_of(mod))
    assert [(f.rule, f.layer, f.step) for f in found] == [("dead", "b", 5), ("saturated", "b", 5)]
    assert found[0].sentence.startswith("Dead units in b: 95% outputs exactly zero from step 5")


def test_update_ratio_far_from_one_in_a_thousand_and_a_nan_loss():
    rows = [
        {
            "step": j,
            "kind": "param",
            "module": "a",
            "param": "a.w",
            "grad_norm": 1.0,
            "update_ratio": r,
            "weight_norm": 2.0,
        }
        for j, r in enumerate([0.3, 0.5, 0.4])
    ] + [{"step": j, "kind": "loss", "loss": v} for j, v in enumerate([1.0, 0.5, np.nan])]
    found = dg.diagnose(run_of(rows))
    assert [(f.rule, f.step) for f in found] == [("update-ratio", 0), ("loss", 2)]
    assert "is 4.0e-01 per step (median), far from 1e-3 and too large" in found[0].sentence
    assert found[1].sentence == "The loss is not a number from step 2 on."


@pytest.mark.slow
def test_the_broken_example_is_flagged_and_the_healthy_one_is_not(tmp_path, monkeypatch):
    example = runpy.run_path(str(ROOT / "docs" / "watch_example.py"))
    example["train"]("broken", str(tmp_path / "broken"), steps=20, every=5)
    example["train"]("healthy", str(tmp_path / "healthy"), steps=20, every=5)
    broken = dg.diagnose(tmp_path / "broken")
    vanishing = [f.layer for f in broken if f.rule == "vanishing"]
    assert vanishing[:3] == ["0", "3", "5"]  # the first conv layers of the sigmoid stack
    assert dg.diagnose(tmp_path / "healthy") == []
    assert read_run(tmp_path / "healthy").probes[0][1].shape == (2, 48, 48)
    assert read_run(tmp_path / "broken").probes[0][1].shape == (2, 48, 48)


def test_the_cli_prints_each_finding_as_one_line(tmp_path, capsys):
    from hookscope.core.training.store import write_chunk, write_run_json
    from hookscope.gui.command import main

    rows = grads({"a": [1e-6] * 3, "c": [1.0] * 3})
    write_run_json(tmp_path, {"model": "Net", "layers": ["a", "c"]})
    write_chunk(
        tmp_path, 0, 0, [*rows, *({"step": 10 * j, "kind": "loss", "loss": 1.0} for j in range(3))]
    )
    assert main(["diagnose", str(tmp_path), "--hooks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path}: Net, steps 0-20, 1 finding(s)"
    assert out[1].startswith("- Vanishing gradients in a: from step 0")
    assert out[2] == '    p = model.get_submodule("a").weight'
    assert main(["diagnose", str(tmp_path / "nope")]) == 2
    assert "has no run.json" in capsys.readouterr().err
