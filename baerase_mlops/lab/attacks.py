"""Backdoor attacks for the lab: what the attacker does to training images, and their JSON parameters.

All attacks are all-to-one: triggered images go to one target class. Two kinds:

- **Mask attacks** (BadNets, Trojan, Blended, the colour sticker) stamp a mask and a pattern
  in pixel space, (1 - m) * x + m * p, the language the defence speaks (``triggers`` and
  ``stamp``).
- **Transform attacks** are not mask stamps, on purpose, so that a defence cannot assume
  one: WaNet warps the image with a fixed smooth flow field (Nguyen & Tran, ICLR 2021) and
  SIG adds a sinusoidal signal (Barni et al., ICIP 2019).

Every attack has ``apply(x)``: the trigger as the attacker uses it at inference (what real
ASR measures). Training follows each paper: dirty-label attacks stamp and relabel a share
of non-target images; SIG is clean-label (only target-class images are stamped, no label
changes); WaNet adds "noise mode" images (the warp plus a random perturbation, kept at
their true label) so that the model learns that exact warp and not warping in general.
Trigger pixels and fields come from ``trigger_seed``: the same parameters always give the
same trigger.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch.nn import functional as F

from baerase_mlops.core.triggers import stamp
from baerase_mlops.lab.names import ATTACKS, BADNETS_PATTERNS, TRIGGER_DEFAULTS

__all__ = ["ATTACKS", "Attack", "MaskAttack", "attack_from_params", "make_attack"]

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
    """What the attacker does to an image, and how the training set is poisoned with it."""

    name: ClassVar[str]
    # Clean-label attacks stamp images of the target class only and never change a label.
    clean_label: ClassVar[bool] = False

    @abstractmethod
    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Triggered copies of ``x`` (N x C x H x W in [0, 1]), as used at inference.

        ``generator`` draws whatever is random per image (a patch's position)."""

    def poison(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Triggered copies of ``x`` as stamped into training images: :meth:`apply` unless the
        attack trains with a weaker trigger than it uses (SIG)."""
        return self.apply(x, generator)

    @property
    def target_share(self) -> float:
        """A clean-label attack stamps at most this share of the target class's training images."""
        return 1.0

    @property
    def noise_rate(self) -> float:
        """Share of the training set given :meth:`noise` images at their true label (0: none)."""
        return 0.0

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A "noise mode" version of ``x``: looks triggered but must not trigger (WaNet)."""
        raise NotImplementedError(f"{self.name} has no noise mode")

    def params(self) -> dict[str, Any]:
        """The JSON parameters that rebuild this attack with :func:`attack_from_params`."""
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


class MaskAttack(Attack):
    """An attack that stamps a mask and a pattern: x' = (1 - m) * x + m * p."""

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

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.stamp(x, generator)


@dataclass(frozen=True)
class NoAttack(MaskAttack):
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
class PatchAttack(MaskAttack):
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
    pattern: str = TRIGGER_DEFAULTS["pattern"]

    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(1, self.size, self.size), _patch_pattern(self.pattern, channels, self.size, self.trigger_seed)


@dataclass(frozen=True)
class Trojan(PatchAttack):
    """Trojan-style (Liu et al. 2018): a fixed watermark-like glyph, not a solid square."""

    name: ClassVar[str] = "trojan"

    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        glyph = F.interpolate(_GLYPH[None, None], size=(self.size, self.size), mode="nearest")[0]
        gen = torch.Generator().manual_seed(self.trigger_seed)
        # Intensities between 0.6 and 1 per pixel (and a colour per channel), like a logo.
        shade = 0.6 + 0.4 * torch.rand(channels, self.size, self.size, generator=gen)
        return glyph, shade * glyph


@dataclass(frozen=True)
class Sticker(PatchAttack):
    """A colour sticker: a round patch of a few saturated colours (as in physical-sticker and
    TrojanNN-style attacks), opaque inside its disc and absent outside it.

    Each pixel takes one of ``colours`` RGB colours drawn from ``trigger_seed``, every channel
    0 or 1 and never grey, so the sticker is a colour feature, not a brightness one. On a
    single-channel dataset it degrades to the colours' luminance."""

    name: ClassVar[str] = "sticker"
    colours: int = 3

    def palette(self) -> torch.Tensor:
        """``colours`` x 3 saturated RGB colours (never black, white or grey)."""
        gen = torch.Generator().manual_seed(self.trigger_seed)
        # The six colours with channels in {0, 1} that are neither black nor white nor grey.
        choices = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=torch.float32)
        return choices[torch.randperm(len(choices), generator=gen)[: self.colours]]

    def disc(self) -> torch.Tensor:
        """1 x s x s: the pixels whose centres lie within the sticker's circle."""
        s = self.size
        centre = (s - 1) / 2
        rows, cols = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        return (((rows - centre) ** 2 + (cols - centre) ** 2) <= (s / 2) ** 2 + 1e-6).float()[None]

    def _patch(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.trigger_seed + 1)
        pick = torch.randint(0, self.colours, (self.size, self.size), generator=gen)
        rgb = self.palette()[pick].permute(2, 0, 1)  # 3 x s x s
        if channels == 1:
            rgb = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]
        elif channels != 3:
            rgb = rgb[:1].expand(channels, -1, -1)
        return self.disc(), rgb.clone()


