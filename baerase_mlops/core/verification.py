"""Independent verification of an erasure: is the backdoor gone, by evidence that the
unlearning never saw?

The numbers an unlearner stops on come from the triggers it was just trained to forget, so
they reach 0 by construction and say nothing about the attacker's trigger. Before a model
is called cleaned, :class:`ErasureVerifier` therefore examines the candidate afresh:

1. **A re-scan from scratch**: every class, a fresh recovery seed (new triggers, never used
   in unlearning), the same detection. It must flag nothing.
2. **A trigger search at the backdoor's size**: for every class the original scan flagged,
   the strongest trigger no larger than the flagged class's smallest recovered trigger
   (projected gradient on a mask and a pattern, from a fresh seed, several restarts) is
   searched on the recovery images and measured on clean images kept out of unlearning,
   its stopping rule and the search (``verify``). A backdoor that survived as a weaker or
   moved trigger still shows here, where the re-scan's 99%-success triggers may not.
   Its ASR must be at or under the target.

Both numbers are measured on the candidate only, with triggers it never saw: they are the
``asr_after`` a registry may record as ``verified``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import ScanConfig, VerificationConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.contract import InputContract
from baerase_mlops.core.metrics import predict
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device
from baerase_mlops.core.scan import Scanner, Verdict
from baerase_mlops.core.triggers import stamp
from baerase_mlops.data.imageset import ImageSet


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (``(nan, nan)`` for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class BudgetedTrigger:
    """The strongest trigger found for ``label`` within ``budget`` (mask L1)."""

    label: int
    budget: float
    asr: float  # on the verification images outside ``label``
    images: int  # how many images ``asr`` is measured on
    search_asr: float  # on the search images (what the search optimised)
    mask_l1: float


@dataclass
class VerificationResult:
    """The independent evidence behind a ``cleaned`` verdict, or why there is none."""

    passed: bool
    reasons: list[str]  # why it failed (empty when it passed)
    rescan: Verdict  # the fresh scan of the candidate
    triggers: list[BudgetedTrigger]  # one per originally flagged class
    asr: float  # the worst budgeted-trigger ASR: the verified asr_after
    target_asr: float
    accuracy_before: float  # on the verification images
    accuracy_after: float
    accuracy_images: int
    accuracy_drop_interval: tuple[float, float]  # 95%, from the per-image changes
    seconds: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy_drop(self) -> float:
        return self.accuracy_before - self.accuracy_after

    def summary(self) -> str:
        if self.passed:
            return (
                f"verified: a fresh scan flags nothing (largest anomaly index {self.rescan.anomaly_index:.2f}) and the "
                f"strongest trigger of the backdoor's size reaches {self.asr:.2%} on "
                f"{self.triggers[0].images if self.triggers else 0} held-out images"
            )
        return "verification failed: " + "; ".join(self.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "summary": self.summary(),
            "asr": self.asr,
            "target_asr": self.target_asr,
            "triggers": [t.__dict__ for t in self.triggers],
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "accuracy_drop": self.accuracy_drop,
            "accuracy_images": self.accuracy_images,
            "accuracy_drop_interval": list(self.accuracy_drop_interval),
            "seconds": self.seconds,
            "seed": self.seed,
            "rescan": self.rescan.to_json(),
            **self.extra,
        }


def paired_drop_interval(before: torch.Tensor, after: torch.Tensor, z: float = 1.96) -> tuple[float, float]:
    """A 95% interval of the accuracy drop from per-image correctness before/after (paired)."""
    n = len(before)
    if n == 0:
        return float("nan"), float("nan")
    diff = before.float() - after.float()
    mean = float(diff.mean())
    sd = float(diff.std(unbiased=True)) if n > 1 else 0.0
    # With few or no changed images the normal interval collapses to a point: widen it by
    # the Wilson half-width of "no change", so that 0 changes in 20 images is not "exactly 0".
    floor = wilson_interval(0, n, z)[1]
    half = max(z * sd / math.sqrt(n), floor)
    return mean - half, mean + half


class ErasureVerifier:
    """Verify a candidate model after unlearning; configure, then call :meth:`verify`."""

    def __init__(
        self,
        scan_config: ScanConfig = ScanConfig(),
        config: VerificationConfig = VerificationConfig(),
        device: str | torch.device = "auto",
        progress: Progress = no_progress,
    ) -> None:
        self.scan_config = scan_config
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress

    def verify(
        self,
        *,
        original: nn.Module,
        candidate: nn.Module,
        optimisation: ImageSet,
        verify: ImageSet,
        contract: InputContract,
        flagged: dict[int, float],
    ) -> VerificationResult:
        """``flagged``: the original scan's flagged classes and their smallest trigger sizes.
        ``optimisation``: images to recover and search triggers on; ``verify``: images that
        neither the unlearning, its stopping rule nor the search saw."""
        started = time.perf_counter()
        c = self.config
        target_asr = c.max_asr
        seed = self.scan_config.recovery.seed + c.seed_offset
        fresh = replace(self.scan_config, recovery=replace(self.scan_config.recovery, seed=seed))
        rescan = (
            Scanner(fresh, self.device, self.progress).scan_parts(candidate, optimisation, verify, contract).verdict
        )
        candidate = candidate.to(self.device)
        with frozen(candidate):
            triggers = [
                self.budgeted_trigger(candidate, optimisation, verify, label, budget * c.budget_factor, seed + label)
                for label, budget in sorted(flagged.items())
            ]
        worst = max((t.asr for t in triggers), default=0.0)
        before_ok, after_ok = self._correct(original, verify), self._correct(candidate, verify)
        reasons = []
        if rescan.backdoor:
            reasons.append(f"a fresh scan still flags class(es) {rescan.flagged_classes}: {rescan.summary()}")
        for t in triggers:
            if t.asr > target_asr + 1e-12:
                reasons.append(
                    f"a trigger of the backdoor's size still sends {t.asr:.2%} of {t.images} held-out images to class "
                    f"{t.label} (target {target_asr:.2%})"
                )
        return VerificationResult(
            passed=not reasons,
            reasons=reasons,
            rescan=rescan,
            triggers=triggers,
            asr=worst,
            target_asr=target_asr,
            accuracy_before=float(before_ok.float().mean()) if len(before_ok) else float("nan"),
            accuracy_after=float(after_ok.float().mean()) if len(after_ok) else float("nan"),
            accuracy_images=len(verify),
            accuracy_drop_interval=paired_drop_interval(before_ok, after_ok),
            seconds=time.perf_counter() - started,
            seed=seed,
        )

    def _correct(self, model: nn.Module, data: ImageSet) -> torch.Tensor:
        with frozen(model.to(self.device)):
            return (predict(model, data.x, self.device) == data.y).cpu()

    def budgeted_trigger(
        self, model: nn.Module, search: ImageSet, verify: ImageSet, label: int, budget: float, seed: int
    ) -> BudgetedTrigger:
        """The strongest trigger toward ``label`` whose mask L1 is at most ``budget``: projected
        Adam on a mask in [0, 1] (projected back into the budget after every step) and a pattern,
        ``restarts`` times from random starts; the restart best on the search images is kept."""
        c = self.config
        generator = torch.Generator().manual_seed(seed)
        x_search = search.x[search.y != label]
        x_verify = verify.x[verify.y != label]
        if len(x_search) == 0:
            raise ValueError(f"no search images outside class {label}")
        shape = x_search.shape[1:]
        target = torch.full((c.batch_size,), label, dtype=torch.long, device=self.device)
        best: tuple[float, torch.Tensor, torch.Tensor] | None = None
        for restart in range(c.restarts):
            mask = torch.rand(1, 1, *shape[1:], generator=generator)
            mask = _project(mask, budget).to(self.device).requires_grad_(True)
            pattern_logits = torch.randn(1, *shape, generator=generator).to(self.device).requires_grad_(True)
            optimiser = torch.optim.Adam([mask, pattern_logits], lr=c.lr)
            for step in range(c.steps):
                idx = torch.randint(0, len(x_search), (c.batch_size,), generator=generator)
                x = x_search[idx].to(self.device)
                logits = model(stamp(x, mask, torch.sigmoid(pattern_logits)))
                loss = F.cross_entropy(logits, target[: len(x)])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                with torch.no_grad():
                    mask.copy_(_project(mask, budget))
                self.progress("verifying: trigger search", restart * c.steps + step + 1, c.restarts * c.steps)
            with torch.no_grad():
                pattern = torch.sigmoid(pattern_logits)
                search_asr = _asr(model, x_search, mask, pattern, label, self.device)
            if best is None or search_asr > best[0]:
                best = (search_asr, mask.detach().clone(), pattern.detach().clone())
        assert best is not None
        search_asr, mask, pattern = best
        verify_asr = _asr(model, x_verify, mask, pattern, label, self.device) if len(x_verify) else float("nan")
        return BudgetedTrigger(label, budget, verify_asr, len(x_verify), search_asr, float(mask.sum()))


def _project(mask: torch.Tensor, budget: float, iterations: int = 40) -> torch.Tensor:
    """The Euclidean projection of ``mask`` onto {m in [0, 1]: sum(m) <= budget}: clamp, and if
    that is over budget, subtract the threshold (found by bisection) that brings the sum down to
    it. Unlike scaling, this keeps the pixels that matter and zeroes the rest, so the search can
    find a small concentrated trigger such as a patch. Measured (builtin:mnist, budget = the
    flagged trigger's size): on unchanged BadNets models scaling found 0% where this found 42-53%;
    on a Blended model whose erasure left 5.1% real ASR it found 13.9% (scaling 2.8%); on a clean
    LeNet-5 and a well-erased small_cnn, 0% either way."""
    clamped = mask.clamp(0.0, 1.0)
    if float(clamped.sum()) <= budget:
        return clamped
    low, high = 0.0, float(mask.max())
    for _ in range(iterations):
        tau = (low + high) / 2
        if float((mask - tau).clamp(0.0, 1.0).sum()) > budget:
            low = tau
        else:
            high = tau
    return (mask - high).clamp(0.0, 1.0)


@torch.no_grad()
def _asr(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor, label: int, device: torch.device
) -> float:
    stamped = stamp(x, mask.cpu(), pattern.cpu())
    return float((predict(model, stamped, device) == label).float().mean())
