"""The recovery interface: configure in the constructor, call :meth:`recover`, get a result."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from baerase_mlops.config import RecoveryConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.recovery.families import TriggerFamily
from baerase_mlops.core.recovery.optimise import optimise_group
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything


@dataclass
class RecoveryResult:
    """Per-class recovered triggers and their sizes.

    ``norms[k]`` is the mean mask L1 of the smallest family of triggers that sent at least
    ``success_threshold`` of the clean images to class k (``reached[k]``); where none did,
    it is the last size tried. ``family`` holds the kept triggers, on the CPU.
    """

    method: str
    norms: list[float]
    reached: list[bool]
    train_asr: list[float]
    family: TriggerFamily
    steps: int  # optimiser steps, summed over the groups
    class_steps: list[int]  # steps each class was trained for (the class schedule stops some early)
    groups: int  # batched optimisations run (1 = all classes at once)
    # (rounds, classes): each class's size after every round of its group (a stopped class keeps
    # its last); what the class schedule decided on, and what another schedule would have kept.
    trace: torch.Tensor
    # How many classes each class's size stands for in the size test: 1 each, except after a
    # screen that kept a panel (core.recovery.optimise.screened_out).
    weights: list[float]
    seconds: float
    device: str
    seed: int

    def sample(self, label: int, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` triggers of class ``label``: masks (n, 1, H, W) and patterns (n, C, H, W), CPU."""
        member = self.family.subset([label])
        with torch.no_grad():
            mask, pattern = member(member.noise(n, generator))
        return mask[0], pattern[0]


class TriggerRecovery(ABC):
    """Recover, for every class, the smallest trigger that sends clean images to it."""

    method: ClassVar[str]

    def __init__(
        self,
        config: RecoveryConfig = RecoveryConfig(),
        device: str | torch.device = "auto",
        progress: Progress = no_progress,
    ) -> None:
        if config.steps < config.round_steps:
            raise ValueError(f"steps ({config.steps}) must cover at least one round ({config.round_steps})")
        if config.screen_steps < 0 or config.screen_steps % config.round_steps:
            raise ValueError(
                f"screen_steps ({config.screen_steps}) must be 0 or a multiple of round_steps ({config.round_steps})"
            )
        panel, candidates = config.screen_panel, config.screen_candidates
        if panel < 0 or (panel and (panel < 2 or candidates < 1)):
            raise ValueError(
                f"screen_panel ({config.screen_panel}) must be 0, or at least 2 with screen_candidates "
                f"({config.screen_candidates}) at least 1"
            )
        if not 0.0 < config.beta < 1.0:
            raise ValueError(f"beta must lie in (0, 1), got {config.beta}")
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress

    @abstractmethod
    def make_family(self, classes: int, input_shape: tuple[int, int, int], generator: torch.Generator) -> TriggerFamily:
        """A fresh family with one member per class."""

    def recover(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> RecoveryResult:
        """Recover triggers for classes 0..num_classes-1 of ``model`` from clean images ``x`` (labels ``y``)."""
        started = time.perf_counter()
        c = self.config
        generator = seed_everything(c.seed)
        family = self.make_family(num_classes, tuple(x.shape[1:]), generator)
        chunk = c.class_chunk if c.class_chunk > 0 else num_classes
        groups = [list(range(i, min(i + chunk, num_classes))) for i in range(0, num_classes, chunk)]
        x, y = x.to(self.device), y.to(self.device)
        norms = torch.zeros(num_classes)
        reached = torch.zeros(num_classes, dtype=torch.bool)
        train_asr = torch.zeros(num_classes)
        class_steps = torch.zeros(num_classes, dtype=torch.long)
        weights = torch.ones(num_classes)
        trace = torch.full((c.steps // c.round_steps, num_classes), math.nan)
        steps = 0
        total = len(groups) * c.steps
        # The screen ranks the classes it optimises together; within a chunk it would not find the
        # median of all classes, which the size test's centre needs optimised in full.
        group_config = c if len(groups) == 1 else replace(c, screen_steps=0)
        with frozen(model):
            for g, classes in enumerate(groups):
                part = family.subset(classes).to(self.device)
                outcome = optimise_group(
                    model, part, classes, x, y, group_config, generator, self.device, self.progress, g * c.steps, total
                )
                family.assign(classes, part.cpu())
                norms[classes], reached[classes], train_asr[classes] = outcome.norms, outcome.reached, outcome.train_asr
                class_steps[classes] = outcome.class_steps
                weights[classes] = outcome.weights
                trace[: len(outcome.trace), classes] = outcome.trace
                trace[len(outcome.trace) :, classes] = outcome.trace[-1:]
                steps += outcome.steps
        self.progress("recovering triggers", total, total)
        return RecoveryResult(
            method=self.method,
            norms=norms.tolist(),
            reached=reached.tolist(),
            train_asr=train_asr.tolist(),
            family=family,
            steps=steps,
            class_steps=class_steps.tolist(),
            groups=len(groups),
            trace=trace,
            weights=weights.tolist(),
            seconds=time.perf_counter() - started,
            device=str(self.device),
            seed=c.seed,
        )
