"""The lab's classifiers, shaped like the models users ship. All take float32 NCHW images in
[0, 1]; normalisation is the model's first layer (DESIGN.md, "Contracts").

Families, so that a defence is not tuned to one network:

=================  =========================================================  ==========
architecture       what it is                                                 inputs
=================  =========================================================  ==========
``small_cnn``      the lab's original: two conv blocks, no BatchNorm          any
``lenet5``         LeNet-5 (conv 6 and 16 at 5x5, FC 120-84), ReLU, no BN     >= 12 px
``conv_bn``        a user-style conv-BN-ReLU net (2 x 2 convs, dropout head)  any
``vgg_bn``         VGG-style with BatchNorm (VGG-11's layout, ``width`` wide)  >= 16 px
``resnet_narrow``  a CIFAR ResNet (He et al. 2016, sec. 4.2), 3 stages of 2   any
                   basic blocks, ``width``/2x/4x channels (16/32/64: CPU-sized)
``resnet18``       torchvision's ResNet-18, 3x3 stride-1 stem, no max-pool    32 x 32
=================  =========================================================  ==========

``width`` is the channels of the first block where a family has one (``small_cnn``,
``conv_bn``, ``vgg_bn``, ``resnet_narrow``); LeNet-5 and ResNet-18 have fixed widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baerase_mlops.lab.names import ARCHITECTURES

__all__ = ["ARCHITECTURES", "ImageClassifier", "Normalize", "build_classifier", "check_input_shape"]
# Smallest image side each family can take (its poolings / kernels need that much).
MIN_SIDE = {"small_cnn": 4, "lenet5": 12, "conv_bn": 4, "vgg_bn": 16, "resnet_narrow": 4, "resnet18": 32}


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


def lenet5(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) as people write it today: ReLU and max-pooling, no BatchNorm.

    The first convolution pads by 2, so 28 x 28 digits meet the 32 x 32 field the original
    was designed for."""
    channels, h, w = input_shape

    def side(n: int) -> int:
        return ((n // 2) - 4) // 2  # pad-2 conv keeps n, pool halves, 5x5 conv takes 4, pool halves

    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side(h) * side(w), 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def conv_bn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> nn.Module:
    """What a practitioner writes for small images: two stages of two conv-BN-ReLU layers,
    max-pooling, then a dropout MLP head (BatchNorm makes train/eval behave differently,
    which a defence that fine-tunes has to respect)."""
    channels, h, w = input_shape
    return nn.Sequential(
        *_conv_bn(channels, width),
        *_conv_bn(width, width),
        nn.MaxPool2d(2),
        *_conv_bn(width, 2 * width),
        *_conv_bn(2 * width, 2 * width),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 4) * (w // 4), 128),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(128, num_classes),
    )


def vgg_bn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> nn.Module:
    """VGG-11's layout with BatchNorm (w, M, 2w, M, 4w, 4w, M, 8w, 8w, M), global average
    pooling and one linear layer: the usual CIFAR VGG, ``width`` = 64 in the original."""
    channels = input_shape[0]
    layers: list[nn.Module] = []
    c_in = channels
    for item in (1, "M", 2, "M", 4, 4, "M", 8, 8, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += _conv_bn(c_in, int(item) * width)
            c_in = int(item) * width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet_narrow(input_shape: Sequence[int], num_classes: int, width: int = 16, blocks: int = 2) -> nn.Module:
    """A CIFAR-style ResNet: a 3x3 stem, three stages of ``blocks`` basic blocks at ``width``,
    2x and 4x channels (strides 1, 2, 2), global average pooling. ``width`` 16 and 3 blocks
    is He et al.'s ResNet-20; 2 blocks (ResNet-14) keeps an epoch of 16,000 CIFAR images
    within a minute or two on 2 CPU cores."""
    channels = input_shape[0]
    layers: list[nn.Module] = [
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    ]
    c_in = width
    for stage, mult in enumerate((1, 2, 4)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, mult * width, stride))
            c_in = mult * width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def resnet18_32(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 for 32 x 32 inputs: a 3x3 stride-1 stem and no max-pool."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def check_input_shape(architecture: str, input_shape: Sequence[int]) -> None:
    """Raise ValueError, naming the limit, when ``architecture`` cannot take ``input_shape``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    _, h, w = input_shape
    if architecture == "resnet18" and (h, w) != (32, 32):
        raise ValueError(f"resnet18 is adapted to 32 x 32 images, not {h} x {w}")
    if min(h, w) < MIN_SIDE[architecture]:
        raise ValueError(f"{architecture} needs images of at least {MIN_SIDE[architecture]} px a side, not {h} x {w}")


def build_classifier(
    architecture: str,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    width: int = 32,
) -> ImageClassifier:
    """A freshly initialised lab classifier (seed torch before calling for reproducibility)."""
    check_input_shape(architecture, input_shape)
    builders = {
        "small_cnn": lambda: small_cnn(input_shape, num_classes, width),
        "lenet5": lambda: lenet5(input_shape, num_classes),
        "conv_bn": lambda: conv_bn(input_shape, num_classes, width),
        "vgg_bn": lambda: vgg_bn(input_shape, num_classes, width),
        "resnet_narrow": lambda: resnet_narrow(input_shape, num_classes, width),
        "resnet18": lambda: resnet18_32(input_shape, num_classes),
    }
    return ImageClassifier(Normalize(mean, std), builders[architecture]())
