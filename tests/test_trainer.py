"""train_arc.py and qnas.trainer: end-to-end run, exports, TensorBoard logs, exact resume, bad input (issue 3)."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

import train_arc
from qnas.arch import parse_arch
from qnas.batchnorm_calibration import BatchNormCalibrator
from qnas.errors import UserInputError
from qnas.export import lce_available, load_model, tflite_predict
from qnas.models import build_model
from qnas.run_folder import INCOMPLETE
from qnas.spaces import get_space
from qnas.tensorboard_logging import has_hparams, read_scalars, read_text
from qnas.trainer import (
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
    default_output_dir,
    epoch_order,
    format_result,
    learning_rate_schedule,
    train_architecture,
)

ARCH = "12 1 8 2"



def _config(data_file, out, **kw):
    base = {"arch": ARCH, "space": "mlp", "data_path": str(data_file), "max_epochs": 3, "batch_size": 32,
            "seed": 3, "output_dir": str(out), "tflite": False, "patience": 5}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cli_run(data_file, tmp_path_factory):
    """One full CLI run (TFLite included when Larq Compute Engine is installed)."""
    out = tmp_path_factory.mktemp("runs") / "cli"
    argv = ["-fixed_arc", ARCH, "--data", str(data_file), "--max_epochs", "3", "--batch_size", "32",
            "--seed", "3", "--output_dir", str(out)]
    assert train_arc.main(argv) == 0
    return out


def test_cli_run_writes_a_complete_result(cli_run, capsys):
    record = json.loads((cli_run / "result.json").read_text())
    assert record["arch"] == ARCH and record["readable"] == "12:binary 8:ternary"
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert 1 <= record["metrics"]["best_epoch"] <= record["metrics"]["epochs_run"] == 3
    assert len(record["history"]) == 3
    assert record["size"]["parent_arch"] == "256 0 256 0"
    assert record["size"]["bits"] == 12 * 64 + 2 * 12 * 32 + 8 * 12 * 2 + 2 * 8 * 32 + (8 * 3 + 3) * 32
    assert 0 < record["size"]["bits_ratio"] < 0.01
    assert record["macs"]["total"] == 64 * 12 + 12 * 8 + 8 * 3
    assert record["params"] > 0 and record["seed"] == 3
    assert "tensorflow" in record["versions"] and "larq" in record["versions"]
    assert record["command"].startswith("python train_arc.py -fixed_arc '12 1 8 2'")
    assert record["reload_max_abs_diff"] < 1e-6
    assert not (cli_run / INCOMPLETE).exists()


def test_cli_prints_the_final_block(data_file, tmp_path, capsys):
    argv = ["--fixed_arc", "8 1", "--data", str(data_file), "--max_epochs", "2", "--output_dir", str(tmp_path / "o"),
            "--no_tflite"]
    assert train_arc.main(argv) == 0
    out = capsys.readouterr().out
    assert "Total params" in out  # larq's summary
    for needle in ("== result ==", "test accuracy", "KiB", "of the float parent 256 0 256 0", "MACs", "binary",
                   "parameters", "wall time", "tflite           skipped: turned off"):
        assert needle in out, needle


def test_the_final_block_shows_the_deployed_file_first_and_labels_the_theoretical_size():
    record = {
        "arch": ARCH, "readable": "12:binary 8:ternary", "space": "mlp", "data": "bands",
        "metrics": {"test_accuracy": 0.9, "best_epoch": 2, "epochs_run": 3, "best_val_accuracy": 0.91,
                    "stopped_early": False},
        "size": {"bits": 2000, "kib": 0.244, "parent_bits": 6_000_000, "bits_ratio": 0.0003, "parent_arch": "256 0 256 0"},
        "macs": {"total": 100, "binary": 50, "binary_share": 0.5}, "params": 900, "train_seconds": 1.0,
        "wall_seconds_this_process": 2.0, "tflite": {"skipped": None},
        "deploy": {"target": "lce", "theoretical": False, "path": "model.tflite", "bytes": 4321, "predicted_bytes": 4300,
                   "top1_agreement": 1.0, "agreement_images": 60,
                   "latency_ms": {"single_ms": 0.01, "batch_ms": 0.2, "batch": 32}},
    }
    lines = format_result(TrainResult(None, record, ROOT, {"model": "run/model.keras"})).splitlines()
    sizes = [line for line in lines if "bytes" in line or "KiB" in line]
    assert sizes[0].startswith("deploy ") and "model.tflite 4,321 bytes (predicted 4,300)" in sizes[0]
    assert sizes[1].startswith("theoretical size ") and "0.24 KiB (2,000 bits, larq's count)" in sizes[1]
    assert not any(line.startswith("model size") for line in lines)


def test_saved_model_reloads_in_a_fresh_process_with_the_same_predictions(cli_run, data_file):
    x = np.load(data_file)["x_test"][:16].astype(np.float32)[..., None] / 255.0
    np.save(cli_run / "x.npy", x)
    expected = load_model(cli_run / "model.keras").predict(x, verbose=0)
    script = textwrap.dedent(f"""
        import os, sys, numpy as np
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import larq  # registers larq's layers and quantizers with Keras; nothing else is needed
        import tensorflow as tf
        model = tf.keras.models.load_model({str(cli_run / "model.keras")!r})
        np.save({str(cli_run / "fresh.npy")!r}, model.predict(np.load({str(cli_run / "x.npy")!r}), verbose=0))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, capture_output=True, timeout=120)
    np.testing.assert_allclose(np.load(cli_run / "fresh.npy"), expected, rtol=1e-5, atol=1e-6)
    assert np.allclose(expected.sum(1), 1.0, atol=1e-5)


