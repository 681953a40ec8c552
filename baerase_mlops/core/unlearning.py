"""Erasing a backdoor from a model with the recovered triggers and a small clean set.

* :class:`BaeraseUnlearning` (the paper's step 2): descent on clean data, gradient ascent
  on images stamped with triggers drawn afresh from the recovered generator of each
  flagged class toward that class, descent on the same triggered images toward their true
  labels (``relabel``: the ascent alone sends them to whichever class comes next, and can make
  it a new shortcut), and an L1 pull toward the original weights:
  ``alpha * CE(f(x), y) - min(CE(f(x + T), t), flood) + relabel * CE(f(x + T), y)
  + lambda * |theta - theta_0|_1``.
  The ascent is bounded twice: per image it stops at ``flood`` (no gradient beyond), and
  the gradient norm is clipped. The L1 term is applied as its proximal step. Opt-in, beside
  the recovered triggers it ascends on larger ones (``UnlearningConfig.larger_triggers``), searched
  once on the original model within a few times the recovered size: the recovered trigger is
  the smallest that works, often a fragment of the attacker's.
* :class:`NeuralCleanseUnlearning`: fine-tune on clean images, a share of them stamped
  with the recovered trigger and kept at their true labels (Wang et al. 2019).
* :class:`FineTuning`: fine-tune on the clean images alone.

Two opt-in additions to what is stamped (``UnlearningConfig.adversarial_every``,
``trigger_shift``): triggers searched afresh on the model being unlearnt within the backdoor's
size (``core/budgeted.py``), and recovered triggers moved over the image.

All three share one loop (:meth:`Unlearner.unlearn`): they copy the model (the original
is never touched), keep it in evaluation mode (normalisation statistics stay frozen: the
clean set is small), draw clean batches with a share of the flagged classes' own images,
shift them randomly by a few pixels, add distillation toward the original model's outputs
on them (``distill``; 0 gives the paper's loss), and stop by the rule documented on
:class:`~baerase_mlops.config.UnlearningConfig`.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.budgeted import FoundTrigger, search_budgeted_trigger, trigger_asr
from baerase_mlops.core.classifier import frozen, to_channels_last
from baerase_mlops.core.metrics import accuracy
from baerase_mlops.core.recovery import RecoveryResult
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything
from baerase_mlops.core.scan import recovered_trigger_asr
from baerase_mlops.core.triggers import stamp, warp
from baerase_mlops.core.warps import warp_asr
from baerase_mlops.data.imageset import ImageSet


@dataclass(frozen=True)
class Checkpoint:
    step: int
    clean_accuracy: float  # on every clean image
    recovered_asr: float  # on the held-out clean images; the worst over the flagged classes


@dataclass
class UnlearningResult:
    model: nn.Module  # the cleaned copy, on the CPU
    method: str
    targets: list[int]
    before: Checkpoint
    after: Checkpoint  # the kept checkpoint
    history: list[Checkpoint]
    reached_target: bool  # the kept checkpoint's recovered-trigger ASR is at or under target_asr
    steps: int
    seconds: float
    device: str
    seed: int
    # It trained on triggers from the budgeted search (core/budgeted.py) that verification runs
    # too: that search finding nothing afterwards is then no independent evidence.
    searched: bool = False


def repaired(
    best: Checkpoint, before: Checkpoint, history: list[Checkpoint], *, within: float | None, patience: int
) -> bool:
    """Whether an unlearning whose triggers have settled may stop: the kept checkpoint ``best`` is
    within ``within`` of the original's clean accuracy (``within=None``: always), or none of the
    last ``patience`` measurements in ``history`` became the kept one (no more is coming back)."""
    if within is None or best.clean_accuracy >= before.clean_accuracy - within - 1e-9:
        return True
    return all(point.step != best.step for point in history[-patience:])


def may_stop(best: Checkpoint, before: Checkpoint, history: list[Checkpoint], config: UnlearningConfig) -> bool:
    """Whether the unlearning may stop after the last measurement in ``history``, ``best`` being the
    kept checkpoint: at or after ``min_steps``, the last ``settle_evals`` measurements at or under
    ``target_asr``, the kept checkpoint too (else none within the accuracy bound has reached it yet:
    stopping would hand back a model that never did), and :func:`repaired`."""
    c = config
    # max(.., 0): a history shorter than settle_evals starts at the original (step 0), which never settles
    recent = history[max(len(history) - c.settle_evals, 0) :]
    settled = all(point.step > 0 and point.recovered_asr <= c.target_asr for point in recent)
    return (
        history[-1].step >= c.min_steps
        and settled
        and best.recovered_asr <= c.target_asr
        and repaired(best, before, history, within=c.repair_within, patience=c.settle_evals)
    )


def better(point: Checkpoint, best: Checkpoint, before: Checkpoint, config: UnlearningConfig) -> bool:
    """Whether ``point`` replaces ``best`` as the kept checkpoint: measured at or after ``min_steps``,
    within ``max_accuracy_drop`` of the original's clean accuracy, and a recovered-trigger ASR at
    or under the kept one's (ties: the higher accuracy, then the later)."""
    if point.step < config.min_steps:
        return False
    if point.clean_accuracy < before.clean_accuracy - config.max_accuracy_drop - 1e-9:
        return False
    return (point.recovered_asr, -point.clean_accuracy) <= (best.recovered_asr, -best.clean_accuracy)


