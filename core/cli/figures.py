"""The ``cam`` and ``attribute`` subcommands: run the app's jobs headless, save a figure or arrays.

``gui.command.build_parser`` calls :func:`add_subcommand`. The numbers come from the job
functions the app's worker runs (``core.jobs.probe.probe_job``,
``core.jobs.attribution.attribution_job``); this module only formats them. Figures are drawn by
the app's renderer (:mod:`core.display.figures`, no Qt), so a saved figure shows what the dock
shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hookscope.core.cli import (
    RESHAPE_HELP,
    TARGET_HELP,
    add_model_args,
    load_from_args,
    names,
    reshape_value,
    run_job,
)
from hookscope.core.cli.limits import MAX_BATCH, bounded
from hookscope.core.errors import HookScopeError

FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")


def add_subcommand(subparsers) -> None:
    """Register ``cam`` and ``attribute`` (with ``set_defaults(func=...)``) on ``subparsers``."""
    from hookscope.core.display.colormaps import COLORMAPS
    from hookscope.core.methods import explainers

    maps = ", ".join(COLORMAPS)
    p = subparsers.add_parser("cam", help="class activation maps for layers; save PNG/SVG/NPZ")
    _common(p)
    p.add_argument(
        "--layers",
        type=names,
        default=None,
        help="comma-separated module names (default: the last layer with a spatial grid "
        "larger than 1x1 whose map is not constant)",
    )
    p.add_argument("--reshape", type=reshape_value, default=None, help=RESHAPE_HELP)
    p.add_argument(
        "--method",
        default="gradcam",
        choices=explainers.names(explainers.CAM) + explainers.names(explainers.TRANSFORMER),
        help="a CAM, or a transformer method (rollout, chefer, legrad: --layers are blocks)",
    )
    p.add_argument("--fusion", choices=["mean", "max", "min"], help="rollout: head fusion")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the map (0-1)")
    p.add_argument("--colormap", default="jet", help=f"colour map of the overlay: {maps}")
    p.add_argument(
        "--batch-size",
        type=bounded(1, MAX_BATCH),
        default=32,
        help=f"ScoreCAM/AblationCAM batch, 1 to {MAX_BATCH}",
    )
    p.set_defaults(func=cmd_cam)

    p = subparsers.add_parser("attribute", help="input attributions; save PNG/SVG/NPZ")
    _common(p)
    p.add_argument("--method", required=True, choices=explainers.names(explainers.ATTRIBUTION))
    p.add_argument(
        "--colormap", default="viridis", help=f"colour map of the |attribution| overlay: {maps}"
    )
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0-1)")
    seen: dict[str, str] = {}
    for m in map(explainers.get, explainers.names(explainers.ATTRIBUTION)):
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
    p.add_argument("--target", help=TARGET_HELP)
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
    from hookscope.core.display.colormaps import check_colormap

    check_colormap(args.colormap)
    if not 0.0 <= args.alpha <= 1.0:
        raise HookScopeError(f"--alpha must be between 0 and 1, not {args.alpha}.")


def _describe(lm, args, target, name, prob) -> dict:
    return {
        "model": args.model,
        "model_name": lm.name,
        "weights": args.weights,
        "image": str(Path(args.image)),
        "input_spec": lm.input_spec.to_dict(),
        "target": target,
        "target_name": name,
        "target_prob": prob,
    }


def _title(lm, label: str, target, name, prob) -> str:
    who = f"{target} ({name})" if name else f"{target}"
    p = f", p = {prob:.3f}" if prob is not None else ""
    return f"{label} · {lm.name} · target {who}{p}"


def _save(out: Path, panels, title: str) -> None:
    from hookscope.core.display.figures import save_figure

    save_figure(out, panels, title=title)
    print(f"wrote {out}")


# -- commands ----------------------------------------------------------------------------------
def cmd_cam(args) -> int:
    """``cam``: the app's probe job with CAM → overlay figure (.png/.svg) or arrays (.npz)."""
    from hookscope.core.io.export import save_arrays
    from hookscope.core.jobs.probe import probe_job
    from hookscope.core.loading.images import load_image, to_tensor
    from hookscope.core.methods.cam import CAM_METHODS, suggest_layer

    out = _check_out(args.out)
    _check_display(args)
    if args.fusion is not None and args.method != "rollout":
        raise HookScopeError(f"--fusion applies to rollout, not {args.method}.")
    if args.batch_size < 1:
        raise HookScopeError(f"--batch-size must be at least 1, not {args.batch_size}.")
    lm = load_from_args(args)
    image = load_image(args.image)
    if args.method not in CAM_METHODS:  # a transformer method: the registry's explain
        return _cmd_transformer(args, lm, image, out)
    layers = args.layers
    if not layers:  # one gradient pass over the last candidates: never a flat 1x1 layer
        x = to_tensor(image, lm.input_spec)
        pick = suggest_layer(
            lm.model, x, args.target, class_names=lm.class_names, input_spec=lm.input_spec
        )
        layers = [pick]
    snap, code = run_job(
        probe_job,
        lm,
        image,
        layers,
        args.target,
        args.method,
        layers,
        batch_size=args.batch_size,
        reshape=args.reshape,
    )
    if code:
        return code
    missing = [name for name in layers if name not in snap.cams]
    if missing:  # the app shows why as a note; here it is the error
        raise HookScopeError(snap.cam_error or f"No CAM for layer {missing[0]}.")
    for note in snap.notes:  # flat maps, zero gradients: a finding, not a silent picture
        print(f"hookscope: note: {note}", file=sys.stderr)
    target = snap.target
    kind = snap.kind.kind if snap.kind is not None else "classes"
    prob = float(snap.probs[target]) if isinstance(target, int) and kind == "classes" else None
    label = snap.target_name
    if kind != "classes":  # e.g. "detection 0 (class 62)", "class 15 over its 4754 px"
        target, label = snap.target_text or target, snap.target_label
    settings = _describe(lm, args, target, label, prob) | {
        "kind": "cam",
        "output_kind": kind,
        "method": args.method,
        "layers": layers,
        "layouts": dict(snap.cam_layouts),
        "batch_size": args.batch_size,
        "normalisation": "ReLU, bilinear upsample (align_corners=False), min-max per map",
    }
    if out.suffix.lower() == ".npz":
        npz, side = save_arrays(out, {name: snap.cams[name] for name in layers}, settings)
        print(f"wrote {npz} and {side}")
        return 0
    from hookscope.core.display.figures import cam_figure

    panels = cam_figure(snap, args.colormap, args.alpha)
    _save(out, panels, _title(lm, args.method, target, label, prob))
    return 0


