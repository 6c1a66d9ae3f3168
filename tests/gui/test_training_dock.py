"""The Training dock shows a watched run and follows it while it grows."""

import numpy as np
import pytest
import torch
from torch import nn

import hookscope
from hookscope.core.training.diagnose import diagnose
from hookscope.gui.docks.training import TrainingDock


def write_run(out, steps: int, start_seed: int = 0):
    torch.manual_seed(start_seed)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = torch.randn(2, 3, 16, 16)
    with hookscope.watch(model, out=out, every=1, probe=probe, probe_every=2, flush_every=2) as w:
        for _ in range(steps):
            opt.zero_grad()
            loss = model(torch.randn(4, 3, 16, 16)).pow(2).mean()
            loss.backward()
            opt.step()
            w.step(loss=loss.item())


@pytest.fixture
def dock(qtbot):
    from hookscope.gui.state import AppState

    state = AppState()
    d = TrainingDock(state)
    qtbot.addWidget(d)
    d.resize(900, 700)
    d.show()
    yield d
    state.worker.cancel()
    state.worker.wait(5000)


def test_the_dock_shows_the_run_and_a_finding_click_selects_its_layer(tmp_path, qtbot, dock):
    write_run(tmp_path, 4)
    dock.open_run(str(tmp_path))
    qtbot.waitUntil(lambda: dock.view is not None, timeout=20000)
    v = dock.view
    assert v.layers == ("0", "2", "6") and list(v.steps) == [0, 1, 2, 3]
    assert dock.heat_image.image.shape == (4, 3, 3)  # steps x layers x RGB
    assert list(v.loss_steps) == [0, 1, 2, 3] and np.isfinite(v.loss).all()
    assert v.probe_steps == (0, 2) and dock.probes.pixmap() is not None
    assert v.probe_rows == 2 and v.probe_strip.shape == (2 * 64 + 2, 2 * 64 + 2, 3)
    assert "2 image(s) in rows, steps 0, 2 in columns" in dock.probe_caption.text()
    findings = diagnose(tmp_path)
    assert dock.findings.count() == max(1, len(findings))
    dock.select("2", 2)
    assert dock.layer == "2"
    names = {item.name() for item in dock.stats_plot.getPlotItem().listDataItems()}
    assert names == {"mean", "std", "zeros"}
    title = dock.stats_plot.getPlotItem().titleLabel.text
    assert all(n in title for n in ("mean", "std", "zeros"))  # the key, never over a curve
    assert dock.stats_plot.getPlotItem().legend is None
    assert dock.heat_row.value() == 1.5 and dock.heat_line.value() == 2.5


def test_follow_reads_new_chunks_of_a_growing_run(tmp_path, qtbot, dock):
    write_run(tmp_path, 2)
    dock.open_run(str(tmp_path))
    qtbot.waitUntil(lambda: dock.view is not None, timeout=20000)
    assert len(dock.view.steps) == 2
    write_run(tmp_path / "more", 1)  # unrelated folder: nothing new here
    dock.refresh()
    qtbot.wait(300)
    assert len(dock.view.steps) == 2
    write_run(tmp_path, 6)  # the same folder grows (a rerun rewrites and adds chunks)
    dock.refresh()
    qtbot.waitUntil(lambda: len(dock.view.steps) == 6, timeout=20000)


def test_a_folder_that_is_no_run_says_so(tmp_path, qtbot, dock):
    dock.open_run(str(tmp_path))
    qtbot.waitUntil(lambda: "has no run.json" in dock.summary.text(), timeout=20000)
    assert not dock.timer.isActive()


def test_at_1000x700_the_parts_are_stacked_full_width_and_no_label_is_long(tmp_path, qtbot, dock):
    """At 1000×700 the dock is ~450×560: the probe strip and the findings each get the full
    width (side by side the maps were ~30 px), and the long texts sit in titles, not on the
    vertical axes where they were cut."""
    write_run(tmp_path, 4)
    dock.resize(450, 560)
    dock.open_run(str(tmp_path))
    qtbot.waitUntil(lambda: dock.view is not None, timeout=20000)
    qtbot.wait(50)
    f, p = dock.findings.geometry(), dock.probes.geometry()
    assert p.top() > f.bottom() and p.width() == f.width() >= 400
    assert dock.probes.scale() is not None and dock.probes.scale() >= 0.6  # 130² strip
    g = dock.view.grad_log
    lo, hi = float(np.nanmin(g)), float(np.nanmax(g))
    assert dock.heat.getAxis("left").labelText == "layer"
    assert f"{lo:.1f} to {hi:.1f}" in dock.heat.getPlotItem().titleLabel.text
    dock.select("6")
    assert dock.stats_plot.getAxis("left").labelText == "activation"
    assert dock.stats_plot.getPlotItem().titleLabel.text.startswith("6: ")
    dock.view.act["features.block3.conv2.act"] = dock.view.act["6"]
    dock.select("features.block3.conv2.act")
    assert dock.stats_plot.getPlotItem().titleLabel.text.startswith("…lock3.conv2.act: ")
