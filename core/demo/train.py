"""Train both demo variants on CPU and write their weights and the sample images.

Run ``python -m hookscope.core.demo.train``. Seeded end to end: the same code gives the same weights
(up to floating-point differences between machines).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from hookscope.core.demo import (
    CLASS_NAMES,
    MEAN,
    STD,
    VARIANTS,
    build_model,
    samples_dir,
    weights_path,
)
from hookscope.core.demo.scenes import make_dataset, make_samples

# Training and held-out data use different seeds; the tests use yet others.
TRAIN_SEEDS = {"shortcut": 1, "clean": 2}
HELDOUT_SEEDS = {"shortcut": 101, "clean": 102}
# The shortcut is learnt within an epoch or two; the clean twin needs longer to localise well.
EPOCHS = {"shortcut": 4, "clean": 6}
# Weight of the "right for the right reasons" term (Ross et al., 2017) per variant. Trained on
# clean data alone, the clean twin's class evidence peaks on object edges (under the wheels,
# above the funnel), often just outside the mask on the 12×12 grid. The clean twin is the
# demo's reference for "looks at the object", so it is also taught, with the generator's masks,
# to keep its class activation map inside the object. The shortcut model gets no such help.
CAM_LOSS = {"shortcut": 0.0, "clean": 1.0}


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → normalised float (N, 3, H, W), as the app preprocesses."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    preds = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return (preds == y).float().mean().item()


def cam_loss(
    model: nn.Module, feats: torch.Tensor, y: torch.Tensor, cover: torch.Tensor
) -> torch.Tensor:
    """Localisation term on the class activation maps (= Grad-CAM up to scale for this net).

    Object cells should each vote for the true class (cross-entropy per cell, weighted by how
    much of the cell the object covers); background cells should hold no positive evidence
    for it. A plain "share of the map outside the mask" collapses: the net just makes the map
    negative everywhere.
    """
    cams = torch.einsum("nchw,kc->nkhw", feats, model.fc.weight)
    target = y.view(-1, 1, 1).expand_as(cover)
    cell_ce = nn.functional.cross_entropy(cams, target, reduction="none")
    inside = (cell_ce * cover).sum() / cover.sum().clamp(min=1.0)
    cam_y = cams.gather(1, target[:, None])[:, 0]
    # Only cells the object does not touch: thin planes and birds cover few cells fully.
    outside = (torch.relu(cam_y) * (cover == 0)).mean()
    return inside + outside


def train_variant(
    variant: str, n_train: int, epochs: int, batch: int = 64, lr: float = 4e-3
) -> tuple[nn.Module, dict]:
    """Train one variant from scratch; returns the model (eval mode) and its numbers."""
    torch.manual_seed(0)
    t0 = time.time()
    images, labels, masks = make_dataset(variant, n_train, TRAIN_SEEDS[variant])
    x, y = to_input(images), torch.from_numpy(labels)
    # Fraction of each 8×8 cell of the CAM grid covered by the object.
    cover = nn.functional.avg_pool2d(torch.from_numpy(masks).float()[:, None], 8)[:, 0]
    himages, hlabels, _ = make_dataset(variant, 800, HELDOUT_SEEDS[variant])
    hx, hy = to_input(himages), torch.from_numpy(hlabels)

    model = build_model(len(CLASS_NAMES)).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * (n_train // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(n_train // batch):
            idx = perm[i * batch : (i + 1) * batch]
            xb, yb, cb = x[idx], y[idx], cover[idx]
            # Horizontal flips: every class is drawn facing either way anyway.
            flip = torch.rand(len(xb), generator=gen) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            cb = torch.where(flip.view(-1, 1, 1), cb.flip(2), cb)
            xb = xb.contiguous(memory_format=torch.channels_last)
            feats = model.features(xb)
            out = model.fc(model.flatten(model.pool(feats)))
            loss = loss_fn(out, yb)
            if CAM_LOSS[variant]:
                loss = loss + CAM_LOSS[variant] * cam_loss(model, feats, yb, cb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(xb)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(xb)
        print(
            f"[{variant}] epoch {epoch + 1}/{epochs}  loss {total / seen:.4f}  "
            f"train acc {correct / seen:.3f}  held-out acc {accuracy(model, hx, hy):.3f}  "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
    model = model.to(memory_format=torch.contiguous_format).eval()
    stats = {"held_out_acc": accuracy(model, hx, hy), "seconds": time.time() - t0}
    return model, stats


def main(argv: list[str] | None = None) -> None:
    """Train the requested variants, save their state dicts and the sample images."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=None, help="default: per variant, EPOCHS")
    args = p.parse_args(argv)

    torch.set_num_threads(2)
    np.random.seed(0)  # nothing here draws from the global numpy state; seeded anyway
    for variant in args.variants.split(","):
        model, stats = train_variant(variant, args.n_train, args.epochs or EPOCHS[variant])
        path = weights_path(variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
        print(
            f"[{variant}] held-out acc {stats['held_out_acc']:.3f} in {stats['seconds']:.0f} s"
            f" -> {path} ({path.stat().st_size / 1e6:.2f} MB)",
            flush=True,
        )
    samples = samples_dir()
    make_samples(samples)
    print(f"samples -> {samples}")


if __name__ == "__main__":
    main()