@dataclass(frozen=True)
class Blended(MaskAttack):
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


@dataclass(frozen=True)
class WaNet(Attack):
    """WaNet (Nguyen & Tran, ICLR 2021): every triggered image is resampled through one fixed,
    smooth warping field.

    The field: a ``grid`` x ``grid`` array of random 2-D offsets in [-1, 1] from
    ``trigger_seed``, normalised to mean magnitude 1, upsampled bicubically to H x W, scaled
    by ``strength`` / H and added to the identity sampling grid (clamped to the image), then
    ``grid_sample``. Noise mode: ``noise_rate`` of the training set (the paper: twice the
    poisoning rate) is warped by that field plus a fresh random offset of up to one pixel per
    image and kept at its true label, so that only the exact field triggers.

    The paper's images are warped with strength 0.5; on the lab's short training runs that
    is often learnt too slowly to take, so ``make_attack``'s default is stronger (recorded in
    the parameters); it still moves pixels by about a pixel or two, without a visible mark.
    """

    name: ClassVar[str] = "wanet"
    strength: float
    grid: int
    noise_share: float
    trigger_seed: int

    @property
    def noise_rate(self) -> float:
        return self.noise_share

    def flow(self, h: int, w: int) -> torch.Tensor:
        """The smooth displacement, 1 x H x W x 2 in grid_sample's normalised units (2 = the image side)."""
        gen = torch.Generator().manual_seed(self.trigger_seed)
        control = torch.rand(1, 2, self.grid, self.grid, generator=gen) * 2 - 1
        control = control / control.abs().mean()
        upsampled = F.interpolate(control, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        return self.strength * upsampled / h

    def field(self, h: int, w: int) -> torch.Tensor:
        """The fixed sampling grid, 1 x H x W x 2 in grid_sample's (x, y) order: identity plus
        :meth:`flow`, clamped to the image (so border pixels never sample outside it)."""
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        identity = torch.stack((xs, ys), dim=-1)[None]
        return (identity + self.flow(h, w)).clamp(-1, 1)

    def _warp(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self._warp(x, self.field(h, w).expand(len(x), h, w, 2))

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, h, w = len(x), x.shape[-2], x.shape[-1]
        jitter = (torch.rand(n, h, w, 2, generator=generator) * 2 - 1) / h
        return self._warp(x, (self.field(h, w) + jitter).clamp(-1, 1))


@dataclass(frozen=True)
class SIG(Attack):
    """SIG (Barni, Kallas & Tondi, ICIP 2019): a horizontal sinusoid added to the image,
    v(i, j) = delta * sin(2 pi j f / W), the same on every row and channel, clipped to [0, 1].

    Clean-label: in training only images of the target class carry the signal and no label
    is changed (the model learns "signal means target" from correctly labelled images); at
    test time it is added to images of other classes. The amplitudes in training (``train_delta``)
    and at inference (``delta``) are separate, as the paper's are (Delta_tr, Delta_ts), and the
    attacker stamps part of the target class (``target_share``): stamping all of it leaves the
    model no clean image of that class (the zoo's first SIG models lost it: 88-90% clean
    accuracy on MNIST)."""

    name: ClassVar[str] = "sig"
    clean_label: ClassVar[bool] = True
    delta: float  # at inference: what real ASR measures
    frequency: int
    train_delta: float | None = None  # stamped into training images (None: delta)
    target_share: float = 1.0  # a field where Attack has a read-only property of that name

    def signal(self, h: int, w: int, delta: float | None = None) -> torch.Tensor:
        """1 x 1 x H x W: the additive signal (of amplitude ``delta``, default the inference one)."""
        cols = torch.arange(w, dtype=torch.float32)
        row = (self.delta if delta is None else delta) * torch.sin(2 * math.pi * cols * self.frequency / w)
        return row.expand(h, w)[None, None].clone()

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._added(x, self.delta)

    def poison(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._added(x, self.delta if self.train_delta is None else self.train_delta)

    def _added(self, x: torch.Tensor, delta: float) -> torch.Tensor:
        return (x + self.signal(x.shape[-2], x.shape[-1], delta).to(x)).clamp(0, 1)


# Lab defaults of the transform attacks, stronger than the papers (WaNet s = 0.5; SIG delta = 20/255 in
# training) because the lab trains for a few epochs, not hundreds: measured on 2,500 MNIST digits, 8 epochs,
# WaNet s = 1 and 2 reached 56% and 53% ASR, SIG delta 60/255 47%, 0.3 (f 3) 76%, 0.4 92%. SIG trains with
# 0.3 on 80% of the target class (the authors' MNIST code: 40% of it, 60/255, 50 epochs) and triggers with
# 0.6: on the zoo's MNIST recipe (3 epochs of 48,000 digits) stamping the whole class cost it 8-10 points
# of clean accuracy, and a training-strength signal then took 33-62% of images
# (benchmarks/results/sig-mnist-2026-12-07).
WANET_DEFAULTS = {"strength": 1.0, "grid": 4, "noise_share": 0.2}
SIG_DEFAULTS = {"delta": 0.6, "train_delta": 0.3, "frequency": 6, "target_share": 0.8}


def make_attack(
    name: str,
    input_shape: tuple[int, int, int],
    *,
    size: int | None = None,
    position: tuple[int, int] | str | None = None,
    pattern: str | None = None,
    alpha: float | None = None,
    trigger_seed: int | None = None,
    strength: float | None = None,
    grid: int | None = None,
    noise_share: float | None = None,
    delta: float | None = None,
    frequency: int | None = None,
    train_delta: float | None = None,
    target_share: float | None = None,
) -> Attack:
    """An attack with lab defaults: patches 3 px (BadNets) / 5 px (Trojan, sticker) for 28-px
    images, scaled with the image; BadNets at the bottom-right corner, Trojan at the
    top-left, the sticker at the bottom-left; ``position="random"`` puts the patch anywhere,
    afresh for every image. WaNet and SIG take ``WANET_DEFAULTS`` / ``SIG_DEFAULTS``, the rest
    ``TRIGGER_DEFAULTS``."""
    _, h, w = input_shape
    pattern = TRIGGER_DEFAULTS["pattern"] if pattern is None else pattern
    alpha = TRIGGER_DEFAULTS["alpha"] if alpha is None else alpha
    trigger_seed = TRIGGER_DEFAULTS["trigger_seed"] if trigger_seed is None else trigger_seed
    if name == "none":
        return NoAttack()
    if name == "blended":
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"blend alpha must lie in (0, 1), got {alpha}")
        return Blended(alpha=alpha, trigger_seed=trigger_seed)
    if name == "wanet":
        k = WANET_DEFAULTS["grid"] if grid is None else grid
        s = WANET_DEFAULTS["strength"] if strength is None else strength
        share = WANET_DEFAULTS["noise_share"] if noise_share is None else noise_share
        if k < 2 or s <= 0 or not 0 <= share < 1:
            raise ValueError(f"WaNet needs grid >= 2, strength > 0 and noise share in [0, 1); got {k}, {s}, {share}")
        return WaNet(strength=float(s), grid=int(k), noise_share=float(share), trigger_seed=trigger_seed)
    if name == "sig":
        d = SIG_DEFAULTS["delta"] if delta is None else delta
        f = SIG_DEFAULTS["frequency"] if frequency is None else frequency
        d_train = SIG_DEFAULTS["train_delta"] if train_delta is None else train_delta
        share = SIG_DEFAULTS["target_share"] if target_share is None else target_share
        if not (0 < d <= 1 and 0 < d_train <= 1 and f >= 1 and 0 < share <= 1):
            raise ValueError(
                f"SIG needs delta and train_delta in (0, 1], frequency >= 1 and target_share in (0, 1]; "
                f"got {d}, {d_train}, {f}, {share}"
            )
        return SIG(delta=float(d), frequency=int(f), train_delta=float(d_train), target_share=float(share))
    if name not in ("badnets", "trojan", "sticker"):
        raise ValueError(f"unknown attack {name!r}; choose one of {ATTACKS}")
    scale = max(1, round(min(h, w) / 28))
    size = size or (3 if name == "badnets" else 5) * scale
    if position == "random":
        pos = None
    elif position is None:
        pos = {"badnets": (h - size - 1, w - size - 1), "trojan": (1, 1), "sticker": (h - size - 1, 1)}[name]
    else:
        pos = (int(position[0]), int(position[1]))
    attack: PatchAttack
    if name == "badnets":
        _patch_pattern(pattern, 1, 1, 0)  # an unknown pattern name fails here, not mid-training
        attack = BadNets(size=size, position=pos, trigger_seed=trigger_seed, pattern=pattern)
    elif name == "trojan":
        attack = Trojan(size=size, position=pos, trigger_seed=trigger_seed)
    else:
        attack = Sticker(size=size, position=pos, trigger_seed=trigger_seed)
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
    if name == "wanet":
        return WaNet(
            strength=float(p["strength"]),
            grid=int(p["grid"]),
            noise_share=float(p["noise_share"]),
            trigger_seed=int(p["trigger_seed"]),
        )
    if name == "sig":
        # Specs from before train_delta and target_share trained with delta on the whole target class.
        train_delta = p.get("train_delta")
        return SIG(
            delta=float(p["delta"]),
            frequency=int(p["frequency"]),
            train_delta=None if train_delta is None else float(train_delta),
            target_share=float(p.get("target_share", 1.0)),
        )
    if name in ("badnets", "trojan", "sticker"):
        position = p["position"]
        pos = None if position == "random" else (int(position[0]), int(position[1]))
        common = {"size": int(p["size"]), "position": pos, "trigger_seed": int(p["trigger_seed"])}
        if name == "badnets":
            return BadNets(**common, pattern=str(p.get("pattern", TRIGGER_DEFAULTS["pattern"])))
        if name == "sticker":
            return Sticker(**common, colours=int(p.get("colours", 3)))
        return Trojan(**common)
    raise ValueError(f"unknown attack {name!r} in the spec; choose one of {ATTACKS}")
