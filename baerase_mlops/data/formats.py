"""The file formats of a clean set, parsed from bytes wherever they were read (a local file, an
S3 object): ``.npz`` archives and image folders. Shared by :mod:`.sources` and :mod:`.s3`,
which both read them, so that neither imports the other's internals.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from baerase_mlops.data.imageset import ImageSet, from_arrays
from baerase_mlops.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp"}


def read_npz_bytes(data: bytes, *, source: str, split: str | None = None) -> ImageSet:
    """Parse an ``.npz`` file's bytes (values unchecked, as :func:`.sources.read_images`); pickled
    object arrays are refused."""
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: not a readable .npz file ({exc})") from exc
    with archive:
        x_key, y_key = ("x", "y") if split is None else (f"x_{split}", f"y_{split}")
        missing = [k for k in (x_key, y_key) if k not in archive.files]
        if missing:
            raise DataError(f"{source}: missing array(s) {missing}; the file holds {sorted(archive.files)}")
        try:
            x, y = archive[x_key], archive[y_key]
            classes = [str(c) for c in archive["classes"]] if "classes" in archive.files else None
        except ValueError as exc:  # object arrays need pickle
            raise DataError(f"{source}: arrays must be numeric, not pickled objects ({exc})") from exc
    return from_arrays(x, y, source=source, classes=classes, checked=False)


def read_class_files(
    files: list[tuple[str, str]], classes: list[str], fetch: Callable[[str], bytes], source: str, workers: int = 1
) -> ImageSet:
    """Decode ``files`` ((class name, file name) pairs, read with ``fetch``) into one set;
    a file's label is its class's position in ``classes``. ``workers`` > 1 fetches in
    parallel threads (worth it for object stores, where each file is a round trip)."""
    if not files:
        raise DataError(f"{source}: the class folders hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    names = [name for _, name in files]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        images = list(pool.map(lambda name: decode_image(fetch(name), name), names))
    labels = [classes.index(c) for c, _ in files]
    return stack_images(images, labels, classes, source, names)


def stack_images(
    images: list[np.ndarray], labels: list[int], classes: list[str], source: str, names: list[str]
) -> ImageSet:
    """Stack decoded H x W x C uint8 images of one size into an :class:`ImageSet`."""
    colour = any(img.shape[-1] == 3 for img in images)
    if colour:
        images = [np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img for img in images]
    size = images[0].shape[:2]
    for img, name in zip(images, names):
        if img.shape[:2] != size:
            raise DataError(f"{source}: images differ in size: {names[0]} is {size}, {name} is {img.shape[:2]}")
    labels_ = np.asarray(labels, dtype=np.int64)
    return from_arrays(np.stack(images), labels_, source=source, classes=classes, checked=False)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """An encoded image file's pixels: uint8 H x W x 1 (grayscale) or H x W x 3 (colour)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            grey = img.mode in ("1", "L", "I", "I;16", "F")
            arr = np.asarray(img.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{name}: not a readable image ({exc})") from exc
    return arr[..., None] if arr.ndim == 2 else arr
