"""What to explain: turning a user's target into one score per sample, for each output kind.

Grammar (CLI ``--target``, the app's target box, ``target="..."`` in the API):

- class scores: ``C`` (a class index or name);
- dense (N, K, H, W): ``C`` is class C summed over the pixels predicted as C, ``C@mask.png`` over
  a region (pytorch-grad-cam's ``SemanticSegmentationTarget``);
- detections: ``box:i``, the score of detection i (as :func:`~core.engine.outputs.predictions`
  lists them);
- embeddings: ``similar:IMAGE``, the cosine similarity between the embedding of the input and
  of IMAGE (pytorch-grad-cam's ``SimilarityToConceptTarget``).
"""

from __future__ import annotations

import base64
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from hookscope.core.engine.context import eval_mode, forward_model, main_tensor, model_device
from hookscope.core.engine.outputs import (
    CLASSES,
    DENSE,
    DETECTIONS,
    EMBEDDING,
    OutputKind,
    dense_mask,
    detections,
    is_detections,
    output_kind,
)
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import load_image, to_tensor
from hookscope.core.loading.masks import load_mask
from hookscope.core.loading.spec import InputSpec

Target = int | str | Callable[[torch.Tensor], torch.Tensor] | None


def logits_of(output: Any) -> torch.Tensor:
    """Return the class-score tensor from a model output (tensor, tuple, dict, ModelOutput).

    For an embedding ModelOutput (no ``logits``) it is the embedding; detections have none.
    """
    if isinstance(output, torch.Tensor):
        return output
    if is_detections(output):
        raise HookScopeError(
            "The model returns detections (boxes, labels, scores), not class scores; explain a "
            "detection with a box:i target."
        )
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, dict):
        for key in ("logits", "out"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for part in output:
            if isinstance(part, torch.Tensor):
                return part
    raise HookScopeError(
        f"The model returned {type(output).__name__}, not a tensor of class scores; "
        "wrap it so forward returns logits."
    )


def resolve_target(
    target: Target,
    output: Any,
    class_names: Sequence[str] | None = None,
    *,
    model: Any = None,
    spec: Any = None,
    kind: OutputKind | None = None,
) -> int | Callable[[Any], torch.Tensor]:
    """Resolve ``target`` against the model's output on the input being explained.

    Args:
        target: None (the kind's default), a class index or name, a grammar string (``C``,
            ``C@mask.png``, ``box:i``, ``similar:IMAGE``), a :class:`TargetRequest`, or a
            callable mapping the model output to a score.
        output: The model output (or, as before, its class-score tensor).
        class_names: Names used to look up a class name.
        model: The model, needed to embed the reference image of ``similar:IMAGE``.
        spec: Its :class:`~core.loading.spec.InputSpec`, to preprocess that image.
        kind: The output kind when already known.

    Returns:
        For class scores a class index (int), as before; otherwise a :class:`ScoreTarget`
        (``DenseTarget``, ``BoxTarget``, ``SimilarityTarget``, ``EmbeddingNormTarget``); a
        callable is returned unchanged.
    """
    if callable(target):
        return target
    kind = kind or output_kind(output, class_names, model)
    if isinstance(target, RegionTarget):
        if kind.kind != DENSE:
            raise HookScopeError(wrong_form(str(target), kind))
        return target.resolve(class_names)
    request = target if isinstance(target, TargetRequest) else parse_target_text(target)
    if kind.kind == CLASSES and kind.note and request.form == "similar":
        # A 2-D output without class names was only guessed to be scores (its note says to
        # use similar:IMAGE if it is an embedding): the similar: target settles it.
        kind = OutputKind(EMBEDDING, kind.shape, kind.field)
    if kind.kind == CLASSES:
        if request.form != "class":
            raise HookScopeError(_wrong_form(request, kind))
        logits = main_tensor(output, kind).detach()
        if request.value is None:
            return int(logits.reshape(logits.shape[0], -1)[0].argmax())
        return parse_target(request.value, class_names, kind.num_classes)
    if kind.kind == DENSE:
        return _dense_target(request, output, kind, class_names, spec)
    if kind.kind == DETECTIONS:
        if request.form not in ("box", "class") or (
            request.form == "class" and request.value is not None
        ):
            raise HookScopeError(_wrong_form(request, kind))
        i = 0 if request.value is None else int(request.value)
        det = detections(output, kind)[0]  # torchvision's dicts, or DETR's queries read as boxes
        n = int(det["scores"].shape[0])
        if n == 0:
            raise HookScopeError(
                "The model detected nothing in this image, so there is no box to explain; try "
                "another image or lower the model's score threshold."
            )
        if not 0 <= i < n:
            raise HookScopeError(
                f"There is no detection {i}: the model found {n} (box:0 to box:{n - 1})."
            )
        label = int(det["labels"][i]) if "labels" in det else None
        name = class_name(label, class_names) if label is not None else None
        return BoxTarget(i, label, name, kind=kind)
    # embedding
    if request.form == "similar":
        if model is None:
            raise HookScopeError("similar:IMAGE needs the model to embed IMAGE; pass model=.")
        ref = reference_embedding(model, request.path, spec, kind)
        return SimilarityTarget(ref, request.path)
    if request.form == "class" and request.value is None:
        return EmbeddingNormTarget()
    raise HookScopeError(_wrong_form(request, kind))


# What fits each output kind: the engine's phrase, and the app's (which names the clicks).
_FORMS = {
    CLASSES: ("a class index or name", "a class index or name"),
    DENSE: (
        "a class C (its predicted pixels) or C@mask.png",
        "a class index or name (its predicted pixels), C@mask.png, or a click on the mask",
    ),
    DETECTIONS: ("box:i for detection i", "box:i, or a click on a box"),
    EMBEDDING: (
        "similar:IMAGE (cosine similarity to IMAGE's embedding)",
        "similar:IMAGE (the Reference image… button)",
    ),
}


def wrong_form(text: str, kind: OutputKind, *, app: bool = False) -> str:
    """The one sentence for a target that does not fit the output kind."""
    allowed = _FORMS[kind.kind][1 if app else 0]
    return (
        f"The target '{text}' does not fit this model, whose output is {kind.kind} "
        f"{tuple(kind.shape)}; use {allowed}."
    )


def _wrong_form(request: TargetRequest, kind: OutputKind) -> str:
    return wrong_form(request.text, kind)


def _dense_target(request, output, kind, class_names, spec=None):
    pred = dense_mask(output, kind)
    if request.form not in ("class", "region"):
        raise HookScopeError(_wrong_form(request, kind))
    if request.value is None:
        counts = torch.bincount(pred.reshape(-1), minlength=kind.shape[1])
        order = counts.argsort(descending=True).tolist()
        # The most-predicted class, unless it is the background and something else shows.
        c = order[0]
        if counts[order[1]] > 0 and (class_name(c, class_names) or "").strip("_").lower() in (
            "background",
            "bg",
        ):
            c = order[1]
    else:
        c = parse_target(request.value, class_names, kind.num_classes)
    at = clicked_at(request.path) if request.form == "region" else None
    if at is not None:
        return RegionTarget.at(pred.numpy(), *at, category=c).resolve(class_names)
    if request.form == "region":
        mask = region_mask(request.path, spec, tuple(pred.shape))
        where = f"the region in {Path(request.path).name}"
    else:
        mask = (pred == c).float()
        where = "the pixels predicted as it"
        if not mask.any():
            raise HookScopeError(
                f"No pixel is predicted as class {c}, so '{c}' has no region to explain; use "
                f"{c}@mask.png to name one."
            )
    text = f"{c}@{request.path}" if request.form == "region" else str(c)
    return DenseTarget(c, mask, class_name(c, class_names), where, text)


def region_mask(path: str | Path, spec: InputSpec | None, grid: tuple[int, int]) -> torch.Tensor:
    """The (h, w) float mask of ``C@mask.png`` on a dense output's grid.

    The mask gets its photo's preprocessing (:func:`core.loading.masks.load_mask`), so it lands
    on the same input pixels as the object it outlines; then the output grid's resampling.
    Without a spec: the usual resize + centre crop straight to the grid.
    """
    path = Path(path)
    arr = load_mask(path, spec or InputSpec(size=grid), grid)
    mask = torch.from_numpy(arr.astype(np.float32))
    if not mask.any():
        raise HookScopeError(
            f"The mask {path.name} is empty (no pixel >= 128); draw the region white."
        )
    return mask


def embed_image(model, path, spec, kind: OutputKind | None = None) -> torch.Tensor:
    """The model's embedding of an image file, (D,), detached."""
    from_spec = spec if spec is not None else InputSpec()
    x = to_tensor(load_image(path), from_spec)
    with eval_mode(model), torch.no_grad():
        out = forward_model(model, x.to(model_device(model)))
    kind = kind or output_kind(out)
    return main_tensor(out, kind)[0].detach().float()


# model → {(path, mtime, size, spec): embedding}: a reference image is embedded once per model
_REFERENCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def reference_embedding(model, path, spec, kind: OutputKind | None = None) -> torch.Tensor:
    """:func:`embed_image`, computed once per model, reference file (path, mtime, size), spec.

    Every ``similar:IMAGE`` run (each click, each CAM) needs the reference's embedding; the
    file's mtime and size in the key notice a reference image saved anew, the parameters'
    version counters a model trained (in place) since.
    """
    p = Path(path).expanduser()
    try:
        stat = p.stat()
    except OSError as exc:
        raise HookScopeError(f"Reference image {p} does not exist.") from exc
    weights = sum(t._version for t in model.parameters()) if hasattr(model, "parameters") else 0
    key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size, spec, weights)
    try:
        cache = _REFERENCES.setdefault(model, {})
    except TypeError:  # a model that cannot be weakly referenced: no cache
        return embed_image(model, p, spec, kind)
    if key not in cache:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        cache[key] = embed_image(model, p, spec, kind)
    return cache[key]


