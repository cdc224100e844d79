"""A CIFAR-shaped synthetic set through the micro space: search, then train_arc on the printed command; resume."""
import json
import shlex

import numpy as np
import pytest
import tensorflow as tf

import search_arc_mnist
import train_arc
from qnas.export import lce_available, load_model
from qnas.spaces import get_space
from qnas.trainer import TrainConfig, TrainingInterrupted, train_architecture

REFERENCE = "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3"


def _split(rng, n):
    """32x32 colour images, 4 classes: which colour channel is bright in which half of the image."""
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 90, (n, 32, 32, 3))
    for i, c in enumerate(y):
        rows = slice(0, 16) if c % 2 == 0 else slice(16, 32)
        x[i, rows, :, c // 2] += 150
    return x.astype(np.uint8), y.astype(np.uint8)


@pytest.fixture(scope="module")
def cifar_like(write_npz):
    rng = np.random.default_rng(0)
    return write_npz("cifar_like", _split(rng, 200), _split(rng, 40))


def test_micro_search_then_retrain_on_cifar_shaped_data(cifar_like, tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["--space", "micro", "--data", str(cifar_like), "--epochs", "1", "--batch_size", "45",
            "--controller_steps", "1", "--controller_batch", "2", "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache"), "--finalist_steps", "3"]
    assert search_arc_mnist.main(argv) == 0
    printed = capsys.readouterr().out
    assert "after 3 minibatches alone from the shared weights: val_acc=" in printed  # cells train alone too
    result = json.loads((out / "result.json").read_text())
    assert "standardised per channel" in printed and "# normal cell" in printed and "# reduction cell" in printed
    assert result["retrain_command"] in printed and "--space micro" in result["retrain_command"]
    assert len(result["best_arch"].split()) == 40 and result["config"]["max_kib"] == 63.0  # the space's defaults
    assert len(result["input_standardisation"]["mean"]) == 3
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["num_nodes"] == 5 and config["run"]["types"] == [1]

    command = shlex.split(result["retrain_command"])[2:]  # drop "python train_arc.py"
    run = tmp_path / "retrain"
    assert train_arc.main([*command, "--max_epochs", "2", "--batch_size", "50", "--output_dir", str(run)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((run / "result.json").read_text())
    assert record["arch"] == result["best_arch"] and record["space"] == "micro"
    assert record["config"]["augment"] is True and len(record["input_standardisation"]["std"]) == 3
    arch = get_space("micro").parse(record["arch"])
    assert record["size"]["bits"] == get_space("micro").bits(arch, (32, 32, 3), 4)
    assert record["size"]["parent_arch"] == "32 0 64 0 128 0"  # the conv space's float parent
    model = load_model(run / "model.keras")
    assert model.output_shape == (None, 4)
    assert "test accuracy" in printed and (run / "tensorboard").exists()
    if lce_available() is None:
        assert record["tflite"]["bytes"] > 0 and record["tflite"]["argmax_agreement"] >= 0.9


class _InterruptAt(tf.keras.callbacks.Callback):
    """Simulates Ctrl-C in the second epoch this process trains."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.seen += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.seen == 2 and batch == 1:
            raise KeyboardInterrupt


def test_the_reference_string_retrains_and_resumes_exactly(cifar_like, tmp_path):
    def config(out):
        return TrainConfig(arch=REFERENCE, space="micro", data_path=str(cifar_like), max_epochs=3, batch_size=50,
                           seed=1, output_dir=str(out), tflite=False)

    full = train_architecture(config(tmp_path / "full"), log=lambda s: None, progress=False)
    with pytest.raises(TrainingInterrupted):
        train_architecture(config(tmp_path / "part"), log=lambda s: None, progress=False, callbacks=[_InterruptAt()])
    resumed_config = config(tmp_path / "part")
    resumed_config.resume = True
    resumed = train_architecture(resumed_config, log=lambda s: None, progress=False)
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert full.record["readable"].startswith("normal[0:avg3x3 1:identity")
    assert full.record["size"]["kib"] > 100  # the reference's convolutions read as float32 separable ones


def test_train_arc_refuses_a_malformed_micro_string_with_its_position(capsys, tmp_path):
    bad = "0 2 1 4 1 3 0 7 " + " ".join(REFERENCE.split()[8:])
    rc = train_arc.main(["-fixed_arc", bad, "--space", "micro", "--data", str(tmp_path / "none.npz")])
    assert rc == 2
    assert "position 8 (normal cell, node 2, second op): unknown operation 7" in capsys.readouterr().err
    rc = train_arc.main(["-fixed_arc", REFERENCE, "--space", "micro", "--init", "parent",
                         "--data", str(tmp_path / "none.npz")])
    assert rc == 2 and "not micro" in capsys.readouterr().err
