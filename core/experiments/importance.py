"""Channel importance: zero each channel of a layer in turn and watch the target probability.

Batched: the input is replicated along the batch dimension and batch item ``i`` zeroes
channel ``i`` through one forward hook, so a layer of 512 channels costs 512 / batch_size
forward passes (no backward). The model runs in eval mode, so batch items never interact
(BatchNorm uses its running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hookscope.core.engine.context import eval_mode, forward_model, main_tensor, model_device
from hookscope.core.engine.hooks import resolve_modules
from hookscope.core.engine.outputs import CLASSES, output_kind
from hookscope.core.engine.targets import Target, class_name, logits_of, resolve_target
from hookscope.core.errors import HookScopeError
from hookscope.core.reporting import Reporter


@dataclass(frozen=True)
class ChannelImportance:
    """How much each channel of a layer matters for the target class.

    Attributes:
        layer: The layer whose channels were ablated.
        target: Target class index.
        target_name: Its name, if known.
        base_prob: Target probability with nothing ablated.
        probs: (C,) target probability with channel c zeroed.
        drops: (C,) ``base_prob - probs``: positive = the channel supported the target.
        ranking: Channel indices sorted by drop, largest first (ties: lower index first).
    """

    layer: str
    target: int
    target_name: str | None
    base_prob: float
    probs: np.ndarray
    drops: np.ndarray
    ranking: np.ndarray

    def top(self, n: int = 10) -> list[tuple[int, float, float]]:
        """The ``n`` most important channels as ``(channel, drop, prob)``."""
        return [(int(c), float(self.drops[c]), float(self.probs[c])) for c in self.ranking[:n]]


def channel_importance(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    target: Target = None,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    reporter: Reporter | None = None,
) -> ChannelImportance:
    """Rank the channels of ``layer`` by the drop of the target probability when zeroed.

    Args:
        model: Any module; run in eval mode, the user's modes restored after.
        x: One input (1, C, H, W); only the first sample is used.
        layer: Qualified module name whose output has channels on dim 1.
        target: None (top-1 of the unedited input), class index or name; not a callable.
        class_names: For a string target and the result's name.
        batch_size: Channels ablated per forward pass.
        reporter: Progress (one step per batch) and cancel.

    Raises:
        HookScopeError: Bad layer or target, an output without channels.
        Cancelled: When the reporter was cancelled (hooks are removed first).
    """
    if batch_size < 1:
        raise HookScopeError(f"The batch size must be at least 1, not {batch_size}.")
    if callable(target):
        raise HookScopeError("Channel importance needs a class index or name as its target.")
    module = resolve_modules(model, [layer])[layer]
    reporter = reporter or Reporter()
    x = x.detach()[:1].to(model_device(model))
    mask_box: dict[str, torch.Tensor | None] = {"mask": None}
    shape_box: dict[str, tuple[int, ...]] = {}

    def hook(mod, args, output):
        out = main_tensor(output)
        if out is None or out.dim() < 2:
            raise HookScopeError(
                f"Layer '{layer}' has no channel dimension to ablate; pick a layer whose "
                "output is (N, C, ...)."
            )
        shape_box.setdefault("shape", tuple(out.shape))
        mask = mask_box["mask"]
        if mask is None or out.shape[1] != mask.shape[1]:
            return None  # unedited pass, or a reused module called with other channel counts
        edited = out * mask.reshape(*mask.shape, *([1] * (out.dim() - 2))).to(out.dtype)
        if isinstance(output, torch.Tensor):
            return edited
        return type(output)([edited, *output[1:]])

    @contextmanager
    def turn():
        """One batch on the model: its turn in the app, the ablation hook and eval mode, all
        undone at the end of the batch (so the app's clicks can run in between)."""
        with reporter.batch():
            handle = module.register_forward_hook(hook)
            try:
                with eval_mode(model), torch.no_grad():
                    yield
            finally:
                handle.remove()

    with turn():
        output = forward_model(model, x)
    kind = output_kind(output, class_names, model)
    if kind.kind != CLASSES:  # never rank by a softmax over pixels, boxes or an embedding
        raise HookScopeError(
            "Channel importance ranks channels by the drop of a class probability, so it "
            f"needs class scores; this model's output is {kind.kind} {tuple(kind.shape)}."
        )
    logits = logits_of(output).float().reshape(1, -1)
    resolved = resolve_target(target, logits, class_names)
    base = float(torch.softmax(logits, 1)[0, resolved])
    if "shape" not in shape_box:
        raise HookScopeError(
            f"Layer '{layer}' did not run in the forward pass; pick a layer the "
            "forward actually calls."
        )
    n = shape_box["shape"][1]
    probs = np.empty(n, np.float64)
    batches = range(0, n, batch_size)
    reporter.progress(0, len(batches), f"Ablating {n} channels of {layer}…")
    for b, start in enumerate(batches):
        chans = torch.arange(start, min(start + batch_size, n))
        mask = torch.ones(len(chans), n, device=x.device)
        mask[torch.arange(len(chans)), chans] = 0.0
        mask_box["mask"] = mask
        # A real copy per item: an in-place first layer cannot write to a broadcast view.
        batch = x.expand(len(chans), *x.shape[1:]).contiguous()
        with turn():
            out = logits_of(forward_model(model, batch))
        p = torch.softmax(out.float().reshape(len(chans), -1), 1)[:, resolved]
        probs[start : start + len(chans)] = p.cpu().double().numpy()
        reporter.progress(b + 1, len(batches), f"Channels {start}–{chans[-1]} of {n}")
    drops = base - probs
    # Stable sort on -drop: equal drops keep channel order, so the ranking is reproducible.
    ranking = np.argsort(-drops, kind="stable")
    return ChannelImportance(
        layer=layer,
        target=int(resolved),
        target_name=class_name(int(resolved), class_names),
        base_prob=base,
        probs=probs,
        drops=drops,
        ranking=ranking,
    )
