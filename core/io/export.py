"""Raw arrays to disk: NPZ files with a JSON sidecar of the settings that made them.

Figures (PNG, SVG) are drawn by :mod:`core.display.figures`; this module only writes data.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hookscope.core.errors import HookScopeError

FORMAT = "hookscope-arrays/1"


def sidecar_path(path: str | Path) -> Path:
    """``maps.npz`` → ``maps.json``: where the settings of an array file are written."""
    return Path(path).with_suffix(".json")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data from numpy, torch, paths, dataclass-likes, sets and tuples."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray | torch.Tensor):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        return to_jsonable(arr.tolist()) if arr.size <= 64 else f"<array {list(arr.shape)}>"
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if callable(obj):
        return getattr(obj, "__name__", type(obj).__name__)
    return str(obj)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON (converted with :func:`to_jsonable`)."""
    path = Path(path)
    _parent(path)
    text = json.dumps(to_jsonable(data), indent=1, ensure_ascii=False) + "\n"
    try:
        path.write_text(text, "utf-8")
    except OSError as exc:
        raise HookScopeError(f"Cannot write {path}: {exc.strerror}.") from exc
    return path


def save_arrays(
    path: str | Path, arrays: Mapping[str, Any], settings: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Save named arrays to an ``.npz`` and their settings to a JSON sidecar next to it.

    Args:
        path: Target file; ``.npz`` is added when missing.
        arrays: Name → array (numpy or torch); names are kept verbatim (``layer4.1.conv2``).
        settings: What made them (model, image, method, target, ...), stored in the sidecar.

    Returns:
        ``(npz_path, json_path)``.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")
    _parent(path)
    data = {}
    for name, arr in arrays.items():
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        data[str(name)] = np.asarray(arr)
    try:
        with open(path, "wb") as fh:  # a file object keeps numpy from renaming the file
            np.savez_compressed(fh, **data)
    except OSError as exc:
        raise HookScopeError(f"Cannot write {path}: {exc.strerror}.") from exc
    meta = {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "file": path.name,
        "settings": dict(settings or {}),
        "arrays": {
            k: {
                "shape": list(v.shape),
                "dtype": str(v.dtype),
                "min": float(np.nanmin(v)) if v.size and v.dtype.kind in "fiu" else None,
                "max": float(np.nanmax(v)) if v.size and v.dtype.kind in "fiu" else None,
            }
            for k, v in data.items()
        },
    }
    return path, write_json(sidecar_path(path), meta)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an ``.npz`` written by :func:`save_arrays` and its sidecar (``{}`` if missing)."""
    path = Path(path)
    if not path.exists():
        raise HookScopeError(f"The array file {path} does not exist; check the path.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise HookScopeError(f"Could not read {path} as an NPZ file ({exc}).") from exc
    side = sidecar_path(path)
    meta = json.loads(side.read_text("utf-8")) if side.exists() else {}
    return arrays, meta


def _parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HookScopeError(f"Cannot create the folder {path.parent}: {exc.strerror}.") from exc
