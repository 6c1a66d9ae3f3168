"""ScanSettings (one validated object for a scan), its identity, and the streamed chunks."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from hookscope.core.errors import HookScopeError
from hookscope.core.jobs.scan import (
    LiveScan,
    PreviewLayout,
    ScanChunk,
    ScanSettings,
    app_batch_size,
    scan_job,
)
from hookscope.core.loading.models import load_model
from hookscope.core.loading.spec import InputSpec
from hookscope.core.reporting import ModelGate, Reporter, lane_gate, quiet
from tests.core.test_scan import LAYER, write_scenes


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


def test_round_trip_through_json():
    s = ScanSettings(
        "imgs",
        "layer4",
        method="layercam",
        target=3,
        masks="masks",
        out="out",
        map_size=32,
        batch_size=4,
        workers=0,
        clusters="5",
        limit=10,
        ray="local",
        model_spec="torchvision:resnet18",
        spec=InputSpec((96, 128), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), resize=140),
        reshape=(7, 7),
    )
    d = json.loads(json.dumps(s.to_dict()))
    assert ScanSettings.from_dict(d) == s
    assert s.clusters == 5 and d["clusters"] == 5 and d["reshape"] == [7, 7]
    assert ScanSettings.from_dict(ScanSettings("a", "b").to_dict()) == ScanSettings("a", "b")
    assert s.replace(limit=None).limit is None and s.replace(limit=None).map_size == 32


@pytest.mark.parametrize(
    "change, sentence",
    [
        ({"method": "gradcam3"}, "Unknown CAM method 'gradcam3': use one of gradcam, "),
        ({"map_size": 1}, "--map-size must be a whole number of at least 2, not 1."),
        ({"batch_size": 0}, "--batch-size must be a whole number of at least 1, not 0."),
        ({"batch_size": 2.5}, "--batch-size must be a whole number of at least 1, not 2.5."),
        ({"workers": -1}, "--workers must be a whole number of 0 or more, not -1."),
        ({"limit": 0}, "--limit must be a whole number of at least 1, not 0."),
        ({"clusters": "²"}, "--clusters must be auto or a whole number of at least 1, not ²."),
        ({"clusters": 0}, "--clusters must be auto or a whole number of at least 1, not 0."),
        ({"target": -2}, "A class index is 0 or more, not -2."),
        ({"target": True}, "A scan's target is pred, label, a class index or a class name, "),
        ({"layer": " "}, "A scan needs the CAM layer, not ' '."),
        ({"images": ""}, "A scan needs the image folder, not ''."),
        ({"reshape": lambda t: t}, "A scan's reshape is a layout name (nchw, nhwc, tokens:K, "),
    ],
)
def test_a_bad_setting_is_one_sentence(change, sentence):
    kw = {"images": "imgs", "layer": "layer4", **change}
    with pytest.raises(HookScopeError) as err:
        ScanSettings(**kw)
    assert str(err.value).startswith(sentence) and str(err.value).count("\n") == 0


def test_from_dict_refuses_unknown_and_missing_keys():
    with pytest.raises(HookScopeError, match="Unknown scan setting 'colour'"):
        ScanSettings.from_dict({"images": "a", "layer": "b", "colour": 1})
    with pytest.raises(HookScopeError, match="Scan settings need 'layer'"):
        ScanSettings.from_dict({"images": "a"})


def test_normalised_values():
    s = ScanSettings("imgs", "layer4", target=None, clusters=" AUTO ", map_size="16", masks="")
    assert (s.target, s.clusters, s.map_size, s.masks) == ("pred", "auto", 16, None)
    assert ScanSettings("i", "l", target=" Label ").target == "label"


def test_resolve_and_key_are_the_scan_folders_identity(demo, tmp_path):
    images, masks = write_scenes(tmp_path, 6, seed=1)
    s = ScanSettings(str(images), LAYER, target=demo.class_names[2], masks=str(masks), limit=6)
    r = s.resolve(demo)
    assert r.target == 2 and r.spec == demo.input_spec and r.images == str(images.resolve())
    out = tmp_path / "out"
    scan_job(quiet(), demo, r.replace(out=str(out), workers=0))
    ident = json.loads((out / "scan.json").read_text())["identity"]
    assert {k: ident[k] for k in r.key()} == r.key()
    with pytest.raises(HookScopeError, match="mask folder .* does not exist"):
        s.replace(masks=str(tmp_path / "nope")).resolve(demo)
    with pytest.raises(HookScopeError, match="Resolve the scan settings"):
        s.key()
    with pytest.raises(HookScopeError, match="options in its ScanSettings"):
        scan_job(quiet(), demo, s, limit=2)


def test_app_batches_are_short_for_big_models():
    assert app_batch_size(1_819_041_768) == 1  # resnet18: one image per batch
    assert app_batch_size(4_100_000_000) == 1  # resnet50
    assert app_batch_size(50_000_000) == 32  # the demo: capped
    assert app_batch_size(400_000_000) == 5
    assert app_batch_size(0) == 32  # unknown size


# -- streaming ----------------------------------------------------------------------------------
def test_the_scan_streams_every_batch_and_the_chunks_rebuild_the_table(demo, tmp_path):
    images, masks = write_scenes(tmp_path, 10, seed=2)
    chunks: list[ScanChunk] = []
    s = ScanSettings(images, LAYER, masks=masks, out=tmp_path / "o", batch_size=3, workers=0)
    scan_job(Reporter(on_partial=chunks.append), demo, s)
    assert [len(c.rows) for c in chunks] == [3, 3, 3, 1]
    assert [c.done for c in chunks] == [3, 6, 9, 10] and {c.total for c in chunks} == {10}
    live = LiveScan(s.resolve(demo), tmp_path / "o", demo.name)
    for c in chunks:
        live.add(c)
    from hookscope.core.io.scan_outputs import open_scan

    done = open_scan(tmp_path / "o")
    assert len(live) == 10 and live.column("path").tolist() == done.column("path").tolist()
    np.testing.assert_allclose(live.column("prob"), done.column("prob"), atol=1e-6)
    np.testing.assert_allclose(live.column("bg_mass"), done.column("bg_mass"), atol=1e-6)
    np.testing.assert_array_equal(live.maps, np.asarray(done.maps))
    np.testing.assert_allclose(
        live.mean_map(-1), np.asarray(done.maps, np.float64).mean(0), atol=1e-6
    )
    assert (live.column("cluster") == -1).all() and np.isfinite(live.column("x")).all()
    assert live.image_path(3) == done.image_path(3)
    assert live.input_image(0, side=8).shape == (8, 8, 3)


def test_preview_layout_places_rows_by_the_first_principal_axes():
    rng = np.random.default_rng(0)
    left = np.zeros((16, 16), np.float32)
    left[:, :8] = 1
    right = left[:, ::-1].copy()
    maps = np.stack([left if k % 2 else right for k in range(40)])
    maps += rng.uniform(0, 0.01, maps.shape).astype(np.float32)
    layout = PreviewLayout(side=8, refit_max=16)
    placed, relayouts = [], []
    for a in range(0, 40, 4):
        ok = np.ones(4, bool)
        ok[0] = a != 8  # an error row has no place
        xy, again = layout.add(maps[a : a + 4], ok)
        placed.append(xy)
        relayouts.append(again)
    xy = np.concatenate(placed)
    assert np.isnan(xy[8]).all() and np.isfinite(np.delete(xy, 8, axis=0)).all()
    # The two kinds of map fall on the two sides of the first axis, far apart.
    x = np.delete(xy[:, 0], 8)
    kind = np.delete(np.arange(40) % 2, 8)
    assert np.sign(x[kind == 1]).tolist() == [np.sign(x[kind == 1][0])] * int((kind == 1).sum())
    assert abs(x[kind == 1].mean() - x[kind == 0].mean()) > 10 * x[kind == 1].std()
    # Refit as rows double (4, 8, 16 rows), then the axes stay.
    assert [r is not None for r in relayouts] == [True, True, False, True] + [False] * 6
    assert relayouts[3].shape == (16, 2) and np.isnan(relayouts[3][8]).all()


# -- the model gate ----------------------------------------------------------------------------
def test_batch_outside_the_app_only_checks_for_cancel():
    r = Reporter()
    with r.batch():
        pass
    r.cancel()
    with pytest.raises(Exception, match="cancelled"), r.batch():
        pass


def test_a_waiting_interactive_run_goes_before_the_next_batch():
    gate = ModelGate()
    log, in_batch, release = [], threading.Event(), threading.Event()

    def long_job():
        with lane_gate(gate):
            r = Reporter()
            for i in range(2):
                with r.batch():
                    log.append(f"batch {i}")
                    if i == 0:
                        in_batch.set()
                        release.wait(30)

    t = threading.Thread(target=long_job)
    t.start()
    assert in_batch.wait(30)

    def click():
        with gate.hold():
            log.append("click")

    c = threading.Thread(target=click)
    c.start()
    while gate.waiting != 1:  # the click waits for the batch in flight
        threading.Event().wait(0.001)
    release.set()
    t.join(30)
    c.join(30)
    assert log == ["batch 0", "click", "batch 1"]
