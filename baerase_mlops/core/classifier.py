"""The model under examination: checks that it is an image classifier, and freezes it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

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


def to_channels_last(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> bool:
    """Put ``model``'s 4-D weights in channels-last layout, in place, on the CPU, where that
    leaves its scores unchanged; True when it did.

    Measured on 2 CPU cores (one thread, 64 stamped images, gradient to the input: the step of
    trigger recovery and verification's search): small_cnn 25 -> 20 ms, lenet5 7.5 -> 5.1,
    conv_bn 50-80 -> 38-41, vgg_bn 80-86 -> 60, resnet_narrow 233-277 -> 192-199, a torch.export
    GraphModule of small_cnn 27 -> 16 (max-pooling with indices, which a gradient needs, is 9x
    faster in this layout). Not on CUDA, where it was not measured. A model with an op that
    cannot take this layout (``x.view(n, -1)`` after a convolution) fails the probe here, in the
    forward or the backward, and is left as it was."""
    if device.type != "cpu":
        return False
    grids = [t for t in chain(model.parameters(), model.buffers()) if t.dim() == 4]
    # Nothing to gain where the layout would change no stride (no convolution, already
    # channels-last, or only single-channel inputs, whose weights are both layouts at once).
    if all(t.stride() == t.contiguous(memory_format=torch.channels_last).stride() for t in grids):
        return False
    probe = torch.rand(4, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad(), frozen(model):
        before = model(probe)
    model.to(memory_format=torch.channels_last)
    try:
        with frozen(model):
            x = probe.clone().requires_grad_(True)
            after = model(x)
            after.sum().backward()
        faithful = isinstance(before, torch.Tensor) and torch.allclose(after.detach(), before, rtol=1e-3, atol=1e-4)
    except Exception:  # an op that cannot take this layout: the model stays as it was
        faithful = False
    if not faithful:
        model.to(memory_format=torch.contiguous_format)
    return faithful


@contextmanager
def fast_layout(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> Iterator[nn.Module]:
    """``model`` in channels-last layout for the duration where :func:`to_channels_last` finds
    it faster and faithful; its usual (contiguous) layout afterwards."""
    converted = to_channels_last(model, input_shape, device)
    try:
        yield model
    finally:
        if converted:
            model.to(memory_format=torch.contiguous_format)


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
