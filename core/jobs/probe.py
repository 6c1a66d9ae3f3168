"""Jobs the app's worker and the CLI both run: load a model, probe it and compute CAMs."""

from __future__ import annotations

import contextlib
import time

import torch

from hookscope.core.display.snapshot import make_snapshot
from hookscope.core.engine.guard import cancel_checks
from hookscope.core.engine.probe import run_probe
from hookscope.core.engine.runtime import torch_threads
from hookscope.core.engine.tree import build_tree
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import edit_from_dict
from hookscope.core.loading.images import to_tensor
from hookscope.core.loading.models import LoadedModel, load_model
from hookscope.core.methods.cam import cam_from_probe, compute_cam, suggest_layer
from hookscope.core.reporting import Reporter


def load_job(reporter: Reporter, source, weights=None, trust_pickle=False, device="cpu"):
    """Load a model and describe its tree (the dry run) off the UI thread.

    Args:
        reporter: Progress and cancel.
        source: A spec string (``core.loading.models.load_model``) or an already wrapped
            :class:`~core.loading.models.LoadedModel` (a live module: used as it is, never
            moved, so ``weights``, ``trust_pickle`` and ``device`` are ignored).
        weights: State_dict file for a spec.
        trust_pickle: Allow a pickled module for a spec.
        device: Device for a spec.

    Returns:
        ``(LoadedModel, ModuleTree)``.
    """
    if isinstance(source, LoadedModel):
        lm = source
        reporter.progress(0, 2, f"Reading {lm.name}…")
    else:
        reporter.progress(0, 2, f"Loading {source}…")
        lm = load_model(source, weights, trust_pickle=trust_pickle, device=device)
    reporter.progress(1, 2, "Reading the module tree…")
    tree = build_tree(lm.model, lm.input_spec, class_names=lm.class_names)
    tree.cam_layer = _checked_cam_layer(lm, tree)
    reporter.progress(2, 2, "Model loaded")
    return lm, tree


def _checked_cam_layer(lm, tree) -> str | None:
    """For token models, the last CAM layer whose map is not flat, on a seeded input.

    A ViT's last blocks have a grid, yet only their class token reaches the head, so the
    structural default would draw a flat map. Convolutional models keep the structural
    default (no extra pass at load time).
    """
    layouts = tree.layouts
    last = layouts.default_layer() if layouts is not None else None
    if last is None or layouts.layouts[last].kind != "tokens":
        return None
    spec = lm.input_spec
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, spec.channels, *spec.size, generator=gen)
    try:
        return suggest_layer(lm.model, x, class_names=lm.class_names, input_spec=spec)
    except HookScopeError:
        return None


def probe_job(
    reporter: Reporter,
    loaded,
    image,
    layers,
    target=None,
    cam_method: str | None = None,
    cam_layers=(),
    *,
    spec=None,
    k: int = 5,
    edits=(),
    threads: int | None = None,
    batch_size: int = 32,
    reshape=None,
):
    """Preprocess, probe (forward + backward), compute CAMs, and convert to a Snapshot.

    Args:
        reporter: Progress and cancel; cancel is also checked before every module's forward.
        loaded: The :class:`~core.loading.models.LoadedModel`.
        image: A PIL image.
        layers: Layer names to hook.
        target: None (the output kind's default), class index or name, or the grammar of
            ``core.engine.targets`` (``C``, ``C@mask.png``, ``box:i``, ``similar:IMAGE``).
        cam_method: A key of ``core.methods.cam.CAM_METHODS``, or None for no CAM.
        cam_layers: Layers to compute CAM maps for.
        spec: Input spec overriding ``loaded.input_spec`` (edited size / normalisation).
        k: Top-k size.
        edits: Gradient / activation edit dicts (``core.experiments.interventions.edit_from_dict``),
            active during the probe and the CAM, so every view shows the edited model.
        threads: Intra-op threads for this job (``core.engine.runtime.threads_for``); None: as is.
        batch_size: Forward batch size of ScoreCAM / AblationCAM.
        reshape: Layout of the CAM layers' outputs (``nchw``, ``nhwc``, ``tokens:K``, ``HxW``,
            or a dict layer → one of those); None reads it from the evidence.

    Returns:
        A :class:`~core.display.snapshot.Snapshot`.
    """
    # The whole job, snapshot included: switching the thread count back and forth between
    # its parts would restart torch's thread pool mid-job.
    with torch_threads(threads):
        start = time.perf_counter()
        spec = spec or loaded.input_spec
        cam_layers = list(cam_layers or ()) if cam_method else []
        # No made-up "1 / 3" steps: a busy message, then real units (channels) from slow CAMs.
        reporter.progress(0, 0, "Forward and backward…")
        x = to_tensor(image, spec)
        result = run_probe(
            loaded.model,
            x,
            list(layers),
            target,
            class_names=loaded.class_names,
            k=k,
            input_spec=spec,
            edits=[
                cancel_checks(loaded.model, reporter),
                *[edit_from_dict(loaded.model, d) for d in edits],
            ],
        )
        cams, notes = {}, []
        if cam_layers:
            reporter.progress(0, 0, f"{cam_method} for {', '.join(cam_layers)}…")
            with contextlib.ExitStack() as stack:
                for d in edits:  # fresh hooks: the CAM explains the edited model too
                    stack.enter_context(edit_from_dict(loaded.model, d))
                # With edits the records may hold an activation before or after its edit, so
                # only an unedited probe stands in for the CAM's own pass.
                probe = None if edits else result
                # The probe's resolved target, in the grammar, so box:i / C@mask stay the same.
                tgt = target if callable(target) else (result.target_text or result.target)
                cams, cam_notes = _cams(
                    reporter,
                    loaded,
                    x,
                    cam_layers,
                    cam_method,
                    tgt,
                    probe,
                    batch_size,
                    reshape,
                    spec,
                )
            notes += cam_notes
        reporter.progress(0, 0, "Preparing the views…")
        snap = make_snapshot(
            result,
            x,
            spec,
            model_name=loaded.name,
            cams=cams,
            cam_method=cam_method,
            seconds=time.perf_counter() - start,
            notes=tuple(notes),
        )
        reporter.progress(1, 1, "Done")
    return snap


def _cams(
    reporter: Reporter,
    loaded,
    x,
    layers,
    method,
    target,
    probe=None,
    batch_size=32,
    reshape=None,
    spec=None,
):
    """``(maps, notes)``: CAM maps and their flat-result notes, or ``({}, [why])`` when the
    method fails on these layers.

    Gradient methods on layers ``probe`` recorded need no second pass.
    """

    try:
        maps = None
        if probe:
            maps = cam_from_probe(loaded.model, x, probe, layers, method, reshape=reshape)
        if maps is None:
            maps = compute_cam(
                loaded.model,
                x,
                list(layers),
                method,
                target,
                class_names=loaded.class_names,
                batch_size=batch_size,
                reporter=reporter,
                reshape=reshape,
                input_spec=spec,
            )
        return maps, list(getattr(maps, "notes", ()))
    except HookScopeError as exc:
        return {}, [str(exc)]
