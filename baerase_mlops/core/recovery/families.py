"""Trigger families: modules that map noise to (mask, pattern) pairs for K classes at once.

Every parameter has the class as its leading dimension, so one optimiser step trains the
triggers of all candidate classes together, and the best state of any one class can be
copied out without touching the others.

* :class:`TriggerTable` is Neural Cleanse: one mask and one pattern per class (no noise).
* :class:`TriggerGenerator` is BAERASE: G_k(z) = (sigmoid(a_k + A_k h_k(z)), sigmoid(b_k + B_k h_k(z)))
  with a per-class MLP h_k. The offsets (a_k, b_k) are the family's centre, a Neural Cleanse
  trigger; the noise-driven part spreads the family around it.
"""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

M = TypeVar("M", bound=nn.Module)


def select_rows(module: M, rows: list[int]) -> M:
    """A copy of ``module`` whose every parameter keeps only the leading-dimension ``rows``
    (the classes of a family, or of its MINE statistics network)."""
    index = torch.tensor(rows, device=next(module.parameters()).device)
    # Pre-seed deepcopy's memo with the sliced parameters, so that the other classes'
    # weights (tens of MB for 43 classes) are never copied.
    memo = {id(p): nn.Parameter(p.detach()[index].clone(), requires_grad=p.requires_grad) for p in module.parameters()}
    return copy.deepcopy(module, memo)


