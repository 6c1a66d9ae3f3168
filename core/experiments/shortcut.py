"""Where a model's explanations put their mass: on the object or on the background (sky).

The demo's shortcut models say "airplane" because of the blue sky; a method that explains
them should put most of its map on the sky, and on their clean twins most of it on the
object. :func:`shortcut_scenes` is the fixed test set (the bundled samples plus fresh
airplanes on sky) and :func:`sky_mass_table` the per-method numbers;
``benchmarks/bench_demo_vit.py`` prints them and ``tests/core/test_demo_vit.py`` holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from hookscope.core.demo import sample_paths
from hookscope.core.demo.scenes import SCALES, make_scene
from hookscope.core.loading.images import to_tensor
from hookscope.core.methods import explainers
from hookscope.core.methods.cam import suggest_layer
from hookscope.core.methods.metrics import DEFAULT_STEPS, deletion_insertion

FRESH_SEED = 9024
"""Seed of the fresh scenes (the training script and the other tests use others)."""


def shortcut_scenes(n_fresh: int = 96, seed: int = FRESH_SEED):
    """The bundled samples and ``n_fresh`` fresh airplanes on sky at the clean twin's sizes.

    Returns:
        (names, PIL images, bool masks (N, 96, 96)); a plain sky's mask is empty (all sky).
    """
    names, images, masks = [], [], []
    for path in sample_paths():
        names.append(path.stem)
        images.append(Image.open(path).convert("RGB"))
        masks.append(np.asarray(Image.open(path.with_name(f"{path.stem}_mask.png"))) > 0)
    rng = np.random.default_rng(seed)
    for i in range(n_fresh):
        img, mask = make_scene("airplane", "sky", rng, 96, SCALES["clean"])
        names.append(f"fresh_{i:02d}")
        images.append(img)
        masks.append(mask)
    return names, images, np.stack(masks)


def off_object_mass(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total mass outside the object mask (1.0 for an empty mask)."""
    s = np.asarray(saliency, dtype=np.float64)
    total = s.sum()
    return float((s * ~mask).sum() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class MethodMass:
    """One method's numbers over the airplane predictions of a scene set.

    Attributes:
        method: Registry name.
        sky_mass: Mean share of map mass off the object (on the sky).
        n: Airplane predictions it is averaged over.
        ins_minus_del: Mean RISE insertion − deletion AUC (NaN when not measured).
        scores: Each scored image's insertion − deletion, in scene order (the same images for
            every method of one table, so two methods can be compared image by image).
    """

    method: str
    sky_mass: float
    n: int
    ins_minus_del: float = float("nan")
    scores: tuple[float, ...] = ()


def paired_difference(a: MethodMass, b: MethodMass) -> tuple[float, float, int]:
    """(mean, standard error, n) of ``a``'s insertion − deletion minus ``b``'s, image by image.

    NaNs (and n = 0) unless both scored the same two or more images.
    """
    if len(a.scores) != len(b.scores) or len(a.scores) < 2:
        return float("nan"), float("nan"), 0
    d = np.asarray(a.scores, dtype=np.float64) - np.asarray(b.scores, dtype=np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)), int(d.size)


def sky_mass_table(
    lm,
    methods: Sequence[str],
    scenes,
    target: int = 0,
    rise_images: int | None = 0,
    rise_steps: int = DEFAULT_STEPS,
) -> list[MethodMass]:
    """Per method, the sky mass of the maps of class ``target`` where the model predicts it.

    Args:
        lm: A :class:`~core.loading.models.LoadedModel`.
        methods: Registry names; CAMs run at :func:`~core.methods.cam.suggest_layer`'s layer
            (for a ViT, Grad-CAM on tokens).
        scenes: :func:`shortcut_scenes`' output.
        target: The class (0: airplane).
        rise_images: Also score RISE insertion − deletion (Trust's score, its function) on the
            first this many of them; None: on all of them.
        rise_steps: Steps of each RISE curve (Trust's default).
    """
    _, images, masks = scenes
    xs = [to_tensor(img, lm.input_spec) for img in images]
    with torch.no_grad():
        preds = [int(lm.model(x).argmax(1)) for x in xs]
    chosen = [i for i, p in enumerate(preds) if p == target]
    layer = suggest_layer(lm.model, xs[0], target, class_names=lm.class_names)
    rows = []
    for method in methods:
        rec = explainers.get(method)
        layers = [layer] if rec.kind == explainers.CAM else None
        mass, rise = [], []
        for k, i in enumerate(chosen):
            e = explainers.explain(lm.model, xs[i], method, layers=layers, target=target)
            mass.append(off_object_mass(e.map, masks[i]))
            if rise_images is None or k < rise_images:
                d, ins = deletion_insertion(lm.model, xs[i], e.map, target, steps=rise_steps)
                rise.append(ins - d)
        rows.append(
            MethodMass(
                method,
                float(np.mean(mass)) if mass else float("nan"),
                len(mass),
                float(np.mean(rise)) if rise else float("nan"),
                tuple(float(v) for v in rise),
            )
        )
    return rows