class Unlearner(ABC):
    """Make a model forget the triggers of ``targets``; configure, then call :meth:`unlearn`."""

    method: ClassVar[str]
    # Whether UnlearningConfig.larger_triggers applies: BAERASE's ascent only, so that the
    # Neural-Cleanse baseline stays the published method and fine-tuning stays trigger-free.
    uses_larger_triggers: ClassVar[bool] = False
    # Whether the warp test's flows are unlearnt (BAERASE only, for the same reason).
    uses_warps: ClassVar[bool] = False

    def __init__(
        self,
        config: UnlearningConfig = UnlearningConfig(),
        device: str | torch.device = "auto",
        progress: Progress = no_progress,
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress

    @abstractmethod
    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stamped: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The training loss of one step: clean ``x``/``y``, and ``stamped`` images whose
        trigger belongs to ``targets`` (true labels of ``stamped`` are those of ``x``)."""

    def unlearn(
        self,
        model: nn.Module,
        train: ImageSet,
        holdout: ImageSet,
        recovery: RecoveryResult,
        targets: list[int],
        warp_flows: dict[int, torch.Tensor] | None = None,
    ) -> UnlearningResult:
        """Unlearn on ``train`` (the unlearning part of the clean set), judge on ``holdout``.
        ``warp_flows``: the smallest warps of the targets the warp test flagged (``ScanResult.warp_flows``),
        unlearnt beside their recovered triggers where the method takes them (``uses_warps``)."""
        if not targets:
            raise ValueError("unlearning needs at least one flagged target class")
        started = time.perf_counter()
        c = self.config
        generator = seed_everything(c.seed)
        original = model
        model = copy.deepcopy(original).to(self.device)
        to_channels_last(model, tuple(train.x.shape[1:]), self.device)  # faster; given back contiguous
        trainable = [p for p in model.parameters() if p.is_floating_point()]
        anchor = [p.detach().clone() for p in trainable]
        flags = [p.requires_grad for p in trainable]
        for p in trainable:
            p.requires_grad_(True)
        optimiser = torch.optim.SGD(trainable, lr=c.lr, momentum=c.momentum)
        families = {t: recovery.family.subset([t]).to(self.device) for t in targets}
        flows = {t: f.to(self.device) for t, f in (warp_flows or {}).items() if t in targets} if self.uses_warps else {}
        target_of = torch.tensor(targets)
        x_all, y_all = train.x.to(self.device), train.y.to(self.device)
        x_clean, y_clean = torch.cat([train.x, holdout.x]), torch.cat([train.y, holdout.y])

        adversarial: dict[int, FoundTrigger] = {}  # the latest adversarial trigger of each target
        # the images outside each target: searched (unlearning part) and measured (stopping rule) on
        search_on = {t: x_all[y_all != t] for t in targets} if c.adversarial_every > 0 else {}
        measure_on = {t: holdout.x[holdout.y != t] for t in targets} if c.adversarial_stop else {}
        warp_on = {t: holdout.x[holdout.y != t] for t in flows}  # the stopping rule's images for each warp

        # searched on the original's weights: nothing has moved yet
        larger = self.search_larger_triggers(model, {t: x_all[y_all != t] for t in targets}, recovery.norms)

        def measure(step: int) -> Checkpoint:
            with frozen(model):
                acc = accuracy(model, x_clean, y_clean, self.device)
                eval_gen = torch.Generator().manual_seed(c.seed + 1)  # same triggers at every measurement
                asr = max(
                    recovered_trigger_asr(model, recovery, holdout, t, c.eval_draws, eval_gen, self.device)
                    for t in targets
                )
                for t, flow in flows.items():
                    asr = max(asr, warp_asr(model, warp_on[t], flow, t, self.device))
                if c.adversarial_stop:
                    for t, found in adversarial.items():
                        asr = max(asr, trigger_asr(model, measure_on[t], found.mask, found.pattern, t, self.device))
            return Checkpoint(step, acc, asr)

        before = measure(0)
        history = [before]
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best = before
        step = 0
        target_pool = torch.nonzero(torch.isin(train.y, target_of)).flatten()
        n_target = int(round(c.target_share * c.batch_size)) if len(target_pool) else 0
        teacher = copy.deepcopy(model) if c.distill > 0 else None  # the original's weights: nothing has moved yet
        for step in range(1, c.max_steps + 1):
            idx = torch.cat(
                [
                    torch.randint(0, len(x_all), (c.batch_size - n_target,), generator=generator),
                    target_pool[torch.randint(0, len(target_pool), (n_target,), generator=generator)]
                    if n_target
                    else torch.empty(0, dtype=torch.long),
                ]
            ).to(self.device)
            x, y = x_all[idx], y_all[idx]
            if c.shift > 0:
                x = random_shift(x, c.shift, generator)
            trigger_targets = target_of[torch.randint(0, len(targets), (c.batch_size,), generator=generator)].to(
                self.device
            )
            stamped = self._stamp(families, x, trigger_targets, generator, c.amplify, c.trigger_shift)
            if flows:
                stamped = self._warp_share(flows, stamped, x, trigger_targets, generator)
            if c.adversarial_every > 0:
                if (step - 1) % c.adversarial_every == 0:
                    with frozen(model):
                        adversarial = {
                            t: search_budgeted_trigger(
                                model,
                                search_on[t],
                                t,
                                recovery.norms[t] * c.adversarial_budget,
                                steps=c.adversarial_steps,
                                restarts=1,
                                lr=c.adversarial_lr,
                                batch_size=2 * c.batch_size,
                                generator=generator,
                                device=self.device,
                                start=adversarial.get(t),
                            )
                            for t in targets
                        }
                stamped = self._stamp_adversarial(adversarial, stamped, x, trigger_targets, generator)
            if larger:
                stamped = self._stamp_larger(larger, stamped, x, trigger_targets, generator)
            loss = self.loss(model, x, y, stamped, trigger_targets)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.log_softmax(teacher(x), dim=1)
                loss = loss + c.distill * F.kl_div(
                    F.log_softmax(model(x), dim=1), soft, log_target=True, reduction="batchmean"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, c.grad_clip)
            optimiser.step()
            if c.l1_pull > 0:
                pull_towards(trainable, anchor, c.lr * c.l1_pull)
            self.progress(f"unlearning ({self.method})", step, c.max_steps)
            if step % c.eval_every == 0:
                point = measure(step)
                history.append(point)
                if better(point, best, before, c):
                    best = point
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if may_stop(best, before, history, c):
                    break
        self.progress(f"unlearning ({self.method})", c.max_steps, c.max_steps)
        model.load_state_dict(best_state)
        for p, flag in zip(trainable, flags):
            p.requires_grad_(flag)
        return UnlearningResult(
            model=model.to(memory_format=torch.contiguous_format).cpu(),
            method=self.method,
            targets=list(targets),
            before=before,
            after=best,
            history=history,
            reached_target=best.recovered_asr <= c.target_asr,
            steps=step,
            seconds=time.perf_counter() - started,
            device=str(self.device),
            seed=c.seed,
            searched=c.adversarial_every > 0,
        )

    @staticmethod
    def _stamp(
        families: dict[int, nn.Module],
        x: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
        amplify: float,
        shift: int = 0,
    ) -> torch.Tensor:
        stamped = x.clone()
        with torch.no_grad():
            for t, family in families.items():
                rows = targets == t
                count = int(rows.sum())
                if count:
                    mask, pattern = family(family.noise(count, generator, x.device))
                    scale = 1.0 + (amplify - 1.0) * torch.rand(count, 1, 1, 1, generator=generator).to(x.device)
                    mask = (mask[0] * scale).clamp(0.0, 1.0)
                    pattern = pattern[0].expand(count, -1, -1, -1)
                    if shift > 0:
                        mask, pattern = move_half(mask.expand(count, -1, -1, -1), pattern, shift, generator)
                    stamped[rows] = stamp(x[rows], mask, pattern)
        return stamped

    def search_larger_triggers(
        self, model: nn.Module, outside: dict[int, torch.Tensor], norms: list[float]
    ) -> dict[int, list[FoundTrigger]]:
        """``larger_triggers`` triggers per target within ``larger_budget`` x its recovered size,
        searched on ``model`` before it has moved (the original's weights), each from its own
        random start (``UnlearningConfig.larger_triggers``)."""
        c = self.config
        if c.larger_triggers <= 0 or not self.uses_larger_triggers:
            return {}
        generator = torch.Generator().manual_seed(c.seed + 4099)  # its own stream: the default's is unchanged
        found: dict[int, list[FoundTrigger]] = {}
        with frozen(model):
            for t, x in outside.items():
                found[t] = [
                    search_budgeted_trigger(
                        model,
                        x,
                        t,
                        float(norms[t]) * c.larger_budget,
                        steps=c.larger_steps,
                        restarts=1,
                        lr=c.adversarial_lr,
                        batch_size=2 * c.batch_size,
                        generator=generator,
                        device=self.device,
                    )
                    for _ in range(c.larger_triggers)
                ]
        return found

    def _stamp_larger(
        self,
        larger: dict[int, list[FoundTrigger]],
        stamped: torch.Tensor,
        x: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``stamped`` with ``larger_share`` of its rows stamped instead with one of their target's
        larger triggers (half of them moved by up to ``trigger_shift`` pixels, as the recovered ones)."""
        c = self.config
        chosen = (torch.rand(len(x), generator=generator) < c.larger_share).to(x.device)
        for t, triggers in larger.items():
            rows = chosen & (targets == t)
            count = int(rows.sum())
            if not count:
                continue
            pick = torch.randint(0, len(triggers), (count,), generator=generator).tolist()
            mask = torch.cat([triggers[i].mask for i in pick]).to(x.device)
            pattern = torch.cat([triggers[i].pattern for i in pick]).to(x.device)
            if c.trigger_shift > 0:
                mask, pattern = move_half(mask, pattern, c.trigger_shift, generator)
            stamped[rows] = stamp(x[rows], mask, pattern)
        return stamped

    def _warp_share(
        self,
        flows: dict[int, torch.Tensor],
        stamped: torch.Tensor,
        x: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``stamped`` with ``warp_share`` of the rows of warp-flagged targets resampled instead through
        their target's smallest warp, scaled by u ~ U[1, amplify] (stronger versions are unlearnt too)."""
        c = self.config
        chosen = (torch.rand(len(x), generator=generator) < c.warp_share).to(x.device)
        for t, flow in flows.items():
            rows = chosen & (targets == t)
            count = int(rows.sum())
            if count:
                scale = 1.0 + (c.amplify - 1.0) * torch.rand(count, 1, 1, 1, generator=generator).to(x.device)
                stamped[rows] = warp(x[rows], flow * scale)
        return stamped

    def _stamp_adversarial(
        self,
        adversarial: dict[int, FoundTrigger],
        stamped: torch.Tensor,
        x: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``stamped`` with ``adversarial_share`` of its rows stamped instead with the latest
        adversarial trigger of their target class."""
        chosen = (torch.rand(len(x), generator=generator) < self.config.adversarial_share).to(x.device)
        for t, found in adversarial.items():
            rows = chosen & (targets == t)
            if rows.any():
                stamped[rows] = stamp(x[rows], found.mask.to(x.device), found.pattern.to(x.device))
        return stamped


@torch.no_grad()
def pull_towards(params: list[nn.Parameter], anchor: list[torch.Tensor], threshold: float) -> None:
    """The proximal step of ``lambda * |theta - theta_0|_1``: soft-threshold every weight's
    distance from the original by ``lr * lambda``, so that weights without a consistent
    reason to move return exactly to where they were (the backdoor lives in few weights)."""
    for p, a in zip(params, anchor):
        delta = p - a
        p.copy_(a + delta.sign() * (delta.abs() - threshold).clamp_min(0.0))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator, mode: str = "replicate") -> torch.Tensor:
    """Each image moved by up to ``max_shift`` pixels in each direction (edges padded by
    replication, or with zeros for ``mode="constant"``)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode=mode)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, r : r + h, c : c + w] for i, (r, c) in enumerate(offsets)])


