"""The attacks the suite plants, with target class and trigger placement drawn from the seed.

Each case is one lab attack (``baerase_mlops.lab.attacks.make_attack``) plus a clean
model. A seed changes the target class, the corner a fixed patch or sticker sits in, the
trigger's own pixels (patterns, WaNet's field), the blend ratio, and (through the lab) the
model's initialisation and data order, so that a defence cannot do well by favouring a
class or a corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baerase_mlops.lab.attacks import Attack, make_attack

CLEAN = "clean"
# name -> (lab attack, what the table calls it)
CASES: dict[str, tuple[str, str]] = {
    "badnets": ("badnets", "BadNets, fixed position"),
    "badnets_random": ("badnets", "BadNets, random position"),
    "trojan": ("trojan", "Trojan"),
    "blended": ("blended", "Blended"),
    "sticker": ("sticker", "colour sticker"),
    "wanet": ("wanet", "WaNet (noise mode)"),
    "sig": ("sig", "SIG (clean-label)"),
    CLEAN: ("none", "clean model"),
}


@dataclass(frozen=True)
class Case:
    name: str  # a key of CASES
    seed: int
    attack: Attack
    target: int  # the attacker's label; meaningless (0) for a clean model

    @property
    def backdoored(self) -> bool:
        return self.name != CLEAN

    @property
    def label(self) -> str:
        return CASES[self.name][1]


def corner(attack: str, input_shape: tuple[int, int, int], which: int) -> tuple[int, int]:
    """(row, col) of a patch in corner ``which`` (0-3), one pixel in from the edges.

    Corners, as in BadNets and most benchmarks: a patch drawn anywhere can land on the
    digit strokes of MNIST (white on white), and the attack then does not take (measured:
    a solid patch at (16, 13) reached 79% ASR where the corner gives ~100%)."""
    size = make_attack(attack, input_shape).size  # type: ignore[attr-defined]  # the lab's size for this image size
    _, h, w = input_shape
    far_row, far_col = h - size - 1, w - size - 1
    return [(1, 1), (1, far_col), (far_row, 1), (far_row, far_col)][which]


def make_case(name: str, seed: int, input_shape: tuple[int, int, int], num_classes: int) -> Case:
    """The attack of case ``name`` for ``seed``: the same arguments always give the same trigger."""
    if name not in CASES:
        raise ValueError(f"unknown benchmark case {name!r}; choose from {list(CASES)}")
    lab_attack = CASES[name][0]
    if lab_attack == "none":
        return Case(name, seed, make_attack("none", input_shape), 0)
    # One stream per (seed, case): adding a case never changes the others' draws.
    rng = np.random.default_rng([seed, list(CASES).index(name)])
    target = int(rng.integers(num_classes))
    if name == "badnets_random":
        # A 4x4 (at 28-32 px) checkerboard stamped anywhere, afresh for every image: the
        # trigger the engine once missed on a user's model.
        size = 4 * max(1, round(min(input_shape[1:]) / 28))
        attack = make_attack(
            "badnets", input_shape, size=size, position="random", pattern="checkerboard", trigger_seed=seed
        )
    elif name in ("badnets", "trojan", "sticker"):
        attack = make_attack(
            lab_attack, input_shape, position=corner(lab_attack, input_shape, int(rng.integers(4))), trigger_seed=seed
        )
    elif name == "blended":
        attack = make_attack("blended", input_shape, alpha=round(float(rng.uniform(0.1, 0.2)), 2), trigger_seed=seed)
    elif name == "wanet":
        attack = make_attack("wanet", input_shape, trigger_seed=seed)
    else:
        attack = make_attack(lab_attack, input_shape, trigger_seed=seed)
    return Case(name, seed, attack, target)
