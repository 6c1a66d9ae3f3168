"""Dataset scan: the CAM of every image in a folder, and SpRAy clusters of those maps.

A shortcut ("blue sky means airplane") is a pattern across a dataset, not a property of one
image. Lapuschkin et al. (2019, "Unmasking Clever Hans predictors") found such strategies by
spectral clustering of many explanations (SpRAy); this module holds the numeric parts:

- the folder: :func:`list_images`, :func:`folder_labels`, :func:`mask_path`;
- decoding: :class:`ScanDataset` (a torch ``Dataset``; a broken file is a row with an error);
- the per-batch work: :func:`scan_batch` (one forward and one backward for the whole batch);
- clustering: :func:`spray` (kNN affinity, spectral clustering, eigengap, t-SNE / UMAP).

A scan's map at size S is defined as the ``cam`` command's map (float32, the input's H×W,
ReLU, bilinear upsample, min-max) resized to S×S by :func:`resize_map`: bilinear,
``align_corners=False``, no antialias — the same interpolation the CAM pipeline upsamples with.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.display.render import upsample
from hookscope.core.engine.context import eval_mode, model_device
from hookscope.core.engine.targets import logits_of
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.masks import load_mask
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods.cam import CAM_METHODS, compute_cam, compute_cam_batch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
"""File endings a scan reads (any case)."""

CLUSTER_SIDE = 16
"""Maps are average-pooled to this side before clustering (SpRAy works on small maps)."""


# -- the folder -------------------------------------------------------------------------------
def list_images(root: str | Path, limit: int | None = None) -> list[str]:
    """Every image file below ``root``, recursively, as sorted relative POSIX paths.

    Hidden files and folders (a leading dot) are skipped. ``limit`` keeps the first N.
    """
    root = Path(root)
    if not root.is_dir():
        raise HookScopeError(f"The image folder {root} does not exist or is not a folder.")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES):
                found.append((rel / f).as_posix())
    found.sort()
    return found[:limit] if limit is not None else found


def folder_labels(paths: Sequence[str], class_names: Sequence[str] | None) -> list[int] | None:
    """Labels from torchvision's ImageFolder layout, or None when the folder does not use it.

    The layout is used when every image lies in an immediate sub-folder and each such folder is
    named after one of the model's classes (any case; or a class index for unnamed classes).
    """
    if not paths:
        return None
    tops = {p.split("/")[0] for p in paths}
    if any("/" not in p for p in paths):
        return None
    lookup = {str(n).lower(): i for i, n in enumerate(class_names or [])}
    if not class_names:
        if not all(t.isascii() and t.isdecimal() for t in tops):
            return None
        lookup = {t: int(t) for t in tops}
    if not all(t.lower() in lookup for t in tops):
        return None
    return [lookup[p.split("/")[0].lower()] for p in paths]


def mask_path(masks_root: str | Path, rel: str) -> Path | None:
    """The mask of image ``rel``: the same relative path under ``masks_root`` (or a ``.png``).

    Returns:
        The mask file, or None when there is none.
    """
    exact = Path(masks_root) / rel
    if exact.is_file():
        return exact
    png = exact.with_suffix(".png")
    return png if png.is_file() else None


def spec_from_dict(d: dict) -> InputSpec:
    """An :class:`InputSpec` from its ``to_dict`` form (JSON lists back to tuples)."""
    kw = {k: d[k] for k in ("channels", "resize") if k in d}
    kw |= {k: tuple(d[k]) for k in ("size", "mean", "std") if k in d}
    return InputSpec(**kw)


# -- decoding ---------------------------------------------------------------------------------
def decode_item(
    root: str | Path,
    rel: str,
    spec: InputSpec,
    masks_root: str | Path | None = None,
    keep_image: int = 0,
) -> dict:
    """Decode one image (and its mask) of a scan.

    Args:
        keep_image: Also return the decoded RGB image itself (``image``, PIL) when it has at
            most this many pixels (the atlas cuts its crops from it without a second decode).

    Returns:
        A dict: ``x`` (C, H, W) float32 tensor, ``mask`` (H, W) bool tensor, ``has_mask``,
        ``error`` ("" when fine). A file that does not decode gives zeros and its error
        sentence, so one corrupt image never ends a scan.
    """
    h, w = spec.size
    item = {
        "x": torch.zeros(spec.channels, h, w),
        "mask": torch.zeros(h, w, dtype=torch.bool),
        "has_mask": False,
        "error": "",
    }
    try:
        img = load_image(Path(root) / rel)
        item["x"] = to_tensor(img, spec)[0]
        if img.width * img.height <= keep_image:
            item["image"] = img
    except HookScopeError as exc:
        item["error"] = str(exc)
        return item
    except Exception as exc:  # a decoder bug must not end the scan either
        item["error"] = f"{Path(rel).name} could not be read ({type(exc).__name__}: {exc})."
        return item
    if masks_root:
        mp = mask_path(masks_root, rel)
        if mp is not None:
            try:
                item["mask"] = torch.from_numpy(load_mask(mp, spec))
                item["has_mask"] = True
            except HookScopeError as exc:
                item["error"] = f"Its mask: {exc}"
    return item


class ScanDataset(torch.utils.data.Dataset):
    """Images ``paths[i]`` for ``i`` in ``indices``, decoded by :func:`decode_item` in a
    ``DataLoader`` worker; items also carry ``i`` (and ``image`` up to ``keep_image`` pixels)."""

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[str],
        spec: InputSpec,
        masks_root: str | Path | None = None,
        indices: Sequence[int] | None = None,
        keep_image: int = 0,
    ):
        self.root = Path(root)
        self.paths = list(paths)
        self.spec = spec
        self.masks_root = Path(masks_root) if masks_root else None
        self.indices = list(range(len(self.paths))) if indices is None else list(indices)
        self.keep_image = keep_image

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        i = self.indices[k]
        root, spec = self.root, self.spec
        return {"i": i} | decode_item(root, self.paths[i], spec, self.masks_root, self.keep_image)


def collate(items: Sequence[dict]) -> dict:
    """Stack decoded items: ``i`` int64 (N,), ``x`` (N, C, H, W), ``mask`` (N, H, W),
    ``has_mask`` bool (N,), ``error`` list of str; ``image`` (a list, None where absent)
    when any item has one."""
    batch = {
        "i": np.asarray([it["i"] for it in items], np.int64),
        "x": torch.stack([it["x"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "has_mask": np.asarray([it["has_mask"] for it in items], bool),
        "error": [it["error"] for it in items],
    }
    if any("image" in it for it in items):
        batch["image"] = [it.get("image") for it in items]
    return batch


def decode_worker_init(_worker_id: int) -> None:
    """DataLoader workers decode with one torch thread (the main process owns the cores) and
    leave Ctrl+C to the main process, which stops the scan cleanly."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def scan_decoded(
    model: nn.Module,
    batch: dict,
    layer: str,
    method: str = "gradcam",
    target: str | int = "pred",
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    map_size: int = 64,
    reshape=None,
) -> dict[str, np.ndarray]:
    """:func:`scan_batch` on a :func:`collate`-d batch, skipping the rows that did not decode.

    Args:
        labels: Label per row of the batch (-1 = none), or None.

    Returns:
        Numpy columns, one entry per row: ``i``, ``pred``, ``prob``, ``target``,
        ``target_prob`` (-1 / NaN for error rows), ``bg_mass``, ``error`` (str, "" when fine),
        ``maps`` float16 (N, S, S), zeros for error rows.
    """
    n = len(batch["i"])
    ok = np.asarray([not e for e in batch["error"]], bool)
    out = {
        "i": np.asarray(batch["i"], np.int64),
        "pred": np.full(n, -1, np.int64),
        "prob": np.full(n, np.nan, np.float32),
        "target": np.full(n, -1, np.int64),
        "target_prob": np.full(n, np.nan, np.float32),
        "bg_mass": np.full(n, np.nan, np.float32),
        "error": np.asarray(batch["error"], dtype=object).astype(str),
        "maps": np.zeros((n, map_size, map_size), np.float16),
    }
    if ok.any():
        sel = torch.from_numpy(np.flatnonzero(ok))
        res = scan_batch(
            model,
            batch["x"][sel],
            layer,
            method,
            target,
            labels=None if labels is None else np.asarray(labels, np.int64)[ok],
            masks=batch["mask"][sel].numpy(),
            has_mask=np.asarray(batch["has_mask"], bool)[ok],
            map_size=map_size,
            reshape=reshape,
        )
        for key in ("pred", "prob", "target", "target_prob", "bg_mass"):
            out[key][ok] = getattr(res, key)
        out["maps"][ok] = res.maps.astype(np.float16)
    return out