def presolve(target: Target, model, spec) -> Target:
    """A ``similar:IMAGE`` target as its resolved :class:`SimilarityTarget`, else as it is.

    Called before hooks are attached, so the reference image's forward pass is neither
    recorded with the input's nor changed by an edit.
    """
    if not isinstance(target, str) or isinstance(target, RegionTarget):
        return target
    request = parse_target_text(target)
    if request.form != "similar" or model is None:
        return target
    return SimilarityTarget(reference_embedding(model, request.path, spec), request.path)


def is_number(text: str) -> bool:
    """True for a plain ASCII decimal number ("12"); "²" or "١٢" pass ``str.isdigit`` but are
    no index anyone typed on purpose (and ``int("²")`` fails)."""
    return text.isascii() and text.isdecimal()


def parse_target(
    target: int | str, class_names: Sequence[str] | None, n_classes: int | None
) -> int:
    """Class index for an index or a typed index / class name (any case).

    Raises:
        HookScopeError: Unknown name, or an index outside ``0 .. n_classes - 1``.
    """
    if isinstance(target, str):
        text = target.strip()
        if is_number(text.removeprefix("-")):
            target = int(text)
        else:
            names = [n.lower() for n in (class_names or [])]
            if text.lower() not in names:
                hint = f" (e.g. {', '.join(list(class_names)[:4])})" if class_names else ""
                raise HookScopeError(
                    f"Unknown class name '{text}': use a class index or one of the "
                    f"model's class names{hint}."
                )
            target = names.index(text.lower())
    if isinstance(target, bool) or not isinstance(target, int):
        raise HookScopeError(f"A target must be a class index or name, not {target!r}.")
    if n_classes and not 0 <= target < n_classes:
        raise HookScopeError(
            f"Target class {target} is out of range: the model has {n_classes} classes "
            f"(0 to {n_classes - 1})."
        )
    return target


