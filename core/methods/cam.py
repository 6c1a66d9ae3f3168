"""Class activation maps: Grad-CAM and its family, one small class per method.

Definitions follow pytorch-grad-cam 1.5.x so results can be checked against it. Shared work
lives once in :func:`compute_cam`: hooks, target, one forward, one backward that stops at the
hooked outputs (``torch.autograd.grad``, no parameter ``.grad`` touched), token reshaping,
ReLU, bilinear upsampling and min-max normalisation.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hookscope.core.display.render import normalize
from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.guard import cancel_checks
from hookscope.core.engine.hooks import hook_count, resolve_modules
from hookscope.core.engine.layouts import (
    Layout,
    LayoutRecorder,
    ModelLayouts,
    NoGridError,
    analyse,
    cached,
    latest,
    layout_for,
    remember,
)
from hookscope.core.engine.outputs import batch_size as output_batch_size
from hookscope.core.engine.targets import Target, logits_of, resolve_target, target_scores
from hookscope.core.errors import HookScopeError
from hookscope.core.reporting import Reporter, quiet

Reshape = Callable[[torch.Tensor], torch.Tensor] | tuple[int, int] | str | Layout | None


class CamMaps(dict):
    """Layer name → map (H, W) float32 in [0, 1], plus what the user should know.

    A plain dict in every other way, so ``maps["layer4"]`` works as before.

    Attributes:
        notes: One line per flat result (all-zero or constant map, all-zero gradient).
        layouts: Layer name → the :class:`~core.engine.layouts.Layout` its output was read
            with (absent for a callable reshape).
    """

    def __init__(self, *args, notes=(), layouts=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes: tuple[str, ...] = tuple(notes)
        self.layouts: dict[str, Layout] = dict(layouts or {})


CAM_METHODS: dict[str, type[CamMethod]] = {}


def register(cls: type[CamMethod]) -> type[CamMethod]:
    """Class decorator: add a method to :data:`CAM_METHODS` under ``cls.name``."""
    CAM_METHODS[cls.name] = cls
    return cls


# -- what every method sees --------------------------------------------------------------------
@dataclass
class Layer:
    """One hooked layer after the forward (and backward) pass.

    Attributes:
        name: Qualified module name.
        module: The module.
        raw: Its output as the model produced it (detached), e.g. (1, T, C) for tokens.
        acts: The same arranged as a grid, (1, C, h, w).
        grads: Gradient of the target score wrt ``acts``, (1, C, h, w), or None.
        to_grid: Turns a raw-shaped tensor into the grid layout.
        channel_dim: Axis of ``raw`` that holds the channels.
        call: Which call of the module (0-based) ``raw`` comes from.
    """

    name: str
    module: nn.Module
    raw: torch.Tensor
    acts: torch.Tensor
    grads: torch.Tensor | None
    to_grid: Callable[[torch.Tensor], torch.Tensor]
    channel_dim: int
    call: int
    layout: Layout | None = None


@dataclass
class Run:
    """State shared by the methods of one :func:`compute_cam` call."""

    model: nn.Module
    x: torch.Tensor
    target: int | Callable
    score: float
    batch_size: int
    reporter: Reporter
    total: int = 0
    done: int = 0
    extra: dict = field(default_factory=dict)

    def step(self, n: int, message: str) -> None:
        """Count ``n`` units of work done; raises :class:`Cancelled` when asked to stop."""
        self.done += n
        self.reporter.progress(self.done, max(self.total, self.done), message)

    def scores(self, output) -> torch.Tensor:
        """Target score per sample of a batched output, shape (N,)."""
        s = target_scores(self.target, output).reshape(-1)
        n = output_batch_size(output)
        if s.numel() != n:  # a callable that sums over the batch: score samples one by one
            logits = logits_of(output)
            s = torch.stack([target_scores(self.target, logits[i : i + 1]).sum() for i in range(n)])
        return s.float()


class CamMethod:
    """Base class: ``cam = sum_c weights[c] * acts[c]``; subclasses override :meth:`weights`.

    Methods that build the map differently override :meth:`cam` instead.
    """

    name = ""
    uses_gradients = True
    one_pass = True  # the map needs only the layer's activations (and gradients)

    def work(self, layer: Layer) -> int:
        """Units of progress this layer costs (forward passes for perturbation methods)."""
        return 0

    def weights(self, run: Run, layer: Layer) -> torch.Tensor:
        """Channel weights, shape (C,)."""
        raise NotImplementedError

    def cam(self, run: Run, layer: Layer) -> torch.Tensor:
        """The map at the layer's resolution, (h, w), before ReLU."""
        w = self.weights(run, layer)
        return (w[:, None, None] * layer.acts[0]).sum(0)

    def field(self, run: Run, layer: Layer) -> torch.Tensor:
        """Weights α (C, h, w) with ``cam = Σ_c α_c(p) · acts_c(p)``; per-channel weights are
        the same at every position. Restricted maps (:mod:`core.methods.conditional`) use it.

        Raises:
            HookScopeError: The method's map is not a weighted sum of the channels.
        """
        if type(self).cam is not CamMethod.cam:
            raise HookScopeError(
                f"{self.name} is not a weighted sum of the channels, so it has no map per "
                "channel or concept; use gradcam or hirescam."
            )
        return self.weights(run, layer)[:, None, None].expand_as(layer.acts[0])


