"""A trigger-agnostic second line of evidence: each class's maximum achievable logit margin.

After MM-BD (Wang et al., IEEE S&P 2024; the idea, not their code): a backdoor is a shortcut
to its target class, so an input can be found that the model scores for the target with an
abnormally large margin over every other class, whatever the trigger looks like. No clean
image and no mask are needed: per class k,

    r_k = max over x in the input range of  z_k(x) - max_{j != k} z_j(x)     (z: the logits)

estimated by gradient ascent (Adam on inputs kept in range through a sigmoid) from several
random starts, all classes batched. Measured on MNIST (README, "Benchmarks"): blended and
random-position patch targets reach 4-9x the median margin and are flagged; a fixed patch's
~2x is left to the size test, and WaNet was not caught. The
outlier test is the size statistic's MAD test turned around: a class is flagged when its r_k
lies above the median by more than ``threshold`` consistency-scaled MADs, in log margins (the
scan passes the detection's threshold: one number for both tests).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from baerase_mlops.config import DetectionConfig, MarginConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.detection import anomaly_indices
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything


@dataclass(frozen=True)
class MarginResult:
    margins: list[float]  # r_k: the largest logit margin found for class k
    indices: list[float]  # anomaly index of r_k, positive above the median (only those are flagged)
    flagged: list[int]
    median: float
    mad: float  # of log margins, after the floor
    threshold: float
    flag_above: float  # a margin over this is flagged (the threshold, as a margin)
    steps: int
    restarts: int
    seconds: float


def margin_indices(
    margins: list[float] | torch.Tensor, consistency: float, min_mad: float
) -> tuple[list[float], float, float]:
    """(signed indices, median margin, MAD of log margins): index_k = (log r_k - median) / (consistency * MAD),
    the size test's log-scale MAD (``detection.anomaly_indices``) with a sign, since this test is one-sided upward.

    Margins under 1e-3 (a class no input could be made to win) count as 1e-3: they are no outlier on the high side.
    """
    values = torch.as_tensor(margins, dtype=torch.float64).clamp_min(1e-3)
    magnitude, centre, mad = anomaly_indices(values, consistency, min_mad, scale="log")
    signed = torch.where(values.log() >= centre, magnitude, -magnitude)
    return signed.tolist(), math.exp(centre), mad


class MaxMarginDetector:
    """Estimate every class's maximum logit margin and flag the abnormally large ones."""

    def __init__(
        self,
        config: MarginConfig = MarginConfig(),
        device: str | torch.device = "auto",
        progress: Progress = no_progress,
        *,
        threshold: float = DetectionConfig.threshold,
        seed: int = 0,
    ) -> None:
        if config.steps < 1 or config.restarts < 1:
            raise ValueError(f"steps ({config.steps}) and restarts ({config.restarts}) must be at least 1")
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress
        self.threshold = threshold
        self.seed = seed

    def detect(
        self,
        model: nn.Module,
        input_shape: tuple[int, int, int],
        num_classes: int,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> MarginResult:
        started = time.perf_counter()
        c = self.config
        generator = seed_everything(self.seed)
        low, high = value_range
        r = c.restarts
        targets = torch.arange(num_classes, device=self.device).repeat_interleave(r)
        # Inputs through a sigmoid into the input range: every step stays a valid image.
        u = torch.randn(num_classes * r, *input_shape, generator=generator).mul_(2.0).to(self.device)
        u.requires_grad_(True)
        optimiser = torch.optim.Adam([u], lr=c.lr)
        best = torch.full((num_classes * r,), -math.inf, device=self.device)
        model = model.to(self.device)
        with frozen(model):
            for step in range(1, c.steps + 1):
                logits = model(low + (high - low) * torch.sigmoid(u))
                margin = _margin(logits, targets)
                best = torch.maximum(best, margin.detach())
                optimiser.zero_grad(set_to_none=True)
                # Capped: once a class clearly wins, push no further (keeps the estimate finite
                # where logits grow without bound; the cap is far above any clean class's margin).
                (-margin.clamp_max(c.margin_cap)).sum().backward()
                optimiser.step()
                self.progress("maximum margins", step, c.steps)
        margins = best.view(num_classes, r).max(dim=1).values.cpu()
        indices, median, mad = margin_indices(margins, c.consistency, c.min_mad)
        flagged = [k for k, v in enumerate(indices) if v > self.threshold]
        return MarginResult(
            margins=margins.tolist(),
            indices=indices,
            flagged=flagged,
            median=median,
            mad=mad,
            threshold=self.threshold,
            flag_above=median * math.exp(self.threshold * c.consistency * mad),
            steps=c.steps,
            restarts=r,
            seconds=time.perf_counter() - started,
        )


def _margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """z_target - max over the other classes, per row."""
    own = logits.gather(1, targets[:, None]).squeeze(1)
    others = logits.scatter(1, targets[:, None], -math.inf).max(dim=1).values
    return own - others
