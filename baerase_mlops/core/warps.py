"""A third line of evidence: each class's smallest smooth warp.

A warping backdoor (WaNet, Nguyen & Tran, ICLR 2021) stamps nothing: it resamples the whole image
through one fixed, smooth displacement field of a pixel or so. No small mask reproduces it, and
the size test missed every WaNet of the zoo. But the model has learnt a shortcut from that field to
its target, so the target is reached by a far smaller warp than any other class. Per class k:

    w_k = the smallest mean displacement (pixels) of a smooth flow field that sends ``success`` of
          the clean images of other classes to k

The field is a ``grid`` x ``grid`` array of control-point offsets upsampled bicubically (a smooth
warp of any shape, not WaNet's own grid), trained by Adam on cross-entropy toward k within a budget:
after every round of steps a class that met ``success`` keeps the budget as its size and tries 0.8x
of it, one that did not gets 1.25x (a projected search, all classes batched). The outlier test is the
size test's MAD test on log sizes (one-sided, below the median; the MAD of every class), with the
detection's threshold; it abstains where the median class was never reached. Measured
(benchmarks/results/zoo-mnist-warps-2026-12-07): the median MNIST class needs 1.2-1.5 pixels, WaNet
targets 0.11-0.21.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from baerase_mlops.config import DetectionConfig, WarpConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.detection import anomaly_indices
from baerase_mlops.core.metrics import predict
from baerase_mlops.core.runtime import Progress, no_progress, resolve_device, seed_everything
from baerase_mlops.core.triggers import warp

GROW, SHRINK = 1.25, 0.8


@dataclass(frozen=True)
class WarpResult:
    sizes: list[float]  # w_k: smallest mean displacement (pixels) that met the success rate (or the last budget tried)
    reached: list[bool]  # whether any budget met it
    indices: list[float]  # anomaly index of w_k, positive below the median (only those are flagged); NaN: inconclusive
    flagged: list[int]
    median: float
    mad: float  # of log sizes, after the floor
    threshold: float
    flag_below: float  # a size under this is flagged (the threshold, as pixels)
    flows: torch.Tensor  # K x 2 x grid x grid: each class's control points at its size (grid_sample units)
    # False when the median class was never reached: the natural warp scale is then unknown (a lower
    # bound), every index is NaN and nothing is flagged (GTSRB small_cnn: 2-9 of 43 classes reached).
    conclusive: bool
    steps: int
    seconds: float


def displacement(flows: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Each field's size: the mean displacement of its control points in pixels of an H x W image
    (grid_sample's units per axis, x then y, converted: 2 = the image side)."""
    to_pixels = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=flows.device, dtype=flows.dtype).view(1, 2, 1, 1)
    return (flows * to_pixels).abs().mean(dim=(1, 2, 3))


def warp_indices(
    sizes: list[float] | torch.Tensor, consistency: float, min_mad: float
) -> tuple[list[float], float, float]:
    """(signed indices, median size, MAD of log sizes): the size test's statistic (``detection.anomaly_indices``:
    log scale, lower median) with the MAD of every class, positive below the median, since this test is one-sided
    downward. Every class gets the whole budget (no schedule makes the larger half upper bounds), and the budget
    ladder ties many sizes, which made the lower half's MAD too narrow (a clean CIFAR-10 vgg_bn scored 3.01)."""
    values = torch.as_tensor(sizes, dtype=torch.float64).clamp_min(1e-6)
    magnitude, centre, mad = anomaly_indices(values, consistency, min_mad, scale="log", spread="both", centre="lower")
    signed = torch.where(values.log() <= centre, magnitude, -magnitude)
    return signed.tolist(), math.exp(centre), mad