@register
class GradCAM(CamMethod):
    """Grad-CAM: channel weight = spatial mean of the gradient."""

    name = "gradcam"

    def weights(self, run, layer):
        return layer.grads[0].mean(dim=(1, 2))


@register
class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (eq. 19 of arXiv:1710.11063, as pytorch-grad-cam computes it)."""

    name = "gradcam++"

    def weights(self, run, layer):
        a, g = layer.acts[0], layer.grads[0]
        g2 = g * g
        g3 = g2 * g
        sum_a = a.sum(dim=(1, 2), keepdim=True)
        aij = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        aij = torch.where(g != 0, aij, torch.zeros_like(aij))
        return (g.clamp(min=0) * aij).sum(dim=(1, 2))


@register
class XGradCAM(CamMethod):
    """XGrad-CAM: gradient weighted by the activation's share of its channel sum."""

    name = "xgradcam"

    def weights(self, run, layer):
        a, g = layer.acts[0], layer.grads[0]
        sum_a = a.sum(dim=(1, 2), keepdim=True)
        return (g * a / (sum_a + 1e-7)).sum(dim=(1, 2))


@register
class HiResCAM(CamMethod):
    """HiResCAM: element-wise gradient × activation, summed over channels."""

    name = "hirescam"

    def cam(self, run, layer):
        return (layer.grads[0] * layer.acts[0]).sum(0)

    def field(self, run, layer):
        return layer.grads[0]


@register
class LayerCAM(CamMethod):
    """LayerCAM: positive gradient × activation, summed over channels."""

    name = "layercam"

    def cam(self, run, layer):
        return (layer.grads[0].clamp(min=0) * layer.acts[0]).sum(0)

    def field(self, run, layer):
        return layer.grads[0].clamp(min=0)


@register
class EigenCAM(CamMethod):
    """EigenCAM: projection on the first principal component of the activations.

    The SVD's sign is arbitrary; like pytorch-grad-cam we keep numpy's and apply the ReLU
    after, so a map can come out as the "negative" of the object.
    """

    name = "eigencam"
    uses_gradients = False

    def cam(self, run, layer):
        a = layer.acts[0].cpu().numpy().astype(np.float32)
        a = np.nan_to_num(a, nan=0.0)
        flat = a.reshape(a.shape[0], -1).T  # (h*w, C)
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        proj = (flat @ vt[0]).reshape(a.shape[1:])
        return torch.from_numpy(np.ascontiguousarray(proj, dtype=np.float32))


class PerturbationCAM(CamMethod):
    """Base of the methods that score a forward pass per channel instead of using gradients."""

    uses_gradients = False
    one_pass = False

    def work(self, layer):
        return int(layer.acts.shape[1])