def test_tensorboard_holds_scalars_architecture_and_hparams(cli_run):
    scalars = read_scalars(cli_run / "tensorboard")
    for tag in ("loss/train", "loss/val", "accuracy/train", "accuracy/val", "learning_rate"):
        assert [step for step, _ in scalars[tag]] == [1, 2, 3], tag
    record = json.loads((cli_run / "result.json").read_text())
    assert scalars["final/test_accuracy"][-1][1] == pytest.approx(record["metrics"]["test_accuracy"])
    assert [v for _, v in scalars["accuracy/val"]] == pytest.approx([h["val_accuracy"] for h in record["history"]])
    lrs = [v for _, v in scalars["learning_rate"]]
    assert lrs[0] < lrs[1]  # warm-up
    assert any(ARCH in text and "binary" in text for text in read_text(cli_run / "tensorboard", "architecture"))
    assert has_hparams(cli_run / "tensorboard")


@pytest.mark.skipif(lce_available() is not None, reason="Larq Compute Engine is not installed")
def test_tflite_export_through_lce_agrees_with_keras(cli_run, data_file):
    record = json.loads((cli_run / "result.json").read_text())
    assert record["tflite"]["path"] and (cli_run / "model.tflite").stat().st_size > 0
    x = np.load(data_file)["x_test"][:32].astype(np.float32)[..., None] / 255.0
    lite = tflite_predict(cli_run / "model.tflite", x)
    keras = load_model(cli_run / "model.keras").predict(x, verbose=0)
    assert np.mean(lite.argmax(1) == keras.argmax(1)) >= 0.9


