"""The JSON spec saved beside a lab model's state_dict (``model.pt`` + ``model.json``).

It records what a later step needs to rebuild and judge the model without unpickling
anything: the architecture and input contract (shape, classes, normalisation), the data
split, and the attack with its trigger parameters (so the *real* ASR can be reported in
tests and benchmarks; the defence itself never reads the attack).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from baerase_mlops.errors import ModelError
from baerase_mlops.lab.models import ARCHITECTURES, ImageClassifier, build_classifier

SPEC_FORMAT = "baerase-model-spec/1"


@dataclass(frozen=True)
class ModelSpec:
    architecture: str
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    width: int = 32
    dataset: str | None = None
    test_fraction: float | None = None
    seed: int | None = None
    attack: dict[str, Any] | None = None  # Attack.params() plus "target" and "poison_rate"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def build(self) -> ImageClassifier:
        """An untrained classifier of this architecture."""
        return build_classifier(self.architecture, self.input_shape, self.num_classes, self.mean, self.std, self.width)

    def to_json(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "spec") -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelError(f"{source}: a model spec must be a JSON object")
        missing = [k for k in ("architecture", "input_shape", "classes", "mean", "std") if k not in data]
        if missing:
            raise ModelError(f"{source}: the model spec lacks {missing}")
        if data["architecture"] not in ARCHITECTURES:
            raise ModelError(f"{source}: unknown architecture {data['architecture']!r}; known: {list(ARCHITECTURES)}")
        shape = tuple(int(v) for v in data["input_shape"])
        if len(shape) != 3 or min(shape) < 1:
            raise ModelError(f"{source}: input_shape must be [C, H, W], got {data['input_shape']}")
        if len(data["mean"]) != shape[0] or len(data["std"]) != shape[0]:
            raise ModelError(f"{source}: mean and std need one value per channel ({shape[0]})")
        if len(data["classes"]) < 2:
            raise ModelError(f"{source}: a classifier needs at least two classes")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.update(
            input_shape=shape,
            classes=tuple(str(c) for c in data["classes"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
        )
        return cls(**kwargs)


def spec_path_for(model_path: str | Path) -> Path:
    """``model.pt`` -> ``model.json``."""
    return Path(model_path).with_suffix(".json")


def save_lab_model(model: ImageClassifier, spec: ModelSpec, model_path: str | Path) -> tuple[Path, Path]:
    """Write the state_dict to ``model_path`` and the spec beside it; return both paths."""
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, model_path)
    spec_file = spec_path_for(model_path)
    spec_file.write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    return model_path, spec_file


def load_spec(spec_path: str | Path) -> ModelSpec:
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise ModelError(f"model spec not found: {spec_path}")
    try:
        data = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{spec_path}: not valid JSON ({exc})") from exc
    return ModelSpec.from_json(data, str(spec_path))


def load_state_dict(model_path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict with torch's weights-only loader: tensors only, no code runs."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"model file not found: {model_path}")
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelError(
            f"{model_path}: not a state_dict that loads without unpickling code ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{model_path}: expected a state_dict (a mapping of names to tensors)")
    return state


def load_lab_model(model_path: str | Path, spec_path: str | Path | None = None) -> tuple[ImageClassifier, ModelSpec]:
    """Rebuild a lab model from its state_dict and spec (``model.json`` beside it by default)."""
    spec = load_spec(spec_path or spec_path_for(model_path))
    state = load_state_dict(model_path)
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"{model_path}: the weights do not fit the spec's {spec.architecture} "
            f"for input {list(spec.input_shape)} and {spec.num_classes} classes ({str(exc).splitlines()[0]})"
        ) from exc
    model.eval()
    return model, spec