@register
class ScoreCAM(PerturbationCAM):
    """Score-CAM: softmax of the target score of the input masked by each upsampled channel.

    Masks use ``align_corners=True`` bilinear upsampling and per-channel min-max, like
    pytorch-grad-cam. Channels that give the same mask are scored once.
    """

    name = "scorecam"

    def weights(self, run, layer):
        acts = layer.acts.to(run.x.device)
        n_ch = acts.shape[1]
        size = run.x.shape[-2:]
        # Channels whose min-max normalised maps are equal (all the dead ones, and e.g. those
        # with a single positive cell at the same place) give the same mask: score one each.
        flat = acts[0].reshape(n_ch, -1)
        lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        norm = torch.where(hi > lo, (flat - lo) / (hi - lo), torch.zeros_like(flat))
        _, inverse = torch.unique(norm, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), n_ch, dtype=torch.long, device=acts.device)
        first.scatter_reduce_(0, inverse, torch.arange(n_ch, device=acts.device), "amin")
        group = torch.bincount(inverse).cpu()
        reps = first.cpu().tolist()
        rep_scores = torch.empty(len(reps))
        scorer = inference_model(run.model)
        bs = max(1, run.batch_size)
        for i in range(0, len(reps), bs):
            idx = reps[i : i + bs]
            # Cancel is checked before every module of the scoring forward, not only per batch.
            with torch.inference_mode(), cancel_checks(scorer, run.reporter):
                up = F.interpolate(acts[:, idx], size=size, mode="bilinear", align_corners=True)[0]
                lo_u = up.amin(dim=(1, 2), keepdim=True)
                hi_u = up.amax(dim=(1, 2), keepdim=True)
                masks = (up - lo_u) / (hi_u - lo_u + 1e-8)
                # channels_last input takes oneDNN's faster conv path on CPU.
                batch = (run.x * masks[:, None]).contiguous(memory_format=torch.channels_last)
                rep_scores[i : i + len(idx)] = run.scores(scorer(batch)).cpu()
            run.step(int(group[i : i + len(idx)].sum()), f"{self.name} {layer.name}")
        scores = rep_scores[inverse.cpu()]
        return torch.softmax(scores, dim=0).to(layer.acts.device)


_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_model(model: nn.Module) -> nn.Module:
    """A faster eval-only copy of ``model`` for many scoring forwards, or ``model`` itself.

    Score-CAM runs hundreds of forwards. torch.fx folds BatchNorm into the convolutions and,
    on CPU, runs convolutions in oneDNN's blocked layout (``optimize_for_inference``); scores
    agree to ~1e-6. The copy is cached per model and rebuilt when a parameter or buffer
    changes; models torch.fx cannot trace run as they are.
    """
    if model.training or isinstance(model, torch.jit.ScriptModule) or hook_count(model):
        return model  # a traced copy would drop the user's hooks (e.g. activation edits)
    tensors = [*model.parameters(), *model.buffers()]
    key = tuple((t.data_ptr(), t._version) for t in tensors)
    hit = _FUSED.get(model)
    if hit is not None and hit[0] == key:
        return hit[1] or model
    fast = None
    try:
        from torch.fx.experimental import optimization as fx_opt

        on_cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = (fx_opt.optimize_for_inference if on_cpu else fx_opt.fuse)(model).eval()
    except Exception:  # untraceable models (data-dependent control flow, ...) run as is
        fast = None
    _FUSED[model] = (key, fast)
    return fast or model


@register
class AblationCAM(PerturbationCAM):
    """Ablation-CAM: relative drop of the target score when one channel is ablated.

    A channel is set to 0 when the layer's minimum is 0 (after a ReLU), else to min - 1e7.
    pytorch-grad-cam compounds that offset within a batch (min - k·1e7 for the k-th row); we
    use min - 1e7 for every row so the result does not depend on the batch size.
    """

    name = "ablationcam"

    def weights(self, run, layer):
        raw = layer.raw.to(run.x.device)
        cdim = layer.channel_dim
        n_ch = raw.shape[cdim]
        low = raw.min()
        value = 0.0 if float(low) == 0.0 else float(low) - 1e7
        scores = torch.empty(n_ch)
        bs = max(1, run.batch_size)
        for i in range(0, n_ch, bs):
            idx = torch.arange(i, min(i + bs, n_ch))
            batch = raw.expand(len(idx), *raw.shape[1:]).clone()
            view = batch.movedim(cdim, 1)  # a view: writes land in ``batch``
            view[torch.arange(len(idx)), idx] = value
            scores[i : i + len(idx)] = self._forward(run, layer, batch).cpu()
            run.step(len(idx), f"{self.name} {layer.name}")
        orig = run.score
        return ((orig - scores) / orig).to(layer.acts.device)

    @staticmethod
    def _forward(run: Run, layer: Layer, batch: torch.Tensor) -> torch.Tensor:
        """Scores with the layer's output replaced by ``batch``.

        The rest of the network broadcasts a 1-sample input against the batch, so layers before
        the hooked one run once instead of once per channel; a model that cannot (e.g. it
        concatenates along the batch) is rerun with the input repeated.
        """
        calls = [0]

        def swap(module, args, output):
            calls[0] += 1
            return batch if calls[0] - 1 == layer.call else None

        n = batch.shape[0]
        handle = layer.module.register_forward_hook(swap)
        try:
            with torch.inference_mode(), cancel_checks(run.model, run.reporter):
                if not run.extra.get("no_broadcast"):
                    try:
                        out = run.model(run.x)
                        if output_batch_size(out) == n:
                            return run.scores(out)
                    except (RuntimeError, ValueError, IndexError):
                        pass
                    run.extra["no_broadcast"] = True
                calls[0] = 0
                return run.scores(run.model(run.x.expand(n, *run.x.shape[1:]).contiguous()))
        finally:
            handle.remove()


