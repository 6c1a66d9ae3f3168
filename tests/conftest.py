"""Shared test setup: Qt offscreen, small thread count, and a no-hooks-left guard."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

# With pytest-xdist's workers sharing the cores, each worker gets its share instead of all.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_SHARE = max(1, min(2, (os.cpu_count() or 2) // _WORKERS))
torch.set_num_threads(int(os.environ.get("HOOKSCOPE_TEST_THREADS", _SHARE)))


@pytest.fixture
def no_hooks_left():
    """Collect models during a test; assert none holds a hook afterwards."""
    from hookscope.core.engine.hooks import hook_count

    models = []
    yield models.append
    for m in models:
        assert hook_count(m) == 0
