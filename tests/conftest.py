"""Shared test setup: Qt offscreen, small thread count, and a no-hooks-left guard."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("HOOKSCOPE_TEST_THREADS", "2")))


@pytest.fixture
def no_hooks_left():
    """Collect models during a test; assert none holds a hook afterwards."""
    from hookscope.core.engine.hooks import hook_count

    models = []
    yield models.append
    for m in models:
        assert hook_count(m) == 0