# -- the shared pipeline ----------------------------------------------------------------------
def compute_cam(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str] | str | None,
    method: str = "gradcam",
    target: Target = None,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    reshape: Reshape | dict[str, Reshape] = None,
    reporter: Reporter | None = None,
    input_spec=None,
) -> CamMaps:
    """Class activation maps for several layers from one forward (and one backward) pass.

    Args:
        model: Any ``nn.Module``; run in eval mode inside, each submodule's mode restored.
        x: One input, (1, C, H, W).
        layers: Qualified module names (``model.named_modules()``), one name, or None for
            :func:`suggest_layer`'s pick.
        method: A key of :data:`CAM_METHODS`.
        target: None (the output kind's default), class index or name, a grammar string
            (``C``, ``C@mask.png``, ``box:i``, ``similar:IMAGE``; see
            :mod:`core.engine.targets`), or callable(output) -> score.
        class_names: Names for a string target.
        batch_size: Forward batch size of ScoreCAM / AblationCAM.
        reshape: How to arrange a layer's output as (N, C, h, w): None (read from evidence,
            :mod:`core.engine.layouts`), ``"nchw"``, ``"nhwc"``, ``"tokens:K"``, ``"HxW"`` or
            ``(h, w)`` for tokens, or a callable like pytorch-grad-cam's ``reshape_transform``;
            or a dict layer name → one of those.
        reporter: Progress and cancel (ScoreCAM / AblationCAM report per batch).
        input_spec: Preprocessing of the reference image of ``similar:IMAGE``.

    Returns:
        :class:`CamMaps`: layer name → float32 map (H, W) in [0, 1] at the input's size, with
        ``notes`` (one line per all-zero or constant map, or all-zero gradient).

    Raises:
        HookScopeError: Unknown method or layer, a layer without a spatial map, bad input.
        Cancelled: When the reporter was cancelled.
    """
    if method not in CAM_METHODS:
        raise HookScopeError(f"Unknown CAM method '{method}': use one of {', '.join(CAM_METHODS)}.")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise HookScopeError(f"compute_cam takes one image of shape (1, C, H, W), not {shape}.")
    if layers is None:
        layers = [suggest_layer(model, x, target, class_names=class_names, input_spec=input_spec)]
    names = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))
    if not names:
        raise HookScopeError("No layer given for the CAM: pick at least one layer, e.g. layer4.")
    impl = CAM_METHODS[method]()
    reporter = reporter or quiet()
    reporter.check()
    modules = resolve_modules(model, names)
    x = x.detach().to(model_device(model))
    record = _needs_layouts(model, x, names, reshape)
    with eval_mode(model):
        output, captured = _forward(model, x, modules, impl.uses_gradients, record)
        resolved = resolve_target(target, output, class_names, model=model, spec=input_spec)
        score = target_scores(resolved, output).sum()
        grads = _backward(score, captured, names) if impl.uses_gradients else {}
        try:
            layer_data = [
                _layer(model, n, modules[n], captured[n], grads.get(n), reshape, x.shape)
                for n in names
            ]
        except NoGridError as exc:
            hint = suggest_layer(model, x, resolved, class_names=class_names)
            raise HookScopeError(f"{str(exc).rstrip('.')} such as '{hint}'.") from exc
        run = Run(model, x, resolved, float(score.detach()), batch_size, reporter)
        return _maps(impl, run, layer_data)


def _needs_layouts(model, x, names, reshape) -> bool:
    """True when some layer's layout must come from evidence not gathered yet."""
    if cached(model, x.shape) is not None:
        return False
    if isinstance(reshape, dict):
        return any(reshape.get(n) is None for n in names)
    return reshape is None


