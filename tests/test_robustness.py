"""Issue 16: bad input never gets through, and a broken checkpoint never strands a run.

Each case of the issue is run through the CLIs' entry functions in-process, on tiny synthetic data:
it either gets a clear message and exit status 2, writing nothing, or gives a correct result.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

import search_arc_mnist
import train_arc
from ecomp_tf.__main__ import main as ecomp_main
from ecomp_tf.config import Configs
from enas.search import Search, SearchConfig
from qnas.checkpoints import checkpoint_prefixes
from qnas.data import load_dataset
from qnas.errors import DataError, UserInputError
from qnas.parent import get_parent
from qnas.seeding import seed_everything
from qnas.spaces import get_space
from qnas.trainer import TrainConfig, TrainingInterrupted, reload_snippet, train_architecture

CLASSES = 3


def make_split(rng: np.random.Generator, n: int, classes: int = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images whose class is which pair of rows is bright; labels cycle so every class is present."""
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    for c in range(classes):
        x[y == c, 2 * c:2 * c + 2, :] += 150
    return x, y.astype(np.uint8)


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = make_split(rng, 200), make_split(rng, 40)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


@pytest.fixture(scope="module")
def good(arrays, tmp_path_factory) -> Path:
    return save_npz(tmp_path_factory.mktemp("data") / "good.npz", **arrays)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One float-parent cache for the module: the built-in parent is trained once per data set."""
    return tmp_path_factory.mktemp("cache")


def with_changes(arrays: dict[str, np.ndarray], **changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


def train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-fixed_arc", "8 1", "--data", str(data), "--output_dir", str(out), "--no_tflite", "--max_epochs", "1",
            "--batch_size", "32", *extra]


def search_argv(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--space", "mlp", "--data", str(data), "--output_dir", str(out), "--cache_dir", str(cache),
            "--widths", "4,8", "--types", "0,1", "--epochs", "1", "--batch_size", "50", "--controller_steps", "1",
            "--controller_batch", "2", *extra]


def ecomp_argv(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    tiny = {"BATCH_SIZE": 20, "PERPLEXITY": 5, "FINAL_CANDIDATES": 2, "FINAL_FINETUNE_EPOCHS": 0.1, "CALIB_SIZE": 20}
    return ["1", "exp", "--data", str(data), "--output_dir", str(out), "--cache_dir", str(cache), "--pop_size", "4",
            "--generations", "2", *[a for k, v in tiny.items() for a in ("--set", f"{k}={v}")], *extra]


CLIS = {
    "train_arc": lambda data, out, cache, *extra: train_arc.main(train_argv(data, out, *extra)),
    "search": lambda data, out, cache, *extra: search_arc_mnist.main(search_argv(data, out, cache, *extra)),
    "ecomp": lambda data, out, cache, *extra: ecomp_main(ecomp_argv(data, out, cache, *extra)),
}


def refused(capsys, rc: int, *fragments: str) -> str:
    """Assert a clean refusal (exit 2, one 'error:' line, no traceback) holding every fragment; the message."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# --- 1. data is validated once, at load, for every CLI ------------------------------------------------------

def _stray_label(a):
    y = a["y_train"].copy()
    y[5] = 11
    return {"y_train": y}


def _nan_pixel(a):
    x = a["x_train"].astype(np.float32) / 255
    x[3, 2, 2] = np.nan
    return {"x_train": x}


def _negative_label(a):
    y = a["y_train"].astype(np.int64)
    y[7] = -1
    return {"y_train": y}


DATA_CASES = {
    # a single label 11 in 3-class data used to make a 12-class model
    "stray_label": (_stray_label, ["no training image", "Label 11 occurs 1 time(s), first at y_train[5]"]),
    # one NaN pixel used to train to chance and turn the /255 scaling off
    "nan_pixel": (_nan_pixel, ["x_train", "NaN or infinite", "x_train[3] at (2, 2)"]),
    # a negative label used to be reported as a dtype problem
    "negative_label": (_negative_label, ["y_train[7] is -1", "class labels start at 0"]),
    "fractional_label": (lambda a: {"y_train": a["y_train"] + 0.5}, ["y_train[0] is", "expected integer class labels"]),
    "text_images": (lambda a: {"x_test": a["x_test"].astype(str)}, ["x_test holds text"]),
    "one_hot_labels": (lambda a: {"y_test": np.eye(CLASSES)[a["y_test"]]}, ["one-hot labels"]),
    "huge_pixels": (lambda a: {"x_train": a["x_train"] * 1e300}, ["too large for float32"]),
}


