"""Moved to :mod:`baerase_mlops.contract` (data/validate needs it, and data must not import core);
kept so that existing imports keep working."""

from baerase_mlops.contract import InputContract

__all__ = ["InputContract"]