def compute_cam_batch(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    targets: Sequence[int] | torch.Tensor | None = None,
    *,
    reshape: Reshape = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """One layer's maps for every image of a batch from one forward and one backward pass.

    Sample ``i``'s map is :func:`compute_cam` of ``x[i:i+1]`` with target ``targets[i]``: the
    backward differentiates the sum of the per-sample scores, and in eval mode samples do not
    mix, so each gradient is that sample's own. Only one-pass methods (all but ScoreCAM and
    AblationCAM, which score a forward per channel of one image).

    Args:
        model: A classifier whose output gives (N, K) class scores.
        x: A batch, (N, C, H, W).
        layer: Qualified module name.
        method: A key of :data:`CAM_METHODS` with ``one_pass``.
        targets: Class index per sample; None: each sample's top-1 class.
        reshape: As for :func:`compute_cam`.

    Returns:
        ``(maps, logits)``: float32 (N, H, W) in [0, 1] and the detached (N, K) scores.
    """
    if method not in CAM_METHODS:
        raise HookScopeError(f"Unknown CAM method '{method}': use one of {', '.join(CAM_METHODS)}.")
    impl = CAM_METHODS[method]()
    if not impl.one_pass:
        raise HookScopeError(
            f"{method} scores a forward pass per channel of one image, so it has no batched "
            "form; compute it image by image with compute_cam."
        )
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise HookScopeError(f"compute_cam_batch takes a batch (N, C, H, W), not {shape}.")
    n = x.shape[0]
    modules = resolve_modules(model, [layer])
    x = x.detach().to(model_device(model))
    with eval_mode(model):
        record = _needs_layouts(model, x[:1], [layer], reshape)
        output, captured = _forward(model, x, modules, impl.uses_gradients, record)
        logits = logits_of(output)
        if logits.dim() != 2 or logits.shape[0] != n:
            raise HookScopeError(
                f"The model's output has shape {tuple(logits.shape)}, not (N, classes); a "
                "batched CAM needs a classifier."
            )
        if targets is None:
            idx = logits.detach().argmax(1)
        else:
            idx = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1)
            if idx.numel() != n or bool((idx < 0).any()) or bool((idx >= logits.shape[1]).any()):
                raise HookScopeError(
                    f"compute_cam_batch needs one target in 0..{logits.shape[1] - 1} per image."
                )
        scores = logits.gather(1, idx[:, None])[:, 0]
        grads = _backward(scores.sum(), captured, [layer]) if impl.uses_gradients else {}
        whole = _layer(
            model, layer, modules[layer], captured[layer], grads.get(layer), reshape, x.shape
        )
        cams = []
        for i in range(n):
            one = Layer(
                whole.name,
                whole.module,
                whole.raw[i : i + 1],
                whole.acts[i : i + 1],
                whole.grads[i : i + 1] if whole.grads is not None else None,
                whole.to_grid,
                whole.channel_dim,
                whole.call,
            )
            run = Run(model, x[i : i + 1], int(idx[i]), float(scores[i].detach()), 1, quiet())
            cams.append(impl.cam(run, one).detach().float().cpu().clamp(min=0))
        up = F.interpolate(torch.stack(cams)[:, None], size=x.shape[-2:], mode="bilinear")
        maps = np.stack([normalize(m) for m in up[:, 0].numpy()])
        return maps, logits.detach()


def cam_from_probe(
    model: nn.Module,
    x: torch.Tensor,
    probe,
    layers: Sequence[str],
    method: str = "gradcam",
    *,
    reshape: Reshape | dict[str, Reshape] = None,
) -> dict[str, np.ndarray] | None:
    """The maps :func:`compute_cam` would give, from a probe's records, without another pass.

    Works for the one-pass methods (all but ScoreCAM and AblationCAM) when every layer was
    probed with gradients of the same target, and its last call is kept as a plain tensor.

    Args:
        model: The probed model (for token / channels-last layout detection).
        x: The probed input, (1, C, H, W).
        probe: A :class:`~core.engine.probe.ProbeResult` of ``x`` with an integer target.
        layers: Layer names, each probed.
        method: A key of :data:`CAM_METHODS`.
        reshape: As for :func:`compute_cam`.

    Returns:
        Layer name → map, or None when the records cannot give the same maps (then call
        :func:`compute_cam`).
    """
    if method not in CAM_METHODS or not CAM_METHODS[method].one_pass:
        return None
    impl = CAM_METHODS[method]()
    names = list(dict.fromkeys(layers))
    # The probe's resolved target (a box, a region, a similarity) stands for it too: the
    # records' gradients are of that score.
    target = probe.target if probe.target is not None else getattr(probe, "resolved_target", None)
    if not names or probe.dropped or target is None:
        return None
    if x.dim() != 4 or x.shape[0] != 1:
        return None
    last = {name: (probe.records.get(name) or [None])[-1] for name in names}
    for rec in last.values():
        if rec is None or list(rec.outputs) != [""]:
            return None
        if impl.uses_gradients and rec.grad_output is None:
            return None
        if rec.output.dtype != torch.float32:  # e.g. float16 storage: not the same numbers
            return None
    modules = resolve_modules(model, names)  # all probed, so all there
    if _needs_layouts(model, x, names, reshape):
        analyse(model, x)  # the app's tree dry run usually gathered it already
    layer_data = [
        _layer(model, n, modules[n], (r.output, r.call), r.grad_output, reshape, x.shape)
        for n, r in last.items()
    ]
    score = probe.target_score if probe.target_score is not None else float("nan")
    run = Run(model, x, target, score, 1, quiet())
    return _maps(impl, run, layer_data)


