"""Clean accuracy and attack success rate, in batches, on any device."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels for ``x`` (on the CPU)."""
    preds = [model(x[i : i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Share of ``x`` classified as ``y``."""
    if len(x) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float((predict(model, x, device) == y).float().mean())


def attack_success_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    stamp: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
) -> float:
    """Share of the images not of class ``target`` that go to ``target`` once stamped."""
    keep = y != target
    if not keep.any():
        raise ValueError(f"no images outside the target class {target} to measure an attack on")
    return float((predict(model, stamp(x[keep]), device) == target).float().mean())
