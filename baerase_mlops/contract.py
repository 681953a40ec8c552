"""The input contract of a model under examination (DESIGN.md, "Model input")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class InputContract:
    """What the model takes: float32 N x C x H x W images in [0, 1], and what it predicts.

    ``normalization`` is ``{"mean": [...], "std": [...], "applied_by": "model" | "baerase"}``
    when known: "model" when it lives inside the model, "baerase" when the user passed
    mean/std and the tool wrapped the model. ``source`` says where the contract was read.
    """

    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    normalization: dict[str, Any] | None = None
    source: str = ""
    layout: str = "NCHW float32"
    value_range: tuple[float, float] = (0.0, 1.0)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputContract:
        return cls(
            input_shape=tuple(data["input_shape"]),
            classes=tuple(data["classes"]),
            normalization=data.get("normalization"),
            source=data.get("source", ""),
            layout=data.get("layout", "NCHW float32"),
            value_range=tuple(data.get("value_range", (0.0, 1.0))),
        )
