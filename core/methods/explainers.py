"""One registry of every way to get a map: CAMs, attributions and baselines.

Each :class:`Explainer` record says what a method is (``kind``), what it takes (``params``,
the attributions' :class:`~core.methods.attribution.Param` table), whether it needs a layer and
what it costs; :func:`explain` runs any of them and returns an :class:`Explanation`. The CAM,
Attribution, Trust and Sanity docks, the scan, ``evaluate``, the CLI and ``hookscope.explain``
all list and run methods through :data:`EXPLAINERS`; a new method is one :func:`register` call.

**The map rule.** ``Explanation.map`` is always (H, W) float32 in [0, 1] at the input's size:

- CAMs: :func:`~core.methods.cam.compute_cam`'s map (ReLU'd where the method does, bilinear
  upsampling, min-max), unchanged.
- Attributions, signed or not: the magnitude summed over colour channels, ``sum_c |a_c|``,
  min-max scaled (:func:`~core.display.render.magnitude_map`). The sign is dropped: a pixel
  that strongly lowers the score matters as much as one that raises it (as Adebayo et al.
  rank maps). The signed picture ``sum_c a_c`` is :func:`~core.display.render.attribution_map`,
  and ``raw`` keeps the method's own (C, H, W) output.
- Transformer methods: their patch map, upsampled as the CAMs'. ``attnlrp``'s raw is the
  (C, H, W) input relevance and its map the positive relevance summed over each patch
  (:func:`~core.methods.transformers.attnlrp.relevance_map`; ``resolution="pixels"``: per pixel).
- Baselines: their own map (a seeded uniform map, the Sobel edges of the image).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from hookscope.core.display.colormaps import colorize
from hookscope.core.display.figures import overlay
from hookscope.core.display.render import magnitude_map
from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.outputs import CLASSES, output_kind
from hookscope.core.engine.targets import describe_target, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.images import to_display
from hookscope.core.methods.attribution import ATTRIBUTION_METHODS, Param, attribute
from hookscope.core.methods.cam import CAM_METHODS, compute_cam, compute_cam_batch, suggest_layer
from hookscope.core.methods.lrp import lrp
from hookscope.core.methods.metrics import random_map, sobel_map
from hookscope.core.methods.transformers import TRANSFORMER_METHODS, to_input
from hookscope.core.methods.transformers.attnlrp import (
    CONV_GAMMA,
    LINEAR_GAMMA,
    RESOLUTIONS,
    attnlrp,
    relevance_map,
)
from hookscope.core.reporting import Reporter

CAM, ATTRIBUTION, BASELINE, TRANSFORMER = "cam", "attribution", "baseline", "transformer"
KINDS = (CAM, ATTRIBUTION, BASELINE, TRANSFORMER)
"""``transformer``: methods made for vision transformers (rollout, chefer, legrad, attnlrp)."""
NO_PASS, ONE_PASS, PER_CHANNEL, STEPS = "no pass", "one pass", "forwards per channel", "steps"
COSTS = (NO_PASS, ONE_PASS, PER_CHANNEL, STEPS)
"""``cost``: none, one forward (and backward), a forward per channel, many passes."""

FLAT, INFO = "flat", "info"
"""Note kinds: a map that says nothing (zero gradient, all-zero or constant), other facts."""


@dataclass(frozen=True)
class Note:
    """One thing to know about an explanation.

    Attributes:
        kind: :data:`FLAT` (the map says nothing) or :data:`INFO`.
        text: One sentence.
    """

    kind: str
    text: str


@dataclass(frozen=True, eq=False)
class Explanation:
    """One method's map for one image and target.

    Attributes:
        method: Registry name.
        map: (H, W) float32 in [0, 1] at the input's size (the module docstring's rule).
        raw: The method's own output: a CAM's map, an attribution's (C, H, W), a baseline's map.
        target: The resolved target (class index, a target object or the callable given).
        layer: The CAM layer (first of ``layers``), or None.
        notes: What to know, typed (:class:`Note`).
        maps: Layer → map for every layer of a CAM (``map`` is ``maps[layer]``).
        probs: Softmax over the class scores of this input, (K,), or None when not computed
            or the output is not class scores.
        target_label: One phrase naming the target ("class 3 (cat)").
        signed: True when the sign of ``raw`` matters (diverging colour map).
        image: The input as the model sees it, uint8 (H, W, 3), when known (the overlay).
        class_names: Names of the classes, when known (:meth:`to_frame`).
    """

    method: str
    map: np.ndarray
    raw: np.ndarray
    target: object
    layer: str | None = None
    notes: tuple[Note, ...] = ()
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    probs: np.ndarray | None = None
    target_label: str = ""
    signed: bool = False
    image: np.ndarray | None = field(default=None, repr=False)
    class_names: tuple[str, ...] | None = field(default=None, repr=False)

    def overlay(self, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
        """The map coloured with ``cmap`` over the input, uint8 (H, W, 3) (the map alone when
        the input image is unknown)."""
        if self.image is None:
            return colorize(self.map, cmap)
        return overlay(self.image, self.map, cmap, alpha)

    def _repr_png_(self) -> bytes:
        """The overlay as PNG bytes: how a notebook shows an explanation."""
        buf = io.BytesIO()
        Image.fromarray(self.overlay()).save(buf, format="PNG")
        return buf.getvalue()

    def to_frame(self):
        """The class probabilities as a pandas DataFrame (class, name, prob), most likely first.

        Raises:
            HookScopeError: pandas is missing, or the output has no class probabilities.
        """
        if self.probs is None:
            raise HookScopeError(
                "This explanation has no class probabilities (the model's output is not class "
                "scores), so there is no table to make."
            )
        try:
            import pandas as pd
        except ImportError as exc:
            raise HookScopeError("to_frame needs pandas: pip install pandas.") from exc
        p = np.asarray(self.probs, dtype=np.float64)
        names = list(self.class_names or [])
        order = np.argsort(-p, kind="stable")
        return pd.DataFrame(
            {
                "class": order,
                "name": [names[i] if i < len(names) else None for i in order],
                "prob": p[order],
            }
        )


@dataclass(frozen=True)
class Explainer:
    """A registered way of getting a map.

    Attributes:
        name: The one name used by the app, the CLI, the Python API and the tests.
        kind: :data:`CAM`, :data:`ATTRIBUTION` or :data:`BASELINE`.
        title: Display name.
        params: Options beyond model, input and target (:class:`Param` records).
        needs_layer: True when the map comes from a layer's activations.
        cost: One of :data:`COSTS`.
        signed: True when ``raw`` has a meaningful sign.
        run: ``run(record, model, x, target, ctx) -> (maps, raw, notes)``; maps: by layer, the
            map itself (an array, of no layer) or None (the map rule applied to raw).
        aliases: Older names accepted on input (sessions, scripts), never listed.
    """

    name: str
    kind: str
    title: str
    params: tuple[Param, ...]
    needs_layer: bool
    cost: str
    signed: bool
    run: Callable = field(repr=False)
    aliases: tuple[str, ...] = ()

    @property
    def slow(self) -> bool:
        """True when the map costs many passes (show progress, offer cancel)."""
        return self.cost in (PER_CHANNEL, STEPS)

    @property
    def batched(self) -> bool:
        """True when a batch of images costs one forward and one backward."""
        return self.kind == CAM and self.cost == ONE_PASS

    def explain(self, model, x, **kwargs) -> Explanation:
        """:func:`explain` with this method."""
        return explain(model, x, self.name, **kwargs)


EXPLAINERS: dict[str, Explainer] = {}
_ALIASES: dict[str, str] = {}


def register(record: Explainer) -> Explainer:
    """Add a method to :data:`EXPLAINERS` (and its aliases); returns it."""
    if record.kind not in KINDS or record.cost not in COSTS:
        raise ValueError(f"{record.name}: kind must be one of {KINDS}, cost one of {COSTS}")
    EXPLAINERS[record.name] = record
    for alias in record.aliases:
        _ALIASES[alias] = record.name
    return record


def names(kind: str | None = None) -> list[str]:
    """Registered names, in registry order, of one kind or all."""
    return [k for k, r in EXPLAINERS.items() if kind is None or r.kind == kind]


def get(method: str) -> Explainer:
    """The record of ``method`` (or of an alias).

    Raises:
        HookScopeError: Unknown name, with the list of known ones.
    """
    name = _ALIASES.get(method, method)
    if name not in EXPLAINERS:
        raise HookScopeError(f"Unknown method '{method}': use one of {', '.join(EXPLAINERS)}.")
    return EXPLAINERS[name]


def canonical(method: str) -> str:
    """The registry name of ``method`` (an alias maps to its name); unknown names unchanged."""
    return _ALIASES.get(method, method)


# -- the runners -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    layers: list[str] | None
    class_names: Sequence[str] | None
    input_spec: object
    reporter: Reporter | None
    params: dict


def _run_cam(rec, model, x, target, ctx):
    kw = {k: v for k, v in ctx.params.items() if k in ("batch_size", "reshape")}
    maps = compute_cam(
        model,
        x,
        ctx.layers,
        rec.name,
        target,
        class_names=ctx.class_names,
        reporter=ctx.reporter,
        input_spec=ctx.input_spec,
        **kw,
    )
    first = next(iter(maps))
    return dict(maps), maps[first], tuple(Note(FLAT, n) for n in maps.notes)


def _run_attribution(rec, model, x, target, ctx):
    params = dict(ctx.params)
    if ctx.layers and "layer" in {p.name for p in rec.params}:
        params.setdefault("layer", ctx.layers[0])
    out = attribute(
        rec.name,
        model,
        x,
        target,
        class_names=ctx.class_names,
        spec=ctx.input_spec,
        reporter=ctx.reporter,
        **params,
    )
    if isinstance(out, dict):  # e.g. {"attribution": ...}
        out = next(iter(out.values()))
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    raw = np.asarray(out, dtype=np.float32)
    raw = raw[0] if raw.ndim == 4 else raw
    return None, raw, ()


def _run_random(rec, model, x, target, ctx):
    m = random_map(tuple(x.shape[-2:]), int(ctx.params.get("seed", 0)))
    return None, m, ()


def _run_sobel(rec, model, x, target, ctx):
    if ctx.input_spec is None:
        raise HookScopeError("The sobel baseline needs the input spec to see the image.")
    return None, sobel_map(to_display(x, ctx.input_spec)), ()


_CAM_BATCH = Param("batch_size", int, 32, "masked images per forward pass")
for _name, _cls in CAM_METHODS.items():
    register(
        Explainer(
            _name,
            CAM,
            _cls.__name__,
            () if _cls.one_pass else (_CAM_BATCH,),
            True,
            ONE_PASS if _cls.one_pass else PER_CHANNEL,
            False,
            _run_cam,
        )
    )
for _name, _entry in ATTRIBUTION_METHODS.items():
    register(
        Explainer(
            _name,
            ATTRIBUTION,
            _entry.title,
            tuple(_entry.params),
            any(p.name == "layer" for p in _entry.params),
            STEPS if _entry.long else ONE_PASS,
            _entry.signed,
            _run_attribution,
            aliases=(_name.replace("-", "_"),) if "-" in _name else (),
        )
    )
register(
    Explainer(
        "random",
        BASELINE,
        "Random (baseline)",
        (Param("seed", int, 0, "seed of the uniform map"),),
        False,
        NO_PASS,
        False,
        _run_random,
    )
)
register(
    Explainer("sobel", BASELINE, "Sobel edges (baseline)", (), False, NO_PASS, False, _run_sobel)
)


def _run_transformer(rec, model, x, target, ctx):
    entry = TRANSFORMER_METHODS[rec.name]
    grid_map, blocks = entry.func(model, x, target, blocks=ctx.layers, **ctx.params)
    return {blocks[0]: to_input(grid_map, tuple(x.shape[-2:]))}, grid_map, ()


for _name, _tm in TRANSFORMER_METHODS.items():
    register(
        Explainer(
            _name, TRANSFORMER, _tm.title, _tm.params, False, ONE_PASS, False, _run_transformer
        )
    )


def _run_attnlrp(rec, model, x, target, ctx):
    params = dict(ctx.params)
    resolution = params.pop("resolution", RESOLUTIONS[0])
    raw = attnlrp(model, x, target, **params)
    m = relevance_map(model, x, raw, resolution)
    if not ctx.layers:
        return m, raw, ()
    unused = Note(INFO, "attnlrp explains the whole model: the blocks given are unused.")
    return m, raw, (unused,)


register(
    Explainer(
        "attnlrp",
        TRANSFORMER,
        "AttnLRP (CP-LRP, as lxt)",
        (
            Param("conv_gamma", float, CONV_GAMMA, "Gamma rule of the patch embedding"),
            Param("linear_gamma", float, LINEAR_GAMMA, "Gamma rule of the MLPs and the head"),
            Param("resolution", str, RESOLUTIONS[0], "map per patch or per pixel", RESOLUTIONS),
        ),
        False,
        ONE_PASS,
        True,
        _run_attnlrp,
    )
)


def _run_lrp(rec, model, x, target, ctx):
    return None, lrp(model, x, target), ()


register(Explainer("lrp", ATTRIBUTION, "LRP (zennit)", (), False, ONE_PASS, True, _run_lrp))


# -- running one ----------------------------------------------------------------------------
def _check_params(rec: Explainer, params: dict) -> dict:
    known = {p.name for p in rec.params} | ({"reshape"} if rec.kind == CAM else set())
    unknown = sorted(set(params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no options"
        raise HookScopeError(f"{rec.name} does not take {', '.join(unknown)}; it takes {takes}.")
    return {k: v for k, v in params.items() if v is not None}  # None: the method's default


def _layers(layers) -> list[str] | None:
    if layers is None:
        return None
    out = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))
    return out or None


def resolve(model, x, target, class_names=None, input_spec=None):
    """One no-grad forward: the resolved target and softmax probabilities (None if not classes).

    A target that is already an int or a callable is kept as is.
    """
    with torch.no_grad(), eval_mode(model):
        output = forward_model(model, x.detach().to(model_device(model)))
    kind = output_kind(output, class_names, model)
    resolved = resolve_target(target, output, class_names, model=model, spec=input_spec, kind=kind)
    probs = None
    if kind.kind == CLASSES:
        logits = logits_of(output).detach().float()
        probs = torch.softmax(logits.reshape(logits.shape[0], -1), 1).cpu().numpy()
    return resolved, probs


def explain(
    model,
    x: torch.Tensor,
    method: str,
    *,
    layers: Sequence[str] | str | None = None,
    target=None,
    class_names: Sequence[str] | None = None,
    input_spec=None,
    reporter: Reporter | None = None,
    probs: bool = False,
    **params,
) -> Explanation:
    """Run any registered method on one input.

    Args:
        model: Any ``nn.Module``; run in eval mode inside, each submodule's mode restored.
        x: One input, (1, C, H, W), already preprocessed.
        method: A name of :data:`EXPLAINERS` (or an alias).
        layers: CAM layers (None: :func:`~core.methods.cam.suggest_layer`'s pick); the CAM
            layer of guided Grad-CAM.
        target: None (top-1 / the output kind's default), class index or name, a grammar
            string (see :mod:`core.engine.targets`) or callable(output) -> score.
        class_names: Names for a named target.
        input_spec: Preprocessing of ``x`` (the sobel baseline, ``similar:IMAGE``).
        reporter: Progress and cancel for the many-pass methods.
        probs: Also return the softmax probabilities (one more no-grad forward when the
            target is already resolved).
        **params: The method's options (its ``params``).

    Returns:
        An :class:`Explanation`.

    Raises:
        HookScopeError: Unknown method or option, bad input, a target that does not fit.
    """
    rec = get(method)
    opts = _check_params(rec, params)
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise HookScopeError(f"explain takes one input of shape (1, C, H, W), not {shape}.")
    p = None
    if probs or not (isinstance(target, int) or callable(target)):
        target, p = resolve(model, x, target, class_names, input_spec)
    ctx = _Context(_layers(layers), class_names, input_spec, reporter, opts)
    maps, raw, notes = rec.run(rec, model, x, target, ctx)
    if isinstance(maps, np.ndarray):  # the method's own map, of no layer (attnlrp)
        layer, m, maps = None, maps, None
    elif maps:
        layer = next(iter(maps))
        m = maps[layer]
    else:
        layer = ctx.layers[0] if ctx.layers and rec.needs_layer else None
        m = magnitude_map(raw) if rec.kind == ATTRIBUTION else np.asarray(raw, np.float32)
    if rec.kind != CAM and not m.any():
        notes = (*notes, Note(FLAT, f"The {rec.name} map is zero everywhere."))
    return Explanation(
        method=rec.name,
        map=np.ascontiguousarray(m, dtype=np.float32),
        raw=raw,
        target=target,
        layer=layer,
        notes=tuple(notes),
        maps=dict(maps or {}),
        probs=None if p is None else p[0],
        target_label=describe_target(target, class_names),
        signed=rec.signed,
    )


def explain_batch(
    model,
    xs: torch.Tensor,
    method: str,
    *,
    layer: str | None = None,
    targets: Sequence | None = None,
    class_names: Sequence[str] | None = None,
    input_spec=None,
    reporter: Reporter | None = None,
    batch_size: int = 32,
    **params,
) -> list[Explanation]:
    """One explanation per image of ``xs`` (N, C, H, W), in batches where the method allows.

    One-pass CAMs on a classifier (:attr:`Explainer.batched`) cost one forward and one
    backward per ``batch_size`` images (:func:`~core.methods.cam.compute_cam_batch`), with
    maps equal to one image at a time; other methods, and targets that are not class
    indices or names, run image by image.

    Args:
        layer: One CAM layer (None: chosen on the first image, used for all).
        targets: One target per image, or None (each image's top-1).
        batch_size: Images per pass.
        Others: As :func:`explain`.
    """
    rec = get(method)
    opts = _check_params(rec, params)
    if not isinstance(xs, torch.Tensor) or xs.dim() != 4 or xs.shape[0] < 1:
        shape = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
        raise HookScopeError(f"explain_batch takes a batch (N, C, H, W), not {shape}.")
    n = xs.shape[0]
    targets = [None] * n if targets is None else list(targets)
    if len(targets) != n:
        raise HookScopeError(f"Give one target per image: {len(targets)} for {n} images.")
    common = dict(class_names=class_names, input_spec=input_spec, reporter=reporter)
    if rec.needs_layer and layer is None and rec.kind == CAM:
        layer = suggest_layer(
            model, xs[:1], targets[0], class_names=class_names, input_spec=input_spec
        )
    if rec.batched and not opts.get("reshape"):
        idx = _class_indices(targets, class_names)
        if idx is not None:
            try:
                return _cam_batches(rec, model, xs, layer, idx, class_names, batch_size, reporter)
            except HookScopeError:
                pass  # not a classifier: image by image below says what is wrong
    layers = [layer] if layer else None
    out = []
    for i in range(n):
        if reporter is not None:
            reporter.progress(i, n, f"{rec.name} image {i + 1}/{n}")
        out.append(
            explain(
                model,
                xs[i : i + 1],
                rec.name,
                layers=layers,
                target=targets[i],
                probs=True,
                **common,
                **opts,
            )
        )
    return out


def _class_indices(targets, class_names) -> list[int | None] | None:
    """Targets as class indices (None = top-1), or None when one is not a class."""
    out = []
    for t in targets:
        if t is None or isinstance(t, (int, np.integer)):
            out.append(None if t is None else int(t))
        elif isinstance(t, str) and class_names and t in class_names:
            out.append(list(class_names).index(t))
        elif isinstance(t, str) and t.strip().isascii() and t.strip().isdecimal():
            out.append(int(t))
        else:
            return None
    return out


def _cam_batches(rec, model, xs, layer, idx, class_names, batch_size, reporter):
    n, out = xs.shape[0], []
    step = max(int(batch_size), 1)
    for start in range(0, n, step):
        if reporter is not None:
            reporter.progress(start, n, f"{rec.name} images {start + 1}-{min(n, start + step)}")
        chunk = xs[start : start + step]
        want = idx[start : start + step]
        tg = None
        if any(t is not None for t in want):
            if any(t is None for t in want):  # top-1 for the images without a class
                with torch.no_grad(), eval_mode(model):
                    out_ = forward_model(model, chunk.to(model_device(model)))
                top = logits_of(out_).argmax(1).tolist()
                want = [top[i] if t is None else t for i, t in enumerate(want)]
            tg = list(want)
        maps, logits = compute_cam_batch(model, chunk, layer, rec.name, tg)
        probs = torch.softmax(logits.float(), 1).cpu().numpy()
        chosen = logits.argmax(1) if tg is None else torch.as_tensor(tg)
        for i in range(chunk.shape[0]):
            m = maps[i]
            t = int(chosen[i])
            notes = (
                ()
                if m.any()
                else (Note(FLAT, f"The {rec.name} map of {layer} is zero everywhere."),)
            )
            out.append(
                Explanation(
                    rec.name,
                    m,
                    m,
                    t,
                    layer,
                    notes,
                    {layer: m},
                    probs[i],
                    describe_target(t, class_names),
                    False,
                )
            )
    if reporter is not None:
        reporter.progress(n, n, "Done")
    return out
