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
from baerase_mlops.core.recovery.families import M, MineEstimator, TriggerFamily, select_rows
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

    def update(self, succeeded: torch.Tensor, members: torch.Tensor) -> None:
        """One round's decision for the classes ``members`` (``succeeded`` is theirs, in order)."""
        c = self.config
        started, up, down, cost = self.started[members], self.up[members], self.down[members], self.cost[members]
        first = succeeded & ~started
        cost[first] = c.init_cost
        started |= first
        up = torch.where(succeeded, up + 1, torch.zeros_like(up))
        down = torch.where(succeeded, torch.zeros_like(down), down + 1)
        raise_ = started & (up >= c.patience)
        lower = started & (down >= c.patience)
        cost[raise_] *= c.cost_multiplier
        cost[lower] /= c.cost_multiplier**1.5
        up[raise_] = 0
        down[lower] = 0
        self.started[members], self.up[members], self.down[members], self.cost[members] = started, up, down, cost


@dataclass
class GroupOutcome:
    """What the optimisation of one group of classes found."""

    norms: torch.Tensor  # smallest successful mean mask L1 per class (last one where never successful)
    reached: torch.Tensor  # bool: the trigger reached the success threshold at least once
    train_asr: torch.Tensor  # ASR on the training images at the kept round
    steps: int  # steps the group ran (its longest-trained class's)
    class_steps: torch.Tensor  # steps each class was trained for (the class schedule stops some early)
    trace: torch.Tensor  # (rounds, classes): each class's size after each round, as ``norms`` would give it then
    weights: torch.Tensor  # how many classes each class's size stands for in the size test (screened_out)


class ClassSampler:
    """Draws, for each class of a group, clean images of the *other* classes."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: list[int]) -> None:
        self.x = x
        self.pools = [torch.nonzero(y != k).flatten() for k in classes]
        for k, pool in zip(classes, self.pools):
            if len(pool) == 0:
                raise ValueError(f"the clean set holds no image outside class {k}")

    def sample(self, batch: int, generator: torch.Generator, members: list[int]) -> torch.Tensor:
        """(len(members), batch, C, H, W): images for the group's classes at positions ``members``."""
        pools = [self.pools[i] for i in members]
        picks = [pool[torch.randint(0, len(pool), (batch,), generator=generator)] for pool in pools]
        return self.x[torch.stack(picks).to(self.x.device)]


