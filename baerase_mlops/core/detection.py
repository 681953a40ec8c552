"""Is any class's smallest trigger abnormally small? (Neural Cleanse, Wang et al. 2019)

anomaly index_k = |norm_k - median| / (consistency * MAD), MAD = median |norm - median|.
A class is flagged when its norm is below the median and its index exceeds the
threshold; the model's anomaly index is that of its smallest norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baerase_mlops.config import DetectionConfig


@dataclass(frozen=True)
class Detection:
    indices: list[float]  # anomaly index of every class
    anomaly_index: float  # of the class with the smallest norm
    flagged: list[int]  # classes below the median with an index above the threshold
    median: float
    mad: float  # the scale used (after any floor)
    threshold: float


def anomaly_indices(
    norms: list[float] | torch.Tensor, consistency: float = 1.4826, min_relative_mad: float = 0.0
) -> tuple[torch.Tensor, float, float]:
    """(indices, median, MAD) for ``norms``. The median is the mean of the two middle
    values for an even count. A MAD of 0 (most norms equal) is replaced by the smallest
    positive float, so that any differing norm gets a very large, finite index."""
    values = torch.as_tensor(norms, dtype=torch.float64)
    if values.numel() < 3:
        raise ValueError(f"an anomaly index needs at least 3 classes, got {values.numel()}")
    if not torch.isfinite(values).all():
        raise ValueError("trigger norms must be finite")
    median = float(torch.quantile(values, 0.5))
    mad = float(torch.quantile((values - median).abs(), 0.5))
    mad = max(mad, min_relative_mad * abs(median), torch.finfo(torch.float64).tiny)
    return (values - median).abs() / (consistency * mad), median, mad


class AnomalyDetector:
    """Flag the classes whose smallest trigger is an outlier on the small side."""

    def __init__(self, config: DetectionConfig = DetectionConfig()) -> None:
        self.config = config

    def detect(self, norms: list[float] | torch.Tensor) -> Detection:
        c = self.config
        values = torch.as_tensor(norms, dtype=torch.float64)
        indices, median, mad = anomaly_indices(values, c.consistency, c.min_relative_mad)
        below = values < median
        flagged = torch.nonzero(below & (indices > c.threshold)).flatten().tolist()
        smallest = int(values.argmin())
        return Detection(indices.tolist(), float(indices[smallest]), flagged, median, mad, c.threshold)
