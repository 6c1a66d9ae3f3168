"""Public API: the explainer registry (``core.methods.explainers``).

Every way of getting a map (CAM methods, attributions, baselines) is one record of
:data:`EXPLAINERS`; :func:`explain` runs any of them on one preprocessed input.
"""

from hookscope.core.methods.explainers import (
    ATTRIBUTION,
    BASELINE,
    CAM,
    EXPLAINERS,
    Explainer,
    Explanation,
    Note,
    explain,
    explain_batch,
    get,
    names,
    register,
)

__all__ = [
    "ATTRIBUTION",
    "BASELINE",
    "CAM",
    "EXPLAINERS",
    "Explainer",
    "Explanation",
    "Note",
    "explain",
    "explain_batch",
    "get",
    "names",
    "register",
]