def _maps(impl: CamMethod, run: Run, layer_data: list[Layer]) -> CamMaps:
    """ReLU, upsample to the input's size and normalise each layer's map; note flat ones."""
    run.total = sum(impl.work(layer) for layer in layer_data)
    if run.total:  # progress in its real units (channels) from the start, not after a batch
        run.reporter.progress(0, run.total, f"{impl.name} {layer_data[0].name}")
    maps, notes = {}, []
    for layer in layer_data:
        run.reporter.check()
        raw = impl.cam(run, layer).detach().float().cpu()
        cam = raw.clamp(min=0)
        note = noise_note(impl, run, layer, cam)
        if note:  # rounding noise is not a picture: an all-zero map, as for a zero map
            cam = torch.zeros_like(cam)
        note = note or flat_note(impl, layer, cam, raw=raw, run=run)
        if note:
            notes.append(note)
        up = F.interpolate(cam[None, None], size=run.x.shape[-2:], mode="bilinear")
        maps[layer.name] = normalize(up[0, 0].numpy())
    layouts = {layer.name: layer.layout for layer in layer_data if layer.layout is not None}
    return CamMaps(maps, notes=notes, layouts=layouts)


REL_FLAT = 1e-4
"""A map whose range is below this share of the size of its terms is rounding noise: at a
layer where every position sums to the same value, float32 still leaves differences of about
1e-7 of each term (8e-28 on a MobileViT block, 3e-11 on a LeViT attention input)."""
NEGLIGIBLE = 1e-9
"""A layer whose Σ|activation × gradient| is below this share of |target score| does not
feed the score (gradients of 1e-18 that only rounding made non-zero)."""


def noise_note(impl: CamMethod, run: Run, layer: Layer, cam: torch.Tensor) -> str | None:
    """One line when a gradient map is flat relative to the layer's own scale.

    ``== 0`` misses maps that are rounding noise: min-max would stretch a 1e-11 spread to
    [0, 1]. The scale is the layer's |activations| × |gradients|: the map's terms before they
    cancel (Σ_c |A_c(p)| · mean|g_c| per position), and their total against the score.
    """
    if not impl.uses_gradients or layer.grads is None or not cam.numel():
        return None
    a, g = layer.acts[0].float().abs(), layer.grads[0].float().abs()
    if not bool(g.max() > 0):
        return None  # flat_note's zero-gradient sentence says more
    terms = float((a * g.mean(dim=(1, 2), keepdim=True)).sum(0).max())
    spread = float(cam.max() - cam.min())
    total = float((a * g).sum())
    score = abs(float(run.score))
    if np.isfinite(score) and score > 0 and total <= NEGLIGIBLE * score:
        return (
            f"Layer {layer.name} barely feeds the target: its activations × gradients sum to "
            f"{total:.2g} against a score of {score:.3g}, so its {impl.name} map is rounding "
            "noise and is shown as zero; pick a layer the score depends on."
        )
    if spread <= REL_FLAT * terms and float(cam.min()) < float(cam.max()) * (1 - 1e-6):
        # (an exactly constant map keeps flat_note's sentence about its grid)
        return (
            f"The {impl.name} map of {layer.name} is flat: its spread ({spread:.2g}) is "
            f"rounding noise next to the size of its terms ({terms:.2g}), so it is shown as "
            "zero; pick another layer."
        )
    return None