def target_scores(target: int | Callable, output: Any) -> torch.Tensor:
    """Return one score per sample, shape (N,), for a resolved target."""
    if callable(target):
        score = target(output)
        if not isinstance(score, torch.Tensor):
            score = torch.as_tensor(score)
        return score.reshape(-1) if score.dim() else score.reshape(1)
    logits = logits_of(output)
    if logits.dim() == 4:  # never flatten a dense map into K*H*W "classes"
        return logits[:, target].sum(dim=(-2, -1))
    return logits.reshape(logits.shape[0], -1)[:, target]


# -- the grammar -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetRequest:
    """A parsed target string, before it meets a model output.

    Attributes:
        form: ``"class"`` (``C`` or empty), ``"region"`` (``C@mask.png``), ``"box"``
            (``box:i``) or ``"similar"`` (``similar:IMAGE``).
        value: Class index/name text, detection index, or None (the default).
        path: Mask or reference image path.
        text: The text as typed.
    """

    form: str
    value: str | int | None = None
    path: str | None = None
    text: str = ""


def parse_target_text(text: int | str | None) -> TargetRequest:
    """Parse the ``--target`` grammar (no model needed); one sentence when malformed."""
    if text is None:
        return TargetRequest("class", None, None, "")
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise HookScopeError(f"A target must be a class index or name, not {text!r}.")
    if isinstance(text, int):
        return TargetRequest("class", text, None, str(text))
    raw = text.strip()
    if not raw:
        return TargetRequest("class", None, None, "")
    low = raw.lower()
    if low.startswith("box:"):
        num = raw[4:].strip()
        if not is_number(num):
            raise HookScopeError(
                f"Bad target '{raw}': write box:i with i a detection number, e.g. box:0."
            )
        return TargetRequest("box", int(num), None, raw)
    if low.startswith("similar:"):
        path = raw[len("similar:") :].strip()
        if not path:
            raise HookScopeError(
                "Bad target 'similar:': name a reference image, e.g. similar:dog.jpg."
            )
        return TargetRequest("similar", None, path, raw)
    if "@" in raw:
        cls, _, path = raw.partition("@")
        if not cls.strip() or not path.strip():
            raise HookScopeError(
                f"Bad target '{raw}': write C@mask.png with C a class index or name."
            )
        return TargetRequest("region", cls.strip(), path.strip(), raw)
    return TargetRequest("class", raw, None, raw)


