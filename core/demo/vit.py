"""The demo's small vision transformer: torchvision's ``VisionTransformer``, 96 px, patch 8.

A torchvision ViT on purpose: every transformer method (rollout, chefer, legrad, attnlrp)
and its reference (torchcam's LeGrad, lxt's torchvision recipe) reads this class, so the demo
exercises the same code paths as ``torchvision:vit_b_16``. 12×12 patches (as the CNN's 12×12
CAM grid), a class token, 4 blocks of width 64: about 156k parameters, 0.65 MB of weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

VIT_CONFIG = {
    "image_size": 96,
    "patch_size": 8,
    "num_layers": 4,
    "num_heads": 4,
    "hidden_dim": 64,
    "mlp_dim": 128,
}


def build_vit(num_classes: int = 4) -> nn.Module:
    """A fresh demo ViT, initialised from the caller's torch RNG (the training script seeds it)."""
    # Imported here: loading the CNN demo must not pay torchvision's import time.
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(num_classes=num_classes, **VIT_CONFIG)


def vit_forward(model: nn.Module, x: Tensor, attention: bool = False):
    """``model(x)`` step by step, as torchvision's ``VisionTransformer.forward``.

    Training needs what the plain forward hides: the final tokens (the head applied to each
    patch token gives per-patch class scores, the ViT's CAM) and, with ``attention``, each
    block's head-averaged attention probabilities (B, T, T).

    Returns:
        (logits (B, K), final normed tokens (B, T, C), list of attention maps or of None).
    """
    n = x.shape[0]
    t = model._process_input(x)
    t = torch.cat([model.class_token.expand(n, -1, -1), t], dim=1)
    enc = model.encoder
    t = enc.dropout(t + enc.pos_embedding)
    attns = []
    for blk in enc.layers:
        y = blk.ln_1(t)
        y, a = blk.self_attention(y, y, y, need_weights=attention, average_attn_weights=True)
        attns.append(a)
        t = t + blk.dropout(y)
        t = t + blk.mlp(blk.ln_2(t))
    t = enc.ln(t)
    return model.heads(t[:, 0]), t, attns