# -- per batch --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanBatch:
    """Numbers of one batch, row ``k`` for sample ``k``.

    Attributes:
        pred: Top-1 class index, int64 (N,).
        prob: Its softmax probability, float32 (N,).
        target: The explained class, int64 (N,).
        target_prob: The target's probability, float32 (N,).
        maps: CAMs at the map size, float32 (N, S, S) in [0, 1].
        bg_mass: Share of the map's mass outside the object, float32 (N,); NaN without a mask
            or for an all-zero map.
    """

    pred: np.ndarray
    prob: np.ndarray
    target: np.ndarray
    target_prob: np.ndarray
    maps: np.ndarray
    bg_mass: np.ndarray


def resize_map(m: np.ndarray, size: int) -> np.ndarray:
    """A map at the input's size → ``size`` × ``size``: how a scan's map is defined.

    Bilinear, ``align_corners=False`` (half-pixel centres), no antialias, clipped to [0, 1];
    (N, H, W) stacks are resized map by map. An S×S input is returned as float32 unchanged.
    """
    m = np.asarray(m, dtype=np.float32)
    if m.shape[-2:] == (size, size):
        return m
    return np.clip(upsample(m, (size, size)), 0.0, 1.0)


def background_mass(m: np.ndarray, mask: np.ndarray) -> float:
    """Share of a non-negative map's mass outside ``mask`` (True = object); NaN for a zero map."""
    m = np.asarray(m, dtype=np.float64)
    total = m.sum()
    if not total > 0:
        return float("nan")
    return float(m[~np.asarray(mask, bool)].sum() / total)