class WarpDetector:
    """Find every class's smallest smooth warp on clean images and flag the abnormally small ones."""

    def __init__(
        self,
        config: WarpConfig = WarpConfig(),
        device: str | torch.device = "auto",
        progress: Progress = no_progress,
        *,
        threshold: float = DetectionConfig.threshold,
        seed: int = 0,
    ) -> None:
        c = config
        if c.steps < 1 or c.rounds < 1 or c.grid < 2 or c.batch < 1 or c.min_per_class < 1:
            raise ValueError(
                f"steps ({c.steps}), rounds ({c.rounds}), batch ({c.batch}) and min_per_class ({c.min_per_class}) "
                f"must be at least 1 and grid ({c.grid}) at least 2"
            )
        if not 0 < c.success <= 1 or c.start_pixels <= 0:
            raise ValueError(f"success ({c.success}) must be in (0, 1] and start_pixels ({c.start_pixels}) positive")
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress
        self.threshold = threshold
        self.seed = seed

    def detect(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> WarpResult:
        """``x``/``y``: clean images in the model's input space and their labels."""
        started = time.perf_counter()
        c = self.config
        generator = seed_everything(self.seed)
        k_all = num_classes
        h, w = x.shape[-2:]
        per_class = max(c.min_per_class, c.batch // k_all)
        # The images of the other classes (a scan's clean set always holds several classes).
        pools = [torch.nonzero(y != k).squeeze(1) for k in range(k_all)]
        x = x.to(self.device)
        targets = torch.arange(k_all, device=self.device).repeat_interleave(per_class)
        flows = (torch.randn(k_all, 2, c.grid, c.grid, generator=generator) * 1e-3).to(self.device)
        flows.requires_grad_(True)
        optimiser = torch.optim.Adam([flows], lr=c.lr)
        budget = torch.full((k_all,), c.start_pixels, device=self.device)
        best = torch.full((k_all,), math.inf, device=self.device)
        kept = torch.zeros_like(flows)
        hits = torch.zeros(k_all, device=self.device)
        model = model.to(self.device)
        with frozen(model):
            for step in range(1, c.steps + 1):
                batch = torch.cat([p[torch.randint(len(p), (per_class,), generator=generator)] for p in pools])
                images = x[batch]
                out = model(warp(images, flows.repeat_interleave(per_class, 0)))
                loss = F.cross_entropy(out, targets, reduction="none").view(k_all, per_class).mean(1)
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimiser.step()
                with torch.no_grad():
                    hits += (out.argmax(1) == targets).float().view(k_all, per_class).mean(1)
                    # Project each field back into its budget (mean displacement in pixels).
                    size = displacement(flows, h, w)
                    flows.mul_((budget / size.clamp_min(1e-12)).clamp(max=1.0).view(k_all, 1, 1, 1))
                    if step % c.rounds == 0:
                        met = hits / c.rounds >= c.success
                        improved = met & (budget < best)
                        best = torch.where(improved, budget, best)
                        kept[improved] = flows[improved]
                        budget = torch.where(met, budget * SHRINK, budget * GROW)
                        hits.zero_()
                self.progress("warps", step, c.steps)
        reached = torch.isfinite(best).cpu()
        # A class no budget sent there: its last budget, a lower bound (never a small-side outlier).
        sizes = torch.where(reached.to(self.device), best, budget).cpu()
        indices, median, mad = warp_indices(sizes, c.consistency, c.min_mad)
        # The lower median is one of the sizes: is it a reached class's (and not a last budget's)?
        at_median = (sizes.double().log() - math.log(median)).abs() < 1e-9
        conclusive = bool((reached & at_median).any())
        if not conclusive:
            indices = [math.nan] * k_all
        flagged = [k for k, v in enumerate(indices) if v > self.threshold and reached[k]]
        return WarpResult(
            sizes=sizes.tolist(),
            reached=reached.tolist(),
            indices=indices,
            flagged=flagged,
            median=median,
            mad=mad,
            threshold=self.threshold,
            flag_below=median * math.exp(-self.threshold * c.consistency * mad) if conclusive else math.nan,
            flows=kept.detach().cpu(),
            conclusive=conclusive,
            steps=c.steps,
            seconds=time.perf_counter() - started,
        )


def search_budgeted_warp(
    model: nn.Module,
    x: torch.Tensor,
    label: int,
    budget: float,
    *,
    steps: int,
    grid: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """The strongest smooth warp toward ``label`` whose mean displacement is at most ``budget`` pixels:
    Adam on cross-entropy over batches of ``x`` (images outside ``label``), projected into the budget
    after every step. Returns its control points (1 x 2 x grid x grid, on the CPU)."""
    h, w = x.shape[-2:]
    flow = (torch.randn(1, 2, grid, grid, generator=generator) * 1e-3).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([flow], lr=lr)
    x = x.to(device)
    target = torch.full((min(batch_size, len(x)),), label, device=device)
    for _ in range(steps):
        images = x[torch.randint(len(x), (len(target),), generator=generator).to(device)]
        loss = F.cross_entropy(model(warp(images, flow)), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            size = float(displacement(flow, h, w))
            if size > budget:
                flow.mul_(budget / size)
    return flow.detach().cpu()


@torch.no_grad()
def warp_asr(model: nn.Module, x: torch.Tensor, flow: torch.Tensor, label: int, device: torch.device) -> float:
    """Share of images ``x`` (outside ``label``) that ``flow`` sends to ``label``."""
    if len(x) == 0:
        return float("nan")
    return float((predict(model, warp(x.to(device), flow.to(device)), device) == label).float().mean())