@pytest.mark.parametrize("cli", list(CLIS))
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_refused_by_every_cli_before_anything_is_written(cli, case, arrays, tmp_path, capsys):
    change, fragments = DATA_CASES[case]
    data = save_npz(tmp_path / f"{case}.npz", **with_changes(arrays, **change(arrays)))
    out, cache = tmp_path / "out", tmp_path / "cache"
    refused(capsys, CLIS[cli](data, out, cache), *fragments)
    assert not out.exists() and not cache.exists()  # no run folder, no float parent trained on bad data


def test_num_classes_flag_sets_k_and_refuses_labels_beyond_it(arrays, tmp_path, capsys):
    y = arrays["y_train"].copy()
    y[5] = 11
    data = save_npz(tmp_path / "d.npz", **with_changes(arrays, y_train=y))
    refused(capsys, train_arc.main(train_argv(data, tmp_path / "o", "--num_classes", "10")),
            "y_train[5] is 11, but --num_classes is 10; expected labels 0..9")
    good = save_npz(tmp_path / "g.npz", **arrays)
    refused(capsys, train_arc.main(train_argv(good, tmp_path / "o", "--num_classes", "4")),
            "class 3 has no training image (--num_classes 4)")
    assert load_dataset(data_path=good, num_classes=3).num_classes == 3
    with pytest.raises(UserInputError, match="--num_classes must be at least 2"):
        load_dataset(data_path=good, num_classes=1)


def test_class_held_out_entirely_for_validation_is_refused(arrays, tmp_path):
    x, y = arrays["x_train"][:30], arrays["y_train"][:30].copy()
    y[:] = np.arange(30) % 2
    y[int(np.random.default_rng(0).permutation(30)[0])] = 2  # the only image of class 2 is the first one held out
    path = save_npz(tmp_path / "d.npz", **with_changes(arrays, x_train=x, y_train=y))
    with pytest.raises(DataError, match="no image left in the training split.*went to the validation split"):
        load_dataset(data_path=path, seed=0)


def test_train_arc_on_five_images_or_a_batch_larger_than_the_split_is_refused(arrays, good, tmp_path, capsys):
    five = save_npz(tmp_path / "five.npz", **with_changes(arrays, x_train=arrays["x_train"][:5],
                                                         y_train=arrays["y_train"][:5]))
    argv = ["-fixed_arc", "8 1", "--data", str(five), "--output_dir", str(tmp_path / "o"), "--no_tflite"]
    refused(capsys, train_arc.main(argv), "--batch_size 100 is larger than the training split (4 images",
            "use --batch_size 4 or less")
    refused(capsys, train_arc.main(train_argv(good, tmp_path / "o", "--batch_size", "181")),
            "--batch_size 181 is larger than the training split (180 images")
    assert not (tmp_path / "o").exists()


def test_validation_split_too_small_for_the_similarity_probe_is_refused(arrays, tmp_path, cache, capsys):
    small = save_npz(tmp_path / "small.npz", **with_changes(arrays, x_train=arrays["x_train"][:60],
                                                           y_train=arrays["y_train"][:60]))
    refused(capsys, search_arc_mnist.main(search_argv(small, tmp_path / "o", tmp_path / "c")),
            "the validation split has 6 images", "the similarity probe needs at least 10")
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_images_too_small_for_the_conv_pooling_are_refused(arrays, tmp_path, capsys):
    tiny = save_npz(tmp_path / "t.npz", **with_changes(arrays, x_train=arrays["x_train"][:, :3, :3],
                                                      x_test=arrays["x_test"][:, :3, :3]))
    refused(capsys, train_arc.main(train_argv(tiny, tmp_path / "o", "--space", "conv", "-fixed_arc", "8 1 8 1 8 1")),
            "3x3 pixels are too small", "needs at least 4x4")


