"""HookScope: look inside your own PyTorch model.

```python
import hookscope
e = hookscope.explain(model, "cat.png", method="gradcam")   # no window: e.map, e.probs, e.target
v = hookscope.view(model, image="cat.png")                   # the app on this live module
```

Installed, this folder is the package ``hookscope``: its files are the bundled demo weights and
samples (``importlib.resources.files("hookscope")``), and ``hookscope.core`` / ``hookscope.gui``
hold the engine and the app. The functions below import their parts on first use, so
``import hookscope`` loads neither torch nor Qt.
"""

from __future__ import annotations

__all__ = ["diagnose", "explain", "view", "watch"]


def explain(model, image, method: str = "gradcam", **options):
    """Explain ``model``'s decision on ``image`` with one registry method (no window).

    See :func:`hookscope.core.api.explain` for the arguments.
    """
    from hookscope.core.api import explain as _explain

    return _explain(model, image, method, **options)


def view(model, image=None, **options):
    """Open the HookScope app on a live ``nn.Module``.

    See :func:`hookscope.gui.live.view` for the arguments.
    """
    from hookscope.gui.live import view as _view

    return _view(model, image, **options)


def watch(model, out="runs/watch", every: int = 50, **options):
    """Record training health around the user's own loop (``with hookscope.watch(...) as w``).

    See :func:`hookscope.core.training.watch.watch` for the arguments.
    """
    from hookscope.core.training.watch import watch as _watch

    return _watch(model, out, every, **options)


def diagnose(run):
    """The findings of a watched run, each one sentence (vanishing, exploding, dead units...).

    See :func:`hookscope.core.training.diagnose.diagnose`.
    """
    from hookscope.core.training.diagnose import diagnose as _diagnose

    return _diagnose(run)