class _InterruptAt(tf.keras.callbacks.Callback):
    """Simulates Ctrl-C in the middle of the n-th epoch this process trains."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.seen = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.seen += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.seen == self.epoch and batch == 2:
            raise KeyboardInterrupt


def test_resume_after_an_interruption_ends_with_the_same_weights(data_file, tmp_path):
    log = []
    straight = train_architecture(_config(data_file, tmp_path / "straight"), log=log.append)
    with pytest.raises(TrainingInterrupted) as stop:
        train_architecture(_config(data_file, tmp_path / "cut"), log=log.append, callbacks=[_InterruptAt(2)])
    assert stop.value.epochs_done == 1
    assert (tmp_path / "cut" / INCOMPLETE).exists() and not (tmp_path / "cut" / "result.json").exists()
    with pytest.raises(UserInputError, match="pass --resume"):
        train_architecture(_config(data_file, tmp_path / "cut"), log=log.append)
    log.clear()
    resumed = train_architecture(_config(data_file, tmp_path / "cut", resume=True), log=log.append)
    assert any("resuming" in line and "epoch 1" in line for line in log)
    assert sum(line.startswith("epoch") for line in log) == 2  # epochs 2 and 3 only
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert resumed.record["history"] == straight.record["history"]
    assert resumed.test_accuracy == straight.test_accuracy


class _Snapshots(tf.keras.callbacks.Callback):
    """Keeps the trainable weights after every epoch; zeroes them after epoch ``spoil`` (accuracy collapses)."""

    def __init__(self, spoil: int):
        super().__init__()
        self.weights, self.spoil, self.seen = [], spoil, 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1
        if self.seen == self.spoil:
            for w in self.model.trainable_weights:
                w.assign(tf.zeros_like(w))
        self.weights.append([w.numpy() for w in self.model.trainable_weights])


def test_early_stopping_restores_the_best_epoch(data_file, tmp_path):
    snapshots = _Snapshots(spoil=3)
    result = train_architecture(_config(data_file, tmp_path / "es", max_epochs=8, patience=1),
                                log=lambda _: None, callbacks=[snapshots])
    m = result.record["metrics"]
    assert m["stopped_early"] and m["epochs_run"] == 3 and m["best_epoch"] == 2
    assert [h["val_accuracy"] for h in result.record["history"]][2] < m["best_val_accuracy"]
    final = [w.numpy() for w in result.model.trainable_weights]
    for got, best in zip(final, snapshots.weights[1]):
        np.testing.assert_array_equal(got, best)
    assert all(not np.any(w) for w in snapshots.weights[2])


def test_keep_last_trains_the_whole_schedule_and_keeps_its_end(data_file, tmp_path):
    snapshots = _Snapshots(spoil=2)  # epoch 2 wipes the weights: patience 1 would stop at 3 and restore epoch 1
    result = train_architecture(_config(data_file, tmp_path / "last", max_epochs=4, patience=1, keep="last"),
                                log=lambda _: None, callbacks=[snapshots])
    m = result.record["metrics"]
    assert not m["stopped_early"] and m["epochs_run"] == 4 and m["kept_epoch"] == 4
    assert m["kept_val_accuracy"] == result.record["history"][-1]["val_accuracy"]
    for got, last in zip([w.numpy() for w in result.model.trainable_weights], snapshots.weights[3]):
        np.testing.assert_array_equal(got, last)
    assert result.record["config"]["keep"] == "last"
    assert not (tmp_path / "last" / "best" / "weights.index").exists()  # no best-epoch copy to write or restore


def test_the_result_says_which_epoch_was_tested():
    from qnas.trainer import _epoch_note

    best = {"best_epoch": 7, "epochs_run": 17, "kept_epoch": 7, "best_val_accuracy": 0.95, "stopped_early": True}
    assert _epoch_note(best) == "best epoch 7 of 17, val 0.9500, stopped early"
    last = {**best, "epochs_run": 100, "kept_epoch": 100, "kept_val_accuracy": 0.94, "stopped_early": False}
    assert _epoch_note(last, "last") == ("last epoch 100 (--keep last), val 0.9400; the best validation epoch was 7, "
                                         "0.9500")
    assert "could not be read" in _epoch_note(last)  # --keep best, but the best epoch's weights were unreadable
    assert _epoch_note({k: v for k, v in best.items() if k != "kept_epoch"}).startswith("best epoch 7")  # old records


def test_interrupted_cli_prints_the_exact_resume_command(monkeypatch, tmp_path, capsys):
    def stop(config, command):
        raise TrainingInterrupted(tmp_path, 4)

    monkeypatch.setattr("qnas.trainer.train_architecture", stop)
    argv = ["-fixed_arc", "256 1 128 2", "--seed", "5"]
    assert train_arc.main(argv) == 130
    err = capsys.readouterr().err
    assert "python train_arc.py -fixed_arc '256 1 128 2' --seed 5 --resume" in err
    assert "4 finished epoch" in err


@pytest.mark.parametrize("extra,fragment", [
    (["-fixed_arc", "256 1 128"], "even count"),
    (["-fixed_arc", "256 1 12x 2"], "is not an integer"),
    (["-fixed_arc", "8 1", "--space", "lstm"], "unknown search space 'lstm'"),
    (["-fixed_arc", "8 1", "--data", "/nonexistent/mnist.npz"], "does not exist"),
    (["-fixed_arc", "8 1", "--max_epochs", "0"], "max_epochs must be at least 1"),
])
def test_bad_input_gets_a_message_and_exit_2_and_writes_nothing(extra, fragment, tmp_path, data_file, capsys):
    argv = ["--data", str(data_file), *extra, "--output_dir", str(tmp_path / "out")]
    assert train_arc.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_is_refused(tmp_path, data_file, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = ["-fixed_arc", "8 1", "--data", str(data_file), "--output_dir", str(blocker / "out")]
    assert train_arc.main(argv) == 2
    assert "cannot write to --output_dir" in capsys.readouterr().err


def test_finished_run_and_changed_settings_are_refused(cli_run, data_file, tmp_path):
    with pytest.raises(UserInputError, match="already holds a finished run"):
        train_architecture(_config(data_file, cli_run, resume=True))
    cut = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):  # in epoch 2: epoch 1's checkpoint makes the folder a run
        train_architecture(_config(data_file, cut), log=lambda _: None, callbacks=[_InterruptAt(2)])
    with pytest.raises(UserInputError, match="different settings.*seed"):
        train_architecture(_config(data_file, cut, resume=True, seed=4))


def test_init_parent_starts_from_the_float_parent(data_file, tmp_path):
    # a float child of the parent's widths is an exact copy; a negligible lr keeps it one for an epoch
    config = _config(data_file, tmp_path / "warm", arch="256 0 256 0", init="parent", max_epochs=1, lr=1e-12,
                     warmup_epochs=0, cache_dir=str(tmp_path / "cache"))
    result = train_architecture(config, log=lambda _: None)
    parent = result.record["init_parent"]
    assert parent["source"].startswith(str(tmp_path / "cache"))
    assert result.test_accuracy == pytest.approx(parent["test_accuracy"])


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as done:
        train_arc.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in ("-fixed_arc", "--space", "--dataset", "--data", "--max_epochs", "--batch_size", "--seed",
                 "--output_dir", "--resume", "--init", "--patience", "--lr", "--no_tflite", "--cache_dir"):
        assert flag in out, flag


def test_batchnorm_calibration_sets_moving_statistics_to_the_batch_statistics():
    space = get_space("conv")
    model = build_model(space, parse_arch("4 1 6 2", space), (8, 8, 1), 3)
    x = np.random.default_rng(1).random((64, 8, 8, 1), dtype=np.float32)
    BatchNormCalibrator(model, batch_size=32)(x)
    for name in ("h0_bn", "h1_bn"):
        bn = model.get_layer(name)
        probe = tf.keras.Model(model.inputs, bn.input)
        halves = [probe(x[i:i + 32], training=True).numpy() for i in (0, 32)]
        np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([h.mean((0, 1, 2)) for h in halves], 0),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([h.var((0, 1, 2)) for h in halves], 0),
                                   rtol=1e-3, atol=1e-5)


def test_schedule_warms_up_then_decays_to_zero():
    schedule = learning_rate_schedule(1e-2, steps_per_epoch=10, max_epochs=5, warmup_epochs=1)
    lrs = [float(schedule(step)) for step in (0, 10, 30, 50)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(1e-2)
    assert lrs[1] > lrs[2] > lrs[3] and lrs[3] == pytest.approx(0.0, abs=1e-9)


def test_epoch_order_depends_only_on_seed_and_epoch():
    assert np.array_equal(epoch_order(1, 4, 50), epoch_order(1, 4, 50))
    assert not np.array_equal(epoch_order(1, 4, 50), epoch_order(1, 5, 50))
    assert sorted(epoch_order(1, 4, 50)) == list(range(50))


def test_default_output_dir_names_space_arch_data_and_seed():
    config = TrainConfig(arch="256 1 128 2", space="mlp", data_path="/x/mnist-10k.npz", seed=7)
    assert str(default_output_dir(config, parse_arch(config.arch))) == "runs/train_arc/mlp-256_1_128_2-mnist-10k-seed7"
