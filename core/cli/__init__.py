"""The command line's Qt-free subcommands (one module each) and the options they share."""

from __future__ import annotations

import argparse

from core.loading.models import load_model


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--model, --weights, --trust-pickle and --device."""
    p.add_argument(
        "--model",
        required=required,
        help="demo, torchvision:NAME[:WEIGHTS], file.py:factory or model.pt",
    )
    p.add_argument("--weights", help="state_dict file applied to the model")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled full model (unpickling runs code from the file)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")


def names(text: str) -> list[str]:
    """Comma-separated names → list, blanks dropped."""
    return [s.strip() for s in text.split(",") if s.strip()]


def load_from_args(args):
    """The LoadedModel the model options ask for."""
    return load_model(args.model, args.weights, trust_pickle=args.trust_pickle, device=args.device)
