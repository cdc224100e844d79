"""Data loading: npz and IDX agree, splits are seeded, bad files get clear messages."""
import gzip
import struct
from unittest import mock

import numpy as np
import pytest
from conftest import SHARED_MNIST

from qnas.data import DataError, load_dataset, read_idx


def _toy_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (50, 6, 5), dtype=np.uint8),
        "y_train": rng.integers(0, 3, 50).astype(np.uint8),
        "x_test": rng.integers(0, 256, (10, 6, 5), dtype=np.uint8),
        "y_test": rng.integers(0, 3, 10).astype(np.uint8),
    }


def _write_idx(path, array, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_npz_and_idx_loaders_agree(tmp_path, gz):
    arrays = _toy_arrays()
    np.savez(tmp_path / "toy.npz", **arrays)
    idx = tmp_path / "idx"
    idx.mkdir()
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for key, name in names.items():
        _write_idx(idx / name, arrays[key], gz)
    a = load_dataset(data_path=tmp_path / "toy.npz", seed=3)
    b = load_dataset(data_path=idx, seed=3)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.x_train.dtype == np.float32 and a.x_train.max() <= 1.0 and a.x_train.shape[1:] == (6, 5, 1)
    assert a.num_classes == 3


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    np.savez(tmp_path / "toy.npz", **_toy_arrays())
    a = load_dataset(data_path=tmp_path / "toy.npz", seed=1, val_fraction=0.2)
    b = load_dataset(data_path=tmp_path / "toy.npz", seed=1, val_fraction=0.2)
    c = load_dataset(data_path=tmp_path / "toy.npz", seed=2, val_fraction=0.2)
    assert len(a.x_val) == 10 and len(a.x_train) == 40
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_truncated_npz_is_refused_clearly(tmp_path):
    np.savez(tmp_path / "toy.npz", **_toy_arrays())
    data = (tmp_path / "toy.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_dataset(data_path=tmp_path / "cut.npz")


def test_truncated_idx_is_refused_clearly(tmp_path):
    path = tmp_path / "t"
    _write_idx(path, np.zeros((4, 3, 3), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_wrong_shapes_and_keys_are_refused(tmp_path):
    arrays = _toy_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match="50 images but 49 labels"):
        load_dataset(data_path=tmp_path / "bad.npz")
    np.savez(tmp_path / "keys.npz", images=np.zeros((2, 2)))
    with pytest.raises(DataError, match="lacks the arrays"):
        load_dataset(data_path=tmp_path / "keys.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(data_path=tmp_path / "nope.npz")


def test_offline_without_local_file_says_how_to_pass_data():
    with mock.patch("tensorflow.keras.datasets.mnist.load_data", side_effect=OSError("no network")), \
            pytest.raises(DataError, match="--data PATH"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("cifar1000")


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason=f"{SHARED_MNIST} absent (only in the project's shared folder)")
def test_shared_mnist_subset_loads():
    data = load_dataset(data_path=SHARED_MNIST, seed=0)
    assert data.x_train.shape == (7200, 28, 28, 1) and data.x_val.shape == (800, 28, 28, 1)
    assert data.x_test.shape == (2000, 28, 28, 1) and data.num_classes == 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
