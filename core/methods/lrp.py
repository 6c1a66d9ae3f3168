"""LRP for CNNs through zennit (Bach et al. 2015; Montavon et al. 2019), the recipe SpRAy used.

zennit's ``EpsilonPlusFlat`` composite: the flat rule on the first linear layer, z+ on the
other convolutions, epsilon on the fully connected layers; BatchNorm merged into the layer before
it (``SequentialMergeBatchNorm``) and, for torchvision ResNets, the residual sums made modules
(``zennit.torchvision.ResNetCanonizer``). The composite's context scopes every rule hook and
canonizer change to this call. The relevance is the gradient of the target score through the
rules, as zennit's ``Gradient`` attributor computes it with a one-hot output relevance.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, model_device
from hookscope.core.engine.targets import target_scores
from hookscope.core.errors import HookScopeError


def _zennit():
    try:
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer
    except ImportError as exc:
        raise HookScopeError(
            "lrp needs zennit, which is not installed: pip install 'hookscope[lrp]'."
        ) from exc
    return EpsilonPlusFlat, SequentialMergeBatchNorm, ResNetCanonizer


def _is_resnet(model: nn.Module) -> bool:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return any(isinstance(m, (BasicBlock, Bottleneck)) for m in model.modules())


def composite_for(model: nn.Module):
    """zennit's ``EpsilonPlusFlat`` with the canonizers that fit ``model``."""
    epsilon_plus_flat, merge_bn, resnet = _zennit()
    canonizer = resnet() if _is_resnet(model) else merge_bn()
    return epsilon_plus_flat(canonizers=[canonizer])


def _refuse_attention(model: nn.Module) -> None:
    if any(
        isinstance(m, nn.MultiheadAttention) or hasattr(m, "fused_attn") for m in model.modules()
    ):
        raise HookScopeError(
            "lrp here is zennit's CNN recipe and has no rules for attention; for a transformer "
            "use chefer, legrad or rollout."
        )


def lrp(model: nn.Module, x: torch.Tensor, target) -> np.ndarray:
    """Input relevance (C, H, W) of ``target`` for ``model`` on ``x`` (1, C, H, W).

    Raises:
        HookScopeError: zennit missing, a transformer, or a failing forward.
    """
    composite = composite_for(model)
    _refuse_attention(model)
    x = x.detach().to(model_device(model)).requires_grad_(True)
    with torch.enable_grad(), eval_mode(model), composite.context(model) as modified:
        output = forward_model(modified, x)
        score = target_scores(target, output).sum()
        (relevance,) = torch.autograd.grad(score, x)
    return relevance[0].detach().float().cpu().numpy()
