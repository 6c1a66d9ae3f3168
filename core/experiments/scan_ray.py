"""The dataset scan on a Ray cluster: the same per-batch function, run by Ray Data actors.

Ray Data's batch-inference shape: ``map_batches`` with a callable class, so each actor
builds its model once and is reused for many batches; ``concurrency`` actors, one GPU each
where the cluster has GPUs. Rows come back to the driver, which writes them exactly as the
local path does. Ray is optional (``hookscope[scale]``) and imported only when asked for.

Images are read by the actors from their paths, so on a multi-node cluster the image folder
must be at the same path on every node (a shared file system), as with Ray Data's readers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.scan import collate, decode_item, scan_decoded
from hookscope.core.experiments.scan_settings import ScanSettings

# The folder holding ``core``: the installed hookscope package, or a checkout.
_CODE_ROOT = Path(__file__).resolve().parents[2]


def _shippable_package() -> str:
    """The installed ``hookscope`` folder, which remote Ray workers receive whole.

    An installed wheel holds ``core`` and ``gui`` inside it; a checkout's editable install maps
    them from elsewhere, so there is no one folder to send.
    """
    folder = _CODE_ROOT  # hookscope/core/experiments/scan_ray.py -> hookscope/
    if not (folder / "__init__.py").is_file():
        raise HookScopeError(
            "A remote Ray cluster needs HookScope installed from a wheel (pip install .), not "
            "an editable checkout: its workers are sent the installed hookscope folder."
        )
    return str(folder)


def require_ray():
    """The ray module, or one sentence on how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise HookScopeError(
            "--ray needs Ray, which is not installed: pip install 'hookscope[scale]'."
        ) from exc
    return ray


class ModelActor:
    """A Ray actor's set-up: the model (on a GPU when the actor has one) and its settings.

    Args:
        model: The ``nn.Module`` (a copy in the actor's process).
        settings: ``to_dict()`` of the job's resolved settings (of ``settings_class``).
    """

    settings_class: type = ScanSettings

    def __init__(self, model, settings: dict):
        import ray

        self.model = model
        if ray.get_gpu_ids() and torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.s = self.settings_class.from_dict(settings)


class ScanActor(ModelActor):
    """One Ray actor: holds the model, decodes and scans the batches it is given."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = self.s
        items = [
            {"i": int(i)} | decode_item(s.images, str(rel), s.spec, s.masks)
            for i, rel in zip(batch["i"], batch["path"])
        ]
        labels = np.asarray(batch["label"], np.int64)
        out = scan_decoded(
            self.model,
            collate(items),
            s.layer,
            s.method,
            s.target,
            labels=labels if (labels >= 0).any() else None,
            map_size=s.map_size,
            reshape=s.reshape,
        )
        out["error"] = out["error"].astype(str)
        return out


def ray_batches(
    settings: ScanSettings,
    model,
    paths: Sequence[str],
    todo: Sequence[int],
    labels: Sequence[int] | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Scan ``paths[i]`` for ``i`` in ``todo`` on Ray; yields :func:`scan_decoded` columns.

    Args:
        settings: The scan's resolved settings; ``settings.ray`` is where (:func:`ray_map`).
        model: The ``nn.Module``, shipped to each actor with the settings.
        labels: Label per path (or None).
    """
    items = [
        {"i": int(i), "path": paths[i], "label": int(labels[i]) if labels else -1} for i in todo
    ]
    kwargs = {"model": model, "settings": settings.to_dict()}
    yield from ray_map(settings.ray, items, ScanActor, kwargs, settings.batch_size)


def ray_map(
    address: str, items: list[dict], actor: type, kwargs: dict, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data's batch inference: ``items`` in batches through ``actor(**kwargs)`` instances.

    Args:
        address: ``"local"`` (starts a local runtime, 2 CPUs, no dashboard), ``"auto"`` (joins
            the cluster this machine belongs to) or a cluster address.
        items: One dict of plain values per row.
        actor: A callable class; each actor process builds one and is given numpy batches.
        kwargs: Its constructor's arguments (the model, settings as plain data).

    Yields the actors' output batches in the order of ``items``. The runtime is shut down at
    the end when this call started it.
    """
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address == "local":
            # Local workers find this checkout on PYTHONPATH; remote ones get the package.
            env = {"env_vars": {"PYTHONPATH": str(_CODE_ROOT)}}
            options = {"num_cpus": 2, "include_dashboard": False}
        else:
            env = {"py_modules": [_shippable_package()]}
            options = {"address": address}
        try:
            ray.init(runtime_env=env, logging_level=logging.WARNING, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).splitlines() or [""])[0][:160].rstrip(". ")
            raise HookScopeError(f"Could not start or join Ray at '{address}': {first}.") from exc
        started = True
    try:
        yield from _run(items, actor, kwargs, batch_size)
    finally:
        if started:
            ray.shutdown()


def _run(items, actor, kwargs, batch_size) -> Iterator[dict[str, np.ndarray]]:
    import ray
    import ray.data

    # The job draws its own progress bar; Ray Data would announce every execution.
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // batch_size))
    ds = ds.map_batches(
        actor,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=gpus if gpus else max(1, cpus - 1),
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
