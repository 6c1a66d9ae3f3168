"""What a dataset scan does, as one frozen, validated object.

:class:`ScanSettings` is what the ``scan`` command, the app's Dataset dock and a session all
build, what ``core.jobs.scan.scan_job``, its local batches and its Ray actors read, and what
decides whether an output folder holds the same scan (its identity, for resume). A bad value
is one sentence when the object is made, before any folder is touched.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from hookscope.core.engine.targets import parse_target
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods import explainers
from hookscope.core.methods.cam import CAM_METHODS

SCAN_METHODS = (*CAM_METHODS, *explainers.names(explainers.TRANSFORMER), "lrp")
"""Methods a scan maps with: the CAMs, the transformer methods and LRP (SpRAy's own recipe)."""

APP_BATCH_MACS = 2_000_000_000
"""The app's scan batches hold about this many multiply-accumulates of forward (one resnet18
image): an interactive click waits at most for the batch in flight (see ``gui/worker.py``)."""


def app_batch_size(macs_per_image: int, largest: int = 32) -> int:
    """Images per batch for a scan running beside the app's clicks: short batches.

    One image per batch for a model of ``APP_BATCH_MACS`` or more, up to ``largest`` for small
    models (the demo); ``largest`` when the size is unknown (0).
    """
    if macs_per_image <= 0:
        return largest
    return max(1, min(largest, APP_BATCH_MACS // int(macs_per_image)))


@dataclass(frozen=True)
class ScanSettings:
    """Every option of a dataset scan.

    Attributes:
        images: Folder; every image below it, recursively. Sub-folders named after the
            model's classes (ImageFolder layout) give the labels.
        layer: The CAM layer.
        method: A key of ``CAM_METHODS``.
        target: ``"pred"``, ``"label"``, a class index, or a class name (made an index by
            :meth:`resolve`).
        masks: Folder of object masks at the same relative paths (pixel > 127 = object).
        out: Output folder (default: ``scan-<folder name>`` in the working directory).
        map_size: Side S of the stored maps.
        batch_size: Images per forward / backward.
        workers: Decoding processes (None: one per spare core, at most 4; 0 = in-process).
        clusters: ``"auto"`` (eigengap) or a number of clusters.
        limit: Scan only the first N images (sorted by path).
        ray: None (local), ``"local"``, ``"auto"`` or a Ray cluster address.
        model_spec: The spec string the model was loaded from (recorded in scan.json).
        spec: Input spec; None: the model's own (:meth:`resolve` fills it in).
        reshape: Layout of the layer's output, as for ``compute_cam`` (a name or (h, w)).
        chunk_rows: Rows per part file.
    """

    images: str
    layer: str
    method: str = "gradcam"
    target: str | int = "pred"
    masks: str | None = None
    out: str | None = None
    map_size: int = 64
    batch_size: int = 32
    workers: int | None = None
    clusters: str | int = "auto"
    limit: int | None = None
    ray: str | None = None
    model_spec: str | None = None
    spec: InputSpec | None = None
    reshape: str | tuple[int, int] | None = None
    chunk_rows: int = 256

    def __post_init__(self) -> None:
        """Check and normalise every field; a bad one is one sentence."""
        put = object.__setattr__
        check_text(self, "scan", {"images": "the image folder", "layer": "the CAM layer"})
        check_text(self, "scan", optional=("masks", "out", "ray", "model_spec"))
        if self.method not in SCAN_METHODS:
            raise HookScopeError(
                f"Unknown CAM method '{self.method}': use one of {', '.join(SCAN_METHODS)}."
            )
        put(self, "target", _target(self.target))
        put(self, "map_size", whole(self.map_size, 2, "--map-size"))
        put(self, "batch_size", whole(self.batch_size, 1, "--batch-size"))
        put(self, "chunk_rows", whole(self.chunk_rows, 1, "chunk_rows"))
        if self.workers is not None:
            put(self, "workers", whole(self.workers, 0, "--workers", "of 0 or more"))
        if self.limit is not None:
            put(self, "limit", whole(self.limit, 1, "--limit"))
        put(self, "clusters", _clusters(self.clusters))
        if self.spec is not None and not isinstance(self.spec, InputSpec):
            raise HookScopeError(f"The scan's input spec must be an InputSpec, not {self.spec!r}.")
        put(self, "reshape", _reshape(self.reshape))

    # -- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready form (sessions); :meth:`from_dict` gives the same object back."""
        return settings_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ScanSettings:
        """Inverse of :meth:`to_dict`; an unknown key or a bad value is one sentence."""
        return settings_from_dict(cls, d, "scan")

    def replace(self, **changes) -> ScanSettings:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    # -- against a model ------------------------------------------------------------------------
    def resolve(self, loaded) -> ScanSettings:
        """These settings made concrete for ``loaded``: absolute folders, the model's input
        spec when none is set, a class name made its index.

        Raises:
            HookScopeError: A mask folder that is not a folder, a target that is not a class.
        """
        root = Path(self.images).expanduser().resolve()
        masks = Path(self.masks).expanduser().resolve() if self.masks else None
        if masks is not None and not masks.is_dir():
            raise HookScopeError(f"The mask folder {masks} does not exist or is not a folder.")
        target = self.target
        if target not in ("pred", "label"):
            names = loaded.class_names
            target = parse_target(target, names, len(names) if names else None)
        return self.replace(
            images=str(root),
            masks=str(masks) if masks else None,
            spec=self.spec or loaded.input_spec,
            target=target,
        )

    def key(self) -> dict:
        """What makes two scans of one model the same (of resolved settings): the part of a
        scan folder's identity these settings decide; resume needs it equal."""
        if self.spec is None:
            raise HookScopeError("Resolve the scan settings against the model first.")
        return {
            "layer": self.layer,
            "method": self.method,
            "target": self.target,
            "map_size": self.map_size,
            "input_spec": self.spec.to_dict(),
            "images": self.images,
            "masks": self.masks,
            "reshape": None if self.reshape is None else str(self.reshape),
        }


def check_text(
    settings, what: str, required: dict[str, str] | None = None, optional: tuple[str, ...] = ()
) -> None:
    """Strip the text fields of a frozen settings object (``what``: ``"scan"``, ``"atlas"``).

    ``required`` maps a field to its words in the sentence when it is missing or blank;
    ``optional`` fields may be None, and blank text becomes None.
    """
    put = object.__setattr__
    for name, words in (required or {}).items():
        value = getattr(settings, name)
        if not isinstance(value, (str, Path)) or not str(value).strip():
            article = "An" if what[0] in "aeiou" else "A"
            raise HookScopeError(f"{article} {what} needs {words}, not {value!r}.")
        put(settings, name, str(value).strip())
    for name in optional:
        value = getattr(settings, name)
        if value is not None and not isinstance(value, (str, Path)):
            raise HookScopeError(f"The {what}'s {name} must be text, not {value!r}.")
        put(settings, name, (str(value).strip() or None) if value is not None else None)


def settings_to_dict(settings) -> dict:
    """A settings dataclass (``spec`` an InputSpec, ``reshape`` a name or tuple) as JSON-ready
    data; :func:`settings_from_dict` gives the same object back."""
    d = asdict(settings)
    d["spec"] = None if settings.spec is None else settings.spec.to_dict()
    if isinstance(settings.reshape, tuple):
        d["reshape"] = list(settings.reshape)
    return d


def settings_from_dict(cls, d: dict, what: str):
    """Inverse of :func:`settings_to_dict` for settings class ``cls`` (``what``: its name in
    sentences, e.g. ``"scan"``); an unknown or missing key or a bad value is one sentence."""
    if not isinstance(d, dict):
        raise HookScopeError(
            f"{what.capitalize()} settings must be a mapping, not {type(d).__name__}."
        )
    known = {f.name for f in fields(cls)}
    extra = sorted(set(d) - known)
    if extra:
        raise HookScopeError(
            f"Unknown {what} setting '{extra[0]}': use {', '.join(sorted(known))}."
        )
    kw = dict(d)
    if isinstance(kw.get("spec"), dict):
        kw["spec"] = InputSpec.from_dict(kw["spec"])
    if isinstance(kw.get("reshape"), list):
        kw["reshape"] = tuple(kw["reshape"])
    missing = [k for k in ("images", "layer") if k not in kw]
    if missing:
        raise HookScopeError(f"{what.capitalize()} settings need '{missing[0]}'.")
    return cls(**kw)


def whole(
    value, lowest: int, flag: str, bound: str | None = None, highest: int | None = None
) -> int:
    """``value`` as an int from ``lowest`` to ``highest`` (ASCII digits for text), else one
    sentence naming ``flag`` (``bound`` replaces the range's words)."""
    text = value.strip() if isinstance(value, str) else None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if text is not None and text.isascii() and text.isdecimal():
        value, ok = int(text), True
    if not ok or int(value) < lowest or (highest is not None and int(value) > highest):
        top = f" and at most {highest}" if highest is not None else ""
        bound = bound or f"of at least {lowest}{top}"
        raise HookScopeError(f"{flag} must be a whole number {bound}, not {value!r}.")
    return int(value)


def _clusters(value) -> str | int:
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text == "auto":
        return "auto"
    # ASCII digits only: "²".isdigit() is True, int("²") fails.
    ok = not isinstance(value, bool) and text is not None and text.isascii() and text.isdecimal()
    if not ok or int(text) < 1:
        raise HookScopeError(
            f"--clusters must be auto or a whole number of at least 1, not {value}."
        )
    return int(text)


def _target(value) -> str | int:
    if value is None:
        return "pred"
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise HookScopeError(
            f"A scan's target is pred, label, a class index or a class name, not {value!r}."
        )
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise HookScopeError(f"A class index is 0 or more, not {value}.")
        return int(value)
    text = value.strip()
    if not text:
        return "pred"
    return text.lower() if text.lower() in ("pred", "label") else text


def _reshape(value):
    if value is None or isinstance(value, str):
        return value or None
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise HookScopeError(
        f"A scan's reshape is a layout name (nchw, nhwc, tokens:K, HxW) or (h, w), not {value!r}."
    )
