"""Colour images: loaders (.npz, .npy folder, Keras's cifar10), per-channel standardisation, augmentation."""
from unittest import mock

import numpy as np
import pytest

from qnas.augment import augment_images, epoch_images, standardize_colour
from qnas.data import DataError, load_dataset


def _colour_arrays(n_train=40, n_test=10, shape=(10, 12, 3), seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
            "y_train": rng.integers(0, 5, n_train).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
            "y_test": rng.integers(0, 5, n_test).astype(np.uint8)}


def test_npz_and_npy_folder_of_colour_images_agree(tmp_path):
    arrays = _colour_arrays()
    np.savez(tmp_path / "c.npz", **arrays)
    folder = tmp_path / "npy"
    folder.mkdir()
    for key, value in arrays.items():
        np.save(folder / f"{key}.npy", value)
    a, b = load_dataset(data_path=tmp_path / "c.npz"), load_dataset(data_path=folder)
    assert a.input_shape == (10, 12, 3) and a.num_classes == 5
    np.testing.assert_array_equal(a.x_train, b.x_train)
    (folder / "y_test.npy").unlink()
    with pytest.raises(DataError, match=r"lacks \['y_test.npy'\]"):
        load_dataset(data_path=folder)


def test_cifar10_comes_through_keras(tmp_path):
    arrays = _colour_arrays(shape=(32, 32, 3))
    fake = ((arrays["x_train"], arrays["y_train"][:, None]), (arrays["x_test"], arrays["y_test"][:, None]))
    with mock.patch("tensorflow.keras.datasets.cifar10.load_data", return_value=fake):
        data = load_dataset("cifar10")
    assert data.name == "cifar10" and data.input_shape == (32, 32, 3) and data.y_train.ndim == 1


def test_colour_images_are_standardised_per_channel_with_the_training_statistics(tmp_path):
    arrays = _colour_arrays()
    arrays["x_train"][..., 2] //= 4  # a dark blue channel
    np.savez(tmp_path / "c.npz", **arrays)
    data, stats = standardize_colour(load_dataset(data_path=tmp_path / "c.npz"))
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    assert stats["mean"][2] < stats["mean"][0] / 2 and len(stats["std"]) == 3
    test_means = data.x_test.mean(axis=(0, 1, 2))  # the test split uses the training statistics:
    assert abs(test_means[0]) < 0.5 and test_means[2] > 2  # its blue channel was not darkened
    grey = load_dataset(data_path=_grey(tmp_path))
    same, none = standardize_colour(grey)
    assert none is None and same is grey


def _grey(tmp_path):
    arrays = _colour_arrays(shape=(8, 8))
    np.savez(tmp_path / "g.npz", **arrays)
    return tmp_path / "g.npz"


def test_augmentation_crops_with_padding_and_flips():
    x = np.arange(4 * 16 * 16 * 3, dtype=np.float32).reshape(4, 16, 16, 3) + 1
    out = augment_images(x, np.random.default_rng(0))
    assert out.shape == x.shape
    for src, dst in zip(x, out):  # every output is a shifted (by at most 2 = 16 / 8) and maybe mirrored crop
        found = False
        for img in (src, src[:, ::-1]):
            padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
            found |= any(np.array_equal(padded[dy:dy + 16, dx:dx + 16], dst) for dy in range(5) for dx in range(5))
        assert found
    many = augment_images(np.repeat(x[:1], 200, axis=0), np.random.default_rng(1))
    assert 60 < sum(np.array_equal(m[:, ::-1], m) or m[8, 8, 0] != x[0, 8, 8, 0] for m in many)  # they differ
    np.testing.assert_array_equal(epoch_images(x, 3, 2, True), epoch_images(x, 3, 2, True))  # resumable
    assert not np.array_equal(epoch_images(x, 3, 2, True), epoch_images(x, 3, 3, True))
    assert epoch_images(x, 3, 2, False) is x


def test_grey_images_are_shifted_never_mirrored():
    x = np.arange(50 * 16 * 16, dtype=np.float32).reshape(50, 16, 16, 1) % 97 + 1  # no row reads the same mirrored
    out = epoch_images(x, 0, 0, True)
    shifts = set()
    for src, dst in zip(x, out):
        padded = np.pad(src, ((2, 2), (2, 2), (0, 0)))
        found = [(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(padded[dy:dy + 16, dx:dx + 16], dst)]
        assert found, "a grey image came out mirrored or not as a shifted crop"
        shifts.update(found)
    assert len(shifts) > 5  # the shifts vary
