"""Public API: one forward and one backward with hooks (``core.engine.probe``)."""

from hookscope.core.engine.outputs import OutputKind, Prediction, output_kind
from hookscope.core.engine.probe import ProbeResult, run_probe, tensor_stats
from hookscope.core.engine.targets import parse_target_text, region_target

__all__ = [
    "OutputKind",
    "Prediction",
    "ProbeResult",
    "output_kind",
    "parse_target_text",
    "region_target",
    "run_probe",
    "tensor_stats",
]
