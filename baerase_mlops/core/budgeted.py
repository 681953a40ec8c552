"""The strongest trigger toward a class within a mask-L1 budget: projected Adam on a mask in
[0, 1] and a pattern. Verification searches with it for a backdoor that survived erasure;
adversarial unlearning searches with it for triggers to forget that recovery never found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.core.metrics import predict
from baerase_mlops.core.triggers import stamp


@dataclass(frozen=True)
class FoundTrigger:
    mask: torch.Tensor  # 1 x 1 x H x W, on the CPU
    pattern: torch.Tensor  # 1 x C x H x W in [0, 1], on the CPU
    search_asr: float  # on the images searched


def project_to_budget(mask: torch.Tensor, budget: float, iterations: int = 40) -> torch.Tensor:
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


def search_budgeted_trigger(
    model: nn.Module,
    x: torch.Tensor,
    label: int,
    budget: float,
    *,
    steps: int,
    restarts: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    start: FoundTrigger | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FoundTrigger:
    """The strongest trigger toward ``label`` on images ``x`` (none of them of ``label``) whose
    mask L1 is at most ``budget``: ``restarts`` random starts of ``steps`` Adam steps each, the
    mask projected back into the budget after every step; the restart best on ``x`` is kept.
    ``start``: where the first restart begins instead of a random start (a search that follows
    a model as it changes). ``model`` is used as it is (the caller freezes it or not)."""
    if len(x) == 0:
        raise ValueError(f"no images outside class {label} to search a trigger on")
    shape = x.shape[1:]
    target = torch.full((batch_size,), label, dtype=torch.long, device=device)
    best: FoundTrigger | None = None
    for restart in range(restarts):
        if restart == 0 and start is not None:
            mask, pattern_logits = start.mask.clone(), torch.logit(start.pattern.clamp(1e-4, 1 - 1e-4))
        else:
            mask = torch.rand(1, 1, *shape[1:], generator=generator)
            pattern_logits = torch.randn(1, *shape, generator=generator)
        mask = project_to_budget(mask, budget).to(device).requires_grad_(True)
        pattern_logits = pattern_logits.to(device).requires_grad_(True)
        optimiser = torch.optim.Adam([mask, pattern_logits], lr=lr)
        for step in range(steps):
            idx = torch.randint(0, len(x), (batch_size,), generator=generator)
            batch = x[idx].to(device)
            loss = F.cross_entropy(model(stamp(batch, mask, torch.sigmoid(pattern_logits))), target[: len(batch)])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                mask.copy_(project_to_budget(mask, budget))
            if on_step is not None:
                on_step(restart * steps + step + 1, restarts * steps)
        found_mask, found_pattern = mask.detach().cpu(), torch.sigmoid(pattern_logits).detach().cpu()
        asr = trigger_asr(model, x, found_mask, found_pattern, label, device)
        if best is None or asr > best.search_asr:
            best = FoundTrigger(found_mask, found_pattern, asr)
    assert best is not None
    return best


@torch.no_grad()
def trigger_asr(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor, label: int, device: torch.device
) -> float:
    """The share of ``x`` that ``model`` sends to ``label`` once stamped with the trigger (the
    trigger is moved to wherever ``x`` is: the CPU in verification, the device in unlearning)."""
    stamped = stamp(x, mask.to(x.device), pattern.to(x.device))
    return float((predict(model, stamped, device) == label).float().mean())
