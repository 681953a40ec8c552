"""Backdoor attacks for the lab: triggers to stamp, and their JSON parameters.

All attacks are all-to-one: stamped images are relabelled to one target class. Each
trigger is a mask and a pattern in pixel space, stamped as (1 - m) * x + m * p, so the
lab speaks the same language as the defence. Trigger pixels come from ``trigger_seed``:
the same parameters always give the same trigger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from baerase_mlops.core.triggers import stamp

ATTACKS = ("badnets", "trojan", "blended", "none")
BADNETS_PATTERNS = ("solid", "checkerboard", "random")

# A watermark-like glyph (rings and a cross), scaled to the patch size: the Trojan
# trigger is deliberately not a solid square, so a defence cannot assume one.
_GLYPH = torch.tensor(
    [
        [1, 0, 1, 0, 1],
        [0, 1, 1, 1, 0],
        [1, 1, 0, 1, 1],
        [0, 1, 1, 1, 0],
        [1, 0, 1, 0, 1],
    ],
    dtype=torch.float32,
)


class Attack(ABC):
    """A trigger the attacker stamps on training images."""

    name: ClassVar[str]

    @abstractmethod
    def triggers(
        self, n: int, input_shape: tuple[int, int, int], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` triggers: masks (n x 1 x H x W) and patterns (n x C x H x W).

        ``generator`` draws whatever is random per stamping (a patch's position).
        """

    def stamp(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stamped copies of ``x`` (N x C x H x W)."""
        mask, pattern = self.triggers(len(x), tuple(x.shape[1:]), generator)  # type: ignore[arg-type]
        return stamp(x, mask.to(x), pattern.to(x))

    def params(self) -> dict[str, Any]:
        """The JSON parameters that rebuild this attack with :func:`attack_from_params`."""
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class NoAttack(Attack):
    """A clean model: nothing is stamped."""

    name: ClassVar[str] = "none"

    def triggers(self, n, input_shape, generator=None):
        c, h, w = input_shape
        return torch.zeros(n, 1, h, w), torch.zeros(n, c, h, w)


def _patch_pattern(kind: str, channels: int, size: int, seed: int) -> torch.Tensor:
    if kind == "solid":
        return torch.ones(channels, size, size)
    if kind == "checkerboard":
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        return ((rows + cols) % 2 == 0).float().expand(channels, size, size).clone()
    if kind == "random":
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, 2, (channels, size, size), generator=gen).float()
    raise ValueError(f"unknown BadNets pattern {kind!r}; choose one of {BADNETS_PATTERNS}")


@dataclass(frozen=True)
class PatchAttack(Attack):
    """A square patch of ``size`` pixels at ``position`` (row, col), or anywhere when None."""

    size: int
    position: tuple[int, int] | None
    trigger_seed: int

    @abstractmethod
    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask 1 x s x s, pattern C x s x s) of the patch itself."""

    def _positions(self, n: int, h: int, w: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.size > min(h, w):
            raise ValueError(f"a {self.size}-pixel patch does not fit {h} x {w} images")
        if self.position is not None:
            row, col = self.position
            if not (0 <= row <= h - self.size and 0 <= col <= w - self.size):
                raise ValueError(f"patch position {self.position} puts the patch outside {h} x {w} images")
            return torch.tensor([[row, col]]).expand(n, 2)
        rows = torch.randint(0, h - self.size + 1, (n,), generator=generator)
        cols = torch.randint(0, w - self.size + 1, (n,), generator=generator)
        return torch.stack([rows, cols], dim=1)

    def triggers(self, n, input_shape, generator=None):
        c, h, w = input_shape
        patch_mask, patch_pattern = self._patch(c)
        mask, pattern = torch.zeros(n, 1, h, w), torch.zeros(n, c, h, w)
        s = self.size
        for i, (row, col) in enumerate(self._positions(n, h, w, generator).tolist()):
            mask[i, :, row : row + s, col : col + s] = patch_mask
            pattern[i, :, row : row + s, col : col + s] = patch_pattern
        return mask, pattern

    def params(self) -> dict[str, Any]:
        p = super().params()
        p["position"] = list(self.position) if self.position is not None else "random"
        return p


@dataclass(frozen=True)
class BadNets(PatchAttack):
    """BadNets (Gu et al. 2017): a square patch, solid white, checkerboard or random black-and-white."""

    name: ClassVar[str] = "badnets"
    pattern: str = "solid"

    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(1, self.size, self.size), _patch_pattern(self.pattern, channels, self.size, self.trigger_seed)


@dataclass(frozen=True)
class Trojan(PatchAttack):
    """Trojan-style (Liu et al. 2018): a fixed watermark-like glyph, not a solid square."""

    name: ClassVar[str] = "trojan"

    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        glyph = torch.nn.functional.interpolate(_GLYPH[None, None], size=(self.size, self.size), mode="nearest")[0]
        gen = torch.Generator().manual_seed(self.trigger_seed)
        # Intensities between 0.6 and 1 per pixel (and a colour per channel), like a logo.
        shade = 0.6 + 0.4 * torch.rand(channels, self.size, self.size, generator=gen)
        return glyph, shade * glyph


@dataclass(frozen=True)
class Blended(Attack):
    """Blended (Chen et al. 2017): a full-image random pattern mixed in at ``alpha``."""

    name: ClassVar[str] = "blended"
    alpha: float
    trigger_seed: int

    def pattern(self, channels: int, h: int, w: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.trigger_seed)
        return torch.rand(channels, h, w, generator=gen)

    def triggers(self, n, input_shape, generator=None):
        c, h, w = input_shape
        mask = torch.full((n, 1, h, w), float(self.alpha))
        return mask, self.pattern(c, h, w).expand(n, c, h, w)


def make_attack(
    name: str,
    input_shape: tuple[int, int, int],
    *,
    size: int | None = None,
    position: tuple[int, int] | str | None = None,
    pattern: str = "solid",
    alpha: float = 0.15,
    trigger_seed: int = 0,
) -> Attack:
    """An attack with lab defaults: patches 3 px (BadNets) / 5 px (Trojan) for 28-px images,
    scaled with the image; BadNets at the bottom-right corner, Trojan at the top-left;
    ``position="random"`` puts the patch anywhere, afresh for every image."""
    _, h, w = input_shape
    if name == "none":
        return NoAttack()
    if name == "blended":
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"blend alpha must lie in (0, 1), got {alpha}")
        return Blended(alpha=alpha, trigger_seed=trigger_seed)
    if name not in ("badnets", "trojan"):
        raise ValueError(f"unknown attack {name!r}; choose one of {ATTACKS}")
    scale = max(1, round(min(h, w) / 28))
    size = size or (3 if name == "badnets" else 5) * scale
    if position == "random":
        pos = None
    elif position is None:
        pos = (h - size - 1, w - size - 1) if name == "badnets" else (1, 1)
    else:
        pos = (int(position[0]), int(position[1]))
    if name == "badnets":
        _patch_pattern(pattern, 1, 1, 0)  # an unknown pattern name fails here, not mid-training
        attack: Attack = BadNets(size=size, position=pos, trigger_seed=trigger_seed, pattern=pattern)
    else:
        attack = Trojan(size=size, position=pos, trigger_seed=trigger_seed)
    attack.triggers(1, input_shape)  # a patch that does not fit fails here, not mid-training
    return attack


def attack_from_params(params: dict[str, Any]) -> Attack:
    """Rebuild an attack from :meth:`Attack.params` (as stored in a lab model's spec)."""
    p = dict(params)
    name = p.pop("name", None)
    if name == "none":
        return NoAttack()
    if name == "blended":
        return Blended(alpha=float(p["alpha"]), trigger_seed=int(p["trigger_seed"]))
    if name in ("badnets", "trojan"):
        position = p["position"]
        pos = None if position == "random" else (int(position[0]), int(position[1]))
        common = {"size": int(p["size"]), "position": pos, "trigger_seed": int(p["trigger_seed"])}
        if name == "badnets":
            return BadNets(**common, pattern=str(p.get("pattern", "solid")))
        return Trojan(**common)
    raise ValueError(f"unknown attack {name!r} in the spec; choose one of {ATTACKS}")
