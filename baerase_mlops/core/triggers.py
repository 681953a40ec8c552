"""Triggers in the model's input space: x' = (1 - m) * x + m * p (DESIGN.md, "Contracts")."""

from __future__ import annotations

import torch


def stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp ``pattern`` onto images ``x`` through ``mask``.

    ``x`` is N x C x H x W in [0, 1]; ``mask`` broadcasts as (N or 1) x 1 x H x W with
    values in [0, 1]; ``pattern`` as (N or 1) x C x H x W in [0, 1].
    """
    return (1.0 - mask) * x + mask * pattern