def _one_map(model, xi, layer, method, target, reshape) -> np.ndarray:
    """One image's map: a per-channel CAM, or another registry method (transformer, lrp)."""
    if method in CAM_METHODS:
        return compute_cam(model, xi, layer, method, target, reshape=reshape)[layer]
    from hookscope.core.methods.explainers import explain  # the registry's map rule

    return explain(model, xi, method, target=target).map


def scan_batch(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    target: str | int = "pred",
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    masks: torch.Tensor | np.ndarray | None = None,
    has_mask: Sequence[bool] | np.ndarray | None = None,
    map_size: int = 64,
    reshape=None,
) -> ScanBatch:
    """CAMs, predictions and background mass for a batch of images.

    One-pass methods run one batched forward and backward (:func:`compute_cam_batch`); ScoreCAM
    and AblationCAM, which score a forward per channel, run :func:`compute_cam` per image.

    Args:
        model: A classifier.
        x: (N, C, H, W) inputs.
        layer: The CAM layer.
        method: A key of ``CAM_METHODS``, or a transformer method / ``lrp`` of the explainer
            registry (image by image; ``layer`` is not used).
        target: ``"pred"`` (top-1), ``"label"`` (``labels[k]``; -1 falls back to top-1) or a
            class index.
        labels: Class index per sample (-1 = none), for ``target="label"``.
        masks: Object masks at the input size, bool (N, H, W), or None.
        has_mask: Which samples have a mask (default: all when ``masks`` is given).
        map_size: Side S of the returned maps (:func:`resize_map`).
        reshape: Layout of the layer's output, as for ``compute_cam``.
    """
    n = x.shape[0]
    if target == "pred":
        targets = None
    elif target == "label":
        if labels is None:
            raise HookScopeError("--target label needs labels: use an ImageFolder layout.")
        targets = np.asarray(labels, dtype=np.int64)
    else:
        targets = np.full(n, int(target), dtype=np.int64)
    if targets is not None and (targets < 0).any():
        # Unlabelled rows explain their prediction: one extra forward finds it.
        targets = np.where(targets < 0, _logits(model, x).argmax(1).numpy(), targets)
    if method in CAM_METHODS and CAM_METHODS[method].one_pass:
        maps, logits = compute_cam_batch(model, x, layer, method, targets, reshape=reshape)
        logits = logits.float().cpu()
        tgt = logits.argmax(1).numpy() if targets is None else targets
    else:
        rows, logit_rows, tgt = [], [], []
        for k in range(n):
            t = None if targets is None else int(targets[k])
            xi = x[k : k + 1]
            rows.append(_one_map(model, xi, layer, method, t, reshape))
            lg = _logits(model, xi)
            logit_rows.append(lg)
            tgt.append(int(lg.argmax(1)) if t is None else t)
        maps = np.stack(rows)
        logits = torch.cat(logit_rows)
        tgt = np.asarray(tgt)
    probs = torch.softmax(logits, dim=1).numpy()
    pred = probs.argmax(1)
    tgt = np.asarray(tgt, dtype=np.int64)
    bg = np.full(n, np.nan, dtype=np.float32)
    if masks is not None:
        masks = np.asarray(masks, bool)
        flags = np.ones(n, bool) if has_mask is None else np.asarray(has_mask, bool)
        for k in np.flatnonzero(flags):
            bg[k] = background_mass(maps[k], masks[k])
    return ScanBatch(
        pred=pred.astype(np.int64),
        prob=probs[np.arange(n), pred].astype(np.float32),
        target=tgt,
        target_prob=probs[np.arange(n), tgt].astype(np.float32),
        maps=resize_map(maps, map_size),
        bg_mass=bg,
    )


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, K) float32 CPU class scores from a no-grad forward in eval mode."""
    with eval_mode(model), torch.no_grad():
        return logits_of(model(x.to(model_device(model)))).float().cpu()


# -- clustering (SpRAy) -----------------------------------------------------------------------
@dataclass(frozen=True)
class Clustering:
    """SpRAy on a set of maps.

    Attributes:
        labels: Cluster per map, int64 (N,); 0 is the largest cluster.
        xy: 2-D embedding, float32 (N, 2).
        eigenvalues: Smallest eigenvalues of the normalised graph Laplacian, ascending (empty
            when the maps were too few or too alike to build the graph).
        n_clusters: Number of clusters.
        embedding: "tsne", "umap" or "none" (fewer than 3 different maps, or no embedding).
        features: The pooled maps that were clustered, float32 (N, side²).
        notes: One sentence per way the result is simpler than asked (maps all equal, NaN
            values, more clusters asked than different maps); empty when nothing was odd.
    """

    labels: np.ndarray
    xy: np.ndarray
    eigenvalues: np.ndarray
    n_clusters: int
    embedding: str
    features: np.ndarray
    notes: tuple[str, ...] = ()


def pool_maps(maps: np.ndarray, side: int = CLUSTER_SIDE, chunk: int = 1024) -> np.ndarray:
    """(N, S, S) maps → (N, side²) float32 features by area averaging (S > side).

    ``maps`` may be a memory map: it is read ``chunk`` rows at a time.
    """
    out = []
    for a in range(0, len(maps), chunk):
        t = torch.from_numpy(np.asarray(maps[a : a + chunk], dtype=np.float32))
        if t.shape[-1] > side:
            t = F.adaptive_avg_pool2d(t[:, None], side)[:, 0]
        out.append(t.reshape(t.shape[0], -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, side * side), np.float32)


def finite_features(features: np.ndarray) -> tuple[np.ndarray, str | None]:
    """NaN / infinite feature values → 0, with a note naming how many maps held them.

    scikit-learn refuses NaN (and t-SNE on NaN crashes the process), while a map with a few
    NaN pixels still says where the rest of its mass is.
    """
    feats = np.asarray(features, dtype=np.float32)
    bad = ~np.isfinite(feats).all(axis=1)
    if not bad.any():
        return feats, None
    feats = np.where(np.isfinite(feats), feats, np.float32(0.0))
    return feats, (
        f"{int(bad.sum())} of {len(feats)} maps hold NaN or infinite values (from the model's "
        "outputs or gradients); they were clustered with those pixels as 0."
    )


def distinct_groups(features: np.ndarray, decimals: int = 4) -> np.ndarray:
    """Group id per row (0.., by first occurrence): rows that agree to ``decimals`` digits of
    the largest absolute value are one group.

    Identical images and all-zero maps give identical rows; spectral clustering and t-SNE
    split such ties at random or crash on them, so they are settled before either runs.
    """
    n = len(features)
    scale = float(np.abs(features).max()) if features.size else 0.0
    if n == 0 or scale == 0.0 or not np.isfinite(scale):
        return np.zeros(n, np.int64)
    q = np.round(np.asarray(features, np.float32) / np.float32(scale), decimals) + 0.0  # -0 → 0
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    order = np.argsort(first, kind="stable")  # unique's order is lexicographic
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    return rank[inverse]


def knn_affinity(features: np.ndarray, neighbors: int = 10):
    """Symmetric kNN connectivity graph (sparse CSR), as SpRAy / CoRelAy's ``SparseKNN``."""
    from scipy import sparse
    from sklearn.neighbors import kneighbors_graph

    k = max(1, min(neighbors, features.shape[0] - 1))
    a = kneighbors_graph(features, k, mode="connectivity", include_self=False)
    return sparse.csr_matrix((a + a.T) * 0.5)


