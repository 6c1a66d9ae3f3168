"""What a training record holds: per-module activation and gradient statistics.

Sums are kept as tensors while the step runs (no ``.item()`` per module, which would make
every hook wait for its kernel) and turned into numbers once, when the record closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU)
RELU_LIKE += (nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus)
SATURATING = (nn.Sigmoid, nn.Tanh, nn.Hardsigmoid, nn.Hardtanh)
ACTIVATIONS = RELU_LIKE + SATURATING
SATURATED = 0.99
"""A sigmoid output above 0.99 (or below 0.01) and a tanh output beyond ±0.99 count as saturated."""

MODULE_COLUMNS = (
    "act_mean",
    "act_std",
    "act_zero",
    "act_saturated",
    "act_nan",
    "act_inf",
    "out_grad_norm",
    "out_grad_nan",
    "out_grad_inf",
)
PARAM_COLUMNS = ("grad_norm", "weight_norm", "update_ratio", "grad_nan", "grad_inf")


def watched_modules(model: nn.Module, layers=None) -> dict[str, nn.Module]:
    """The modules a watch records: ``layers`` by name, else every leaf with parameters and
    every activation leaf (ReLU-like, sigmoid, tanh)."""
    named = dict(model.named_modules())
    if layers:
        missing = [n for n in layers if n not in named]
        if missing:
            from hookscope.core.errors import HookScopeError

            raise HookScopeError(
                f"The model has no module named {', '.join(map(repr, missing))}; "
                "pass names from model.named_modules()."
            )
        return {n: named[n] for n in layers}
    picked = {}
    for name, m in named.items():
        leaf = not any(True for _ in m.children())
        own_params = any(True for _ in m.parameters(recurse=False))
        if name and leaf and (own_params or isinstance(m, ACTIVATIONS)):
            picked[name] = m
    return picked


def saturation(module: nn.Module, out: torch.Tensor) -> torch.Tensor | None:
    """Count of saturated outputs for a sigmoid/tanh-like module, else None."""
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return ((out > SATURATED) | (out < 1 - SATURATED)).sum()
    if isinstance(module, (nn.Tanh, nn.Hardtanh)):
        return (out.abs() > SATURATED).sum()
    return None


@dataclass
class ModuleSums:
    """Running sums over every call of one module during the recorded step."""

    numel: int = 0
    total: torch.Tensor | float = 0.0
    total_sq: torch.Tensor | float = 0.0
    zeros: torch.Tensor | int = 0
    saturated: torch.Tensor | int | None = None
    grad_sq: torch.Tensor | float = 0.0
    grad_numel: int = 0
    grads: list = field(default_factory=list)

    @torch.no_grad()
    def add_output(self, module: nn.Module, out: torch.Tensor) -> None:
        o = out.detach()
        of = o.float()
        self.numel += o.numel()
        self.total = self.total + of.sum()
        flat = of.reshape(-1)
        self.total_sq = self.total_sq + torch.dot(flat, flat)  # no squared copy of the output
        self.zeros = self.zeros + (o.numel() - torch.count_nonzero(o))
        sat = saturation(module, o)
        if sat is not None:
            self.saturated = sat if self.saturated is None else self.saturated + sat

    @torch.no_grad()
    def add_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach().float().reshape(-1)
        self.grad_sq = self.grad_sq + torch.dot(g, g)
        self.grad_numel += g.numel()

    def row(self) -> dict[str, float]:
        """The module's numbers for this record (NaN where nothing was seen)."""
        nan = float("nan")
        if not self.numel:
            return dict.fromkeys(MODULE_COLUMNS, nan)
        total, total_sq = float(self.total), float(self.total_sq)
        mean = total / self.numel
        var = max(total_sq / self.numel - mean * mean, 0.0) if _finite(total, total_sq) else nan
        grad_sq = float(self.grad_sq) if self.grad_numel else nan
        return {
            "act_mean": mean,
            "act_std": var**0.5 if var == var else nan,
            "act_zero": float(self.zeros) / self.numel,
            "act_saturated": nan if self.saturated is None else float(self.saturated) / self.numel,
            "act_nan": float(total != total),
            "act_inf": float(abs(total) == float("inf")),
            "out_grad_norm": grad_sq**0.5 if grad_sq == grad_sq else nan,
            "out_grad_nan": float(grad_sq != grad_sq),
            "out_grad_inf": float(grad_sq == float("inf")),
        }


def _grad(p: nn.Parameter, accumulated: torch.Tensor | None) -> torch.Tensor | None:
    return p.grad if p.grad is not None else accumulated


def _finite(*values: float) -> bool:
    return all(v == v and abs(v) != float("inf") for v in values)


@torch.no_grad()
def param_rows(params: dict[str, nn.Parameter], before: dict, accumulated: dict) -> list[dict]:
    """One row per parameter: gradient norm, weight norm, update ratio since ``before``.

    The norm is taken from ``.grad`` as ``step()`` finds it (after DDP averaged it across
    ranks); ``accumulated``, the gradient tensors as each was accumulated, stand in when a
    loop set the gradients to None before ``step()``. ``before`` is overwritten with the update
    (no new copy of the weights). NaN and Inf counts are exact element counts, taken only
    when a norm is not finite (a finite norm means there is none). All norms come back in one
    list, so a record waits once, not once per tensor.
    """
    names = list(params)
    weights = [params[n].detach() for n in names]
    w_norms = torch._foreach_norm(weights)
    has = [n for n in names if n in before]
    deltas = [before[n] for n in has]
    torch._foreach_sub_(deltas, [params[n].detach() for n in has])
    d_norms = dict(zip(has, torch._foreach_norm(deltas))) if deltas else {}
    grads = {n: g for n in names if (g := _grad(params[n], accumulated.get(n))) is not None}
    g_norms = dict(zip(grads, torch._foreach_norm(list(grads.values())))) if grads else {}
    nan = torch.tensor(float("nan"))
    table = torch.stack(
        [
            torch.stack(
                [
                    g_norms.get(n, nan).float(),
                    wn.float(),
                    d_norms.get(n, nan).float(),
                ]
            )
            for n, wn in zip(names, w_norms)
        ]
    ).tolist()
    rows = []
    for name, (grad_norm, w, d) in zip(names, table):
        nan_count = inf_count = 0.0
        g = grads.get(name)
        if g is not None and not _finite(grad_norm):
            nan_count, inf_count = float(torch.isnan(g).sum()), float(torch.isinf(g).sum())
        rows.append(
            {
                "_name": name,
                "grad_norm": grad_norm,
                "weight_norm": w,
                "update_ratio": d / w if d == d and w > 0 else float("nan"),
                "grad_nan": nan_count,
                "grad_inf": inf_count,
            }
        )
    return rows
