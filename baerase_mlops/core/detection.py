"""Is any class's smallest trigger abnormally small? (after Neural Cleanse, Wang et al. 2019)

anomaly index_k = |s_k - centre| / (consistency * MAD), MAD = median |s - centre|, centre = median s
(by default the lower median: the class schedule's stopped classes must not move it),
where s_k is class k's trigger size on the detector's scale:

* ``log`` (the default): s_k = log(norm_k). The test then works in ratios to the median, so a
  class 7x smaller than the median stands out however widely the other classes' natural sizes
  spread (they spread 3x or more on users' models, and a raw MAD is dominated by that spread).
* ``raw``: s_k = norm_k, Neural Cleanse's test as published (with ``min_relative_mad`` 0).

The MAD is, by default (``spread="lower"``), that of the classes at or below the median only: the
test is one-sided, and the class schedule of trigger recovery stops optimising the larger half
early (core.recovery.optimise), so their sizes are upper bounds that must not widen the scale.
With the median fixed, the index then rests on the median and lower-quartile classes, which the
schedule optimises in full. ``spread="both"`` is Neural Cleanse's MAD over every class.

The MAD has a floor, ``min_relative_mad``: on the log scale in log units (a MAD of r is a
relative spread of about r), on the raw scale as a share of the median. It keeps a tight cluster
of classes from making a naturally easy class an outlier.

The test is one-sided: only classes below the centre are flagged, those whose index exceeds
the threshold. The model's anomaly index is that of its smallest norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from baerase_mlops.config import DetectionConfig

SCALES = ("log", "raw")
SPREADS = ("lower", "both")
CENTRES = ("lower", "mid")


@dataclass(frozen=True)
class Detection:
    indices: list[float]  # anomaly index of every class
    anomaly_index: float  # of the class with the smallest norm
    flagged: list[int]  # classes below the median with an index above the threshold
    median: float  # median norm (on the log scale: exp of the median log norm)
    mad: float  # the scale used (after any floor), in the detector's units
    threshold: float
    scale: str = "raw"
    flag_below: float = 0.0  # a norm under this is flagged (the threshold, as a norm)


def weighted_median(values: torch.Tensor, weights: torch.Tensor, *, lower: bool) -> float:
    """The median of ``values`` each counted ``weights`` times: the smallest value whose
    cumulative weight reaches half the total (``lower``), or its mean with the smallest one
    whose cumulative weight passes it (as ``torch.quantile`` interpolates an even count)."""
    order = torch.argsort(values)
    v, w = values[order], weights[order]
    cumulative, half = torch.cumsum(w, 0), float(w.sum()) / 2
    tolerance = 1e-9 * float(w.sum())
    low = v[int(torch.nonzero(cumulative >= half - tolerance)[0])]
    if lower:
        return float(low)
    high = v[int(torch.nonzero(cumulative > half + tolerance)[0])]
    return float((low + high) / 2)


def anomaly_indices(
    norms: list[float] | torch.Tensor,
    consistency: float = 1.4826,
    min_relative_mad: float = 0.0,
    scale: str = "raw",
    spread: str = "both",
    centre: str = "mid",
    weights: list[float] | torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, float]:
    """(indices, centre, MAD) for ``norms`` on ``scale`` (centre and MAD in that scale's units).
    The median is, for an even count, the mean of the two middle values (``centre="mid"``) or the
    lower of them (``"lower"``); the MAD is taken over
    every value (``spread="both"``) or over those at or below the median (``"lower"``). A MAD of
    0 (most sizes equal) is replaced by the smallest positive float, so that any differing size
    gets a very large, finite index.

    ``weights``: how many classes each size stands for (the class schedule's panel, see
    :class:`baerase_mlops.config.RecoveryConfig`); the median and the MAD are then those of the
    weighted sizes, and a class of weight 0 gets an index but moves neither. None, or all 1:
    every class counts once."""
    if scale not in SCALES:
        raise ValueError(f"unknown detection scale {scale!r}; choose one of {list(SCALES)}")
    if spread not in SPREADS:
        raise ValueError(f"unknown detection spread {spread!r}; choose one of {list(SPREADS)}")
    if centre not in CENTRES:
        raise ValueError(f"unknown detection centre {centre!r}; choose one of {list(CENTRES)}")
    values = torch.as_tensor(norms, dtype=torch.float64)
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != values.shape or not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights must be one finite, non-negative number per class")
        if int((weights > 0).sum()) < 3:
            raise ValueError("an anomaly index needs at least 3 classes of positive weight")
        if bool((weights == 1).all()):
            weights = None  # the unweighted test, to the last bit
    if values.numel() < 3:
        raise ValueError(f"an anomaly index needs at least 3 classes, got {values.numel()}")
    if not torch.isfinite(values).all():
        raise ValueError("trigger norms must be finite")
    if scale == "log":
        if not (values > 0).all():
            raise ValueError("trigger norms must be positive on the log scale")
        values = values.log()
    if weights is None:
        middle = float(torch.quantile(values, 0.5, interpolation="linear" if centre == "mid" else "lower"))
        deviations = (values - middle).abs() if spread == "both" else middle - values[values <= middle]
        mad = float(torch.quantile(deviations, 0.5))
    else:
        middle = weighted_median(values, weights, lower=centre == "lower")
        part = weights > 0 if spread == "both" else (weights > 0) & (values <= middle)
        mad = weighted_median((values[part] - middle).abs(), weights[part], lower=False)
    floor = min_relative_mad if scale == "log" else min_relative_mad * abs(middle)
    mad = max(mad, floor, torch.finfo(torch.float64).tiny)
    return (values - middle).abs() / (consistency * mad), middle, mad


class AnomalyDetector:
    """Flag the classes whose smallest trigger is an outlier on the small side."""

    def __init__(self, config: DetectionConfig = DetectionConfig()) -> None:
        if config.scale not in SCALES:
            raise ValueError(f"unknown detection scale {config.scale!r}; choose one of {list(SCALES)}")
        if config.spread not in SPREADS:
            raise ValueError(f"unknown detection spread {config.spread!r}; choose one of {list(SPREADS)}")
        if config.centre not in CENTRES:
            raise ValueError(f"unknown detection centre {config.centre!r}; choose one of {list(CENTRES)}")
        self.config = config

    def detect(self, norms: list[float] | torch.Tensor, weights: list[float] | None = None) -> Detection:
        """The test on ``norms``; ``weights``: how many classes each stands for (None: one each)."""
        c = self.config
        values = torch.as_tensor(norms, dtype=torch.float64)
        indices, centre, mad = anomaly_indices(
            values, c.consistency, c.min_relative_mad, c.scale, c.spread, c.centre, weights
        )
        below = (values.log() if c.scale == "log" else values) < centre
        flagged = torch.nonzero(below & (indices > c.threshold)).flatten().tolist()
        smallest = int(values.argmin())
        cut = centre - c.threshold * c.consistency * mad
        median, flag_below = (math.exp(centre), math.exp(cut)) if c.scale == "log" else (centre, max(cut, 0.0))
        return Detection(
            indices.tolist(), float(indices[smallest]), flagged, median, mad, c.threshold, c.scale, flag_below
        )
