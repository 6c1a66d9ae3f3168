"""lxt 2.1's own torchvision-ViT AttnLRP recipe, run in a separate process (its patches change
torch classes for the whole process): ``python lxt_vit_reference.py IN.pt OUT.npy``.

IN.pt holds the ViT's constructor kwargs, its state dict (or a seed and the head's init std),
the input, target and (conv, linear) gamma pairs; OUT.npy gets the input relevance
``x * x.grad`` per pair, (P, C, H, W), as in lxt's ``examples/vit_torch.py``.

``import lxt.efficient`` fails on transformers 5 (its BERT patch imports a removed helper), so
the packages are entered without their ``__init__`` and only the ViT rules are loaded: what
``monkey_patch(vision_transformer)`` does with ``cp_LRP``.
"""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch


def _lxt_modules():
    spec = importlib.util.find_spec("lxt")
    root = Path(spec.origin).parent
    for name, sub in (("lxt", root), ("lxt.efficient", root / "efficient")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(sub)]
        sys.modules[name] = pkg
    models = types.ModuleType("lxt.efficient.models")
    models.__path__ = [str(root / "efficient" / "models")]
    sys.modules["lxt.efficient.models"] = models
    from lxt.efficient.models import vit_torch
    from lxt.efficient.zennit_patches import monkey_patch_zennit

    return vit_torch, monkey_patch_zennit


def main(src: str, dst: str) -> None:
    vit_torch, monkey_patch_zennit = _lxt_modules()
    from torchvision.models import vision_transformer
    from zennit import rules as z_rules
    from zennit.composites import LayerMapComposite

    for target, patch in vit_torch.cp_LRP.items():  # = lxt.efficient.monkey_patch(...)
        assert patch(target), target
    monkey_patch_zennit()
    torch.set_num_threads(1)
    blob = torch.load(src, weights_only=True)
    if "state" in blob:
        model = vision_transformer.VisionTransformer(**blob["config"])
        model.load_state_dict(blob["state"])
    else:  # a big ViT built here from its seed, as the test builds it (no 300 MB file)
        torch.manual_seed(blob["seed"])
        model = vision_transformer.VisionTransformer(**blob["config"])
        torch.nn.init.normal_(model.heads.head.weight, std=blob["head_std"])
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    out = []
    for conv_gamma, linear_gamma in blob["gammas"]:  # as the example's loop over its grid
        composite = LayerMapComposite(
            [
                (torch.nn.Conv2d, z_rules.Gamma(conv_gamma)),
                (torch.nn.Linear, z_rules.Gamma(linear_gamma)),
            ]
        )
        composite.register(model)
        x = blob["x"].clone().requires_grad_()
        y = model(x)
        y[0, blob["target"]].backward()
        composite.remove()
        out.append((x * x.grad).detach()[0].numpy())
    np.save(dst, np.stack(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
