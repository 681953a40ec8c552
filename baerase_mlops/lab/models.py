"""The lab's classifiers. Both take float32 NCHW images in [0, 1]; normalisation is inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ARCHITECTURES = ("small_cnn", "resnet18")


class Normalize(nn.Module):
    """(x - mean) / std per channel, so that the model's input space is plain [0, 1] pixels."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """A normalisation layer followed by a network: what the lab trains and saves."""

    def __init__(self, normalize: Normalize, net: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def small_cnn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> nn.Module:
    """Two conv blocks and a small head: seconds per epoch on a CPU, ~98% on MNIST."""
    channels, height, width_px = input_shape
    flat = 2 * width * (height // 4) * (width_px // 4)
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def resnet18_32(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 for 32 x 32 inputs: a 3x3 stride-1 stem and no max-pool."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def build_classifier(
    architecture: str,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    width: int = 32,
) -> ImageClassifier:
    """A freshly initialised lab classifier (seed torch before calling for reproducibility)."""
    if architecture == "small_cnn":
        net = small_cnn(input_shape, num_classes, width)
    elif architecture == "resnet18":
        net = resnet18_32(input_shape, num_classes)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    return ImageClassifier(Normalize(mean, std), net)
