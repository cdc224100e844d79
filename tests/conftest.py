"""Shared test setup: legacy Keras before TensorFlow, quiet logs, repo root importable."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist-10k.npz"


def _bands(rng, n):
    """Three classes of 8x8 images, told apart by which band of rows is bright."""
    y = rng.integers(0, 3, n)
    x = rng.random((n, 8, 8)) * 0.4
    for c in range(3):
        x[y == c, 2 * c:2 * c + 3, :] += 0.6
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="session")
def write_npz(tmp_path_factory):
    """Writes ``(x_train, y_train)`` and ``(x_test, y_test)`` to a fresh ``NAME.npz``; returns its path."""
    def write(name: str, train: tuple, test: tuple) -> Path:
        path = tmp_path_factory.mktemp("data") / f"{name}.npz"
        np.savez(path, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1])
        return path
    return write


@pytest.fixture(scope="module")
def data_file(write_npz):
    """A tiny .npz of three easy classes (240 training, 60 test images) for end-to-end runs."""
    rng = np.random.default_rng(0)
    return write_npz("synthetic", _bands(rng, 240), _bands(rng, 60))