# -- resolved targets: callables over the whole output -----------------------------------------
class ScoreTarget:
    """A resolved target: ``target(output) -> (N,)`` scores.

    Attributes:
        index: Class index (dense), detection index (box), or None (embedding).
        text: The grammar form, e.g. ``"15"``, ``"15@mask.png"``, ``"box:0"``.
        label: Human description for titles and notes.
    """

    index: int | None = None
    text: str = ""
    label: str = ""

    def __call__(self, output: Any) -> torch.Tensor:
        raise NotImplementedError


class DenseTarget(ScoreTarget):
    """Class ``category`` summed over ``mask`` (H, W): ``SemanticSegmentationTarget``."""

    def __init__(self, category: int, mask, name=None, where="the mask", text=None):
        self.index = int(category)
        self.mask = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        self.text = text if text is not None else str(category)
        who = f"{category} ({name})" if name else f"{category}"
        self.label = f"class {who} over {where} ({int(self.mask.sum())} px)"

    def __call__(self, output):
        t = main_tensor(output, output_kind(output))
        mask = self.mask.to(t.device, t.dtype)
        if t.shape[-2:] != mask.shape:
            mask = F.interpolate(mask[None, None], size=t.shape[-2:], mode="nearest")[0, 0]
        return (t[:, self.index] * mask).sum(dim=(-2, -1))


def connected_region(mask: np.ndarray, row: int, col: int) -> tuple[int, np.ndarray]:
    """The class at pixel (row, col) of ``mask`` and its 4-connected region there (bool h×w).

    Numpy only, so the app's UI thread can call it on a click.
    """
    mask = np.asarray(mask)
    h, w = mask.shape
    if not (0 <= row < h and 0 <= col < w):
        raise HookScopeError(f"Pixel ({row}, {col}) is outside the {h}x{w} prediction.")
    cls = int(mask[row, col])
    labels, _ = ndimage.label(mask == cls)  # default structure: 4-connected
    return cls, labels == labels[row, col]


def region_target(
    mask: np.ndarray | torch.Tensor,
    row: int,
    col: int,
    class_names: Sequence[str] | None = None,
) -> DenseTarget:
    """The class predicted at pixel (row, col) over its connected region there (a click).

    Args:
        mask: Predicted class per pixel (h, w) at the output's size (``ProbeResult.mask``).
        row: Pixel row in ``mask`` coordinates.
        col: Pixel column in ``mask`` coordinates.
        class_names: For the target's label.
    """
    return RegionTarget.at(np.asarray(mask), row, col).resolve(class_names)


