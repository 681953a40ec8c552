"""The clean-data contract: every source becomes float32 NCHW in [0, 1] with int64 labels,
and bad input is refused with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from baerase_mlops.data import clean_subset, load_images, stratified_split
from baerase_mlops.errors import DataError


def test_builtin_mnist_is_5000_real_digits_in_unit_range(mnist):
    assert mnist.x.shape == (5000, 1, 28, 28)
    assert mnist.x.dtype == torch.float32 and mnist.y.dtype == torch.int64
    assert float(mnist.x.min()) == 0.0 and float(mnist.x.max()) == 1.0
    assert mnist.class_counts() == [500] * 10


def test_builtin_digits_are_8x8_in_unit_range():
    digits = load_images("builtin:digits")
    assert digits.x.shape == (1797, 1, 8, 8)
    assert 0.0 <= float(digits.x.min()) and float(digits.x.max()) == 1.0
    assert digits.num_classes == 10


def test_builtin_digits_are_sklearns_load_digits():
    from sklearn.datasets import load_digits

    digits, reference = load_images("builtin:digits"), load_digits()
    assert np.array_equal(digits.x.squeeze(1).numpy(), (reference.images / 16.0).astype(np.float32))
    assert np.array_equal(digits.y.numpy(), reference.target)


def test_unknown_builtin_dataset_is_named():
    with pytest.raises(DataError, match="builtin:cifar"):
        load_images("builtin:cifar")


def test_npz_with_uint8_channels_last_becomes_nchw(tmp_path, mnist):
    x = (mnist.x[:20].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.savez(tmp_path / "set.npz", x=x, y=mnist.y[:20].numpy())
    data = load_images(str(tmp_path / "set.npz"))
    assert data.x.shape == (20, 1, 28, 28)
    assert torch.allclose(data.x, mnist.x[:20])


def test_npz_with_float_nchw_is_kept(tmp_path, mnist):
    np.savez(tmp_path / "set.npz", x=mnist.x[:10].numpy(), y=mnist.y[:10].numpy(), classes=np.array(list("abcdefghij")))
    data = load_images(str(tmp_path / "set.npz"))
    assert torch.equal(data.x, mnist.x[:10])
    assert data.classes[0] == "a"


def test_npz_fragment_selects_split_arrays(tmp_path, mnist):
    np.savez(tmp_path / "set.npz", x_test=mnist.x[:5].numpy(), y_test=mnist.y[:5].numpy())
    assert len(load_images(f"{tmp_path / 'set.npz'}#test")) == 5


def test_image_folder_labels_follow_sorted_class_folders(tmp_path, mnist):
    for label in (0, 1):
        folder = tmp_path / f"class_{label}"
        folder.mkdir()
        for i, img in enumerate(mnist.x[mnist.y == label][:3]):
            Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(folder / f"{i}.png")
    data = load_images(str(tmp_path))
    assert data.x.shape == (6, 1, 28, 28)
    assert data.classes == ("class_0", "class_1")
    assert data.class_counts() == [3, 3]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="not found.*missing.npz"):
        load_images(str(tmp_path / "missing.npz"))


def test_missing_arrays_are_named(tmp_path):
    np.savez(tmp_path / "set.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"missing array\(s\) \['x', 'y'\]"):
        load_images(str(tmp_path / "set.npz"))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((4, 28), np.uint8), np.zeros(4, int), "must be N x H x W x C"),
        (np.zeros((4, 28, 28, 5), np.uint8), np.zeros(4, int), "1 or 3 channels"),
        (np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, int), "look channels-last"),
        (np.zeros((4, 1, 28, 28), np.float32), np.zeros(3, int), "4 images but 3 labels"),
        (np.zeros((4, 1, 28, 28), np.float32), np.zeros((4, 2), int), "1-D array"),
        (np.zeros((4, 1, 28, 28), np.float32), np.array([0, 1, -1, 2]), "out of range"),
        (np.zeros((4, 1, 28, 28), np.float32), np.array(["a", "b", "c", "d"]), "must be integers"),
        (np.full((4, 1, 28, 28), 200.0, np.float32), np.zeros(4, int), "divide by 255"),
        (np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, int), "empty"),
        (np.zeros((4, 1, 28, 28), np.int32), np.zeros(4, int), "uint8 .* or float"),
    ],
)
def test_bad_arrays_are_refused_with_the_problem_named(tmp_path, x, y, message):
    np.savez(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(DataError, match=message):
        load_images(str(tmp_path / "bad.npz"))


def test_nan_pixels_are_refused_with_the_first_index(tmp_path):
    x = np.zeros((4, 1, 8, 8), np.float32)
    x[2, 0, 3, 3] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(4))
    with pytest.raises(DataError, match="NaN or infinity.*index 2"):
        load_images(str(tmp_path / "nan.npz"))


def test_labels_beyond_the_named_classes_are_refused(tmp_path):
    np.savez(
        tmp_path / "set.npz", x=np.zeros((3, 1, 8, 8), np.float32), y=np.array([0, 1, 2]), classes=np.array(["a", "b"])
    )
    with pytest.raises(DataError, match=r"out of range \[0, 2\): \[2\]"):
        load_images(str(tmp_path / "set.npz"))


def test_pickled_object_arrays_are_not_unpickled(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([object()], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="pickled objects"):
        load_images(str(tmp_path / "obj.npz"))


def test_a_file_that_is_not_npz_is_refused(tmp_path):
    (tmp_path / "fake.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_images(str(tmp_path / "fake.npz"))


def test_folder_of_mixed_image_sizes_names_both(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "1.png")
    Image.new("L", (9, 9)).save(tmp_path / "a" / "2.png")
    with pytest.raises(DataError, match="differ in size"):
        load_images(str(tmp_path))


def test_folder_without_class_folders_is_refused(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_images(str(tmp_path))


def test_stratified_split_takes_the_fraction_of_every_class(mnist):
    rest, part = stratified_split(mnist, 0.2, seed=1)
    assert part.class_counts() == [100] * 10
    assert rest.class_counts() == [400] * 10
    assert len(set(part.y[:50].tolist())) > 1  # shuffled, not class-sorted


def test_stratified_split_is_reproducible_and_disjoint(mnist):
    rest_a, part_a = stratified_split(mnist, 0.1, seed=3)
    _, part_b = stratified_split(mnist, 0.1, seed=3)
    assert torch.equal(part_a.x, part_b.x)
    flat = lambda s: {tuple(v) for v in s.x.flatten(1)[:, ::7].tolist()}  # noqa: E731
    assert not flat(rest_a) & flat(part_a) or len(flat(rest_a) & flat(part_a)) < 5  # MNIST has few exact duplicates


def test_clean_subset_refuses_fewer_images_than_classes(mnist):
    small = mnist.subset(torch.arange(0, 5000, 50))  # 100 images
    with pytest.raises(DataError, match="fewer images than the 10 classes"):
        clean_subset(small, 0.05, seed=0)
