"""Channel atlas in the app (issue 25 §1): Build atlas… in the Dataset dock runs the atlas job in
the long lane; selecting a channel in the Activations dock shows its top crops."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hookscope.core.demo.scenes import make_dataset
from hookscope.core.jobs.atlas import AtlasView, atlas_for
from hookscope.gui.worker import LONG, lane_of

LAYER = "features.block3"


def dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def test_build_atlas_then_a_channel_shows_its_top_crops(make_window, qtbot, tmp_path):
    root = tmp_path / "scenes"
    root.mkdir()
    images, _, _ = make_dataset("shortcut", 8, seed=7)
    for i, arr in enumerate(images):
        Image.fromarray(arr).resize((120, 96) if i % 2 else (96, 96)).save(root / f"s{i}.png")
    window = make_window(layers=[LAYER])
    st = window.state
    st.select(LAYER)
    acts, data = dock(window, "ActivationsDock"), dock(window, "DatasetDock")
    assert "No channel atlas of 'features.block3' yet" in acts.atlas_label.text()
    assert acts.atlas_entries() == []
    assert lane_of("atlas") == LONG

    data.set_images(root)
    assert data.build_atlas() is not None
    assert not data.atlas_button.isEnabled()
    qtbot.waitUntil(lambda: data.atlas_button.isEnabled(), timeout=60_000)
    out = tmp_path / "scenes-atlas-features.block3"
    assert atlas_for(st.loaded.model, LAYER) == out
    assert "Atlas of features.block3: 128 channels × top 9 over 8 images" in data.status.text()

    # a click on channel 5 in the mosaic: the strip shows that channel's top 8 (8 images)
    acts.view.select_channel(5)
    acts.view.channelSelected.emit(5)
    want = AtlasView(out).top(5)
    got = acts.atlas_entries()
    assert [e.path for e in got] == [e.path for e in want] and len(got) == 8
    values = [e.value for e in got]
    assert values == sorted(values, reverse=True)
    assert acts.atlas_strip.item(0).text() == f"#0 {want[0].value:.3g}"
    icon = acts.atlas_strip.item(0).icon().pixmap(72, 72)
    assert not icon.isNull()
    w, h = want[0].box[2] - want[0].box[0], want[0].box[3] - want[0].box[1]
    assert Image.open(want[0].crop).size == (w, h)
    assert "top 8 images of channel 5" in acts.atlas_label.text()
    # another channel, its own crops
    acts.view.channelSelected.emit(6)
    assert [e.channel for e in acts.atlas_entries()] == [6] * 8
    assert np.isfinite([e.value for e in acts.atlas_entries()]).all()


def test_every_crop_icon_is_one_square_with_the_crop_centred(qtbot, tmp_path):
    """A crop clipped at the image's edge (not square) is letterboxed in the same 72² square as
    the others, so the strip's icons and captions line up."""
    from hookscope.gui.docks.activations import CROP_SIDE, _square

    wide, tall = tmp_path / "wide.png", tmp_path / "tall.png"
    Image.fromarray(np.full((47, 54, 3), 200, np.uint8)).save(wide)  # as (33, 49, 87, 96)
    Image.fromarray(np.full((60, 30, 3), 90, np.uint8)).save(tall)
    for path, (w, h) in ((wide, (72, 62)), (tall, (36, 72))):
        img = _square(str(path)).toImage()
        assert (img.width(), img.height()) == (CROP_SIDE, CROP_SIDE)
        alpha = np.array([[img.pixelColor(x, y).alpha() for x in range(72)] for y in range(72)])
        ys, xs = np.nonzero(alpha == 255)
        assert (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (w, h)
        assert xs.min() == (72 - w) // 2 and ys.min() == (72 - h) // 2  # centred
        assert alpha[0, 0] == 0  # the letterbox is transparent


def test_an_atlas_built_before_a_restart_shows_again_for_the_same_weights_only(
    make_window, qtbot, tmp_path, monkeypatch
):
    import json
    import shutil
    import weakref

    from hookscope.core.jobs import atlas as atlas_jobs
    from hookscope.core.reporting import quiet
    from hookscope.gui import recent_atlases

    root = tmp_path / "scenes"
    root.mkdir()
    for i, arr in enumerate(make_dataset("shortcut", 6, seed=3)[0]):
        Image.fromarray(arr).save(root / f"s{i}.png")
    window = make_window(layers=[LAYER])
    st = window.state
    out = tmp_path / "atlas"
    settings = atlas_jobs.AtlasSettings(str(root), LAYER, out=str(out), model_spec="demo")
    atlas_jobs.atlas_job(quiet(), st.loaded, settings)
    other = tmp_path / "other-weights"  # the same atlas, said to be of other weights
    shutil.copytree(out, other)
    info = json.loads((other / "atlas.json").read_text())
    info["identity"]["weights_sha256"] = "0" * 64
    (other / "atlas.json").write_text(json.dumps(info))
    recent_atlases.remember(out)
    recent_atlases.remember(other)  # newest, but not these weights
    assert recent_atlases.remembered()[-2:] == [str(out), str(other)]
    # a restart: this process forgets what it built; the settings remember the folders
    monkeypatch.setattr(atlas_jobs, "_KNOWN", weakref.WeakKeyDictionary())
    acts = dock(window, "ActivationsDock")
    acts._adopted = weakref.WeakSet()
    st.select(LAYER)
    acts.view.select_channel(5)
    acts.view.channelSelected.emit(5)
    assert atlas_jobs.atlas_for(st.loaded.model, LAYER) == out
    assert [e.path for e in acts.atlas_entries()] == [e.path for e in AtlasView(out).top(5)]
    assert len(acts.atlas_entries()) == 6 and "top 6 images of channel 5" in acts.atlas_label.text()
