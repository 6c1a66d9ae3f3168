"""The ``cam`` and ``attribute`` subcommands: compute headless, save a figure or arrays.

``main.build_parser`` calls :func:`add_subcommand`. Figures use the same renderer as the GUI
(:mod:`gui.figures`, Qt offscreen); ``.npz`` output needs no Qt at all.
"""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from core.cli import add_model_args, load_from_args, names
from core.errors import HookScopeError

FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
CANCELLED_EXIT = 130


def add_subcommand(subparsers) -> None:
    """Register ``cam`` and ``attribute`` (with ``set_defaults(func=...)``) on ``subparsers``."""
    from core.methods.attribution import ATTRIBUTION_METHODS
    from core.methods.cam import CAM_METHODS
    from gui.figures import COLORMAPS

    maps = ", ".join(COLORMAPS)
    p = subparsers.add_parser("cam", help="class activation maps for layers; save PNG/SVG/NPZ")
    _common(p)
    p.add_argument(
        "--layers",
        type=names,
        default=None,
        help="comma-separated module names (default: the last convolution)",
    )
    p.add_argument("--method", default="gradcam", choices=list(CAM_METHODS), help="CAM method")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the map (0-1)")
    p.add_argument("--colormap", default="jet", help=f"colour map of the overlay: {maps}")
    p.add_argument("--batch-size", type=int, default=32, help="ScoreCAM/AblationCAM batch")
    p.set_defaults(func=cmd_cam)

    p = subparsers.add_parser("attribute", help="input attributions; save PNG/SVG/NPZ")
    _common(p)
    p.add_argument("--method", required=True, choices=list(ATTRIBUTION_METHODS))
    p.add_argument(
        "--colormap", default="viridis", help=f"colour map of the |attribution| overlay: {maps}"
    )
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0-1)")
    seen: dict[str, str] = {}
    for m in ATTRIBUTION_METHODS.values():
        for prm in m.params:
            flag = "--" + prm.name.replace("_", "-")
            if flag in seen:
                seen[flag] += f", {m.name}"
                continue
            seen[flag] = m.name
            kw = {"choices": list(prm.choices)} if prm.choices else {"metavar": prm.name.upper()}
            default = f" (default {prm.default})" if prm.default is not None else ""
            p.add_argument(
                flag,
                dest=f"opt_{prm.name}",
                type=prm.type,
                default=None,
                help=f"{prm.help}{default}",
                **kw,
            )
    p.set_defaults(func=cmd_attribute)


