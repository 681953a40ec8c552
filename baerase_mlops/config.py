"""Every tunable number of baerase-mlops, typed, with its default and why.

One dataclass per algorithm; each is passed to that algorithm's constructor. Defaults
are the ones the tests and benchmarks use, so what a user gets out of the box is what
was measured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabConfig:
    """How the lab trains a (possibly backdoored) classifier."""

    architecture: str = "small_cnn"  # "small_cnn" (any input size) or "resnet18" (32x32)
    width: int = 32  # small_cnn: channels of the first conv block
    epochs: int = 6  # enough for ACC and ASR >= 95% on builtin:mnist (4,000 training images)
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    poison_rate: float = 0.1  # share of the training set stamped and relabelled
    test_fraction: float = 0.2  # held out (stratified) for accuracy and ASR
    seed: int = 0
