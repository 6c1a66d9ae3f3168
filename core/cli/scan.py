"""The ``scan`` subcommand: CAMs of a whole folder, SpRAy clusters, a static HTML report.

The numbers come from :func:`core.jobs.scan.scan_job` (the app's Dataset dock runs the same
job); this module adds the progress bar. The PNGs and the report are coloured with the app's
colour tables (:mod:`core.display.colormaps`), so they look like the docks.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

from hookscope.core.cli import CANCELLED_EXIT, add_model_args, cancel_on_sigint, load_from_args
from hookscope.core.cli.limits import MAX_BATCH, MAX_MAP_SIZE, bounded
from hookscope.core.errors import HookScopeError


def add_subcommand(subparsers) -> None:
    """Register ``scan`` on ``subparsers``."""
    from hookscope.core.experiments.scan_settings import SCAN_METHODS

    p = subparsers.add_parser(
        "scan",
        help="CAMs of every image in a folder, clustered (SpRAy); Parquet, maps, HTML report",
        description="Scan a folder: per image the prediction and its CAM; the maps clustered "
        "with spectral clustering to show the model's strategies. Rerunning the same command "
        "resumes an interrupted scan.",
    )
    add_model_args(p)
    add_folder_args(p, "CAM layer (default: the last convolution)", "scan-<DIR name>")
    p.add_argument("--method", default="gradcam", choices=SCAN_METHODS)
    p.add_argument(
        "--target",
        default="pred",
        help="pred (top-1, default), label (from the folder layout) or a class index / name",
    )
    p.add_argument("--masks", metavar="DIR", help="object masks at the same relative paths")
    p.add_argument(
        "--map-size",
        type=bounded(4, MAX_MAP_SIZE),
        default=64,
        metavar="S",
        help=f"stored map side, 4 to {MAX_MAP_SIZE} (64)",
    )
    p.add_argument("--clusters", default="auto", help="auto (eigengap) or a number of clusters")
    p.add_argument(
        "--concepts",
        default=None,
        metavar="auto|K",
        help="NMF concepts of the layer after the scan: concepts.json, and each cluster's "
        "concepts ranked by importance in clusters.json",
    )
    p.add_argument("--colormap", default="jet", help="colour map of the PNGs and the report")
    p.set_defaults(func=cmd_scan)


def add_folder_args(p, layer_help: str, out_default: str, images_required: bool = True) -> None:
    """The options every job over an image folder takes (``scan``, ``atlas``): the folder,
    the layer, the output folder, batches, decoding workers, a limit and Ray."""
    p.add_argument(
        "--images", required=images_required, metavar="DIR", help="image folder (recursive)"
    )
    p.add_argument("--layer", default=None, help=layer_help)
    p.add_argument("--out", metavar="DIR", help=f"output folder (default: {out_default})")
    p.add_argument(
        "--batch-size",
        type=bounded(1, MAX_BATCH),
        default=32,
        metavar="N",
        help=f"images per batch, 1 to {MAX_BATCH}",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decoding processes (default: one per spare core, at most 4)",
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N images only")
    p.add_argument(
        "--ray",
        default=None,
        metavar="local|auto|ADDRESS",
        help="run on Ray: local starts a local runtime, auto joins this machine's cluster",
    )


def folder_options(args) -> dict:
    """The settings :func:`add_folder_args`' options give (beside the folder and layer)."""
    return {
        "out": args.out,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "limit": args.limit,
        "ray": args.ray,
        "model_spec": args.model,
    }


def run_resumable(job, loaded, settings, saved: str, desc: str = "Scanning", **options):
    """Run a resumable folder job with the images bar; Ctrl+C says what was kept.

    Args:
        saved: What the output folder holds after a cancel, e.g. "the rows so far are in the
            output folder".

    Returns:
        ``(summary, 0)``, or ``(None, CANCELLED_EXIT)`` after Ctrl+C.
    """
    from hookscope.core.reporting import Cancelled

    try:
        with _progress(desc) as reporter:
            return job(reporter, loaded, settings, **options), 0
    except (Cancelled, KeyboardInterrupt):
        print(
            f"hookscope: cancelled; {saved}, and running the same command again resumes it.",
            file=sys.stderr,
        )
        return None, CANCELLED_EXIT


@contextmanager
def _progress(desc: str = "Scanning"):
    """A Reporter drawing a tqdm bar (images/s, time left) on stderr; Ctrl+C cancels it.

    The scan stops after the current batch and writes the partial output; a second Ctrl+C
    interrupts at once (the parts already on disk still resume).
    """
    from tqdm import tqdm

    from hookscope.core.reporting import SCANNING, Progress, Reporter

    bar = None
    stage = [""]

    def on_update(p: Progress) -> None:
        nonlocal bar
        done, total, message = p.done, p.total, p.message
        if p.stage != SCANNING:  # clustering, report: a line each, no images/s
            if bar is not None:
                bar.close()
                bar = None
            if message != stage[0]:
                print(f"{message}…", file=sys.stderr)
            stage[0] = message
            return
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=desc, file=sys.stderr, unit="img")
        bar.total = total
        bar.update(done - bar.n)

    reporter = Reporter(on_update=on_update)
    try:
        with cancel_on_sigint(reporter):
            yield reporter
    finally:
        if bar is not None:
            bar.close()


def cmd_scan(args) -> int:
    """``scan``: run :func:`core.jobs.scan.scan_job` and print where the outputs are."""
    from hookscope.core.display.colormaps import check_colormap
    from hookscope.core.jobs.scan import ScanSettings, scan_job
    from hookscope.core.methods.cam import suggest_layer

    check_colormap(args.colormap)  # an unknown colour map fails now, not after the model loads
    clusters = args.clusters.strip().lower()
    if clusters != "auto" and not (clusters.isascii() and clusters.isdecimal()):
        raise HookScopeError(f"--clusters must be auto or a number, not {args.clusters}.")
    concepts = (args.concepts or "").strip().lower()
    if concepts and concepts != "auto" and not (concepts.isascii() and concepts.isdecimal()):
        raise HookScopeError(f"--concepts must be auto or a number, not {args.concepts}.")
    lm = load_from_args(args)
    settings = ScanSettings(
        args.images,
        args.layer or suggest_layer(lm.model),
        method=args.method,
        target=args.target,
        masks=args.masks,
        map_size=args.map_size,
        clusters=clusters,
        **folder_options(args),
    )
    summary, code = run_resumable(
        scan_job, lm, settings, "the rows so far are in the output folder", colormap=args.colormap
    )
    if summary is None:
        return code
    print(
        f"scanned {summary.counts()} at {summary.images_per_s:.1f} images/s; "
        f"{summary.clusters} clusters"
    )
    print(f"wrote {summary.out}/results.parquet, maps.npy, clusters.json, report.html")
    for note in summary.notes:  # degenerate maps, recomputed images: said, not hidden
        print(f"note: {note}")
    if args.concepts:
        from hookscope.core.cli import run_job
        from hookscope.core.jobs.concept_view import find_concepts_job

        # the concepts, then report.html again with each cluster's concepts and their patches
        found, code = run_job(find_concepts_job, lm, summary.out, concepts, colormap=args.colormap)
        if found is None:
            return code
        print(
            f"{found.k} concepts over {found.images} images: {summary.out}/concepts.json "
            "(report.html lists them per cluster)"
        )
    return 0
