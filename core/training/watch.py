"""``hookscope.watch``: training health from hooks, around the user's own loop.

```python
with hookscope.watch(model, out="runs/exp1", every=50, probe=["a.png"]) as w:
    for x, y in loader:
        opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
        w.step(loss=loss.item())
```

Hooks exist only during a recorded step: they are put on when the step before it ends and
taken off when it ends, so the steps in between run the user's model untouched. The hooks only
read (they return nothing), so the training itself is bit for bit the same with or without
the watch. Probes run Grad-CAM in eval mode with the random state saved and restored, and take
their gradients with ``torch.autograd.grad``, so no parameter's ``.grad`` changes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import main_tensor
from hookscope.core.errors import HookScopeError
from hookscope.core.training import stats as st
from hookscope.core.training import store

MAX_EVERY = 10**9


@dataclass(frozen=True)
class WatchSettings:
    """What a watch records and where.

    Attributes:
        out: The run folder.
        every: Record every ``every`` steps (step 0 included).
        probe_every: Run the probe every ``probe_every`` records (default 10).
        layers: Module names to record; None: every leaf with parameters and every
            activation leaf.
        method: Registry method of the probe maps.
        probe_layer: Layer of the probe maps; None: the model's suggested CAM layer.
        flush_every: Records per Parquet chunk (a killed run loses at most these).
    """

    out: str
    every: int = 50
    probe_every: int = 10
    layers: tuple[str, ...] | None = None
    method: str = "gradcam"
    probe_layer: str | None = None
    flush_every: int = 10

    def __post_init__(self) -> None:
        for name in ("every", "probe_every", "flush_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EVERY:
                raise HookScopeError(f"{name} must be a whole number from 1 to {MAX_EVERY}.")
        if not str(self.out).strip():
            raise HookScopeError("Give the watch a run folder, e.g. out='runs/exp1'.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        return d


def _rank() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Watch:
    """A watch over one model (see :func:`watch`); use it as a context manager."""

    def __init__(self, model: nn.Module, settings: WatchSettings, probe=None):
        self.model, self.settings = model, settings
        self.out = Path(settings.out)
        self.modules = st.watched_modules(model, settings.layers)
        self.params = self._params()
        self.rank, self.world = _rank()
        self.probe = probe
        self.step_index = 0
        self.records = 0
        self._handles: list = []
        self._sums: dict[str, st.ModuleSums] = {}
        self._grads: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._snapshots: dict[str, torch.Tensor] = {}
        self._rows: list[dict] = []
        self._pending_records = 0
        self._chunks = 0
        self._probe_layer = settings.probe_layer
        self.probe_note = ""

    def _params(self) -> dict[str, nn.Parameter]:
        return {
            f"{name}.{p_name}": p
            for name, m in self.modules.items()
            for p_name, p in m.named_parameters(recurse=False)
        }

    # -- the user's loop -----------------------------------------------------------------------
    def __enter__(self) -> Watch:
        if self.rank == 0:
            store.write_run_json(self.out, self._info("running"))
        if self._due(0):
            self._arm()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._disarm()
        finally:
            self._flush()
            if self.rank == 0:
                status = "finished" if exc_type is None else f"stopped by {exc_type.__name__}"
                store.write_run_json(self.out, self._info(status))

    def step(self, loss: float | torch.Tensor | None = None) -> None:
        """Call once per training step, after ``optimizer.step()``.

        Args:
            loss: The step's loss (a float, or a tensor: then one ``.item()`` is paid here).
        """
        s = self.step_index
        if loss is not None:
            self._rows.append(
                {
                    "step": s,
                    "rank": self.rank,
                    "kind": "loss",
                    "loss": float(loss.detach() if torch.is_tensor(loss) else loss),
                }
            )
        if self._handles:
            self._close_record(s)
        self.step_index = s + 1
        if self._due(self.step_index):
            self._arm()

    # -- records -------------------------------------------------------------------------------
    def _due(self, step: int) -> bool:
        return step % self.settings.every == 0

    def _arm(self) -> None:
        """Hooks for the next step: every watched module's output, every parameter's grad."""
        self._sums = {n: st.ModuleSums() for n in self.modules}
        self._grads = {}
        # One snapshot buffer per parameter, reused record after record (param_rows
        # overwrites it with the update).
        for n, p in self.params.items():
            buf = self._snapshots.get(n)
            if buf is None or buf.shape != p.shape or buf.dtype != p.dtype:
                buf = self._snapshots[n] = torch.empty_like(p, requires_grad=False)
            buf.copy_(p.detach())
        self._before = dict(self._snapshots)
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._output_hook(name)))
            for name, p in self.params.items():
                if p.requires_grad:
                    self._handles.append(
                        p.register_post_accumulate_grad_hook(self._grad_hook(name))
                    )
        except Exception:
            self._disarm()
            raise

    def _output_hook(self, name: str):
        sums = self._sums[name]

        def hook(module, args, output):
            t = main_tensor(output)
            if t is None or not t.is_floating_point():
                return
            sums.add_output(module, t)
            if t.requires_grad:
                t.register_hook(lambda g: sums.add_grad(g))

        return hook

    def _grad_hook(self, name: str):
        def hook(p: torch.Tensor) -> None:
            # A reference, not a norm: the norm is taken once per record, with all the others.
            self._grads[name] = p.grad

        return hook

    def _disarm(self) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()

    def _close_record(self, step: int) -> None:
        self._disarm()
        base = {"step": step, "rank": self.rank}
        for name, sums in self._sums.items():
            self._rows.append({**base, "kind": "module", "module": name, **sums.row()})
        for row in st.param_rows(self.params, self._before, self._grads):
            name = row.pop("_name")
            module = name.rsplit(".", 1)[0]
            self._rows.append({**base, "kind": "param", "module": module, "param": name, **row})
        self._before, self._grads = {}, {}
        self.records += 1
        self._pending_records += 1
        if self._pending_records >= self.settings.flush_every:
            self._flush()
        if self.probe is not None and self.rank == 0:
            if (self.records - 1) % self.settings.probe_every == 0:
                self._probe_or_note(step)

    def _flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        store.write_chunk(self.out, self.rank, self._chunks, rows)
        self._chunks += 1
        self._pending_records = 0

    # -- probes --------------------------------------------------------------------------------
    def _probe_or_note(self, step: int) -> None:
        """A probe that cannot be made (no layer with a map) ends the probes, not the training."""
        try:
            self._run_probe(step)
        except HookScopeError as exc:
            self.probe, self.probe_note = None, f"Probes stopped at step {step}: {exc}"
            store.write_run_json(self.out, self._info("running"))

    def _run_probe(self, step: int) -> None:
        """Maps of the probe images now, leaving the training exactly as it was."""
        from hookscope.core.methods.cam import compute_cam, suggest_layer

        model = getattr(self.model, "module", self.model)  # DDP: the wrapped model
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        try:
            with torch.enable_grad():
                xs = self.probe
                if self._probe_layer is None:
                    self._probe_layer = suggest_layer(model, xs[:1])
                maps = [
                    compute_cam(model, xs[i : i + 1], [self._probe_layer], self.settings.method)
                    for i in range(xs.shape[0])
                ]
        finally:
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        stack = np.stack([m[self._probe_layer] for m in maps])
        store.write_probe(self.out, step, stack, layer=self._probe_layer)

    def _info(self, status: str) -> dict:
        return {
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "layers": list(self.modules),
            "settings": self.settings.to_dict(),
            "world_size": self.world,
            "status": status,
            "updated": time.time(),
            "probe_images": 0 if self.probe is None else int(self.probe.shape[0]),
            "probe_note": self.probe_note,
            "types": {n: type(m).__name__ for n, m in self.modules.items()},
        }


def watch(
    model: nn.Module,
    out: str | Path = "runs/watch",
    every: int = 50,
    probe=None,
    layers=None,
    **options,
) -> Watch:
    """Record training health every ``every`` steps into ``out`` (use with ``with``).

    Args:
        model: The user's model (hooks are added only during recorded steps, all removed
            on exit and on exceptions).
        out: The run folder (``run.json``, ``stats/part-*.parquet``, ``probe/step-*.npz``).
        every: Steps between records.
        probe: Images whose maps are recorded every ``probe_every`` records: paths, PIL
            images, or an (N, C, H, W) tensor already preprocessed.
        layers: Module names to record (default: leaves with parameters and activations).
        **options: Other :class:`WatchSettings` fields (``probe_every``, ``method``,
            ``probe_layer``, ``flush_every``) and ``input_size``/``mean``/``std`` for probe
            images given as files.
    """
    prep = {k: options.pop(k) for k in ("input_size", "mean", "std") if k in options}
    unknown = set(options) - {"probe_every", "method", "probe_layer", "flush_every"}
    if unknown:
        raise HookScopeError(f"watch() got unknown options: {', '.join(sorted(unknown))}.")
    settings = WatchSettings(
        out=str(out), every=every, layers=tuple(layers) if layers else None, **options
    )
    return Watch(model, settings, probe_tensor(model, probe, **prep))


def probe_tensor(model: nn.Module, probe, input_size=None, mean=None, std=None):
    """The probe images as one (N, C, H, W) float tensor on the model's device, or None."""
    if probe is None:
        return None
    if isinstance(probe, torch.Tensor):
        x = probe if probe.dim() == 4 else probe.unsqueeze(0)
    else:
        from hookscope.core.loading.images import load_image

        items = [probe] if isinstance(probe, (str, Path)) or hasattr(probe, "size") else probe
        imgs = [load_image(p) if isinstance(p, (str, Path)) else p.convert("RGB") for p in items]
        size = input_size or imgs[0].size[::-1]
        size = (size, size) if isinstance(size, int) else tuple(size)
        arrs = [np.asarray(im.resize(size[::-1]), dtype=np.float32) / 255.0 for im in imgs]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
        if mean is not None and std is not None:
            x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    p = next(model.parameters(), None)
    return x.detach().to(p.device if p is not None else "cpu", torch.float32)


def read_info(out: str | Path) -> dict:
    return json.loads((Path(out) / "run.json").read_text())