class BatchedLinear(nn.Module):
    """K independent linear layers applied to K batches: (K, B, in) -> (K, B, out)."""

    def __init__(self, classes: int, in_features: int, out_features: int, weight_std: float | None = None) -> None:
        super().__init__()
        std = weight_std if weight_std is not None else 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.randn(classes, in_features, out_features) * std)
        self.bias = nn.Parameter(torch.zeros(classes, 1, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TriggerFamily(nn.Module):
    """Base: ``forward(z)`` with z of shape (K, B, noise_dim) gives masks (K, B, 1, H, W)
    and patterns (K, B, C, H, W), all in [0, 1]. A class schedule that stops training some
    classes goes on with a :meth:`subset` of the others."""

    noise_dim: int

    def __init__(self, classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.classes = classes
        self.input_shape = tuple(input_shape)

    def centre_parameters(self) -> list[nn.Parameter]:
        """The per-class mask/pattern offsets (trained fast, as in Neural Cleanse)."""
        raise NotImplementedError

    def spread_parameters(self) -> list[nn.Parameter]:
        """The noise-driven parameters (trained slowly; empty for a table)."""
        return []

    def subset(self, labels: list[int]) -> TriggerFamily:
        """A copy holding only the members of ``labels`` (every parameter is indexed by class)."""
        part = select_rows(self, labels)
        part.classes = len(labels)
        return part

    def assign(self, labels: list[int], part: TriggerFamily) -> None:
        """Copy the members of ``part`` back into the places ``labels``."""
        index = torch.tensor(labels)
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), part.parameters()):
                mine[index] = theirs.to(mine.device)

    def noise(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        rows: int | None = None,
    ) -> torch.Tensor:
        """(rows, batch, noise_dim) draws of z; rows defaults to every member (K)."""
        z = torch.randn(self.classes if rows is None else rows, batch, max(self.noise_dim, 1), generator=generator)
        return z.to(device) if device is not None else z


def _init_offsets(
    classes: int, input_shape: tuple[int, int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    c, h, w = input_shape
    # Start from a faint mask (sigmoid(-3) ~ 5% per pixel) and a random pattern: the
    # optimisation then grows the mask where it helps, as in Neural Cleanse.
    mask = -3.0 + 0.1 * torch.randn(classes, 1, 1, h, w, generator=generator)
    pattern = torch.randn(classes, 1, c, h, w, generator=generator)
    return mask, pattern


class TriggerTable(TriggerFamily):
    """Neural Cleanse: one (mask, pattern) per class, optimised directly."""

    noise_dim = 0

    def __init__(self, classes: int, input_shape: tuple[int, int, int], generator: torch.Generator) -> None:
        super().__init__(classes, input_shape)
        mask, pattern = _init_offsets(classes, self.input_shape, generator)
        self.mask_logit = nn.Parameter(mask)
        self.pattern_logit = nn.Parameter(pattern)

    def centre_parameters(self) -> list[nn.Parameter]:
        return [self.mask_logit, self.pattern_logit]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = z.shape[1]
        mask = torch.sigmoid(self.mask_logit).expand(-1, batch, -1, -1, -1)
        pattern = torch.sigmoid(self.pattern_logit).expand(-1, batch, -1, -1, -1)
        return mask, pattern


class TriggerGenerator(TriggerFamily):
    """BAERASE's generator G(z), one per class, batched."""

    def __init__(
        self,
        classes: int,
        input_shape: tuple[int, int, int],
        generator: torch.Generator,
        noise_dim: int = 64,
        hidden_dim: int = 128,
        spread_init: float = 0.02,
    ) -> None:
        super().__init__(classes, input_shape)
        c, h, w = self.input_shape
        self.noise_dim = noise_dim
        mask, pattern = _init_offsets(classes, self.input_shape, generator)
        self.mask_logit = nn.Parameter(mask)
        self.pattern_logit = nn.Parameter(pattern)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            self.hidden = BatchedLinear(classes, noise_dim, hidden_dim)
            self.to_mask = BatchedLinear(classes, hidden_dim, h * w, weight_std=spread_init / math.sqrt(hidden_dim))
            self.to_pattern = BatchedLinear(
                classes, hidden_dim, c * h * w, weight_std=spread_init / math.sqrt(hidden_dim)
            )

    def centre_parameters(self) -> list[nn.Parameter]:
        return [self.mask_logit, self.pattern_logit]

    def spread_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.endswith("_logit")]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, batch, _ = z.shape
        c, h, w = self.input_shape
        hidden = F.leaky_relu(self.hidden(z), 0.2)
        mask = torch.sigmoid(self.mask_logit + self.to_mask(hidden).view(k, batch, 1, h, w))
        pattern = torch.sigmoid(self.pattern_logit + self.to_pattern(hidden).view(k, batch, c, h, w))
        return mask, pattern


class MineEstimator(nn.Module):
    """MINE (Belghazi et al. 2018): a statistics network T_k(z, trigger) per class whose
    Donsker-Varadhan bound E_joint[T] - log E_marginal[exp T] estimates I(z; G(z)).

    Triggers are summarised (mask and masked pattern, average-pooled to at most 8x8) so
    that the network stays small for any image size.
    """

    def __init__(self, classes: int, noise_dim: int, input_shape: tuple[int, int, int], hidden_dim: int = 128) -> None:
        super().__init__()
        c, h, w = input_shape
        self.pool = (min(h, 8), min(w, 8))
        feat = (1 + c) * self.pool[0] * self.pool[1]
        self.layers = nn.ModuleList(
            [
                BatchedLinear(classes, noise_dim + feat, hidden_dim),
                BatchedLinear(classes, hidden_dim, hidden_dim),
                BatchedLinear(classes, hidden_dim, 1),
            ]
        )

    def features(self, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
        k, batch = mask.shape[:2]
        summary = torch.cat([mask, mask * pattern], dim=2).flatten(0, 1)
        return F.adaptive_avg_pool2d(summary, self.pool).view(k, batch, -1)

    def statistic(self, z: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        out = torch.cat([z, feats], dim=-1)
        for i, layer in enumerate(self.layers):
            out = layer(out)
            if i < len(self.layers) - 1:
                out = F.elu(out)
        return out.squeeze(-1)

    def lower_bound(self, z: torch.Tensor, feats: torch.Tensor, shuffle: torch.Tensor) -> torch.Tensor:
        """Per-class DV bound; ``shuffle`` permutes z within each class for the marginal."""
        joint = self.statistic(z, feats).mean(dim=1)
        marginal = torch.logsumexp(self.statistic(z[:, shuffle], feats), dim=1) - math.log(z.shape[1])
        return joint - marginal


def family_to_dict(family: TriggerFamily) -> dict:
    """A family as plain tensors and numbers: loadable with ``torch.load(weights_only=True)``."""
    generator = isinstance(family, TriggerGenerator)
    return {
        "kind": "generator" if generator else "table",
        "classes": family.classes,
        "input_shape": list(family.input_shape),
        "noise_dim": family.noise_dim,
        "hidden_dim": family.hidden.weight.shape[-1] if generator else 0,
        "state_dict": {k: v.detach().cpu() for k, v in family.state_dict().items()},
    }


def family_from_dict(data: dict) -> TriggerFamily:
    """Rebuild what :func:`family_to_dict` wrote."""
    shape = tuple(int(v) for v in data["input_shape"])
    seed = torch.Generator().manual_seed(0)  # overwritten by the state dict below
    if data["kind"] == "generator":
        family: TriggerFamily = TriggerGenerator(
            int(data["classes"]), shape, seed, int(data["noise_dim"]), int(data["hidden_dim"])
        )
    elif data["kind"] == "table":
        family = TriggerTable(int(data["classes"]), shape, seed)
    else:
        raise ValueError(f"unknown trigger family kind {data['kind']!r}")
    family.load_state_dict(data["state_dict"])
    return family