def _common(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--image", required=True, help="input image file")
    p.add_argument("--target", help="class index or name (default: top-1)")
    p.add_argument("--out", required=True, help="output file: .png, .svg or .npz")


# -- shared steps ------------------------------------------------------------------------------
def _check_out(path: str) -> Path:
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (*FIGURE_SUFFIXES, ".npz"):
        raise HookScopeError(
            f"Cannot write '{out.name}': the output must end in .png, .svg or .npz."
        )
    return out


def _check_display(args) -> None:
    """A bad colour map or alpha is a one-sentence error before any model is loaded."""
    from gui.figures import check_colormap

    check_colormap(args.colormap)
    if not 0.0 <= args.alpha <= 1.0:
        raise HookScopeError(f"--alpha must be between 0 and 1, not {args.alpha}.")


def _load(args):
    from core.loading.images import load_image, to_tensor

    lm = load_from_args(args)
    img = load_image(args.image)
    return lm, to_tensor(img, lm.input_spec)


def _target(lm, x, target):
    """Resolve the target once so the figure and the sidecar can name it."""
    import torch

    from core.engine.probe import eval_mode, model_device
    from core.engine.targets import class_name, logits_of, resolve_target

    with eval_mode(lm.model), torch.no_grad():
        logits = logits_of(lm.model(x.to(model_device(lm.model))))
    idx = resolve_target(target, logits, lm.class_names)
    prob = float(torch.softmax(logits.reshape(logits.shape[0], -1)[0].float(), 0)[idx])
    return idx, class_name(idx, lm.class_names), prob


@contextmanager
def _progress(desc: str):
    """A Reporter drawing a tqdm bar on stderr; Ctrl+C cancels it at the next batch.

    A second Ctrl+C interrupts at once.
    """
    from tqdm import tqdm

    from core.reporting import Reporter

    bar = None

    def on_progress(done: int, total: int, message: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=message or desc, file=sys.stderr, leave=False, unit="fw")
        bar.total = total
        bar.update(done - bar.n)

    reporter = Reporter(on_progress)

    def on_sigint(signum, frame):
        if reporter.cancelled:
            raise KeyboardInterrupt
        reporter.cancel()

    old = None
    try:
        old = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: keep Python's default
        pass
    try:
        yield reporter
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if bar is not None:
            bar.close()


def _run(job):
    """Run ``job(reporter)``; a cancel or Ctrl+C becomes a message and exit code 130."""
    from core.reporting import Cancelled

    try:
        with _progress("computing") as reporter:
            return job(reporter), 0
    except (Cancelled, KeyboardInterrupt):
        print("hookscope: cancelled (Ctrl+C); nothing was written.", file=sys.stderr)
        return None, CANCELLED_EXIT


def _describe(lm, args, idx, name, prob) -> dict:
    return {
        "model": args.model,
        "model_name": lm.name,
        "weights": args.weights,
        "image": str(Path(args.image)),
        "input_spec": lm.input_spec.to_dict(),
        "target": idx if isinstance(idx, int) else None,
        "target_name": name,
        "target_prob": prob,
    }


def _title(lm, label: str, idx, name, prob) -> str:
    who = f"{idx} ({name})" if name else f"{idx}"
    return f"{label} · {lm.name} · target {who}, p = {prob:.3f}"


# -- commands ----------------------------------------------------------------------------------
def cmd_cam(args) -> int:
    """``cam``: maps for each layer → overlay figure (.png/.svg) or arrays (.npz + .json)."""
    from core.io.export import save_arrays
    from core.methods.cam import compute_cam, suggest_layer

    out = _check_out(args.out)
    _check_display(args)
    if args.batch_size < 1:
        raise HookScopeError(f"--batch-size must be at least 1, not {args.batch_size}.")
    lm, x = _load(args)
    layers = args.layers or [suggest_layer(lm.model)]
    idx, name, prob = _target(lm, x, args.target)

    def job(reporter):
        return compute_cam(
            lm.model,
            x,
            layers,
            args.method,
            idx,
            class_names=lm.class_names,
            batch_size=args.batch_size,
            reporter=reporter,
        )

    maps, code = _run(job)
    if code:
        return code
    settings = _describe(lm, args, idx, name, prob) | {
        "kind": "cam",
        "method": args.method,
        "layers": layers,
        "batch_size": args.batch_size,
        "normalisation": "ReLU, bilinear upsample (align_corners=False), min-max per map",
    }
    if out.suffix.lower() == ".npz":
        npz, side = save_arrays(out, maps, settings)
        print(f"wrote {npz} and {side}")
        return 0
    from core.loading.images import to_display
    from gui.figures import cam_panels, save_figure

    rgb = to_display(x, lm.input_spec)
    panels, bar = cam_panels(rgb, maps, method=args.method, cmap=args.colormap, alpha=args.alpha)
    save_figure(out, panels, bar, title=_title(lm, args.method, idx, name, prob))
    print(f"wrote {out}")
    return 0


def cmd_attribute(args) -> int:
    """``attribute``: one attribution method → figure (.png/.svg) or arrays (.npz + .json)."""
    import numpy as np

    from core.io.export import save_arrays
    from core.methods.attribution import ATTRIBUTION_METHODS

    out = _check_out(args.out)
    _check_display(args)
    meth = ATTRIBUTION_METHODS[args.method]
    allowed = {p.name for p in meth.params}
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    extra = sorted(set(given) - allowed)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise HookScopeError(f"{flag} does not apply to {args.method}; see attribute --help.")
    lm, x = _load(args)
    idx, name, prob = _target(lm, x, args.target)
    options = {p.name: p.default for p in meth.params} | given
    for key in ("batch_size", "samples", "steps", "window", "stride"):
        if key in options and options[key] is not None and options[key] < 1:
            raise HookScopeError(f"--{key.replace('_', '-')} must be at least 1.")
    if meth.name == "ig":
        options["spec"] = lm.input_spec

    def job(reporter):
        kw = dict(options, class_names=lm.class_names)
        if meth.long:
            kw["reporter"] = reporter
        return meth.func(lm.model, x, idx, **kw)

    attr, code = _run(job)
    if code:
        return code
    settings = _describe(lm, args, idx, name, prob) | {
        "kind": "attribution",
        "method": args.method,
        "options": {k: v for k, v in options.items() if k != "spec"},
    }
    if out.suffix.lower() == ".npz":
        summed = attr.sum(axis=0) if meth.signed else np.abs(attr).max(axis=0)
        npz, side = save_arrays(out, {"attribution": attr, "map": summed}, settings)
        print(f"wrote {npz} and {side}")
        return 0
    from core.loading.images import to_display
    from gui.figures import attribution_panels, save_figure

    panels, bar = attribution_panels(
        to_display(x, lm.input_spec),
        attr,
        title=meth.title,
        signed=meth.signed,
        heat_cmap=args.colormap,
        alpha=args.alpha,
    )
    save_figure(out, panels, bar, title=_title(lm, meth.title, idx, name, prob))
    print(f"wrote {out}")
    return 0