def flat_note(
    impl: CamMethod,
    layer: Layer,
    cam: torch.Tensor,
    raw: torch.Tensor | None = None,
    run: Run | None = None,
) -> str | None:
    """One line when a layer's map says nothing: zero gradients, an all-zero or flat map.

    ``raw`` is the map before ReLU and ``run`` lets a one-pass method's channel weights be
    counted: what made the map zero is said as it is, not guessed from the method's name.
    """
    if impl.uses_gradients and layer.grads is not None and not bool(layer.grads.abs().max() > 0):
        return (
            f"The gradient at {layer.name} is zero everywhere: the target does not depend on "
            "this layer's output (e.g. only the class token reaches the head, or the head's "
            "weights are zero), so its map is empty."
        )
    hi = float(cam.max()) if cam.numel() else 0.0
    if hi <= 0:
        why = _why_zero(impl, layer, raw, run)
        return f"The {impl.name} map of {layer.name} is zero everywhere: {why}."
    if float(cam.min()) >= hi * (1 - 1e-6):
        h, w = cam.shape[-2:]
        return (
            f"The {impl.name} map of {layer.name} is constant on its {h}x{w} grid, so it does "
            "not show where; pick a layer with a larger grid."
        )
    return None


def _why_zero(impl: CamMethod, layer: Layer, raw: torch.Tensor | None, run: Run | None) -> str:
    """Why a map is zero after ReLU, from the numbers: its largest value and the weights' signs."""
    top = float(raw.max()) if raw is not None and raw.numel() else None
    if top is None or top < 0:
        why = "the weighted sum of channels is negative at every position"
        why += f" (at most {top:.3g})" if top is not None else ""
    else:
        why = "the weighted sum of channels is zero at every position"
    # Only one-pass weight rules are cheap to count again (ScoreCAM would rerun its passes).
    if run is None or not impl.one_pass or type(impl).weights is CamMethod.weights:
        return why
    weights = impl.weights(run, layer).detach().float().cpu()
    positive, total = int((weights > 0).sum()), int(weights.numel())
    if positive == 0:
        return f"every one of its {total} channel weights is negative or zero for this target"
    return f"{why}, though {positive} of its {total} channel weights are positive"


def _forward(model, x, modules, with_grad, record_layouts=False):
    """Forward with capture hooks; returns ``(output, {name: (tensor, call)})``.

    With gradients the part of the network below the first hooked layer runs without
    autograd: that layer's output becomes a leaf and the backward stops there. With
    ``record_layouts`` the same pass gathers the layout evidence (no extra forward).
    """
    captured: dict[str, tuple[torch.Tensor, int]] = {}
    calls = dict.fromkeys(modules, 0)

    def make_hook(name):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                raise HookScopeError(
                    f"Layer '{name}' returns {type(output).__name__}, not a tensor, so it has "
                    "no map to explain; pick a layer that outputs a feature map."
                )
            calls[name] += 1
            if not with_grad:
                captured[name] = (output.detach().clone(), calls[name] - 1)
                return None
            if not torch.is_grad_enabled() or not output.requires_grad:
                torch.set_grad_enabled(True)
                output = output.detach().requires_grad_(True)
            captured[name] = (output, calls[name] - 1)
            # Later in-place ops (ReLU(inplace=True), +=) must write to a copy, not the
            # tensor we differentiate against.
            return output.clone()

        return hook

    handles = []
    prev = torch.is_grad_enabled()
    recorder = LayoutRecorder(model) if record_layouts else None
    try:
        if recorder is not None:  # registered first: it sees each output before the swap
            recorder.__enter__()
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        torch.set_grad_enabled(False)
        output = forward_model(model, x)
    finally:
        torch.set_grad_enabled(prev)
        for h in handles:
            h.remove()
        if recorder is not None:
            recorder.__exit__()
    if recorder is not None:
        remember(model, x.shape, recorder.report(tuple(x.shape)))
    missing = [n for n in modules if n not in captured]
    if missing:
        raise HookScopeError(
            f"Layer '{missing[0]}' did not run in the forward pass; pick a layer the model "
            "actually calls."
        )
    return output, captured


def _backward(score, captured, names) -> dict[str, torch.Tensor]:
    """Gradients of the score wrt every hooked output in one backward pass."""
    tensors = [captured[n][0] for n in names]
    if not score.requires_grad:
        raise HookScopeError(
            "The target score does not depend on the hooked layers through autograd; "
            "pick layers before the output and make sure forward does not detach."
        )
    got = torch.autograd.grad(score, tensors, allow_unused=True)
    return {
        n: (g if g is not None else torch.zeros_like(t)).detach()
        for n, t, g in zip(names, tensors, got)
    }


