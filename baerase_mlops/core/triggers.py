"""Triggers in the model's input space: x' = (1 - m) * x + m * p (DESIGN.md, "Contracts"), and warps."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp ``pattern`` onto images ``x`` through ``mask``.

    ``x`` is N x C x H x W in [0, 1]; ``mask`` broadcasts as (N or 1) x 1 x H x W with
    values in [0, 1]; ``pattern`` as (N or 1) x C x H x W in [0, 1].
    """
    return (1.0 - mask) * x + mask * pattern


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Resample images ``x`` (N x C x H x W) through ``flow``: control-point offsets (N or 1) x 2 x g x g in
    grid_sample's normalised units (x then y; 2 = the image side), upsampled bicubically into a smooth
    field and added to the identity grid (clamped to the image), as WaNet warps (Nguyen & Tran, 2021)."""
    n, _, h, w = x.shape
    field = F.interpolate(flow, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    grid = (identity_grid(h, w, x.device) + field).clamp(-1, 1).expand(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def identity_grid(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """1 x H x W x 2: grid_sample's sampling grid that returns the image unchanged."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device), indexing="ij"
    )
    return torch.stack((xs, ys), dim=-1)[None]
