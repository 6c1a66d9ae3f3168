"""Transformer-native explanations: ``rollout``, ``chefer`` and ``legrad``.

Each reads the attention probabilities of torchvision and timm vision transformers
(:mod:`.attention`) and is one module with its formula in the docstring.
:data:`TRANSFORMER_METHODS` lists them; the explainer registry registers each once (kind
``transformer``). Their ``raw`` is the (h, w) map over the patch grid.
``attnlrp`` (:mod:`.attnlrp`) is registered beside them; its ``raw`` is the input relevance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hookscope.core.methods.attribution import Param
from hookscope.core.methods.transformers.chefer import chefer
from hookscope.core.methods.transformers.common import to_input
from hookscope.core.methods.transformers.legrad import legrad
from hookscope.core.methods.transformers.rollout import FUSIONS, rollout

__all__ = ["TRANSFORMER_METHODS", "TransformerMethod", "to_input"]


@dataclass(frozen=True)
class TransformerMethod:
    """A transformer method: ``func(model, x, target, blocks=None, **params)`` returns
    ((h, w) map over the patches in [0, 1], names of the blocks used)."""

    title: str
    params: tuple[Param, ...]
    func: Callable


def _rollout(model, x, target, blocks=None, **params):
    return rollout(model, x, blocks=blocks, **params)


TRANSFORMER_METHODS: dict[str, TransformerMethod] = {
    "rollout": TransformerMethod(
        "Attention rollout",
        (Param("fusion", str, "mean", "how heads are fused", FUSIONS),),
        _rollout,
    ),
    "chefer": TransformerMethod("Chefer et al. (generic attention)", (), chefer),
    "legrad": TransformerMethod("LeGrad", (), legrad),
}
