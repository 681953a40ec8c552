"""The model under examination: checks that it is an image classifier, and freezes it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from baerase_mlops.errors import ModelError


def set_training(model: nn.Module, mode: bool) -> None:
    """``model.train(mode)``, where the model allows it: a torch.export GraphModule does not."""
    try:
        model.train(mode)
    except NotImplementedError:
        pass


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no parameter gradients for the duration; restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    set_training(model, False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        set_training(model, training)


def check_classifier(
    model: nn.Module, input_shape: tuple[int, int, int], num_classes: int, device: torch.device
) -> None:
    """Fail with a clear :class:`ModelError` unless ``model`` maps (N, *input_shape) images
    in [0, 1] to (N, num_classes) finite scores."""
    probe = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    shape = "x".join(str(v) for v in input_shape)
    try:
        with torch.no_grad(), frozen(model):
            out = model(probe)
    except Exception as exc:  # any failure here means the images do not fit the model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"the model cannot take images of shape {shape} (C x H x W): {type(exc).__name__}: {first}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ModelError(
            f"the model is not a classifier: it returned {type(out).__name__}, not a tensor of class scores"
        )
    if out.ndim != 2 or out.shape[0] != 2:
        raise ModelError(
            f"the model is not a classifier: for 2 images of {shape} it returned shape {list(out.shape)}, "
            "expected [2, classes]"
        )
    if out.shape[1] != num_classes:
        raise ModelError(f"the model scores {out.shape[1]} classes but the clean data have {num_classes}")
    if not torch.isfinite(out).all():
        raise ModelError("the model returns NaN or infinite scores on valid images")
