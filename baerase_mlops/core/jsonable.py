"""Moved to :mod:`baerase_mlops.jsonable` (data/validate needs it, and data must not import core);
kept so that existing imports keep working."""

from baerase_mlops.jsonable import json_safe

__all__ = ["json_safe"]
