"""Input attributions: guided backprop, guided Grad-CAM, saliency, SmoothGrad, IG, occlusion.

Every function takes ``(model, x, target=None, **options)`` with ``x`` of shape (1, C, H, W)
and returns a float32 numpy array (C, H, W) at the input's size. The model runs in eval mode
and is left exactly as it was: no module is replaced and no hook is left behind.
:data:`ATTRIBUTION_METHODS` lists them with their options, for the GUI and the CLI.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from hookscope.core.engine.context import eval_mode, model_device
from hookscope.core.engine.targets import Target, logits_of, resolve_target, target_scores
from hookscope.core.errors import HookScopeError
from hookscope.core.loading.spec import InputSpec
from hookscope.core.methods.cam import compute_cam, suggest_layer
from hookscope.core.reporting import Reporter, quiet


# -- guided ReLU -------------------------------------------------------------------------------
class _GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward passes only positive gradients where the input was positive."""

    @staticmethod
    def forward(ctx, x):
        mask = x > 0
        # Saving the mask, not x, keeps the in-place variants safe to emulate with copy_.
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad.clamp(min=0) * mask


_RELU_OUT = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, torch.Tensor.relu_, getattr(F, "relu_", torch.relu_)}


class GuidedReLUs(TorchFunctionMode):
    """Inside this mode every ReLU call is a guided ReLU.

    Covers ``nn.ReLU`` modules (in-place or not, they call ``F.relu``), ``F.relu`` (also with
    ``inplace=True``), ``F.relu_``, ``torch.relu``, ``torch.relu_``, ``Tensor.relu`` and
    ``Tensor.relu_``. Not covered: ReLU6, LeakyReLU, GELU, ``clamp(min=0)`` and ops inside
    TorchScript or C++ extensions.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_OUT or func in _RELU_INPLACE:
            x = args[0]
            inplace = (
                func in _RELU_INPLACE
                or kwargs.get("inplace")
                or (func is F.relu and len(args) > 1 and bool(args[1]))
            )
            out = _GuidedReLU.apply(x)
            if inplace:
                x.copy_(out)  # keep in-place semantics for callers that ignore the result
                return x
            return out
        return func(*args, **kwargs)


# -- shared helpers ----------------------------------------------------------------------------
def _check_input(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise HookScopeError(f"Attributions take one image of shape (1, C, H, W), not {shape}.")


def _resolve(model, x, target, class_names):
    """Resolve the target on the clean input (top-1 of this image, not of a noisy copy)."""
    if callable(target):
        return target
    with torch.no_grad():
        return resolve_target(target, logits_of(model(x)), class_names)


def _grad(model, xs: torch.Tensor, resolved, guided: bool = False) -> torch.Tensor:
    """Gradient of the summed target score wrt a batch of inputs (samples are independent)."""
    xs = xs.detach().requires_grad_(True)
    with torch.enable_grad():
        if guided:
            with GuidedReLUs():
                out = model(xs)
        else:
            out = model(xs)
        score = target_scores(resolved, out).sum()
        if not score.requires_grad:
            raise HookScopeError(
                "The target score does not depend on the input through autograd; "
                "make sure forward does not detach or run under no_grad."
            )
        (g,) = torch.autograd.grad(score, [xs])
    return g.detach()


def _out(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()[0].astype(np.float32)


# -- the methods -------------------------------------------------------------------------------
def guided_backprop(
    model: nn.Module, x: torch.Tensor, target: Target = None, *, class_names=None
) -> np.ndarray:
    """Guided backpropagation (Springenberg et al.): the input gradient through guided ReLUs.

    See :class:`GuidedReLUs` for which ReLU forms are guided.

    Returns:
        The raw input gradient, (C, H, W) float32.
    """
    _check_input(x)
    x = x.detach().to(model_device(model))
    with eval_mode(model):
        resolved = _resolve(model, x, target, class_names)
        return _out(_grad(model, x, resolved, guided=True))


def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    class_names=None,
    absolute: bool = True,
) -> np.ndarray:
    """Vanilla saliency (Simonyan et al.): |d score / d input| (signed with ``absolute=False``).

    Returns:
        (C, H, W) float32, like captum's ``Saliency``.
    """
    _check_input(x)
    x = x.detach().to(model_device(model))
    with eval_mode(model):
        g = _grad(model, x, _resolve(model, x, target, class_names))
    return _out(g.abs() if absolute else g)


def guided_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    layer: str | None = None,
    class_names=None,
) -> np.ndarray:
    """Guided Grad-CAM: guided backprop times the Grad-CAM map of ``layer`` (in [0, 1]).

    Args:
        layer: CAM layer; default :func:`~core.methods.cam.suggest_layer`'s pick for this
            input and target (the last layer with a grid larger than 1×1 and a map that is
            not flat).

    Returns:
        (C, H, W) float32.
    """

    _check_input(x)
    x = x.detach().to(model_device(model))
    with eval_mode(model):
        resolved = _resolve(model, x, target, class_names)
        layer = layer or suggest_layer(model, x, resolved, class_names=class_names)
        cam = compute_cam(model, x, [layer], "gradcam", resolved)[layer]
    gb = guided_backprop(model, x, resolved)
    return (gb * cam[None]).astype(np.float32)


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    class_names=None,
    samples: int = 25,
    noise: float = 0.15,
    batch_size: int = 16,
    seed: int = 0,
    absolute: bool = False,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """SmoothGrad (Smilkov et al.): mean input gradient over noisy copies of the input.

    Args:
        samples: Number of noisy copies.
        noise: Noise std as a fraction of the input's value range (max - min).
        batch_size: Copies per forward/backward.
        seed: Seed of the noise, for repeatable maps.
        absolute: Average |gradient| instead of the gradient.
        reporter: Progress per batch and cancel.

    Returns:
        (C, H, W) float32.
    """
    _check_input(x)
    samples, batch_size = max(1, int(samples)), max(1, int(batch_size))
    reporter = reporter or quiet()
    x = x.detach().to(model_device(model))
    sigma = float(noise) * float(x.max() - x.min())
    gen = torch.Generator().manual_seed(int(seed))
    total = torch.zeros_like(x)
    with eval_mode(model):
        resolved = _resolve(model, x, target, class_names)
        done = 0
        while done < samples:
            n = min(batch_size, samples - done)
            eps = torch.randn((n, *x.shape[1:]), generator=gen).to(x.device) * sigma
            g = _grad(model, x + eps, resolved)
            total += (g.abs() if absolute else g).sum(0, keepdim=True)
            done += n
            reporter.progress(done, samples, "SmoothGrad")
    return _out(total / samples)


def ig_steps(n: int, rule: str = "gausslegendre") -> tuple[list[float], list[float]]:
    """Step sizes and alphas of an integral rule, exactly as captum builds them."""
    if rule == "gausslegendre":
        pts, wts = np.polynomial.legendre.leggauss(n)
        return (0.5 * wts).tolist(), (0.5 * (1 + pts)).tolist()
    if n < 2:
        raise HookScopeError("Integrated gradients with a Riemann rule needs at least 2 steps.")
    deltas = [1 / n] * n
    if rule == "riemann_trapezoid":
        deltas[0] /= 2
        deltas[-1] /= 2
        return deltas, torch.linspace(0, 1, n).tolist()
    alphas = {
        "riemann_left": (0, 1 - 1 / n),
        "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
        "riemann_right": (1 / n, 1),
    }
    if rule not in alphas:
        raise HookScopeError(
            f"Unknown integration rule '{rule}': use gausslegendre, riemann_trapezoid, "
            "riemann_left, riemann_middle or riemann_right."
        )
    return deltas, torch.linspace(*alphas[rule], n).tolist()


def make_baseline(
    x: torch.Tensor, baseline: str | float | torch.Tensor = "black", spec: InputSpec | None = None
) -> torch.Tensor:
    """The reference input of integrated gradients, shaped like ``x``.

    Args:
        x: The input (1, C, H, W), normalised.
        baseline: ``"black"`` (black image after the model's normalisation), ``"zeros"``,
            ``"blurred"`` (Gaussian blur, sigma = 1/16 of the shorter side), a number, or a
            tensor broadcastable to ``x``.
        spec: Normalisation for ``"black"``; default ImageNet mean/std.
    """
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(x.device, x.dtype).expand_as(x).clone()
        except RuntimeError:
            raise HookScopeError(
                f"The baseline's shape {tuple(baseline.shape)} does not fit the input's "
                f"{tuple(x.shape)}."
            ) from None
    if isinstance(baseline, int | float):
        return torch.full_like(x, float(baseline))
    kind = str(baseline).lower()
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "black":
        spec = spec or InputSpec()
        c = x.shape[1]
        mean = torch.tensor(spec.mean[:c], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(spec.std[:c], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((0.0 - mean) / std).expand_as(x).clone()
    if kind == "blurred":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(1.0, min(x.shape[-2:]) / 16)
        k = min(int(4 * sigma) | 1, (min(x.shape[-2:]) - 1) | 1)
        return gaussian_blur(x, [k, k], [sigma, sigma])
    raise HookScopeError(
        f"Unknown baseline '{baseline}': use black, zeros, blurred, a number or a tensor."
    )


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    class_names=None,
    steps: int = 50,
    baseline: str | float | torch.Tensor = "black",
    rule: str = "gausslegendre",
    batch_size: int = 16,
    spec: InputSpec | None = None,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """Integrated gradients (Sundararajan et al.), with captum's integration rules.

    Args:
        steps: Points on the path from the baseline to the input.
        baseline: See :func:`make_baseline`.
        rule: ``gausslegendre`` (captum's default) or ``riemann_trapezoid|left|middle|right``
            (captum's ``method``).
        batch_size: Path points per forward/backward.
        spec: Input normalisation, for the black baseline.
        reporter: Progress per batch and cancel.

    Returns:
        (C, H, W) float32; sums to about score(x) - score(baseline).
    """
    _check_input(x)
    steps, batch_size = max(1, int(steps)), max(1, int(batch_size))
    reporter = reporter or quiet()
    x = x.detach().to(model_device(model))
    base = make_baseline(x, baseline, spec)
    sizes, alphas = ig_steps(steps, rule)
    delta = x - base
    total = torch.zeros_like(x)
    with eval_mode(model):
        resolved = _resolve(model, x, target, class_names)
        for i in range(0, steps, batch_size):
            a = torch.tensor(alphas[i : i + batch_size], dtype=x.dtype, device=x.device)
            w = torch.tensor(sizes[i : i + batch_size], dtype=x.dtype, device=x.device)
            g = _grad(model, base + a.view(-1, 1, 1, 1) * delta, resolved)
            total += (g * w.view(-1, 1, 1, 1)).sum(0, keepdim=True)
            reporter.progress(min(i + batch_size, steps), steps, "Integrated gradients")
    return _out(total * delta)


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    *,
    class_names=None,
    window: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    fill: float = 0.0,
    batch_size: int = 32,
    reporter: Reporter | None = None,
) -> np.ndarray:
    """Occlusion sensitivity (Zeiler & Fergus): score drop when a patch is filled, per pixel.

    Same windows and averaging as captum's ``Occlusion`` with a window over all channels:
    windows start every ``stride`` pixels (the last one cropped at the border) and each pixel
    gets the mean drop over the windows covering it.

    Args:
        window: Patch size (h, w) or one int.
        stride: Step (h, w) or one int; at most the window.
        fill: Value written into the patch (in the model's normalised input space).
        batch_size: Occluded copies per forward.
        reporter: Progress per batch and cancel.

    Returns:
        (C, H, W) float32 (the same map in every channel).
    """
    _check_input(x)
    wh, ww = (window, window) if isinstance(window, int) else tuple(window)
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    H, W = x.shape[-2:]
    if not (0 < wh <= H and 0 < ww <= W):
        raise HookScopeError(f"The occlusion window {wh}x{ww} must fit in the {H}x{W} input.")
    if not (0 < sh <= wh and 0 < sw <= ww):
        raise HookScopeError("The occlusion stride must be between 1 and the window size.")
    reporter = reporter or quiet()
    x = x.detach().to(model_device(model))
    ys = [k * sh for k in range(-(-(H - wh) // sh) + 1)]
    xs = [k * sw for k in range(-(-(W - ww) // sw) + 1)]
    boxes = [(y, xx) for y in ys for xx in xs]
    total = torch.zeros(H, W, dtype=torch.float32, device=x.device)
    count = torch.zeros(H, W, dtype=torch.float32, device=x.device)
    with eval_mode(model), torch.inference_mode():
        out = model(x)
        resolved = (
            target if callable(target) else resolve_target(target, logits_of(out), class_names)
        )
        base = float(target_scores(resolved, out).reshape(-1)[0])
        for i in range(0, len(boxes), batch_size):
            chunk = boxes[i : i + batch_size]
            batch = x.repeat(len(chunk), 1, 1, 1)
            for j, (y, xx) in enumerate(chunk):
                batch[j, :, y : y + wh, xx : xx + ww] = fill
            scores = _batch_scores(resolved, model(batch), len(chunk))
            for j, (y, xx) in enumerate(chunk):
                total[y : y + wh, xx : xx + ww] += base - float(scores[j])
                count[y : y + wh, xx : xx + ww] += 1
            reporter.progress(min(i + batch_size, len(boxes)), len(boxes), "Occlusion")
    heat = total / count.clamp(min=1)
    return heat.expand(x.shape[1], H, W).cpu().numpy().astype(np.float32)


def _batch_scores(resolved, out, n: int) -> torch.Tensor:
    s = target_scores(resolved, out).reshape(-1)
    if s.numel() == n:
        return s
    logits = logits_of(out)  # a callable that reduces over the batch: score one by one
    return torch.stack([target_scores(resolved, logits[i : i + 1]).sum() for i in range(n)])


# -- registry ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One option of an attribution method, for building CLI flags and GUI fields."""

    name: str
    type: type
    default: object
    help: str
    choices: tuple = ()


@dataclass(frozen=True)
class AttributionMethod:
    """A registered attribution: its function, options and how to show its result.

    Attributes:
        name: Registry key.
        func: ``func(model, x, target, **options) -> (C, H, W)``.
        title: Display name.
        signed: True when the sign matters (show with a diverging colour map).
        params: Options beyond model, x and target.
        long: True for many-pass methods that report progress.
    """

    name: str
    func: Callable[..., np.ndarray]
    title: str
    signed: bool
    params: tuple[Param, ...] = field(default_factory=tuple)
    long: bool = False


_BATCH = Param("batch_size", int, 16, "inputs per forward pass")
ATTRIBUTION_METHODS: dict[str, AttributionMethod] = {
    m.name: m
    for m in [
        AttributionMethod("guided-backprop", guided_backprop, "Guided backprop", True),
        AttributionMethod(
            "guided-gradcam",
            guided_gradcam,
            "Guided Grad-CAM",
            True,
            (Param("layer", str, None, "CAM layer (default: last convolution)"),),
        ),
        AttributionMethod("saliency", saliency, "Saliency", False),
        AttributionMethod(
            "smoothgrad",
            smoothgrad,
            "SmoothGrad",
            True,
            (
                Param("samples", int, 25, "noisy copies"),
                Param("noise", float, 0.15, "noise std as a fraction of the input range"),
                _BATCH,
                Param("seed", int, 0, "noise seed"),
            ),
            long=True,
        ),
        AttributionMethod(
            "ig",
            integrated_gradients,
            "Integrated gradients",
            True,
            (
                Param("steps", int, 50, "points on the path"),
                Param("baseline", str, "black", "reference input", ("black", "zeros", "blurred")),
                Param(
                    "rule",
                    str,
                    "gausslegendre",
                    "integration rule",
                    (
                        "gausslegendre",
                        "riemann_trapezoid",
                        "riemann_left",
                        "riemann_middle",
                        "riemann_right",
                    ),
                ),
                _BATCH,
            ),
            long=True,
        ),
        AttributionMethod(
            "occlusion",
            occlusion,
            "Occlusion",
            True,
            (
                Param("window", int, 16, "patch size in pixels"),
                Param("stride", int, 8, "patch step in pixels"),
                Param("fill", float, 0.0, "value written into the patch"),
                Param("batch_size", int, 32, "occluded copies per forward pass"),
            ),
            long=True,
        ),
    ]
}


def attribute(
    method: str,
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    **options,
) -> np.ndarray:
    """Run a registered attribution by name (see :data:`ATTRIBUTION_METHODS`).

    Options the method does not take are dropped, so one settings dict can drive any method;
    calling a function directly with an unknown option is a ``TypeError``.
    """
    if method not in ATTRIBUTION_METHODS:
        raise HookScopeError(
            f"Unknown attribution method '{method}': use one of {', '.join(ATTRIBUTION_METHODS)}."
        )
    for prm in ATTRIBUTION_METHODS[method].params:
        value = options.get(prm.name)
        # NaN would pass every range check below and quietly fill the map with NaN.
        if prm.type is float and value is not None and not np.isfinite(float(value)):
            raise HookScopeError(
                f"The {prm.name} option of {method} must be a finite number, not {value}."
            )
    func = ATTRIBUTION_METHODS[method].func
    accepted = inspect.signature(func).parameters
    return func(model, x, target, **{k: v for k, v in options.items() if k in accepted})


__all__: Sequence[str] = [
    "ATTRIBUTION_METHODS",
    "AttributionMethod",
    "GuidedReLUs",
    "Param",
    "attribute",
    "guided_backprop",
    "guided_gradcam",
    "integrated_gradients",
    "make_baseline",
    "occlusion",
    "saliency",
    "smoothgrad",
]
