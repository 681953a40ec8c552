"""Trigger recovery: BAERASE's generative model and the Neural Cleanse baseline."""

from baerase_mlops.core.recovery.base import RecoveryResult, TriggerRecovery
from baerase_mlops.core.recovery.methods import RECOVERY_METHODS, BaeraseRecovery, NeuralCleanseRecovery

__all__ = ["RECOVERY_METHODS", "BaeraseRecovery", "NeuralCleanseRecovery", "RecoveryResult", "TriggerRecovery"]
