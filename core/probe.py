"""Public API: one forward and one backward with hooks (``core.engine.probe``)."""

from core.engine.probe import ProbeResult, run_probe, tensor_stats

__all__ = ["ProbeResult", "run_probe", "tensor_stats"]
