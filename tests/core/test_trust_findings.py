"""Trust in words: flat curves are the finding, and each column shows enough digits to rank."""

from __future__ import annotations

import numpy as np

from hookscope.core.demo import sample_path
from hookscope.core.jobs import trust_findings
from hookscope.core.jobs.evaluate import EvaluateSettings, MethodScores, TrustReport, evaluate_job
from hookscope.core.loading.images import load_image
from hookscope.core.models import load_model
from hookscope.core.reporting import Reporter


def scores(name, deletion, insertion, morf=(0.3, 0.2), lerf=(0.0, 0.001), baseline=False):
    d, i = np.asarray(deletion, float), np.asarray(insertion, float)
    values = {"drop": 0.0, "increase": 0.0, "deletion": d.mean(), "insertion": i.mean()}
    values.update(road_morf=float(np.mean(morf)), road_lerf=float(np.mean(lerf)))
    values.update(road_combined=(values["road_lerf"] - values["road_morf"]) / 2)
    values.update(pointing=None, energy=None)
    return MethodScores(
        name, values, d, i, np.asarray(morf, float), np.asarray(lerf, float), baseline=baseline
    )


def report(**methods):
    return TrustReport(
        target=0,
        target_name="airplane",
        base_prob=0.9667,
        layer="features.block3",
        methods=methods,
        maps={},
        base={"x": 0.9667, "blurred": 0.9659, "zeros": 0.0125},
    )


def test_flat_insertion_is_said_in_words_with_its_numbers():
    r = report(
        gradcam=scores("gradcam", [0.9667, 0.30, 0.0125], [0.9659, 0.9658, 0.9667]),
        random=scores("random", [0.9667, 0.60, 0.0125], [0.9659, 0.9664, 0.9667], baseline=True),
    )
    found = r.findings()
    assert found[0] == (
        "The score hardly changes when pixels are inserted into the blurred image (insertion "
        "curves flat within 0.00090 for every method, p(airplane) 0.9658 to 0.9667): the blurred "
        "image alone gives p(airplane) = 0.966 (a coarse cue such as colour, not the detail the "
        "maps point at); insertion cannot rank these maps."
    )
    # Deletion moves (0.97 → 0.01), so the ranking rests on it; ROAD LeRF is flat at 0.
    assert found[-1] == "The ranking rests on deletion alone."
    assert found[1] == "ROAD hardly changes either (LeRF within 0.0010 for every method)."
    assert not any("deletion curves flat" in f for f in found)


def test_a_curve_that_moves_is_no_finding():
    r = report(gradcam=scores("gradcam", [0.9, 0.5, 0.0], [0.1, 0.6, 0.9], lerf=(0.0, 0.2)))
    assert r.findings() == []
    assert trust_findings.flat_curves(r.methods, tolerance=0.01) == []


def test_columns_get_the_digits_their_ranking_needs():
    # Insertion areas 0.96592 / 0.96591 / 0.96633 read alike at 3 decimals (the bug: every
    # cell 0.966): the column gets 5; a column of clearly different values keeps 3.
    assert trust_findings.decimals([0.965916, 0.965913, 0.966334]) == 5
    assert trust_findings.decimals([0.4944, 0.4865, 0.3789]) == 3
    assert trust_findings.decimals([0.0, 0.0, None, True]) == 3
    assert trust_findings.decimals([1e-9, 2e-9]) == 6  # capped
    # A value that rounds to zero never reads "-0.000".
    assert trust_findings.cell(-3.8e-5, 3) == "0.000"
    assert trust_findings.cell(-3.8e-5, 5) == "-0.00004"
    assert trust_findings.cell(None, 3) == "" and trust_findings.cell(True, 3) == "yes"
    assert trust_findings.round_up(0.00101) == "0.0011"


def test_the_table_text_uses_the_column_digits():
    r = report(
        a=scores("a", [0.9, 0.5, 0.1], [0.96592, 0.96592, 0.96592]),
        b=scores("b", [0.9, 0.6, 0.1], [0.96633, 0.96633, 0.96633]),
    )
    d = r.decimals()
    assert d["insertion"] == 4 and d["deletion"] == 3
    assert (r.cell("a", "insertion", d), r.cell("b", "insertion", d)) == ("0.9659", "0.9663")
    lines = r.table().splitlines()
    assert lines[2].split()[-3:] == ["0.500", "0.9659", "0.466"]


def test_shortcut_demo_insertion_is_flat_for_every_map():
    """The real finding: on airplane_sky the blurred sky alone is already an airplane."""
    lm = load_model("demo")
    image = load_image(sample_path("airplane_sky.png"))
    settings = EvaluateSettings(("gradcam", "random"), "features.block3", None, steps=8)
    r = evaluate_job(Reporter(), lm, image, settings)
    assert r.base["blurred"] > 0.95 and r.base["zeros"] < 0.05
    ins = [r.methods[k].insertion_curve for k in r.methods]
    assert max(float(c.max() - c.min()) for c in ins) < trust_findings.FLAT
    found = r.findings()
    assert found[0].startswith(
        "The score hardly changes when pixels are inserted into the blurred image (insertion "
        "curves flat within 0.0"
    )
    assert f"p(airplane) = {r.base['blurred']:.3f}" in found[0]
    assert "rests on deletion alone" in found[-1]
    assert r.decimals()["insertion"] >= 4  # the two insertion areas read apart
    texts = {r.cell(k, "insertion") for k in r.methods}
    assert len(texts) == 2
