"""The ``atlas`` subcommand: for every channel of a layer, the top-k images of a folder.

The numbers come from :func:`core.jobs.atlas.atlas_job` (the app's Dataset dock runs the same
job); this module adds the progress bar and the summary lines.
"""

from __future__ import annotations

from hookscope.core.cli import RESHAPE_HELP, add_model_args, load_from_args, reshape_value
from hookscope.core.cli.limits import bounded
from hookscope.core.cli.scan import add_folder_args, folder_options, run_resumable
from hookscope.core.experiments.atlas import MAX_TOP


def add_subcommand(subparsers) -> None:
    """Register ``atlas`` on ``subparsers``."""
    p = subparsers.add_parser(
        "atlas",
        help="per channel of a layer, the top images of a folder with receptive-field crops",
        description="Channel atlas: for every channel of --layer, the images of the folder "
        "with the highest maximum activation, each with the receptive-field crop around its "
        "argmax. Writes atlas.parquet, crops/ and atlas_maps.npy; rerunning the same command "
        "resumes an interrupted atlas.",
    )
    add_model_args(p)
    add_folder_args(
        p, "layer whose channels are ranked", "atlas-<DIR>-<LAYER>", images_required=False
    )
    p.add_argument(
        "--scan",
        metavar="DIR",
        help="a finished scan folder: its images, input spec and (without --layer) its layer",
    )
    p.add_argument(
        "--top",
        type=bounded(1, MAX_TOP),
        default=9,
        metavar="K",
        help=f"images per channel, 1 to {MAX_TOP} (9)",
    )
    p.add_argument("--reshape", type=reshape_value, default=None, help=RESHAPE_HELP)
    p.set_defaults(func=cmd_atlas)


def cmd_atlas(args) -> int:
    """``atlas``: run :func:`core.jobs.atlas.atlas_job` and print where the outputs are."""
    from hookscope.core.jobs.atlas import AtlasSettings, atlas_job

    images, layer, spec = _from_scan(args)
    lm = load_from_args(args)
    settings = AtlasSettings(
        images, layer, spec=spec, top=args.top, reshape=args.reshape, **folder_options(args)
    )
    saved = "the atlas so far is checkpointed in the output folder"
    s, code = run_resumable(atlas_job, lm, settings, saved, "Building the atlas")
    if s is None:
        return code
    resumed = f", {s.resumed} resumed" if s.resumed else ""
    f = s.field
    print(
        f"atlas of {layer}: {s.channels} channels × top {settings.top} over {s.images} "
        f"images ({s.computed} computed{resumed}, {s.errors} unreadable); grid "
        f"{s.grid[0]}x{s.grid[1]}, receptive field {f.offset[1] - f.offset[0]:.0f}×"
        f"{f.offset[3] - f.offset[2]:.0f} px ({f.how}), stride {f.stride[0]:g}×{f.stride[1]:g}"
    )
    print(f"wrote {s.out}/atlas.parquet, crops/, atlas_maps.npy")
    for note in s.notes:
        print(f"note: {note}")
    return 0


def _from_scan(args):
    """(images, layer, input spec or None) from --images / --layer, or a --scan folder."""
    from hookscope.core.errors import HookScopeError

    if not args.scan:
        if not args.images or not args.layer:
            raise HookScopeError("atlas needs --images DIR and --layer L (or --scan DIR).")
        return args.images, args.layer, None
    from hookscope.core.experiments.scan import spec_from_dict
    from hookscope.core.io.scan_outputs import read_settings

    info = read_settings(args.scan)
    if info is None:
        raise HookScopeError(f"{args.scan} holds no scan; give a scan output folder.")
    ident = info.get("identity", {})
    images = args.images or ident.get("images")
    spec = spec_from_dict(ident["input_spec"]) if ident.get("input_spec") else None
    return images, args.layer or ident.get("layer"), spec