def _cmd_transformer(args, lm, image, out: Path) -> int:
    """``cam`` with rollout, chefer, legrad or attnlrp: one explanation → figure or arrays."""
    import numpy as np

    from hookscope.core.display.figures import Panel, overlay
    from hookscope.core.io.export import save_arrays
    from hookscope.core.loading.images import preprocess, to_tensor
    from hookscope.core.methods.explainers import explain

    params = {"fusion": args.fusion} if args.fusion else {}
    e = explain(
        lm.model,
        to_tensor(image, lm.input_spec),
        args.method,
        layers=args.layers,
        target=args.target,
        class_names=lm.class_names,
        input_spec=lm.input_spec,
        probs=True,
        **params,
    )
    for note in e.notes:
        print(f"hookscope: note: {note.text}", file=sys.stderr)
    target = e.target if isinstance(e.target, int) else str(e.target)
    prob = float(e.probs[e.target]) if e.probs is not None and isinstance(e.target, int) else None
    name = lm.class_names[e.target] if lm.class_names and isinstance(e.target, int) else None
    settings = _describe(lm, args, target, name, prob) | {
        "kind": "cam",
        "method": args.method,
        "blocks": args.layers,
        "options": params,
        "normalisation": "patch map min-max, bilinear upsample (align_corners=False), min-max",
    }
    raw_name = "patch_map"
    if e.raw.ndim == 3:  # attnlrp: the signed input relevance (C, H, W)
        settings["normalisation"] = (
            "input relevance: sum over channels, per patch, positive part, bilinear upsample "
            "(align_corners=False), min-max"
        )
        raw_name = "relevance"
    if out.suffix.lower() == ".npz":
        npz, side = save_arrays(out, {"map": e.map, raw_name: e.raw}, settings)
        print(f"wrote {npz} and {side}")
        return 0
    picture = np.asarray(preprocess(image, lm.input_spec).convert("RGB"))
    shown = overlay(picture, e.map, args.colormap, args.alpha)
    panels = [Panel("input", picture), Panel(args.method, shown)]
    _save(out, panels, _title(lm, args.method, target, name, prob))
    return 0


def cmd_attribute(args) -> int:
    """``attribute``: the app's attribution job → figure (.png/.svg) or arrays (.npz + .json)."""
    from hookscope.core.io.export import save_arrays
    from hookscope.core.jobs.attribution import attribution_job
    from hookscope.core.loading.images import load_image
    from hookscope.core.methods.explainers import get

    out = _check_out(args.out)
    _check_display(args)
    meth = get(args.method)
    allowed = {p.name for p in meth.params}
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
    extra = sorted(set(given) - allowed)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise HookScopeError(f"{flag} does not apply to {args.method}; see attribute --help.")
    options = {p.name: p.default for p in meth.params} | given
    for key in ("batch_size", "samples", "steps", "window", "stride"):
        if key in options and options[key] is not None and options[key] < 1:
            raise HookScopeError(f"--{key.replace('_', '-')} must be at least 1.")
    lm = load_from_args(args)
    image = load_image(args.image)
    result, code = run_job(attribution_job, lm, image, args.method, options, args.target)
    if code:
        return code
    r = result
    settings = _describe(lm, args, r.target, r.target_name, r.target_prob) | {
        "kind": "attribution",
        "method": args.method,
        "options": dict(r.params),
    }
    if out.suffix.lower() == ".npz":
        npz, side = save_arrays(out, {"attribution": r.attribution, "map": r.map2d}, settings)
        print(f"wrote {npz} and {side}")
        return 0
    from hookscope.core.display.figures import attribution_figure

    panels = attribution_figure(r, args.colormap, args.alpha)
    _save(out, panels, _title(lm, r.title, r.target, r.target_name, r.target_prob))
    return 0
