"""The one in-memory form every data source becomes: float32 NCHW in [0, 1] plus int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from baerase_mlops.errors import DataError


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (float32, N x C x H x W, values in [0, 1]) with labels ``y`` (int64, N).

    ``classes`` names each label (index == label); ``source`` says where the images came
    from, for reports. Construct through :func:`from_arrays` to get the contract checked.
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: torch.Tensor | np.ndarray | list[int], source: str | None = None) -> ImageSet:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageSet(self.x[idx], self.y[idx], self.classes, source or self.source)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.y, minlength=self.num_classes).tolist()


def from_arrays(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    source: str,
    classes: list[str] | tuple[str, ...] | None = None,
    checked: bool = True,
) -> ImageSet:
    """Check ``x``/``y`` against the data contract and convert them to an :class:`ImageSet`.

    ``x`` is either uint8 N x H x W x C (channels last, values 0-255; N x H x W for
    grayscale) or floating point N x C x H x W with values in [0, 1]. ``y`` holds integer
    labels in [0, number of classes). Raises :class:`DataError` naming the problem.

    With ``checked=False`` only the structure is checked (shapes, dtypes, layout):
    pixel values and the label range are left as stored, so that the clean-set
    validation can report them by expectation name (:mod:`.validate`). Such a set must
    pass :func:`check_values` before anything computes on it.
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if x.shape[0] == 0 or x.size == 0:
        raise DataError(f"{source}: the image set is empty")
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be a 1-D array, got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{source}: {x.shape[0]} images but {y.shape[0]} labels")
    labels = _as_labels(y, source)
    images = _as_nchw(x, source)
    num_classes = len(classes) if classes is not None else max(int(labels.max()) + 1, 0)
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(num_classes))
    data = ImageSet(torch.from_numpy(images), torch.from_numpy(labels), names, source)
    return check_values(data) if checked else data


def check_values(data: ImageSet) -> ImageSet:
    """``data`` itself once its pixels are finite and in [0, 1] and its labels name its
    classes; otherwise a :class:`DataError` naming the first problem."""
    x = data.x.numpy()
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite.reshape(len(x), -1))[0])
        raise DataError(f"{data.source}: {len(bad)} image(s) contain NaN or infinity (first at index {int(bad[0])})")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        hint = " (looks like 0-255 pixel values: divide by 255)" if looks_like_0_255(lo, hi) else ""
        raise DataError(f"{data.source}: float pixel values must lie in [0, 1], found [{lo:g}, {hi:g}]{hint}")
    labels = data.y.numpy()
    if labels.min() < 0 or labels.max() >= data.num_classes:
        bad = sorted({int(v) for v in labels if v < 0 or v >= data.num_classes})[:10]
        raise DataError(f"{data.source}: labels out of range [0, {data.num_classes}): {bad}")
    return data


def looks_like_0_255(lo: float, hi: float) -> bool:
    """Pixel values that overflow [0, 1] but fit 0-255: 8-bit images stored as floats."""
    return 1.0 < hi <= 255.0 and lo >= 0.0


def _as_labels(y: np.ndarray, source: str) -> np.ndarray:
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise DataError(f"{source}: labels contain NaN or infinity")
        if not np.all(y == np.round(y)):
            raise DataError(f"{source}: labels must be integers, got non-integral floats")
    elif y.dtype.kind not in "iu":
        raise DataError(f"{source}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _as_nchw(x: np.ndarray, source: str) -> np.ndarray:
    """float32 N x C x H x W: uint8 channels-last scaled to [0, 1], floats kept as they are."""
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise DataError(f"{source}: uint8 images must be N x H x W x C, got shape {x.shape}")
        if x.shape[-1] not in (1, 3):
            raise DataError(f"{source}: uint8 images must be channels-last with 1 or 3 channels, got shape {x.shape}")
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    if x.dtype.kind != "f":
        raise DataError(f"{source}: images must be uint8 (0-255) or float (0-1), got dtype {x.dtype}")
    if x.ndim != 4:
        raise DataError(f"{source}: float images must be N x C x H x W, got shape {x.shape}")
    if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        raise DataError(f"{source}: float images look channels-last (shape {x.shape}); the contract is N x C x H x W")
    return np.ascontiguousarray(x, dtype=np.float32)
