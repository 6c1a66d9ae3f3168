"""``hookscope.view`` on a live module no spec can reach: its numbers, a clean close, sessions."""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hookscope
from hookscope.core.cam import compute_cam
from hookscope.core.demo import sample_path
from hookscope.core.engine.hooks import hook_count
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.live import fingerprint

ROOT = Path(__file__).resolve().parents[2]
IMAGE = str(sample_path("bird_grass.png"))


class TinyNet(nn.Module):
    """Defined here, so no spec string can load it; BatchNorm and Dropout make mode matter."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, padding=1, stride=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


class OtherNet(TinyNet):
    pass


def user_model(cls=TinyNet) -> nn.Module:
    """The user's model mid-training: train mode, first conv frozen, BN statistics not 0/1."""
    torch.manual_seed(0)
    model = cls()
    with torch.no_grad():
        model.features[3].running_mean.uniform_(-0.2, 0.2)
        model.features[3].running_var.uniform_(0.5, 2.0)
    model.train()
    model.features[0].weight.requires_grad_(False)
    return model


def reference(model, x, layers, method="gradcam", target=None):
    """softmax(model(x)) and compute_cam in eval mode, the user's mode restored after."""
    was = {n: m.training for n, m in model.named_modules()}
    model.eval()
    try:
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)[0].numpy()
    finally:
        for n, m in model.named_modules():
            m.training = was[n]
    return probs, compute_cam(model, x, layers, method, target)


def test_view_gives_the_models_numbers_and_closes_leaving_it_untouched(qapp):
    model = user_model()
    before = fingerprint(model)
    v = hookscope.view(model, image=IMAGE, block=False)
    r = v.wait(timeout=60)
    # No input size, mean or std: the image at its own size, scaled to [0, 1], and the app
    # says so in the status bar.
    assert v.loaded.input_spec.native and "own size" in v.window.statusBar().currentMessage()
    x = to_tensor(load_image(IMAGE), v.loaded.input_spec)
    assert x.shape == (1, 3, 96, 96) and 0 <= float(x.min()) and float(x.max()) <= 1
    probs, maps = reference(model, x, list(r.cams))
    assert r.probs.shape == (5,) and np.abs(r.probs - probs).max() < 1e-6
    assert r.target == int(np.argmax(probs)) and r.cam_method == "gradcam"
    assert list(r.cams) == ["features.4"] and r.cams["features.4"].shape == (96, 96)
    assert r.cams["features.4"].dtype == np.float32
    assert np.abs(r.cams["features.4"] - maps["features.4"]).max() < 1e-6
    assert v.wait() is r  # the first run's result, kept
    dock = next(d for d in v.window.docks if d.objectName() == "ImageDock")
    assert "96×96 (the image's own size, no resize)" in dock.info.text()
    v.state.set_input_size(64, 64)  # a typed size is a fixed size from then on
    assert v.state.input_spec.size == (64, 64) and not v.state.input_spec.native
    v.close()
    assert v.closed and v.window is None and hook_count(model) == 0
    assert before.differences(fingerprint(model)) == []
    assert model.training and not model.features[0].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    v.close()  # twice is fine


def test_a_tensor_goes_in_as_it_is_with_the_users_normalisation(qapp):
    model = user_model()
    before = fingerprint(model)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 40, 56)  # already preprocessed: no resize, no normalisation
    v = hookscope.view(
        model,
        image=x,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        input_size=224,
        layers=["features.1", "features.4"],
        class_names=list("abcde"),
        block=False,
    )
    r = v.wait(timeout=60)
    probs, maps = reference(model, x, ["features.4"])
    assert np.abs(r.probs - probs).max() < 1e-6
    assert np.abs(r.cams["features.4"] - maps["features.4"]).max() < 1e-6
    assert r.cams["features.4"].shape == (40, 56)
    assert r.topk[0][1] == "abcde"[r.target]
    assert v.state.layers == ["features.1", "features.4"]
    assert "tensor goes in as it is" in v.window.statusBar().currentMessage()
    dock = next(d for d in v.window.docks if d.objectName() == "ImageDock")
    want = "tensor as given: 56×40 → model input 40×56 (the image's own size, no resize)"
    assert dock.info.text() == want
    # The picture shown is the tensor denormalised with the given mean and std.
    shown = r.snapshot.input_image.astype(np.float32) / 255
    want = (x[0] * 0.25 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(shown - want).max() <= 0.5 / 255 + 1e-6
    v.close()
    assert before.differences(fingerprint(model)) == []


def test_block_runs_the_loop_until_the_window_closes(qapp):
    from PySide6.QtCore import QTimer

    from hookscope.gui.main_window import MainWindow

    model = user_model()
    before = fingerprint(model)
    closed = []

    def close_after_first_result() -> None:
        windows = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow)]
        done = [w for w in windows if w.isVisible() and w.state.snapshot is not None]
        if done:
            closed.append(done[0].state.snapshot)
            done[0].close()  # as the user does
        else:
            QTimer.singleShot(50, close_after_first_result)

    QTimer.singleShot(50, close_after_first_result)
    v = hookscope.view(model, image=np.asarray(load_image(IMAGE)), block=True)
    assert v.closed and closed and v.result.snapshot is closed[0]
    assert before.differences(fingerprint(model)) == []


