"""GUI fixtures: isolated QSettings, a main window already run once on the demo model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

RUN_TIMEOUT_MS = 60_000


def start_spec() -> str:
    """What the app opens on: the built-in demo (its weights are committed)."""
    return "demo"


@pytest.fixture(scope="session", autouse=True)
def isolated_settings(tmp_path_factory, qapp):
    """Keep tests away from the user's saved layout and recent files."""
    folder = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    qapp.setOrganizationName("HookScopeTest")
    qapp.setApplicationName("HookScopeTest")
    return folder


@pytest.fixture(scope="session")
def _model_cache():
    return {}


@pytest.fixture
def cached_loads(monkeypatch, _model_cache):
    """Load each plain spec once per session (loading is not what these tests are about)."""
    import hookscope.gui.state
    from hookscope.core.jobs import probe as jobs

    real = jobs.load_job

    def load(reporter, spec, weights=None, trust_pickle=False, device="cpu"):
        plain = isinstance(spec, str) and (spec == "demo" or spec.startswith("torchvision:"))
        if weights or trust_pickle or device != "cpu" or not plain:
            return real(reporter, spec, weights, trust_pickle, device)
        if spec not in _model_cache:
            _model_cache[spec] = real(reporter, spec, None, False, "cpu")
        return _model_cache[spec]

    monkeypatch.setattr(hookscope.gui.state.jobs, "load_job", load)


@pytest.fixture
def make_window(qtbot, cached_loads):
    """Factory: ``make_window(spec=None, layers=None)`` → a shown MainWindow after its first run."""
    from hookscope.gui.main_window import MainWindow
    from hookscope.gui.state import AppState

    windows = []

    def make(spec: str | None = None, layers=None, image=None, run=True):
        from hookscope.gui.app import default_image

        state = AppState()
        window = MainWindow(state, restore=False)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        state.load_image(image or default_image())
        if run:
            with qtbot.waitSignal(state.resultChanged, timeout=RUN_TIMEOUT_MS):
                state.load_model(spec or start_spec(), layers=layers, device="cpu")
        return window

    yield make
    for w in windows:
        w.state.cancel()
        w.state.worker.wait(30_000)


@pytest.fixture
def window(make_window):
    """The main window on the demo (or resnet18), after its first run."""
    return make_window()


@pytest.fixture
def messages(monkeypatch):
    """Record QMessageBox.warning / critical instead of blocking; returns the list of texts."""
    from PySide6.QtWidgets import QMessageBox

    seen: list[str] = []

    def record(parent, title, text, *args, **kwargs):
        seen.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", record)
    monkeypatch.setattr(QMessageBox, "critical", record)
    return seen
