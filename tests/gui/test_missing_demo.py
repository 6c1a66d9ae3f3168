"""Without its bundled files the app says so in one sentence; it never swaps in another model."""

from argparse import Namespace

import pytest

import hookscope.core.demo
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.models import load_model
from tests.gui.conftest import RUN_TIMEOUT_MS


@pytest.fixture
def no_resources(monkeypatch):
    monkeypatch.setattr(
        hookscope.core.demo, "RESOURCES_PACKAGE", "hookscope_resources_not_installed"
    )


def test_loading_the_demo_without_resources_is_one_sentence(no_resources):
    with pytest.raises(HookScopeError) as err:
        load_model("demo")
    text = str(err.value)
    assert text.count(". ") == 0 and text.endswith(".") and "not installed" in text


def test_the_app_says_the_demo_is_missing_and_loads_nothing_else(
    no_resources, qtbot, messages, monkeypatch
):
    from hookscope.gui import app
    from hookscope.gui.main_window import MainWindow
    from hookscope.gui.state import AppState

    state = AppState()
    window = MainWindow(state, restore=False)
    qtbot.addWidget(window)
    loads = []
    real = state.load_model
    monkeypatch.setattr(
        state, "load_model", lambda spec, **kw: loads.append(spec) or real(spec, **kw)
    )
    with qtbot.waitSignal(state.loadFailed, timeout=RUN_TIMEOUT_MS) as failed:
        app.start(state, window, Namespace())
    state.worker.wait(RUN_TIMEOUT_MS)
    qtbot.wait(10)
    assert loads == ["demo"] and state.loaded is None
    assert "not installed" in failed.args[0] and failed.args[0] in messages
    assert state.image is not None  # a drawn stand-in image, so the window is not empty
