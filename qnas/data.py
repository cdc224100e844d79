"""Image classification data: Keras's MNIST / Fashion-MNIST / CIFAR-10, or a local ``.npz`` / IDX or ``.npy`` folder.

Images come back as float32 in [0, 1] with a channel axis, ``(N, H, W, C)``; labels as int32.
A validation split is carved from the training split with a seeded permutation: the test split is
only for final reports.
"""
from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnas.errors import DataError
from qnas.validation import DataNeeds, check_images, check_labels, check_sizes, count_classes

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
OFFLINE_HINT = (
    "pass --data PATH to a local .npz in Keras's layout (x_train, y_train, x_test, y_test) "
    "or to a folder of IDX files (train-images-idx3-ubyte[.gz], ...) or of .npy files (x_train.npy, y_train.npy, ...)"
)


@dataclass
class Dataset:
    """Train / validation / test arrays and what a model needs to know about them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test, "
                f"input {self.input_shape}, {self.num_classes} classes")


def load_dataset(dataset: str = "mnist", data_path: str | Path | None = None,
                 val_fraction: float = 0.1, seed: int = 0, num_classes: int | None = None,
                 needs: DataNeeds | None = None) -> Dataset:
    """Load a data set by Keras name, or from ``data_path`` when given, split off validation, validate it.

    Validation (``qnas.validation``) happens here, once, for every caller: numeric finite images,
    labels 0..K-1 with every class in the training split (K is ``num_classes`` or the largest label + 1),
    and the split sizes and image size ``needs`` asks for.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if data_path is not None:
        arrays = read_local(Path(data_path))
        name = Path(data_path).name
    else:
        arrays = _load_keras(dataset)
        name = dataset
    x_train, y_train = _images(arrays["x_train"], "x_train"), _labels(arrays["y_train"], "y_train")
    x_test, y_test = _images(arrays["x_test"], "x_test"), _labels(arrays["y_test"], "y_test")
    _check_pair(x_train, y_train, "train")
    _check_pair(x_test, y_test, "test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}; they must match")
    order = np.random.default_rng(seed).permutation(len(x_train))
    n_val = max(1, round(len(x_train) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    check_sizes(len(x_train), len(train), len(val), needs or DataNeeds(), x_train.shape[1:])
    num_classes = count_classes(y_train, y_train[train], y_test, num_classes, held_out=len(val))
    return Dataset(name, x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test, num_classes)


def read_local(path: Path) -> dict[str, np.ndarray]:
    """Read a Keras-layout ``.npz`` file or a folder of IDX files (raw or ``.gz``)."""
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist; {OFFLINE_HINT}")
    if path.is_dir():
        if (path / "x_train.npy").exists():
            return read_npy_folder(path)
        return {key: read_idx(_find_idx(path, stem)) for key, stem in IDX_FILES.items()}
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read {path} as an .npz archive ({err}); it may be truncated or not an .npz") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array (a .npy file), not an .npz archive; save the four arrays "
                        f"with np.savez(path, {', '.join(f'{k}=...' for k in NPZ_KEYS)})")
    with loaded as npz:
        missing = [k for k in NPZ_KEYS if k not in npz.files]
        if missing:
            raise DataError(f"{path} lacks the arrays {missing}; expected keys {list(NPZ_KEYS)} (Keras's layout)")
        arrays = {}
        for key in NPZ_KEYS:
            try:
                arrays[key] = npz[key]
            except Exception as err:  # noqa: BLE001 - a damaged member raises zlib, zipfile, struct or OS errors
                if isinstance(err, ValueError) and "pickle" in str(err):
                    raise DataError(f"cannot read {key} from {path}: it holds Python objects, which are not "
                                    f"loaded; save plain numeric arrays") from None
                raise DataError(f"cannot read {key} from {path} ({type(err).__name__}: {err}); the file may be "
                                f"truncated or damaged") from None
        return arrays


def read_npy_folder(folder: Path) -> dict[str, np.ndarray]:
    """Read ``x_train.npy, y_train.npy, x_test.npy, y_test.npy`` (images (N, H, W) or (N, H, W, C))."""
    missing = [f"{k}.npy" for k in NPZ_KEYS if not (folder / f"{k}.npy").exists()]
    if missing:
        raise DataError(f"folder {folder} has x_train.npy but lacks {missing}; expected {[f'{k}.npy' for k in NPZ_KEYS]}")
    try:
        return {k: np.load(folder / f"{k}.npy", allow_pickle=False) for k in NPZ_KEYS}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read the .npy files in {folder} ({err}); one may be truncated") from None


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx")):
        if candidate.exists():
            return candidate
    raise DataError(f"folder {folder} has no {stem} or {stem}.gz; expected the four MNIST-style IDX files "
                    f"{sorted(IDX_FILES.values())}")


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (the MNIST format): magic, dimensions, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path} ({err}); the file may be truncated or not gzip") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: only unsigned-byte IDX data (type 0x08) is supported, got 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header is incomplete")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(f"{path} is truncated or padded: header says shape {shape} "
                        f"({expected} bytes) but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _load_keras(dataset: str) -> dict[str, np.ndarray]:
    if dataset not in KERAS_DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {list(KERAS_DATASETS)}, or {OFFLINE_HINT}")
    import tensorflow as tf

    loader = getattr(tf.keras.datasets, dataset)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # noqa: BLE001 - urllib/ssl/OS errors alike mean "could not fetch"
        raise DataError(f"could not download {dataset} ({type(err).__name__}); this machine may be offline: "
                        f"{OFFLINE_HINT}") from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _images(x: np.ndarray, key: str) -> np.ndarray:
    check_images(x, key)  # before scaling: a NaN maximum would silently turn the /255 off
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8 or float(np.max(x)) > 1.0:
        return (x.astype(np.float32) / 255.0)
    return x.astype(np.float32)


def _labels(y: np.ndarray, key: str) -> np.ndarray:
    return check_labels(y, key)


def _check_pair(x: np.ndarray, y: np.ndarray, split: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{split} split has {len(x)} images but {len(y)} labels; they must match")
    if len(x) == 0:
        raise DataError(f"{split} split is empty")
