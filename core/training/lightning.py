"""``WatchCallback``: ``hookscope.watch`` for PyTorch Lightning loops (``pip install lightning``).

```python
trainer = lightning.Trainer(callbacks=[WatchCallback(out="runs/exp1", every=50)])
```
"""

from __future__ import annotations

from hookscope.core.errors import HookScopeError
from hookscope.core.training.watch import watch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the classic package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise HookScopeError(
            "WatchCallback needs PyTorch Lightning: pip install lightning."
        ) from exc


class WatchCallback(Callback):
    """Records the fit like ``hookscope.watch`` around a hand-written loop.

    Args:
        out: The run folder.
        every: Steps between records.
        **options: The other options of :func:`hookscope.core.training.watch.watch`.
    """

    def __init__(self, out: str = "runs/watch", every: int = 50, **options):
        super().__init__()
        self.out, self.every, self.options = out, every, options
        self.watch = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.watch = watch(pl_module, self.out, self.every, **self.options).__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # After the optimizer step, as w.step() wants; Lightning hands back the step's loss.
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.watch.step(loss=loss)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._close(None)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close(exception)

    def _close(self, exc) -> None:
        if self.watch is not None:
            w, self.watch = self.watch, None
            w.__exit__(type(exc) if exc else None, exc, None)
