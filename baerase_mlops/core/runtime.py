"""Device choice and seeding: the two things every core algorithm needs from its caller."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

# Progress callback: (what, done, total). The core reports, the CLI draws bars.
Progress = Callable[[str, int, int], None]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) picks CUDA when present, else the CPU; anything else is forced."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(
                f"device {str(device)!r} was asked for but this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1})"
            )
    return resolved


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def no_progress(what: str, done: int, total: int) -> None:
    """The default progress callback: silence."""
