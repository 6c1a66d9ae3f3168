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
from hookscope.core.experiments.scan import collate, decode_item, scan_decoded, spec_from_dict
from hookscope.core.loading.spec import InputSpec

# The folder holding the ``core`` package (this checkout).
_CODE_ROOT = Path(__file__).resolve().parents[2]


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise HookScopeError(
            "--ray needs Ray, which is not installed: pip install 'hookscope[scale]'."
        ) from exc
    return ray


class ScanActor:
    """One Ray actor: holds the model, decodes and scans the batches it is given."""

    def __init__(
        self,
        model,
        root: str,
        spec: dict,
        masks_root: str | None,
        layer: str,
        method: str,
        target,
        map_size: int,
        reshape,
    ):
        import ray

        self.model = model
        if ray.get_gpu_ids() and torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.root = root
        self.spec = spec_from_dict(spec)
        self.masks_root = masks_root
        self.layer, self.method, self.target = layer, method, target
        self.map_size, self.reshape = map_size, reshape

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [
            {"i": int(i)} | decode_item(self.root, str(rel), self.spec, self.masks_root)
            for i, rel in zip(batch["i"], batch["path"])
        ]
        labels = np.asarray(batch["label"], np.int64)
        out = scan_decoded(
            self.model,
            collate(items),
            self.layer,
            self.method,
            self.target,
            labels=labels if (labels >= 0).any() else None,
            map_size=self.map_size,
            reshape=self.reshape,
        )
        out["error"] = out["error"].astype(str)
        return out


def ray_batches(
    address: str,
    model,
    root: str | Path,
    paths: Sequence[str],
    todo: Sequence[int],
    spec: InputSpec,
    *,
    masks_root: str | Path | None,
    labels: Sequence[int] | None,
    layer: str,
    method: str,
    target,
    map_size: int,
    batch_size: int,
    reshape=None,
) -> Iterator[dict[str, np.ndarray]]:
    """Scan ``paths[i]`` for ``i`` in ``todo`` on Ray; yields :func:`scan_decoded` columns.

    Args:
        address: ``"local"`` starts a local runtime (2 CPUs, no dashboard), ``"auto"`` joins the
            cluster this machine belongs to, anything else is a cluster address.
        model: The ``nn.Module``, shipped to each actor with its constructor arguments.

    The runtime is shut down at the end when this call started it.
    """
    ray = _ray()
    started = False
    if not ray.is_initialized():
        if address == "local":
            # Local workers find this checkout on PYTHONPATH; remote ones get the package.
            env = {"env_vars": {"PYTHONPATH": str(_CODE_ROOT)}}
            kwargs = {"num_cpus": 2, "include_dashboard": False}
        else:
            env = {"py_modules": [str(_CODE_ROOT / "core")]}
            kwargs = {"address": address}
        try:
            ray.init(runtime_env=env, logging_level=logging.WARNING, log_to_driver=False, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).splitlines() or [""])[0][:160].rstrip(". ")
            raise HookScopeError(f"Could not start or join Ray at '{address}': {first}.") from exc
        started = True
    try:
        import ray.data

        # The scan draws its own progress bar; Ray Data would announce every execution.
        logging.getLogger("ray").setLevel(logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        items = [
            {"i": int(i), "path": paths[i], "label": int(labels[i]) if labels else -1} for i in todo
        ]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // batch_size))
        ds = ds.map_batches(
            ScanActor,
            fn_constructor_kwargs={
                "model": model,
                "root": str(root),
                "spec": spec.to_dict(),
                "masks_root": str(masks_root) if masks_root else None,
                "layer": layer,
                "method": method,
                "target": target,
                "map_size": map_size,
                "reshape": reshape,
            },
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=gpus if gpus else max(1, cpus - 1),
            num_gpus=1 if gpus else 0,
            num_cpus=1,
        )
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
    finally:
        if started:
            ray.shutdown()