def test_a_parent_file_that_is_not_a_model_lists_the_accepted_formats(good, tmp_path, capsys):
    for name in ("parent.keras", "parent.h5", "weights.bin"):
        (tmp_path / name).write_text("not a model")
        argv = train_argv(good, tmp_path / "o", "--space", "mlp", "--parent", str(tmp_path / name))
        refused(capsys, train_arc.main(argv), "cannot load --parent", "a .keras or .h5 file", "a SavedModel folder",
                "an .npz of Dense weights")
    assert not (tmp_path / "o").exists()


def test_a_parent_without_hidden_layers_is_refused_suggesting_only_flags_the_command_has(good, tmp_path, capsys):
    model = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(CLASSES, activation="softmax")])
    model.save(tmp_path / "flat.keras")
    argv = train_argv(good, tmp_path / "o", "--parent", str(tmp_path / "flat.keras"))
    err = refused(capsys, train_arc.main(argv), "the parent has no hidden Dense or Conv2D layer")
    assert "--emb_layers" not in err  # train_arc.py has no such flag
    argv = search_argv(good, tmp_path / "s", tmp_path / "c", "--parent", str(tmp_path / "flat.keras"))
    refused(capsys, search_arc_mnist.main(argv), "the parent has no hidden Dense or Conv2D layer", "--emb_layers")
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


# --- 2. checks before writes; a failed start is no run ------------------------------------------------------

def _fake_failed_start(folder: Path) -> None:
    """What a start that failed after claiming the folder used to leave: settings files, no checkpoint."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"epochs": 99, "run": {"space": "conv"}}))
    (folder / "run_config.json").write_text(json.dumps({"identity": {"arch": "4 0", "seed": 9}}))
    (folder / "INCOMPLETE").write_text("")
    (folder / "evaluations.jsonl").write_text(json.dumps({"epoch": 1, "arch": "512 0 512 0", "reward": 9.0}) + "\n")


@pytest.mark.parametrize("resume", [False, True])
def test_a_failed_start_does_not_block_the_corrected_train_arc_command(good, tmp_path, resume, capsys):
    out = tmp_path / "o"
    _fake_failed_start(out)
    assert train_arc.main(train_argv(good, out, *(["--resume"] if resume else []))) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["metrics"]["epochs_run"] == 1 and not (out / "INCOMPLETE").exists()


@pytest.mark.parametrize("resume", [False, True])
def test_a_failed_start_does_not_block_the_corrected_search(good, tmp_path, cache, resume, capsys):
    out = tmp_path / "o"
    _fake_failed_start(out)
    assert search_arc_mnist.main(search_argv(good, out, cache, *(["--resume"] if resume else []))) == 0
    rows = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert rows and all(row["arch"] != "512 0 512 0" for row in rows)  # the stale row is gone
    assert json.loads((out / "config.json").read_text())["epochs"] == 1


def test_messages_refusing_a_folder_say_how_to_start_over_and_unreadable_checkpoints_are_named(good, tmp_path, cache,
                                                                                              capsys):
    out = tmp_path / "t"
    with pytest.raises(TrainingInterrupted):
        train_architecture(TrainConfig(arch="8 1", data_path=str(good), max_epochs=3, batch_size=32,
                                       output_dir=str(out), tflite=False),
                           log=lambda _: None, callbacks=[_InterruptAt(2)])
    refused(capsys, train_arc.main(train_argv(good, out)), "pass --resume", "to start over")
    refused(capsys, train_arc.main(train_argv(good, out, "--resume", "--seed", "4")), "different settings",
            "to start over")
    s_out = tmp_path / "s"
    assert search_arc_mnist.main(search_argv(good, s_out, cache)) == 0
    assert "minibatches alone from the shared weights: val_acc=" in capsys.readouterr().out
    assert search_arc_mnist.main(search_argv(good, s_out, cache, "--resume", "--finalist_steps", "0")) == 0
    assert "shared-weight: val_acc=" in capsys.readouterr().out  # a finished search ranks its finalists again
    refused(capsys, search_arc_mnist.main(search_argv(good, s_out, cache)), "delete that folder", "to start over")
    refused(capsys, search_arc_mnist.main(search_argv(good, s_out, cache, "--resume", "--seed", "3")),
            "different settings", "to start over")
    # a search whose every checkpoint is unreadable: stopped with the files named (searches keep no best/)
    (s_out / "result.json").unlink()
    for prefix in checkpoint_prefixes(s_out / "checkpoints"):
        truncate(prefix)
    refused(capsys, search_arc_mnist.main(search_argv(good, s_out, cache, "--resume")), "no checkpoint in",
            "ckpt-1", "can be read", "to start over")


def test_unwritable_output_and_checkpoint_folders_are_refused_before_training(good, tmp_path, capsys):
    out = tmp_path / "t"
    out.mkdir()
    (out / "checkpoints").write_text("a file where the checkpoint folder goes")
    refused(capsys, train_arc.main(train_argv(good, out)), "cannot write to --output_dir", "is a file")
    assert not (out / "run_config.json").exists()
    s_out = tmp_path / "s"
    s_out.mkdir()
    (s_out / "checkpoints").write_text("")
    refused(capsys, search_arc_mnist.main(search_argv(good, s_out, tmp_path / "c")), "cannot write to --output_dir")
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused(capsys, ecomp_main(ecomp_argv(good, blocker, tmp_path / "c")), "cannot write to --output_dir")
    refused(capsys, search_arc_mnist.main(search_argv(good, tmp_path / "s2", blocker / "cache")),
            "cannot write the float parent to --cache_dir")
    assert not (tmp_path / "c").exists() and not (tmp_path / "s2").exists()


# --- 3. checkpoints fail safe -------------------------------------------------------------------------------

class _InterruptAt(tf.keras.callbacks.Callback):
    """Ctrl-C in the middle of the n-th epoch this process trains."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch, self.seen = epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.seen += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.seen == self.epoch and batch == 1:
            raise KeyboardInterrupt