class RegionTarget(str):
    """A clicked region of a dense prediction, kept in memory: class C over a fixed mask.

    The text is the grammar ``C@(row,col)`` (the class and the output pixel clicked), so a
    target box, a title, a session or a script shows something readable and no file is
    written; the mask itself stays with the object, so the region does not move when the
    image or the model changes afterwards. Equal only to a region with the same mask.

    Attributes:
        category: The class C.
        mask: The region, bool (h, w) at the output's size.
        row: Clicked row in mask coordinates.
        col: Clicked column.
    """

    category: int
    mask: np.ndarray
    row: int
    col: int

    def __new__(cls, category: int, mask, row: int, col: int):
        self = super().__new__(cls, f"{int(category)}@({int(row)},{int(col)})")
        self.category, self.row, self.col = int(category), int(row), int(col)
        self.mask = np.array(mask, dtype=bool)
        self.mask.flags.writeable = False
        return self

    @classmethod
    def at(cls, pred: np.ndarray, row: int, col: int, category: int | None = None):
        """The connected region of the class predicted at (row, col) of ``pred`` (h, w)."""
        c, region = connected_region(pred, row, col)
        if category is not None and c != category:
            raise HookScopeError(
                f"Pixel ({row}, {col}) is predicted as class {c}, not {category}; click the "
                "region again or name a mask file."
            )
        return cls(c, region, row, col)

    def resolve(self, class_names: Sequence[str] | None = None) -> DenseTarget:
        """The score target: class C summed over the mask."""
        where = f"the region at ({self.row}, {self.col})"
        name = class_name(self.category, class_names)
        return DenseTarget(self.category, self.mask, name, where, str(self))

    def save(self, path: str | Path) -> Path:
        """Write the mask as a white-on-black PNG (``C@file.png`` reproduces the target)."""
        from PIL import Image

        path = Path(path)
        Image.fromarray(self.mask.astype(np.uint8) * 255).save(path)
        return path

    def to_dict(self) -> dict:
        """Compact JSON data: class, click, mask shape and its bits (packed, base64)."""
        bits = base64.b64encode(np.packbits(self.mask.ravel()).tobytes()).decode("ascii")
        return {
            "class": self.category,
            "row": self.row,
            "col": self.col,
            "shape": list(self.mask.shape),
            "bits": bits,
        }

    @classmethod
    def from_dict(cls, data: dict) -> RegionTarget:
        """The region :meth:`to_dict` wrote; a damaged one is one sentence."""
        try:
            h, w = (int(v) for v in data["shape"])
            packed = np.frombuffer(base64.b64decode(data["bits"]), dtype=np.uint8)
            mask = np.unpackbits(packed)[: h * w].reshape(h, w)
            return cls(int(data["class"]), mask, int(data["row"]), int(data["col"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise HookScopeError(
                "The saved region target is damaged; click the region again."
            ) from exc

    def __eq__(self, other) -> bool:
        same = str.__eq__(self, other)
        if same is True and isinstance(other, RegionTarget):
            return bool(np.array_equal(self.mask, other.mask))
        return same

    def __ne__(self, other) -> bool:
        same = self.__eq__(other)
        return same if same is NotImplemented else not same

    __hash__ = str.__hash__

    def __reduce__(self):
        return (RegionTarget, (self.category, self.mask, self.row, self.col))


def clicked_at(path: str | None) -> tuple[int, int] | None:
    """``(row, col)`` for the ``(row,col)`` of ``C@(row,col)``, else None (a mask file)."""
    text = (path or "").strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    parts = [t.strip() for t in text[1:-1].split(",")]
    if len(parts) != 2 or not all(is_number(t) for t in parts):
        return None
    return int(parts[0]), int(parts[1])


def check_target(
    text,
    kind: OutputKind | None,
    class_names: Sequence[str] | None = None,
    *,
    n_classes: int | None = None,
    detections: int | None = None,
    app: bool = False,
) -> int | str | None:
    """Validate a target before any run: the value to keep, or one sentence.

    Args:
        text: A class index, the ``--target`` grammar, None, or a :class:`RegionTarget`.
        kind: The model's output kind when known (None: only the grammar is checked).
        class_names: Names a class may be given by.
        n_classes: Class count when ``kind`` does not say.
        detections: How many boxes the last run found (None: unknown).
        app: Word the wrong-form sentence for the app (clicks, buttons).

    Returns:
        None (the kind's default), an int for a class, the :class:`RegionTarget` itself,
        else the grammar text (``box:i``, ``C@path``, ``C@(row,col)``, ``similar:path``).
    """
    which = kind.kind if kind is not None else None
    if isinstance(text, RegionTarget):
        if which not in (None, DENSE):
            raise HookScopeError(wrong_form(str(text), kind, app=app))
        return text
    request = parse_target_text(text)
    names = list(class_names or [])
    if request.form == "class":
        if request.value is None:
            return None
        if which in (DETECTIONS, EMBEDDING):
            raise HookScopeError(wrong_form(request.text, kind, app=app))
        n = (kind.num_classes if kind is not None else None) or n_classes
        return parse_target(request.value, names, n or len(names))
    wanted = {"region": DENSE, "box": DETECTIONS, "similar": EMBEDDING}[request.form]
    if which is not None and which != wanted:
        raise HookScopeError(wrong_form(request.text, kind, app=app))
    if request.form == "box":
        return _check_box(request.value, detections)
    at = clicked_at(request.path) if request.form == "region" else None
    path = Path(request.path).expanduser()
    if at is None and not path.is_file():
        what = "Mask file" if request.form == "region" else "Reference image"
        raise HookScopeError(f"{what} {path} does not exist.")
    if request.form == "similar":
        return f"similar:{path}"
    c = parse_target(request.value, names, kind.num_classes if kind is not None else None)
    return f"{c}@({at[0]},{at[1]})" if at is not None else f"{c}@{path}"


def _check_box(i: int, detections: int | None) -> str:
    if detections == 0:
        raise HookScopeError(
            "The model detected nothing in this image, so there is no box to explain."
        )
    if detections is not None and i >= detections:
        raise HookScopeError(
            f"There is no detection {i}: the model found {detections} "
            f"(box:0 to box:{detections - 1})."
        )
    return f"box:{i}"


class BoxTarget(ScoreTarget):
    """The score of detection ``i`` of each image (0 where an image has fewer detections)."""

    def __init__(self, i: int, label: int | None = None, name: str | None = None, kind=None):
        self.index = int(i)
        self.kind = kind  # how a DETR-style output scores its queries
        self.text = f"box:{i}"
        what = name or (f"class {label}" if label is not None else "")
        self.label = f"detection {i}" + (f" ({what})" if what else "")

    def __call__(self, output):
        scores = []
        for det in detections(output, self.kind):
            s = det["scores"]
            scores.append(s[self.index] if s.shape[0] > self.index else s.sum() * 0)
        return torch.stack(scores)


class SimilarityTarget(ScoreTarget):
    """Cosine similarity to a reference embedding: ``SimilarityToConceptTarget``."""

    def __init__(self, reference: torch.Tensor, source: str | None = None):
        self.reference = reference.detach().reshape(-1)
        self.text = f"similar:{source}" if source else "similar"
        self.label = f"similarity to {Path(source).name}" if source else "similarity"

    def __call__(self, output):
        emb = main_tensor(output, output_kind(output))
        ref = self.reference.to(emb.device, emb.dtype)
        return F.cosine_similarity(emb, ref[None].expand_as(emb), dim=1)


class EmbeddingNormTarget(ScoreTarget):
    """Half the squared norm of the embedding: the default when no reference image is given."""

    text = ""
    label = "the embedding's norm (no reference image; use similar:IMAGE)"

    def __call__(self, output):
        emb = main_tensor(output, output_kind(output))
        return 0.5 * (emb.float() ** 2).sum(dim=1)


def describe_target(target, class_names: Sequence[str] | None = None) -> str:
    """One phrase naming a resolved target, for titles and notes."""
    if isinstance(target, ScoreTarget):
        return target.label
    if isinstance(target, int):
        name = class_name(target, class_names)
        return f"class {target}" + (f" ({name})" if name else "")
    return "a custom target"


def class_name(index: int, class_names: Sequence[str] | None) -> str | None:
    """Return the name of class ``index`` or None when unnamed."""
    if class_names and 0 <= index < len(class_names):
        return class_names[index]
    return None