def _layer(model, name, module, cap, grad, reshape, x_shape=None) -> Layer:
    raw, call = cap
    raw = raw.detach()
    spec = reshape.get(name) if isinstance(reshape, dict) else reshape
    layout = None
    if callable(spec) and not isinstance(spec, Layout):
        to_grid, cdim = spec, (1 if raw.dim() == 4 else raw.dim() - 1)
    else:
        layout = layout_for(model, name, raw, x_shape, spec)
        to_grid, cdim = layout.to_grid, layout.channel_dim
    acts = to_grid(raw)
    if acts.dim() != 4 or acts.shape[0] != raw.shape[0]:
        raise HookScopeError(
            f"The reshape for layer '{name}' gave shape {tuple(acts.shape)}; it must give "
            "(N, C, h, w)."
        )
    return Layer(
        name,
        module,
        raw,
        acts.float(),
        to_grid(grad).float() if grad is not None else None,
        to_grid,
        cdim,
        call,
        layout,
    )


def _outside_head(model: nn.Module, report: ModelLayouts, cands: list[str]) -> list[str]:
    """The candidates in front of the model's head, when there are any.

    The head is the last top-level child with parameters to run (SSDlite's ``head``, whose
    per-anchor convolutions have grids too): a user explains what feeds it, the backbone's
    last stage, not one of its prediction branches.
    """
    with_params = {n for n, m in model.named_children() if any(True for _ in m.parameters())}
    tops = [n for n in report.order if n in with_params]
    if len(tops) < 2:
        return cands
    head = tops[-1] + "."
    kept = [c for c in cands if not c.startswith(head)]
    return kept or cands


def _trunk_candidates(model: nn.Module, report: ModelLayouts, cands: list[str]) -> list[str]:
    """Stage outputs, the pieces of the last stage, and what follows it (a final norm).

    A stage is a non-leaf module numbered in its container (``layer4.1``, ``stages.2.blocks.3``,
    ``extra.3``). Pieces of earlier parts (LeViT's ``stages.2.downsample.attn_downsample.q.ln``,
    which runs before stage 2's blocks) are left out: a default a user can read is the output
    of the backbone's last stage, or a layer inside it when only that has a usable map (a ViT's
    ``blocks.11.attn.qkv``).
    """
    modules = dict(model.named_modules())
    stages = [
        c
        for c in cands
        if c.rsplit(".", 1)[-1].isdecimal() and any(True for _ in modules[c].children())
    ]
    if not stages:
        return cands
    order = {n: i for i, n in enumerate(report.order)}
    last = max(stages, key=lambda c: order.get(c, -1))
    return [
        c
        for c in cands
        if c in stages or c.startswith(last + ".") or order.get(c, -1) > order.get(last, -1)
    ]


def suggest_layer(
    model: nn.Module,
    x: torch.Tensor | None = None,
    target: Target = None,
    *,
    class_names: Sequence[str] | None = None,
    input_spec=None,
) -> str:
    """The default CAM layer: the last layer with a grid larger than 1×1 whose map is not flat.

    Candidates come from the layout evidence (:meth:`ModelLayouts.cam_candidates`: one call,
    a spatial grid, one name per output tensor). With an input ``x`` their Grad-CAM maps for
    ``target`` are computed, a few layers per pass from the end, and the last one that is not
    constant wins (a ViT's final norm has a grid, but only its class token reaches the head).
    Without ``x`` the last candidate of the latest analysed input size is returned.
    """
    report: ModelLayouts | None = analyse(model, x) if x is not None else latest(model)
    if report is None:
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n]
        return convs[-1] if convs else "a layer with an (N, C, h, w) output"
    cands = report.cam_candidates()
    if not cands:
        raise HookScopeError(
            "No layer of this model outputs a spatial grid larger than 1x1, so a CAM has "
            "nothing to show; name a layer with --layers and its layout with --reshape."
        )
    cands = _trunk_candidates(model, report, _outside_head(model, report, cands))
    if x is None:
        return cands[-1]
    step, passes = 8, 4  # at most 32 layers from the end: a detector's pass is slow
    for end in range(len(cands), max(0, len(cands) - step * passes), -step):
        chunk = cands[max(0, end - step) : end]
        try:
            maps = compute_cam(
                model, x, chunk, "gradcam", target, class_names=class_names, input_spec=input_spec
            )
        except HookScopeError:
            continue
        flat = {n for n in chunk for note in maps.notes if f" {n} " in note}
        for name in reversed(chunk):
            if name not in flat:
                return name
    return cands[-1]  # every map flat: the last stage's output, whose note says why
