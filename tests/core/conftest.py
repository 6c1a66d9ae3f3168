"""Fixtures shared by the core tests."""

import pytest
import torch
import torchvision


@pytest.fixture(scope="module")
def resnet():
    """A random-init resnet18 (seed 0) in eval mode."""
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def image(size, seed=1):
    """A seeded random (1, 3, size, size) input."""
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
