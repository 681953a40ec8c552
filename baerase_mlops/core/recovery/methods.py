"""The two recovery methods behind one interface."""

from __future__ import annotations

import torch

from baerase_mlops.core.recovery.base import TriggerRecovery
from baerase_mlops.core.recovery.families import TriggerFamily, TriggerGenerator, TriggerTable


class BaeraseRecovery(TriggerRecovery):
    """BAERASE: a generator per class, trained for success, small masks and high entropy."""

    method = "baerase"

    def make_family(self, classes: int, input_shape: tuple[int, int, int], generator: torch.Generator) -> TriggerFamily:
        return TriggerGenerator(classes, input_shape, generator, self.config.noise_dim, self.config.hidden_dim)


class NeuralCleanseRecovery(TriggerRecovery):
    """Neural Cleanse: one mask and pattern per class, optimised directly (the cheap baseline)."""

    method = "neural_cleanse"

    def make_family(self, classes: int, input_shape: tuple[int, int, int], generator: torch.Generator) -> TriggerFamily:
        return TriggerTable(classes, input_shape, generator)


RECOVERY_METHODS: dict[str, type[TriggerRecovery]] = {m.method: m for m in (BaeraseRecovery, NeuralCleanseRecovery)}