def move_half(
    mask: torch.Tensor, pattern: torch.Tensor, max_shift: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row triggers (N x 1 x H x W masks, N x C x H x W patterns), half of them moved by up to
    ``max_shift`` pixels and half left where they are: a fixed trigger stays unlearnt in place."""
    both = torch.cat([mask, pattern], 1)
    moved = random_shift(both, max_shift, generator, "constant")
    keep = (torch.rand(len(both), generator=generator) < 0.5).to(both.device)
    both = torch.where(keep[:, None, None, None], both, moved)
    return both[:, :1], both[:, 1:]


class BaeraseUnlearning(Unlearner):
    method = "baerase"
    uses_larger_triggers = True
    uses_warps = True

    def loss(self, model, x, y, stamped, targets):
        c = self.config
        clean = F.cross_entropy(model(x), y)
        keep = y != targets  # an image of the target class itself is right to go there
        logits = model(stamped[keep])
        ascent = F.cross_entropy(logits, targets[keep], reduction="none").clamp(max=c.flood)
        loss = c.alpha * clean - (ascent.mean() if len(ascent) else 0.0)
        if c.relabel > 0 and len(ascent):
            loss = loss + c.relabel * F.cross_entropy(logits, y[keep])
        return loss


class NeuralCleanseUnlearning(Unlearner):
    method = "nc_unlearning"

    def loss(self, model, x, y, stamped, targets):
        n = int(round(self.config.stamp_share * len(x)))
        mixed = torch.cat([stamped[:n], x[n:]])
        return F.cross_entropy(model(mixed), y)


class FineTuning(Unlearner):
    method = "fine_tuning"

    def loss(self, model, x, y, stamped, targets):
        return F.cross_entropy(model(x), y)


UNLEARNING_METHODS: dict[str, type[Unlearner]] = {
    m.method: m for m in (BaeraseUnlearning, NeuralCleanseUnlearning, FineTuning)
}
