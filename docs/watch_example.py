"""Two small CPU trainings on the demo scenes, watched by HookScope (each well under a minute).

    python docs/watch_example.py healthy runs/healthy   # a small CNN: nothing to report
    python docs/watch_example.py broken runs/broken     # a deep sigmoid stack: vanishing
    python main.py diagnose runs/broken                 # the diagnosis in words
    python main.py --run runs/broken                    # the Training dock

The five lines that add the watch to a loop are marked ``# watch``.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import hookscope
from hookscope.core.demo.scenes import make_dataset
from hookscope.core.demo.train import to_input

SIZE = 48


def healthy_model() -> nn.Module:
    """A small CNN with BatchNorm and ReLU: gradients reach every layer."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 4),
    )


def broken_model(depth: int = 10) -> nn.Module:
    """A deep stack of sigmoid conv layers: each multiplies the gradient by at most 0.25."""
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1), nn.Sigmoid(), nn.MaxPool2d(2)]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def train(kind: str, out: str, steps: int = 60, every: int = 5) -> None:
    """Train ``kind`` ("healthy" or "broken") for ``steps`` steps, watched into ``out``."""
    torch.manual_seed(0)
    images, labels, _ = make_dataset("shortcut", 256, seed=5, size=SIZE)
    x, y = to_input(images), torch.from_numpy(labels)
    model = healthy_model() if kind == "healthy" else broken_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    probe = x[:2]
    with hookscope.watch(model, out=out, every=every, probe=probe, probe_every=2) as w:  # watch
        for _ in range(steps):
            batch = torch.randint(0, len(x), (32,))
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
            w.step(loss=loss.item())  # watch


if __name__ == "__main__":
    kind, out = (sys.argv[1:3] + ["healthy", "runs/healthy"][len(sys.argv[1:3]) :])[:2]
    train(kind, out)
    for finding in hookscope.diagnose(out):
        print(finding.sentence)