def screened_out(
    best_norm: torch.Tensor,
    last_norm: torch.Tensor,
    candidates: int = 0,
    panel: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the classes a screening round stops, the weight of every class in the size test).

    By default all but the ``n // 2 + 1`` with the smallest triggers stop, and every class weighs 1.
    A class is flagged only for a trigger far below the median (at the default threshold and floor,
    under 41% of it): one above the median at the screen would have to shrink 2.4 times more than
    the median's class in the steps left. The kept classes include the median's, so the centre
    of the size test is optimised like the candidates below it. Classes whose trigger never
    succeeded rank last (a backdoor's target succeeds early).

    With a ``panel`` smaller than that half (many classes): the ``candidates`` smallest go on, and
    the others are cut, in the order of their sizes, into ``panel`` runs of consecutive ranks,
    three in four of them up to the median's rank (the size test reads the lower half; the larger
    half counts, and crosses the median now and then) and the rest above it; one class drawn at
    random (``generator``) from each run goes on and weighs for its run, the rest stop and weigh 0.
    The weighted sizes at the end then estimate, without bias, how many classes would have ended
    under any size had every class had the whole budget, and so the test's median and MAD.
    Measured on 43-class GTSRB models given the whole budget (benchmarks.schedules): a
    class at the middle of each run instead narrowed the MAD (final sizes of classes picked by
    their rank at the screen regress toward the median) and raised clean models' indices; runs
    spread evenly over all ranks left the lower half's MAD to 3 or 4 draws, and 1 draw in 70
    missed a backdoor that the smaller half flagged."""
    n = len(best_norm)
    reached = torch.isfinite(best_norm)
    size = torch.where(reached, best_norm, last_norm).tolist()
    order = sorted(range(n), key=lambda k: (not bool(reached[k]), size[k]))
    out = torch.ones(n, dtype=torch.bool)
    weights = torch.ones(n)
    half = n // 2 + 1
    if panel <= 0 or half <= candidates + panel:
        out[order[:half]] = False
        return out, weights
    out[order[:candidates]] = False
    weights[:] = 0.0
    weights[order[:candidates]] = 1.0
    above = max(1, panel // 4)  # the larger half must count, however small the panel
    runs = _runs(candidates, half, panel - above) + _runs(half, n, above)
    for start, stop in runs:
        drawn = order[start + int(torch.randint(0, stop - start, (1,), generator=generator))]
        out[drawn] = False
        weights[drawn] = float(stop - start)
    return out, weights


def _runs(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """``count`` runs of consecutive ranks, as even as can be, covering ``start`` to ``stop``."""
    size = stop - start
    return [(start + i * size // count, start + (i + 1) * size // count) for i in range(count)]


def _adam(params, device: torch.device, *, fused: bool, **kwargs) -> torch.optim.Adam:
    """Adam, fused on CPU and CUDA with the class schedule on: the generator's per-class output
    layers hold 17M weights for 43 RGB classes, and the per-tensor loop took 207 ms a step there on
    one core, the fused kernel 36 ms. Off, the per-tensor loop keeps the recorded triggers exact."""
    return torch.optim.Adam(params, fused=fused and device.type in ("cpu", "cuda"), **kwargs)


def _compact(module: M, optimiser: torch.optim.Optimizer, keep: list[int], part: M) -> tuple[M, torch.optim.Optimizer]:
    """``part`` (``module``'s rows ``keep``) with a copy of ``optimiser`` over it, its per-row
    state (Adam's moments) sliced to those rows: every update is elementwise, so the kept rows
    go on exactly as they would have in the full module."""
    rows = torch.tensor(keep)
    twin = dict(zip(module.parameters(), part.parameters()))
    groups = [{**options, "params": [twin[p] for p in options["params"]]} for options in optimiser.param_groups]
    sliced = type(optimiser)(groups, **optimiser.defaults)
    for old, new in twin.items():
        state = optimiser.state.get(old)
        if state:
            sliced.state[new] = {
                k: (v[rows.to(v.device)].clone() if v.dim() > 0 else v.clone()) if torch.is_tensor(v) else v
                for k, v in state.items()
            }
    return part, sliced


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
    """Optimise ``family`` (one member per entry of ``classes``) in place; keep each class's best state.

    The class schedule (``screen_steps`` > 0): a class stops once its trigger has not shrunk by 1%
    for ``early_stop_rounds`` rounds, and after ``screen_steps`` only the smaller half of the
    triggers (with the median's) go on, or with many classes the smallest few and a panel
    (:func:`screened_out`). Without it the group stops when
    every class has stopped shrinking. The other classes keep their best state and
    cost nothing more: the steps after a stop train compact copies of the family (and of MINE)
    holding only the remaining classes, all in one batch. Indexing the rows of the whole family
    instead, and scattering its gradient back, made a step for 22 of 43 RGB classes 3x dearer.
    """
    n, b = len(classes), config.batch_size
    sampler = ClassSampler(x, y, classes)
    labels = torch.tensor(classes, device=device)
    use_entropy = family.noise_dim > 0 and config.entropy_weight > 0
    mine = MineEstimator(n, family.noise_dim, family.input_shape, config.hidden_dim).to(device) if use_entropy else None
    groups = [{"params": family.centre_parameters(), "lr": config.lr}]
    if family.spread_parameters():
        groups.append({"params": family.spread_parameters(), "lr": config.spread_lr})
    fused = config.screen_steps > 0
    optimiser = _adam(groups, device, fused=fused, betas=(0.5, 0.9))
    mine_optimiser = (
        _adam(mine.parameters(), device, fused=fused, lr=config.mine_lr, betas=(0.5, 0.999)) if mine else None
    )
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
    active = torch.ones(n, dtype=torch.bool)
    class_steps = torch.zeros(n, dtype=torch.long)
    weights = torch.ones(n)
    trace: list[torch.Tensor] = []
    # The classes being trained (``members``, in order) as the rows of ``working`` (and of
    # ``mine``); ``family`` gets their parameters back when the set shrinks and at the end.
    working, members = family, torch.arange(n)

    step = 0
    for step in range(1, config.steps + 1):
        m, idx = len(members), members.to(device)
        images = sampler.sample(b, generator, members.tolist())  # (m, b, C, H, W)
        z = working.noise(b, generator, device)
        mask, pattern = working(z)
        stamped = stamp(images, mask, pattern).flatten(0, 1)
        logits = model(stamped)
        targets = labels[idx].repeat_interleave(b)
        ce = F.cross_entropy(logits, targets, reduction="none").view(m, b)
        l1 = mask.flatten(2).sum(dim=2).mean(dim=1)
        loss = F.relu(ce - cap).mean(dim=1) + schedule.cost[idx] * l1
        if mine is not None:
            feats = mine.features(mask, pattern)
            shuffle = torch.randperm(b, generator=generator).to(device)
            loss = loss - config.entropy_weight * mine.lower_bound(z, feats, shuffle)
        optimiser.zero_grad(set_to_none=True)
        if mine_optimiser is not None:
            mine_optimiser.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimiser.step()
        if mine is not None:
            # The loss holds -entropy_weight * bound, and MINE's parameters appear nowhere else in
            # it: their gradient from that one backward pass, divided by entropy_weight, is the
            # gradient of -bound that MINE ascends. A second forward and backward of the statistics
            # network (on detached triggers: the same values) gave the same up to rounding.
            for p in mine.parameters():
                if p.grad is not None:
                    p.grad.div_(config.entropy_weight)
            mine_optimiser.step()
        class_steps[members] += 1

        with torch.no_grad():
            hits[idx] += (logits.argmax(dim=1) == targets).view(m, b).float().mean(dim=1)
            l1_sum[idx] += l1.detach()
        if step % config.round_steps == 0:
            asr, norm = hits[idx] / config.round_steps, l1_sum[idx] / config.round_steps
            hits.zero_()
            l1_sum.zero_()
            succeeded = asr >= config.success_threshold
            improved = succeeded & (norm < best_norm[idx] * 0.99)
            stale[idx] = torch.where(improved | ~schedule.started[idx], torch.zeros_like(norm), stale[idx] + 1)
            better = succeeded & (norm < best_norm[idx])
            best_norm[idx[better]], best_asr[idx[better]] = norm[better], asr[better]
            with torch.no_grad():
                for name, p in working.named_parameters():
                    best_state[name][idx[better]] = p.detach()[better]
            last_norm[idx], last_asr[idx] = norm, asr
            schedule.update(succeeded, idx)
            trace.append(torch.where(torch.isfinite(best_norm), best_norm, last_norm).cpu())
            done = (stale >= config.early_stop_rounds).cpu()
            if config.screen_steps == 0 and not bool(done.all()):
                done[:] = False  # no schedule: every class trains until all have stopped shrinking
            if step == config.screen_steps and step < config.steps and n > 3:
                out, weights = screened_out(
                    best_norm.cpu(), last_norm.cpu(), config.screen_candidates, config.screen_panel, generator
                )
                done |= out
            stopping = active & done
            if stopping.any():
                active &= ~stopping
                if not active.any():
                    progress("recovering triggers", progress_offset + config.steps, progress_total)
                    break
                if working is not family:
                    family.assign(members.tolist(), working)
                keep = torch.nonzero(active[members]).flatten().tolist()
                working, optimiser = _compact(working, optimiser, keep, working.subset(keep))
                if mine is not None:
                    mine, mine_optimiser = _compact(mine, mine_optimiser, keep, select_rows(mine, keep))
                members = torch.nonzero(active).flatten()
        progress("recovering triggers", progress_offset + step, progress_total)

    if working is not family:
        family.assign(members.tolist(), working)
    reached = torch.isfinite(best_norm)
    with torch.no_grad():
        for name, p in family.named_parameters():
            p[reached] = best_state[name][reached]
    norms = torch.where(reached, best_norm, last_norm)
    asr = torch.where(reached, best_asr, last_asr)
    rounds = torch.stack(trace) if trace else torch.empty(0, n)
    return GroupOutcome(norms.cpu(), reached.cpu(), asr.cpu(), step, class_steps, rounds, weights)
