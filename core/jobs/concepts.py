"""The concepts job: NMF concepts of a finished scan's layer, their importance per cluster.

``concepts_job(reporter, loaded, folder, k)`` reads a complete scan folder (its images, layer,
input spec and each image's explained class), then in two passes over the images:

1. activations only: a bounded random sample of patches (grid positions), at most
   ``max_patches`` in all, and each channel's minimum (the shift to ≥ 0 when negative);
   NMF with K concepts (``auto``: the reconstruction-error elbow,
   :func:`~core.experiments.concepts.fit_nmf`);
2. activations and the target's gradient: every image's concept maps and importances
   (:func:`~core.experiments.concepts.decompose`, formula there), and per concept its top
   patches (one per image, bounded top-k as in the atlas, ranked by
   :func:`~core.experiments.concepts.patch_scores`) with their cells' footprints
   (:func:`~core.experiments.atlas.footprint`) as boxes in the image's own pixels.

Writes ``concepts.json`` (a list: ``id``, ``patches`` [{``path``, ``box``}], ``direction``
(C floats), ``mean_importance``), ``concept_importance.npy`` (rows × K, NaN for error rows), and
adds ``concepts`` ([{``id``, ``importance``}], by mean importance over the cluster's images,
highest first) to every entry of ``clusters.json``; ``concepts_nmf.npz`` keeps the directions and
the shift, so the app finds the same concepts in a new image; ``concept_total.npy`` each image's
Σ_p A·∂y/∂A (what the importances and the residual add up to).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.atlas import (
    TopK,
    cell_box,
    footprint,
    layer_activations,
    layer_layout,
    measure_field,
    to_image_box,
)
from hookscope.core.experiments.concepts import (
    activations_and_grads,
    decompose,
    fit_nmf,
    patch_scores,
    patches,
)
from hookscope.core.experiments.scan import ScanDataset, collate
from hookscope.core.io.concept_outputs import CONCEPTS_FILE, NMF_FILE, TOTAL_FILE
from hookscope.core.io.scan_outputs import CLUSTERS_FILE, open_scan
from hookscope.core.reporting import Reporter, per_batch

IMPORTANCE_FILE = "concept_importance.npy"


@dataclass(frozen=True)
class ConceptsSummary:
    """What the concepts job found: K concepts, their relative NMF errors per K tried, the
    images used, and per concept the mean importance over the images."""

    k: int
    errors: dict
    images: int
    mean_importance: tuple[float, ...]


@per_batch
def concepts_job(
    reporter: Reporter,
    loaded,
    folder: str | Path,
    k: int | str = "auto",
    *,
    top: int = 9,
    batch_size: int = 32,
    max_patches: int = 20_000,
    seed: int = 0,
) -> ConceptsSummary:
    """Concepts of the finished scan in ``folder``; see the module docstring.

    Raises:
        HookScopeError: A partial scan, no readable image, a bad K.
    """
    if k != "auto" and (not str(k).isdecimal() or int(k) < 1):
        raise HookScopeError(f"--concepts must be auto or a whole number of at least 1, not {k}.")
    scan = open_scan(folder)
    if not scan.complete:
        raise HookScopeError(f"The scan in {folder} is not complete; finish it first.")
    ident = scan.settings["identity"]
    layer, spec = ident["layer"], scan.input_spec
    ok = np.flatnonzero(np.asarray([e is None for e in scan.column("error")], bool))
    if not len(ok):
        raise HookScopeError(f"The scan in {folder} has no readable image.")
    paths = [str(p) for p in scan.column("path")]
    targets = scan.column("target_idx")
    model = loaded.model
    h, w = spec.size
    probe = torch.zeros(1, spec.channels, h, w)
    layout = layer_layout(model, layer, probe, ident.get("reshape"))
    field = measure_field(model, layer, layout, (h, w), spec.channels)

    def batches(msg):
        loader = torch.utils.data.DataLoader(
            ScanDataset(scan.images_root, paths, spec, None, ok.tolist()),
            batch_size=batch_size,
            collate_fn=collate,
        )
        done = 0
        for b in loader:
            yield np.asarray(b["i"]), b["x"]
            done += len(b["i"])
            reporter.progress(done, len(ok), msg)

    rng = np.random.default_rng(seed)
    per = max(1, max_patches // len(ok))
    sample, low = [], None
    for idx, x in batches("Concepts: sampling patches"):
        with reporter.batch():
            a = layer_activations(model, layer, x, layout).numpy()
        p = patches(a).reshape(len(idx), -1, a.shape[1])
        pick = rng.random((len(idx), p.shape[1])).argsort(1)[:, :per]
        sample.append(np.take_along_axis(p, pick[..., None], 1).reshape(-1, a.shape[1]))
        m = a.min((0, 2, 3))
        low = m if low is None else np.minimum(low, m)
    shift = np.maximum(0.0, -low).astype(np.float32)  # 0 for a layer after a ReLU

    def step(kk, done, total):  # progress and cancel between the (slow) factorisations
        reporter.progress(done, total, f"Concepts: NMF with {kk} concepts")

    nmf, kk, errs = fit_nmf(np.concatenate(sample) + shift, k, seed, step)

    importance = np.full((len(paths), kk), np.nan)
    totals = np.full(len(paths), np.nan)  # Σ_p A·∂y/∂A per image: what the shares are of
    best = TopK(kk, top, layout.grid)
    for idx, x in batches("Concepts: maps and importance"):
        with reporter.batch():
            a, g, _ = activations_and_grads(model, layer, x, targets[idx], layout)
        d = decompose(a, g, nmf, shift)
        importance[idx] = d["importance"]
        totals[idx] = d["total"]
        best.add(patch_scores(d["maps"], nmf), idx)
    _write(Path(folder), scan, paths, importance, best, nmf, footprint(field), spec)
    # the factorisation itself, so the app can find the concepts in a new image
    np.savez(Path(folder) / NMF_FILE, components=nmf.components_, shift=shift)
    np.save(Path(folder) / TOTAL_FILE, totals.astype(np.float32))
    means = np.nanmean(importance[ok], 0)
    return ConceptsSummary(kk, errs, len(ok), tuple(float(v) for v in means))


def _write(out: Path, scan, paths, importance, best: TopK, nmf, field, spec) -> None:
    """``concepts.json``, ``concept_importance.npy`` and the clusters' ``concepts``."""
    from hookscope.core.loading.images import load_image

    sizes: dict[int, tuple[int, int]] = {}
    concepts = []
    for c in range(best.values.shape[0]):
        found = []
        for r in range(best.k):
            i = int(best.index[c, r])
            if i < 0:
                continue
            if i not in sizes:
                sizes[i] = load_image(scan.images_root / paths[i]).size
            box = to_image_box(
                cell_box(field, int(best.row[c, r]), int(best.col[c, r])), sizes[i], spec
            )
            found.append({"path": paths[i], "box": list(box), "value": float(best.values[c, r])})
        concepts.append(
            {
                "id": c,
                "patches": found,
                "direction": [float(v) for v in nmf.components_[c]],
                "mean_importance": float(np.nanmean(importance[:, c])),
            }
        )
    _write_json(out / CONCEPTS_FILE, concepts)
    np.save(out / IMPORTANCE_FILE, importance.astype(np.float32))
    clusters = json.loads((out / CLUSTERS_FILE).read_text("utf-8"))
    labels = scan.column("cluster")
    for entry in clusters:
        rows = np.flatnonzero(labels == int(entry["id"]))
        mean = np.nanmean(importance[rows], 0) if len(rows) else np.zeros(importance.shape[1])
        order = np.argsort(-mean, kind="stable")
        entry["concepts"] = [{"id": int(c), "importance": float(mean[c])} for c in order]
    _write_json(out / CLUSTERS_FILE, clusters)


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)
