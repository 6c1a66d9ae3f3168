"""The channel atlas on a Ray cluster: the layer's activations computed by Ray Data actors.

The shape of the scan's ``--ray`` (:mod:`core.experiments.scan_ray`): each actor holds a copy
of the model, decodes its batch from the paths and returns the layer's grid activations; the
driver merges them into the same bounded top-k, in the same order, as the local path does, so
the atlas is the same. The image folder must be at the same path on every node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from hookscope.core.experiments.atlas import AtlasSettings, layer_activations, layer_layout
from hookscope.core.experiments.scan import collate, decode_item
from hookscope.core.experiments.scan_ray import ModelActor, ray_map, require_ray

__all__ = ["AtlasActor", "ray_activations", "require_ray"]


class AtlasActor(ModelActor):
    """One Ray actor: holds the model, decodes batches and returns the layer's activations.

    Each input row is one batch (``i`` and ``path``: that batch's image indices and paths).
    """

    settings_class = AtlasSettings
    layout = None

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = self.s
        pairs = [
            (int(i), str(rel))
            for ii, rr in zip(rows["i"], rows["path"], strict=True)
            for i, rel in zip(ii, rr, strict=True)
        ]
        b = collate([{"i": i} | decode_item(s.images, rel, s.spec) for i, rel in pairs])
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        x = b["x"].to(device)
        if self.layout is None:
            self.layout = layer_layout(self.model, s.layer, x, s.reshape)
        acts = layer_activations(self.model, s.layer, x, self.layout).numpy()
        return {"i": b["i"], "error": np.asarray(b["error"], str), "acts": acts}


def ray_activations(
    settings: AtlasSettings, model, paths: Sequence[str], todo: Sequence[int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per batch of ``paths[i]`` for ``i`` in ``todo``, in order: the image indices, whether
    each decoded, and the layer's activations (N, C, h, w) (zeros' activations for the rest).

    ``settings.ray`` says where (:func:`~core.experiments.scan_ray.ray_map`).
    """
    # one row per batch, as the local path makes them: a conv's float sums can differ in the
    # last bit between batch sizes, and the atlas is to be the same
    size = settings.batch_size
    chunks = [todo[j : j + size] for j in range(0, len(todo), size)]
    items = [{"i": [int(i) for i in c], "path": [paths[i] for i in c]} for c in chunks]
    kwargs = {"model": model, "settings": settings.to_dict()}
    for out in ray_map(settings.ray, items, AtlasActor, kwargs, 1):
        ok = np.asarray([not e for e in out["error"]], bool)
        yield np.asarray(out["i"], np.int64), ok, np.asarray(out["acts"], np.float32)