def test_session_from_a_live_model_reopens_only_with_that_model(qapp, tmp_path, messages):
    from hookscope.core.io.session import Session
    from hookscope.gui.session_io import open_session, save_session

    model = user_model()
    v = hookscope.view(model, image=IMAGE, block=False)
    v.wait(timeout=60)
    v.state.set_auto_run(False)
    v.state.set_cam(method="gradcam++", layers=["features.1"])
    v.state.set_target(3)
    path = save_session(v.window, tmp_path / "s.hookscope")
    v.close()
    saved = json.loads(path.read_text())
    assert saved["model"] == f"live:{__name__}.TinyNet"
    assert saved["live"]["class"] == f"{__name__}.TinyNet"
    assert len(saved["live"]["state_hash"]) == 64

    again = hookscope.view(model, session=path, block=False)
    r = again.wait(timeout=60)
    x = to_tensor(load_image(IMAGE), again.loaded.input_spec)
    probs, maps = reference(model, x, ["features.1"], "gradcam++", 3)
    assert r.target == 3 and r.cam_method == "gradcam++" and list(r.cams) == ["features.1"]
    assert np.abs(r.probs - probs).max() < 1e-6
    assert np.abs(r.cams["features.1"] - maps["features.1"]).max() < 1e-6
    with torch.no_grad():
        model.head[3].bias[0] += 0.01  # one changed weight (e.g. a training step)
    # File ▸ Open session in the window: the loaded module no longer matches.
    assert not open_session(again.window, path) and "differ" in messages[-1]
    again.close()

    with pytest.raises(HookScopeError, match="not a .*OtherNet") as other:
        hookscope.view(user_model(OtherNet), session=path, block=False)
    with pytest.raises(HookScopeError, match="weights of this .*TinyNet differ") as changed:
        hookscope.view(model, session=path, block=False)
    # Opened from File ▸ Open session (no live module given): what to do, in one sentence.
    missing = Session.load(path).live_problem(None, path.name)
    assert "saved from a live model" in missing and "hookscope.view(model, session=" in missing
    for text in (str(other.value), str(changed.value), missing):
        assert text.count(". ") == 0 and text.endswith(".")


