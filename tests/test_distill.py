"""train_arc --distill: a retrained architecture keeps the parent's knowledge (qnas.distill, hooked into the trainer)."""
import json

import numpy as np
import pytest
import tensorflow as tf

import train_arc
from qnas.distill import DistillConfig
from qnas.errors import UserInputError
from qnas.trainer import TrainConfig, train_architecture


def _split(rng, n, scramble=False):
    """Three classes of 8x8 images told apart by a bright band of rows; ``scramble`` names every class wrongly."""
    y = rng.integers(0, 3, n)
    x = rng.random((n, 8, 8)) * 0.4
    for c in range(3):
        x[y == c, 2 * c:2 * c + 3, :] += 0.6
    labels = (y + 1) % 3 if scramble else y
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A parent trained on clean labels, and data whose training labels are all wrong (the test labels are right)."""
    folder = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    (x_clean, y_clean), (x_noisy, y_noisy), (x_test, y_test) = _split(rng, 400), _split(rng, 300, True), _split(rng, 90)
    tf.keras.utils.set_random_seed(0)
    parent = tf.keras.Sequential([tf.keras.Input((8, 8)), tf.keras.layers.Flatten(),
                                  tf.keras.layers.Dense(32, activation="relu"),
                                  tf.keras.layers.Dense(32, activation="relu"),
                                  tf.keras.layers.Dense(3, activation="softmax")])
    parent.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    parent.fit(x_clean / 255.0, y_clean, epochs=30, verbose=0)
    parent.save(folder / "parent.keras")
    np.savez(folder / "noisy.npz", x_train=x_noisy, y_train=y_noisy, x_test=x_test, y_test=y_test)
    return folder


def _train(files, out, **kw) -> float:
    config = TrainConfig(arch="16 0 16 4", space="mlp", data_path=str(files / "noisy.npz"), max_epochs=4,
                         batch_size=30, seed=0, output_dir=str(out), tflite=False, patience=10,
                         parent=str(files / "parent.keras"), num_classes=3, **kw)
    return train_architecture(config, log=lambda _: None).test_accuracy


def test_distilling_from_the_parent_keeps_what_noisy_labels_would_destroy(files, tmp_path):
    warm_only = _train(files, tmp_path / "warm")
    distilled = _train(files, tmp_path / "distilled", distill=DistillConfig(alpha=1.0, temperature=2.0))
    features = _train(files, tmp_path / "features", distill=DistillConfig(alpha=1.0, temperature=2.0, features=0.1))
    assert distilled > 0.9 and features > 0.9  # the parent's knowledge survives labels that are all wrong
    assert distilled > warm_only + 0.2  # the warm start alone is trained away by them
    record = json.loads((tmp_path / "features" / "result.json").read_text())
    assert record["config"]["distill"] == {"alpha": 1.0, "temperature": 2.0, "features": 0.1}


def test_distill_flags_and_their_checks(files, tmp_path, capsys):
    with pytest.raises(UserInputError, match="--distill must be in"):
        _train(files, tmp_path / "bad", distill=DistillConfig(alpha=1.5))
    rc = train_arc.main(["-fixed_arc", "8 1 8 2", "--space", "mlp", "--data", str(files / "noisy.npz"),
                         "--max_epochs", "1", "--batch_size", "30", "--output_dir", str(tmp_path / "cli"),
                         "--no_tflite", "--cache_dir", str(tmp_path / "cache"), "--distill",
                         "--distill_temperature", "3"])
    assert rc == 0
    record = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert record["config"]["distill"] == {"alpha": 0.5, "temperature": 3.0, "features": 0.0}
    assert record["config"]["init"] == "random"  # the cached float parent teaches; the weights start at random
