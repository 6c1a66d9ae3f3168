"""Public API: faithfulness metrics for saliency maps (``core.methods.metrics``)."""

from hookscope.core.methods.metrics import (
    BASELINES,
    PERCENTILES,
    causal_curves,
    deletion_insertion,
    drop_in_confidence,
    energy_in_mask,
    increase_in_confidence,
    pointing_game,
    random_map,
    road,
    road_combined,
    road_scores,
    sobel_map,
)

__all__ = [
    "BASELINES",
    "PERCENTILES",
    "causal_curves",
    "deletion_insertion",
    "drop_in_confidence",
    "energy_in_mask",
    "increase_in_confidence",
    "pointing_game",
    "random_map",
    "road",
    "road_combined",
    "road_scores",
    "sobel_map",
]