def test_no_display_is_one_sentence(monkeypatch):
    from hookscope.gui import live

    monkeypatch.setattr(live.QApplication, "instance", staticmethod(lambda: None))
    monkeypatch.setattr(live.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    with pytest.raises(HookScopeError, match="no display") as exc:
        hookscope.view(user_model(), image=IMAGE)
    assert str(exc.value).count(". ") == 0
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    live.check_display()  # offscreen needs no display
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    live.check_display()


def test_ipython_with_a_qt_loop_is_detected(monkeypatch):
    from hookscope.gui.live import ipython_qt_loop

    shell = types.SimpleNamespace(active_eventloop=None)
    fake = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert not ipython_qt_loop()
    shell.active_eventloop = "qt"
    assert ipython_qt_loop()
    shell.active_eventloop = "inline"
    assert not ipython_qt_loop()


def test_view_starts_the_notebooks_qt_loop_when_it_is_not_running(monkeypatch):
    from hookscope.gui.live import QApplication, start_ipython_loop

    shell = types.SimpleNamespace(active_eventloop=None)
    shell.enable_gui = lambda gui: setattr(shell, "active_eventloop", gui)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    broken = types.SimpleNamespace(QtGui=types.ModuleType("QtGuiCompat"))  # no QApplication
    monkeypatch.setitem(sys.modules, "IPython.external.qt_for_kernel", broken)
    assert start_ipython_loop() and shell.active_eventloop == "qt"
    assert broken.QtGui.QApplication is QApplication
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not start_ipython_loop()


NOTEBOOK_CELLS = [
    # With PySide6 6.10 IPython's own %gui qt fails (its Qt shim misses the lazily loaded
    # QApplication) and only logs it; view() repairs the shim and starts the loop itself.
    "%gui qt",
    """\
import numpy as np, torch
from torch import nn
import hookscope
from hookscope.core.cam import compute_cam
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.live import fingerprint

class NotebookNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 4)
    def forward(self, x):
        return self.fc(self.relu(self.bn(self.conv(x))).mean((2, 3)))

torch.manual_seed(0)
model = NotebookNet().train()
model.conv.bias.requires_grad_(False)
before = fingerprint(model)
v = hookscope.view(model, image=IMAGE, block=False)
from hookscope.gui.live import ipython_qt_loop
at_once = v.result is None and ipython_qt_loop()  # returned before the loop ran the job
""",
    """\
r = v.wait(timeout=120)
x = to_tensor(load_image(IMAGE), v.loaded.input_spec)
model.eval()
with torch.no_grad():
    probs = torch.softmax(model(x), 1)[0].numpy()
model.train()
maps = compute_cam(model, x, list(r.cams), "gradcam")
v.close()
print(RESULT_TAG, json.dumps({
    "dp": float(np.abs(r.probs - probs).max()),
    "dcam": max(float(np.abs(r.cams[k] - maps[k]).max()) for k in maps),
    "layers": list(r.cams),
    "untouched": before.differences(fingerprint(model)) == [],
    "training": model.training and model.bn.training,
    "at_once": at_once,
}))
""",
]


@pytest.mark.slow
def test_view_from_a_jupyter_kernel(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    tag = "HOOKSCOPE-RESULT"
    setup = f"import json\nIMAGE = {IMAGE!r}\nRESULT_TAG = {tag!r}\n"
    cells = [nbformat.v4.new_code_cell(NOTEBOOK_CELLS[0])]
    cells += [nbformat.v4.new_code_cell(setup + c) for c in NOTEBOOK_CELLS[1:2]]
    cells += [nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS[2:]]
    template = nbformat.v4.new_notebook(cells=cells)
    env = {"QT_QPA_PLATFORM": "offscreen", "HOOKSCOPE_TEST_THREADS": "2"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        # One more try for a kernel that never answers (seen at kernel start-up; with
        # ipykernel 7.4 its Qt loop lost the reply of the last cell in 3 of 10 runs, so [dev]
        # pins ipykernel<7): a second hang still fails the test.
        for attempt in (1, 2):
            nb = copy.deepcopy(template)
            started = time.perf_counter()
            try:
                nbclient.NotebookClient(nb, timeout=150, kernel_name="python3").execute(
                    cwd=str(tmp_path)
                )
                break
            except (nbclient.exceptions.CellTimeoutError, nbclient.exceptions.DeadKernelError):
                if attempt == 2:
                    raise
    finally:
        for k, value in old.items():
            if value is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = value
    # The view cell returned at once (%gui qt): the window lives beside the notebook.
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    line = next(s for s in text.splitlines() if s.startswith(tag))
    got = json.loads(line[len(tag) :])
    assert got["dp"] < 1e-6 and got["dcam"] < 1e-6 and got["layers"] == ["relu"]
    assert got["untouched"] and got["training"] and got["at_once"]
    assert time.perf_counter() - started < 150


def test_the_cli_and_view_build_the_same_app_options():
    from argparse import Namespace

    from hookscope.gui.app import AppOptions

    o = AppOptions.from_args(Namespace(model=None, layers="a, b", screenshot="s.png"))
    assert (o.model, o.layers, o.device, o.restore_layout) == ("demo", ("a", "b"), "auto", False)
    assert AppOptions.from_args(o) is o


def test_close_removes_only_hookscopes_own_leftover_hooks():
    from hookscope.gui.live import remove_own_hooks

    model = user_model()
    seen = []
    users = model.head[3].register_forward_hook(lambda *a: seen.append(1))  # the user's own
    ours = types.FunctionType((lambda *a: None).__code__, {"__name__": "hookscope.core.x"})
    ours.__module__ = "hookscope.core.engine.hooks"  # as if a job had forgotten one
    model.features[0].register_forward_hook(ours)
    model.features[3].weight.register_hook(ours)
    assert remove_own_hooks(model) == 2 and remove_own_hooks(model) == 0
    model.eval()(torch.zeros(1, 3, 8, 8))
    assert seen == [1] and hook_count(model) == 1
    users.remove()