def laplacian_spectrum(affinity, count: int) -> np.ndarray:
    """The ``count`` smallest eigenvalues of the symmetric normalised Laplacian, ascending."""
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    n = affinity.shape[0]
    deg = np.asarray(affinity.sum(axis=1)).ravel()
    inv = sparse.diags(1.0 / np.sqrt(np.maximum(deg, 1e-12)))
    norm_a = inv @ affinity @ inv  # L = I - norm_a: its smallest are norm_a's largest
    count = max(1, min(count, n))
    if n <= 400 or count >= n - 1:
        vals = np.linalg.eigvalsh(norm_a.toarray())[::-1][:count]
    else:
        vals = eigsh(norm_a, k=count, which="LA", return_eigenvectors=False, v0=np.ones(n))
        vals = np.sort(vals)[::-1]
    return np.clip(1.0 - vals, 0.0, 2.0)


def eigengap(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """Number of clusters k (2..max) from the Laplacian's smallest eigenvalues λ (ascending).

    k clusters leave λ[0..k-1] near 0 and λ[k] clearly above; the jump is measured relative
    to λ[k], ``(λ[k] − λ[k−1]) / λ[k]``, so the step off a run of (near) zeros wins over an
    equal step higher up the spectrum, which only splits a cluster's inside.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    top = min(max_clusters, len(lam) - 1)
    if top < 2:
        return 1
    hi, lo = lam[2 : top + 1], lam[1:top]
    rel = np.where(hi > 1e-9, (hi - lo) / np.maximum(hi, 1e-9), 0.0)
    return int(np.argmax(rel)) + 2


# What scikit-learn / SciPy raise on inputs too degenerate for them (ARPACK errors are
# RuntimeErrors, LinAlgError is a ValueError): the scan then keeps a simpler valid result.
_NUMERIC_ERRORS = (ValueError, TypeError, RuntimeError, ArithmeticError)


def spray(
    maps: np.ndarray,
    clusters: str | int = "auto",
    *,
    side: int = CLUSTER_SIDE,
    neighbors: int = 10,
    max_clusters: int = 10,
    seed: int = 0,
    embed: bool = True,
) -> Clustering:
    """Spectral relevance analysis of a stack of maps.

    Maps are area-pooled to ``side``×``side``, joined in a symmetric kNN graph, clustered with
    scikit-learn's spectral clustering on that graph (the number of clusters from the
    Laplacian's eigengap for ``"auto"``, :func:`eigengap`), and embedded in 2-D with UMAP when
    installed, else t-SNE. Clusters are renumbered by size, largest first (ties: first row first).

    Degenerate maps never reach scikit-learn: NaN values count as 0, maps that are all equal
    (identical images, all-zero CAMs) are one cluster, and asking for at least as many
    clusters as there are different maps makes each different map its own cluster; each such
    case adds a sentence to ``notes``.

    Args:
        maps: (N, S, S) float maps (a memory map is read in chunks).
        clusters: ``"auto"`` or a number of clusters.
        side: Pooled side.
        neighbors: k of the kNN graph.
        max_clusters: Upper bound for ``"auto"``.
        seed: Random state of every step (same maps, same result).
        embed: False skips the 2-D embedding (``xy`` all zero, ``embedding`` "none").
    """
    if clusters != "auto" and int(clusters) < 1:
        raise HookScopeError(f"--clusters must be auto or at least 1, not {clusters}.")
    n = len(maps)
    feats, nan_note = finite_features(pool_maps(maps, side))
    notes = [nan_note] if nan_note else []
    groups = distinct_groups(feats)
    n_distinct = int(groups.max()) + 1 if n else 0
    if n == 0:
        empty = np.zeros(0, np.int64)
        return Clustering(empty, np.zeros((0, 2), np.float32), np.zeros(0), 0, "none", feats)
    raw, lam = _cluster_ids(feats, groups, clusters, neighbors, max_clusters, seed, notes)
    if embed:
        xy, how = embed_2d(feats, seed)
        if how == "none" and n_distinct >= 3:
            notes.append("The 2-D embedding failed on these maps; the scatter shows them in a row.")
    else:
        xy, how = np.zeros((n, 2), np.float32), "none"
    n_clusters = int(len(np.unique(raw)))
    return Clustering(_by_size(raw), xy, lam, n_clusters, how, feats, tuple(notes))


def _cluster_ids(feats, groups, clusters, neighbors, max_clusters, seed, notes):
    """Raw cluster id per row and the Laplacian spectrum; degenerate cases settled first."""
    from threadpoolctl import threadpool_limits

    n, n_distinct = len(feats), int(groups.max()) + 1
    asked = None if clusters == "auto" else int(clusters)
    none = np.zeros(0)
    if n_distinct == 1:
        if n > 1:
            notes.append(
                f"All {n} maps are the same (identical images, or maps that are all zero): "
                "they form one cluster."
            )
        return np.zeros(n, np.int64), none
    if asked is not None and asked >= n_distinct:
        if asked > n_distinct:
            notes.append(
                f"--clusters {asked} asks for more clusters than there are different maps "
                f"({n_distinct} among {n}): each different map is its own cluster."
            )
        return groups, none
    if asked == 1 or n < 3:
        return np.zeros(n, np.int64), none
    # One thread: after torch has run, its OpenMP threads and scikit-learn's (two libgomp
    # copies) fight over the cores; t-SNE of 24 maps then took 20-40 s instead of 0.1 s.
    with threadpool_limits(limits=1):
        try:
            aff = knn_affinity(feats, neighbors)
            lam = laplacian_spectrum(aff, min(n, max(max_clusters, 2) + 1))
            k = eigengap(lam, max_clusters) if asked is None else asked
            k = min(k, n_distinct)
            if k == n_distinct:
                return groups, lam
            if k == 1:
                return np.zeros(n, np.int64), lam
            return _spectral(aff, k, seed), lam
        except _NUMERIC_ERRORS as exc:
            notes.append(
                f"Spectral clustering failed on these maps ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); they form one cluster."
            )
            return np.zeros(n, np.int64), none


def _spectral(aff, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    sc = SpectralClustering(
        n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="kmeans"
    )
    with warnings.catch_warnings():
        # Well separated strategies give a disconnected kNN graph: that is the finding.
        warnings.filterwarnings("ignore", "Graph is not fully connected")
        return sc.fit_predict(aff).astype(np.int64)


def embed_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D embedding of feature rows: UMAP when installed, else t-SNE (scikit-learn).

    Rows that are equal (:func:`distinct_groups`) are embedded once and share a point: t-SNE
    on identical or all-zero rows divides by a zero spread and crashes the process. Fewer
    than 3 different rows, or an embedding that fails or is not finite, give the different
    rows side by side on a line and ``"none"``. t-SNE runs on the first 50 principal
    components (the usual preprocessing; the pooled maps have 256 dimensions) for 500
    iterations.
    """
    from threadpoolctl import threadpool_limits

    feats, _ = finite_features(features)
    groups = distinct_groups(feats)
    line = np.zeros((len(feats), 2), np.float32)
    line[:, 0] = groups
    if len(feats) == 0 or int(groups.max()) + 1 < 3:
        return line, "none"
    _, first = np.unique(groups, return_index=True)
    try:
        with threadpool_limits(limits=1):
            xy, how = _embed_rows(feats[first], seed)
    except _NUMERIC_ERRORS:
        return line, "none"
    if xy.shape != (len(first), 2) or not np.isfinite(xy).all():
        return line, "none"
    return xy[groups].astype(np.float32), how


def _embed_rows(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """UMAP or t-SNE of distinct rows (at least 3)."""
    n = len(x)
    try:
        import umap  # optional; not a dependency

        red = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1))
        return np.asarray(red.fit_transform(x), np.float32), "umap"
    except ImportError:
        pass
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = x.astype(np.float32)
    if min(x.shape) > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500, n_jobs=-1)
    return np.asarray(tsne.fit_transform(x), np.float32), "tsne"


def _by_size(raw: np.ndarray) -> np.ndarray:
    """Renumber cluster ids 0.. by size, largest first; ties by first occurrence."""
    ids, first, counts = np.unique(raw, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda j: (-counts[j], first[j]))
    remap = np.empty(int(ids.max()) + 1, np.int64)
    for new, j in enumerate(order):
        remap[ids[j]] = new
    return remap[raw]


def auto_workers() -> int:
    """Default decoding processes: one per spare core, at most four."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def folder_loader(
    dataset: ScanDataset, batch_size: int, workers: int | None
) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` (collated) with ``workers`` decoding processes (None: one per
    spare core, at most 4; none for a folder of one batch or less, where start-up costs more)."""
    n_workers = auto_workers() if workers is None else workers
    n_workers = min(n_workers, max(0, len(dataset) // batch_size))
    # Forking a process that runs other threads (the app's UI) can deadlock the child:
    # off the main thread, workers start fresh ("spawn").
    context = None if threading.current_thread() is threading.main_thread() else "spawn"
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=n_workers,
        collate_fn=collate,
        worker_init_fn=decode_worker_init if n_workers else None,
        prefetch_factor=2 if n_workers else None,
        multiprocessing_context=context if n_workers else None,
    )