def truncate(prefix: str) -> None:
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])


def test_train_arc_resumes_from_the_previous_checkpoint_when_the_newest_is_truncated(good, tmp_path):
    def config(out, **kw):
        return TrainConfig(arch="12 1 8 2", data_path=str(good), max_epochs=3, batch_size=32, seed=3,
                           output_dir=str(out), tflite=False, **kw)

    straight = train_architecture(config(tmp_path / "straight"), log=lambda _: None)
    with pytest.raises(TrainingInterrupted):
        train_architecture(config(tmp_path / "cut"), log=lambda _: None, callbacks=[_InterruptAt(3)])
    newest, previous = checkpoint_prefixes(tmp_path / "cut" / "checkpoints")[:2]
    truncate(newest)
    log: list[str] = []
    resumed = train_architecture(config(tmp_path / "cut", resume=True), log=log.append)
    assert any(line.startswith("warning: the newest checkpoint could not be read") and newest in line
               and previous in line for line in log)
    assert sum(line.startswith("epoch") for line in log) == 2  # epochs 2 and 3 again
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert resumed.record["history"] == straight.record["history"]


def test_train_arc_stops_with_a_message_naming_the_files_when_no_checkpoint_reads(good, tmp_path, capsys):
    out = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):
        train_architecture(TrainConfig(arch="8 1", data_path=str(good), max_epochs=3, batch_size=32, seed=0,
                                       output_dir=str(out), tflite=False),
                           log=lambda _: None, callbacks=[_InterruptAt(3)])
    prefixes = checkpoint_prefixes(out / "checkpoints")
    for prefix in prefixes:
        Path(f"{prefix}.index").write_bytes(b"\0" * 10)
    argv = ["-fixed_arc", "8 1", "--data", str(good), "--output_dir", str(out), "--no_tflite", "--max_epochs", "3",
            "--batch_size", "32", "--resume"]
    refused(capsys, train_arc.main(argv), "no checkpoint in", *prefixes, "to start over")


