"""A scan folder's concepts, read back: ``concepts.json``, ``concepts_nmf.npz`` and patch crops.

The concepts job (:mod:`core.jobs.concepts`) writes them; the app (CAM and Dataset docks) and
``report.html`` read them here. A concept's top patches are boxes in the images' own pixels,
so a crop is cut from the image file as it is, whatever the model's preprocessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image

CONCEPTS_FILE = "concepts.json"
NMF_FILE = "concepts_nmf.npz"
"""The NMF directions (K, C) and the shift (C,) of ``concepts.json``, for new images."""
TOTAL_FILE = "concept_total.npy"
"""Per scan row, Σ_p A(p)·∂y/∂A(p): the importances plus the residual (NaN for errors)."""
GAP = 3
"""Pixels between the crops of a strip."""


@dataclass(frozen=True)
class Patch:
    """One of a concept's top patches: ``box`` (x0, y0, x1, y1) in the image's own pixels."""

    path: str
    box: tuple[int, int, int, int]
    value: float | None = None


@dataclass(frozen=True)
class ConceptSet:
    """The concepts of one scan folder's layer.

    Attributes:
        folder: The scan folder.
        layer: The layer they were found in.
        images_root: The folder the patches' paths are relative to.
        directions: W (K, C) float32, one row per concept (its direction in channel space).
        shift: (C,) float32 added to the activations before the NMF (0 after a ReLU).
        patches: Per concept, its top patches, highest first.
        mean_importance: Per concept, its mean importance over the scan's images.
    """

    folder: Path
    layer: str
    images_root: Path
    directions: np.ndarray
    shift: np.ndarray
    patches: tuple[tuple[Patch, ...], ...]
    mean_importance: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.patches)


def has_concepts(folder: str | Path) -> bool:
    """True when ``folder`` holds a ``concepts.json``."""
    return (Path(folder) / CONCEPTS_FILE).is_file()


def read_concepts(folder: str | Path) -> ConceptSet | None:
    """The concepts of the scan in ``folder``, or None when it has none.

    Without ``concepts_nmf.npz`` (an older folder) the directions come from ``concepts.json``
    and the shift is taken as 0 (right for a layer after a ReLU).

    Raises:
        HookScopeError: A ``concepts.json`` that cannot be read.
    """
    folder = Path(folder)
    path = folder / CONCEPTS_FILE
    if not path.is_file():
        return None
    try:
        items = json.loads(path.read_text("utf-8"))
        ident = json.loads((folder / "scan.json").read_text("utf-8"))["identity"]
        patches = tuple(
            tuple(
                Patch(str(p["path"]), tuple(int(v) for v in p["box"]), p.get("value"))
                for p in c["patches"]
            )
            for c in items
        )
        directions = np.asarray([c["direction"] for c in items], np.float32)
        shift = np.zeros(directions.shape[1], np.float32)
        if (folder / NMF_FILE).is_file():
            with np.load(folder / NMF_FILE) as nmf:
                directions = np.asarray(nmf["components"], np.float32)
                shift = np.asarray(nmf["shift"], np.float32)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise HookScopeError(f"Cannot read the concepts in {folder} ({exc}).") from exc
    return ConceptSet(
        folder=folder,
        layer=str(ident["layer"]),
        images_root=Path(ident["images"]),
        directions=directions,
        shift=shift,
        patches=patches,
        mean_importance=tuple(float(c.get("mean_importance", np.nan)) for c in items),
    )


def patch_crop(root: str | Path, patch: Patch, side: int) -> np.ndarray:
    """The patch cut from its image and fitted into ``side``² (uint8 RGB, grey padding); a grey
    square with a cross when the image cannot be read any more."""
    out = np.full((side, side, 3), 224, np.uint8)
    try:
        crop = load_image(Path(root) / patch.path).crop(patch.box)
    except (HookScopeError, OSError):
        idx = np.arange(side)
        out[idx, idx] = out[idx, side - 1 - idx] = 120
        return out
    scale = side / max(crop.size)
    w, h = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    small = np.asarray(crop.convert("RGB").resize((w, h), Image.BILINEAR))
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = small
    return out


def concept_strip(concepts: ConceptSet, k: int, n: int = 4, side: int = 64) -> np.ndarray | None:
    """Concept ``k``'s first ``n`` top patches side by side (uint8 RGB, white gaps), or None
    when it has none."""
    found = concepts.patches[k][:n]
    if not found:
        return None
    gap = np.full((side, GAP, 3), 255, np.uint8)
    tiles = [t for p in found for t in (patch_crop(concepts.images_root, p, side), gap)]
    return np.concatenate(tiles[:-1], axis=1)


@dataclass(frozen=True)
class ClusterConcept:
    """A concept of a cluster (``clusters.json`` ``concepts``, highest importance first).

    Attributes:
        id: The concept.
        importance: Its mean importance over the cluster's images.
        share: ``importance`` / the cluster's mean Σ_p A·∂y/∂A (what the importances and the
            NMF residual add up to; y − bias for a pool + linear head), or None when unknown.
    """

    id: int
    importance: float
    share: float | None


def cluster_concepts(scan) -> dict[int, tuple[ClusterConcept, ...]]:
    """Cluster id → its concepts ranked by importance, for a scan with concepts ({} without).

    Args:
        scan: A :class:`~core.io.scan_outputs.ScanOutputs`.
    """
    path = Path(scan.folder) / "clusters.json"
    try:
        entries = json.loads(path.read_text("utf-8")) if path.is_file() else []
    except (OSError, ValueError) as exc:
        raise HookScopeError(f"Cannot read {path} ({exc}).") from exc
    totals = None
    if (Path(scan.folder) / TOTAL_FILE).is_file():
        totals = np.load(Path(scan.folder) / TOTAL_FILE)
        if len(totals) != len(scan):
            totals = None
    labels = scan.column("cluster") if totals is not None else None
    out = {}
    for e in entries:
        if not e.get("concepts"):
            continue
        mean = None
        if totals is not None:
            rows = totals[labels == int(e["id"])]
            rows = rows[np.isfinite(rows)]
            mean = float(rows.mean()) if len(rows) else None
        out[int(e["id"])] = tuple(
            ClusterConcept(
                int(c["id"]),
                float(c["importance"]),
                float(c["importance"]) / mean if mean else None,
            )
            for c in e["concepts"]
        )
    return out
