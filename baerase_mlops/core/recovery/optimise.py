"""The optimisation shared by every trigger family: all classes of a group in one batch.

Per step and per class k: B clean images not of class k, each stamped with its own
trigger drawn from family k, go through the model; the loss is

    relu(CE(f(x'), k) + log beta)       success, capped once p(k) >= beta (MESA)
  + cost_k * mean |m|_1                 the smallest trigger (Neural Cleanse's schedule)
  - entropy_weight * I_MINE(z; G(z))    cover the whole family (BAERASE), generators only
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import RecoveryConfig
from baerase_mlops.core.recovery.families import MineEstimator, TriggerFamily
from baerase_mlops.core.runtime import Progress
from baerase_mlops.core.triggers import stamp


class CostSchedule:
    """Neural Cleanse's adaptive L1 weight, one per class, vectorised."""

    def __init__(self, classes: int, config: RecoveryConfig, device: torch.device) -> None:
        self.config = config
        self.cost = torch.zeros(classes, device=device)
        self.started = torch.zeros(classes, dtype=torch.bool, device=device)
        self.up = torch.zeros(classes, device=device)
        self.down = torch.zeros(classes, device=device)

    def update(self, succeeded: torch.Tensor) -> None:
        c = self.config
        first = succeeded & ~self.started
        self.cost[first] = c.init_cost
        self.started |= first
        self.up = torch.where(succeeded, self.up + 1, torch.zeros_like(self.up))
        self.down = torch.where(succeeded, torch.zeros_like(self.down), self.down + 1)
        raise_ = self.started & (self.up >= c.patience)
        lower = self.started & (self.down >= c.patience)
        self.cost[raise_] *= c.cost_multiplier
        self.cost[lower] /= c.cost_multiplier**1.5
        self.up[raise_] = 0
        self.down[lower] = 0


@dataclass
class GroupOutcome:
    """What the optimisation of one group of classes found."""

    norms: torch.Tensor  # smallest successful mean mask L1 per class (last one where never successful)
    reached: torch.Tensor  # bool: the trigger reached the success threshold at least once
    train_asr: torch.Tensor  # ASR on the training images at the kept round
    steps: int


class ClassSampler:
    """Draws, for each class of a group, clean images of the *other* classes."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: list[int]) -> None:
        self.x = x
        self.pools = [torch.nonzero(y != k).flatten() for k in classes]
        for k, pool in zip(classes, self.pools):
            if len(pool) == 0:
                raise ValueError(f"the clean set holds no image outside class {k}")

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        picks = [pool[torch.randint(0, len(pool), (batch,), generator=generator)] for pool in self.pools]
        return self.x[torch.stack(picks).to(self.x.device)]


def optimise_group(
    model: nn.Module,
    family: TriggerFamily,
    classes: list[int],
    x: torch.Tensor,
    y: torch.Tensor,
    config: RecoveryConfig,
    generator: torch.Generator,
    device: torch.device,
    progress: Progress,
    progress_offset: int,
    progress_total: int,
) -> GroupOutcome:
    """Optimise ``family`` (one member per entry of ``classes``) in place; keep each class's best state."""
    n, b = len(classes), config.batch_size
    sampler = ClassSampler(x, y, classes)
    targets = torch.tensor(classes, device=device).repeat_interleave(b)
    use_entropy = family.noise_dim > 0 and config.entropy_weight > 0
    mine = MineEstimator(n, family.noise_dim, family.input_shape, config.hidden_dim).to(device) if use_entropy else None
    groups = [{"params": family.centre_parameters(), "lr": config.lr}]
    if family.spread_parameters():
        groups.append({"params": family.spread_parameters(), "lr": config.spread_lr})
    optimiser = torch.optim.Adam(groups, betas=(0.5, 0.9))
    mine_optimiser = torch.optim.Adam(mine.parameters(), lr=config.mine_lr, betas=(0.5, 0.999)) if mine else None
    schedule = CostSchedule(n, config, device)
    cap = -math.log(config.beta)

    best_norm = torch.full((n,), math.inf, device=device)
    best_asr = torch.zeros(n, device=device)
    best_state = {name: p.detach().clone() for name, p in family.named_parameters()}
    stale = torch.zeros(n, device=device)
    hits = torch.zeros(n, device=device)
    l1_sum = torch.zeros(n, device=device)
    last_norm = torch.zeros(n, device=device)
    last_asr = torch.zeros(n, device=device)

    step = 0
    for step in range(1, config.steps + 1):
        images = sampler.sample(b, generator)  # (n, b, C, H, W)
        z = family.noise(b, generator, device)
        mask, pattern = family(z)
        stamped = stamp(images, mask, pattern).flatten(0, 1)
        logits = model(stamped)
        ce = F.cross_entropy(logits, targets, reduction="none").view(n, b)
        l1 = mask.flatten(2).sum(dim=2).mean(dim=1)
        loss = F.relu(ce - cap).mean(dim=1) + schedule.cost * l1
        if mine is not None:
            feats = mine.features(mask, pattern)
            shuffle = torch.randperm(b, generator=generator).to(device)
            loss = loss - config.entropy_weight * mine.lower_bound(z, feats, shuffle)
        optimiser.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimiser.step()
        if mine is not None:
            mine_optimiser.zero_grad(set_to_none=True)
            (-mine.lower_bound(z, feats.detach(), shuffle).sum()).backward()
            mine_optimiser.step()

        with torch.no_grad():
            hits += (logits.argmax(dim=1) == targets).view(n, b).float().mean(dim=1)
            l1_sum += l1.detach()
        if step % config.round_steps == 0:
            asr, norm = hits / config.round_steps, l1_sum / config.round_steps
            hits.zero_()
            l1_sum.zero_()
            succeeded = asr >= config.success_threshold
            improved = succeeded & (norm < best_norm * 0.99)
            stale = torch.where(improved | ~schedule.started, torch.zeros_like(stale), stale + 1)
            better = succeeded & (norm < best_norm)
            best_norm = torch.where(better, norm, best_norm)
            best_asr = torch.where(better, asr, best_asr)
            with torch.no_grad():
                for name, p in family.named_parameters():
                    best_state[name][better] = p.detach()[better]
            last_norm, last_asr = norm, asr
            schedule.update(succeeded)
            if bool((stale >= config.early_stop_rounds).all()):
                progress("recovering triggers", progress_offset + config.steps, progress_total)
                break
        progress("recovering triggers", progress_offset + step, progress_total)

    reached = torch.isfinite(best_norm)
    with torch.no_grad():
        for name, p in family.named_parameters():
            p[reached] = best_state[name][reached]
    norms = torch.where(reached, best_norm, last_norm)
    asr = torch.where(reached, best_asr, last_asr)
    return GroupOutcome(norms.cpu(), reached.cpu(), asr.cpu(), step)