def test_search_resumes_from_the_previous_checkpoint_when_the_newest_is_truncated(good, tmp_path):
    def search(out, log=lambda s: None):
        seed_everything(0)
        space = get_space("mlp").with_options(widths=(4, 8), types=(0, 1))
        data = load_dataset(data_path=good, seed=0, val_fraction=0.2)
        parent = get_parent(get_space("mlp"), data, seed=0, cache_dir=tmp_path / "pc", epochs=1, log=lambda s: None)
        config = SearchConfig(epochs=2, batch_size=50, controller_steps=1, controller_batch=3, eval_batch=20,
                              calib_size=40, probe_size=20, num_shown=2, final_candidates=2, seed=0)
        return Search(space, data, parent, config, out, log=log)

    straight = search(tmp_path / "s")
    straight_result = straight.run()
    newest, previous = checkpoint_prefixes(tmp_path / "s" / "checkpoints")[:2]
    truncate(newest)
    log: list[str] = []
    resumed = search(tmp_path / "s", log=log.append)
    assert resumed.restore() and int(resumed.epoch.numpy()) == 1
    assert any(line.startswith("warning") and newest in line and previous in line for line in log)
    rows = [json.loads(line) for line in (tmp_path / "s" / "evaluations.jsonl").read_text().splitlines()]
    assert max(row["epoch"] for row in rows) == 1  # epoch 2's evaluations are dropped with its checkpoint
    assert resumed.run().best == straight_result.best
    for a, b in zip(straight.supernet.trainable_variables, resumed.supernet.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


# --- 4. EComp follows the parent's depth; --set parses natural forms ----------------------------------------

@pytest.fixture(scope="module")
def one_hidden_parent(good, tmp_path_factory) -> Path:
    data = load_dataset(data_path=good, seed=0)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(16, activation="relu"),
                                 tf.keras.layers.Dense(CLASSES, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train.reshape(-1, 64), data.y_train, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("parent") / "one_hidden.keras"
    model.save(path)
    return path


def test_ecomp_compresses_a_one_hidden_layer_parent(good, one_hidden_parent, tmp_path, capsys):
    out = tmp_path / "out"
    rc = ecomp_main(ecomp_argv(good, out, tmp_path / "c", "--parent", str(one_hidden_parent), "--mode", "faithful"))
    assert rc == 0, capsys.readouterr().err
    run = json.loads((out / "exp" / "run_0.json").read_text())
    assert run["configs"]["RECOMBINATION_LAYERS"] == ["h0_linear", "logits"]
    assert run["configs"]["EMB_LAYERS"] == [0] and len(run["best"]["arch"].split()) == 2


def test_configs_follow_the_parent_depth_unless_set():
    cfg = Configs.faithful()
    assert cfg.for_depth(2) == cfg
    assert cfg.for_depth(1).RECOMBINATION_LAYERS == ("h0_linear", "logits") and cfg.for_depth(1).EMB_LAYERS == (0,)
    deep = cfg.for_depth(3)
    assert deep.RECOMBINATION_LAYERS == ("h0_linear", "h1_linear", "h2_linear", "logits")
    assert deep.EMB_LAYERS == (0, 1)  # they exist: the user's (or the reference's) choice stays
    chosen = cfg.with_changes(RECOMBINATION_LAYERS="logits")
    assert chosen.for_depth(3).RECOMBINATION_LAYERS == ("logits",)


@pytest.mark.parametrize("item,field,expected", [
    ("TYPES=0,4,5", "TYPES", (0, 4, 5)),
    ("TYPES=[0, 4]", "TYPES", (0, 4)),
    ("TYPES=0 4 5", "TYPES", (0, 4, 5)),
    ("EMB_LAYERS=0", "EMB_LAYERS", (0,)),
    ("RECOMBINATION_LAYERS=h0_linear,logits", "RECOMBINATION_LAYERS", ("h0_linear", "logits")),
    ("RECOMBINATION_LAYERS=(h0_linear logits)", "RECOMBINATION_LAYERS", ("h0_linear", "logits")),
    ("PRUNE_RATES=0.2,0.5", "PRUNE_RATES", (0.2, 0.5)),
    ("LOSS_WEIGHTS=[1, 2, 1]", "LOSS_WEIGHTS", (1.0, 2.0, 1.0)),
    ("POP_SIZE=8", "POP_SIZE", 8),
])
def test_set_values_parse_from_a_natural_form(item, field, expected):
    from ecomp_tf.__main__ import build_parser, configs_from_args

    args = build_parser().parse_args(["1", "exp", "--set", item])
    assert getattr(configs_from_args(args), field) == expected


@pytest.mark.parametrize("argv,fragment", [
    (["--set", "PRUNE_RATES=0.5"], "PRUNE_RATES takes 2 values"),
    (["--set", "POP_SIZE=many"], "POP_SIZE takes a whole number, got 'many'"),
    (["--set", "EPOCHS=inf"], "EPOCHS takes a finite number"),
    (["--set", "TYPES=0,9"], "TYPES must be non-empty layer type codes"),
    (["--set", "SELECTION=3"], "SELECTION takes a word"),
    (["--set", "RECOMBINATION_LAYERS=h7_linear"], "RECOMBINATION_LAYERS: unknown recombination layer 'h7_linear'"),
    (["--pop_size", "1"], "POP_SIZE must be at least 2, got 1 (set with --pop_size or --set POP_SIZE=...)"),
    (["--epochs", "nan"], "set with --epochs or --set EPOCHS=..."),
    (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
])
def test_bad_ecomp_settings_are_refused_with_the_setting_and_its_flag(argv, fragment, good, tmp_path, capsys):
    refused(capsys, ecomp_main(ecomp_argv(good, tmp_path / "o", tmp_path / "c", *argv)), fragment)


# --- 5. --max_epochs 1; messages name flags that exist ------------------------------------------------------

@pytest.fixture(scope="module")
def one_epoch_run(good, tmp_path_factory) -> tuple[Path, str]:
    """train_arc.py --max_epochs 1 (refused before: 'warmup_epochs must be between 0 and max_epochs - 1')."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("one") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert train_arc.main(["-fixed_arc", "8 1", "--data", str(good), "--output_dir", str(out), "--no_tflite",
                               "--max_epochs", "1", "--batch_size", "32", "--lr", "0.01"]) == 0
    return out, printed.getvalue()


def test_max_epochs_1_trains_one_epoch_without_warm_up(one_epoch_run):
    out, _ = one_epoch_run
    record = json.loads((out / "result.json").read_text())
    assert record["metrics"]["epochs_run"] == 1 and len(record["history"]) == 1
    assert record["history"][0]["lr"] == pytest.approx(0.01)  # the peak rate at once: no warm-up
    assert record["metrics"]["test_accuracy"] > 0.6  # three easy classes: a real result, not chance


@pytest.mark.parametrize("argv,fragment", [
    (["--max_epochs", "0"], "--max_epochs must be at least 1"),
    (["--patience", "0"], "--patience must be at least 1"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--seed", "4294967296"], "--seed must be between 0 and 4294967295"),
    (["--num_classes", "1"], "--num_classes must be at least 2"),
])
def test_train_arc_messages_name_its_flags(argv, fragment, good, tmp_path, capsys):
    refused(capsys, train_arc.main(train_argv(good, tmp_path / "o", *argv)), fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["--lr", "inf"], "--lr must be a positive number"),
    (["--max_kib", "nan"], "--max_kib must be positive"),
    (["--reward_weights", "1,nan,1"], "non-negative, finite"),
    (["--seed", "-3"], "--seed must be between 0"),
])
def test_search_refuses_non_finite_and_out_of_range_numbers(argv, fragment, good, tmp_path, capsys):
    refused(capsys, search_arc_mnist.main(search_argv(good, tmp_path / "o", tmp_path / "c", *argv)), fragment)


# --- 6. the printed reload line works in a fresh Python -----------------------------------------------------

def test_printed_reload_line_works_when_pasted_into_a_fresh_python(one_epoch_run, good):
    out, printed = one_epoch_run
    line = next(line for line in printed.splitlines() if line.startswith("reload with"))
    snippet = line[len("reload with"):].strip()
    assert snippet == reload_snippet(str(out / "model.keras"))
    x = np.load(good)["x_test"][:8].astype(np.float32)[..., None] / 255.0
    np.save(out / "x.npy", x)
    script = snippet + "\n" + textwrap.dedent(f"""
        import numpy as np
        np.save({str(out / "fresh.npy")!r}, model.predict(np.load({str(out / "x.npy")!r}), verbose=0))
    """)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}  # a fresh shell has not set it
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    from qnas.export import load_model

    np.testing.assert_allclose(np.load(out / "fresh.npy"), load_model(out / "model.keras").predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_readme_reload_hint_selects_legacy_keras_before_larq():
    readme = (ROOT / "README.md").read_text()
    hint = re.search(r"import os; os\.environ\[\"TF_USE_LEGACY_KERAS\"\] = \"1\"; import larq, tensorflow as tf; "
                     r"model = tf\.keras\.models\.load_model\('([^']+)'\)", readme)
    assert hint, "README must show the reload line train_arc.py prints"
    assert hint.group(0) == reload_snippet(hint.group(1))
    assert "When something goes wrong" in readme
