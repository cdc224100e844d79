"""One training run's folder: claiming it safely, and the per-epoch checkpoint a resumed run continues from.

``prepare_output_dir`` refuses a folder that cannot be written, that holds a finished run, or that
holds an unfinished one unless resuming with the same settings; it marks a new run ``INCOMPLETE``
until result.json exists. A folder without a checkpoint or a result holds no run: a failed start is
simply started again. ``TrainState`` checkpoints model, optimizer (slots and step counter, hence
the learning-rate schedule's position), epoch, early-stopping state, history and TF's global RNG;
an unreadable newest checkpoint is skipped for the one before it.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow as tf

from qnas.checkpoints import checkpoint_prefixes, folder_write_problem, restore_newest_readable, unreadable_reason
from qnas.errors import UserInputError
from qnas.records import run_record, write_json_atomic

INCOMPLETE = "INCOMPLETE"


class TrainState:
    """The checkpointed state: model, optimizer and the loop's own variables."""

    def __init__(self, model: tf.keras.Model, optimizer: tf.keras.optimizers.Optimizer, folder: Path,
                 log: Callable[[str], None] = print):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_val = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped = tf.Variable(False, trainable=False)
        self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.history = tf.Variable("[]", trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self.epoch, best_val=self.best_val, best_epoch=self.best_epoch,
            wait=self.wait, stopped=self.stopped, elapsed=self.elapsed, history=self.history,
            rng=tf.random.get_global_generator(),
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(folder / "checkpoints"), max_to_keep=2)
        self.best = tf.train.Checkpoint(model=model)
        self.best_prefix = str(folder / "best" / "weights")
        self.restored: str | None = None  # the checkpoint ``restore_latest`` loaded
        self.log = log  # where warnings about unreadable checkpoints go

    def restore_latest(self) -> bool:
        """Load the newest readable per-epoch checkpoint (warning when the newest is not); False when there is none."""
        self.restored = restore_newest_readable(self.checkpoint, self.manager.directory, self.log)
        return self.restored is not None

    def save(self) -> None:
        self.manager.save(checkpoint_number=int(self.epoch.numpy()))

    def save_best(self) -> None:
        """Keep the current weights as the best epoch's (written before the epoch's checkpoint)."""
        self.best.write(self.best_prefix)

    def restore_best(self) -> bool:
        """Load the best epoch's weights into the model; False when none were kept."""
        if int(self.best_epoch.numpy()) == 0 or not tf.io.gfile.exists(self.best_prefix + ".index"):
            return False
        reason = unreadable_reason(self.best_prefix)
        if reason is not None:
            self.log(f"warning: the best epoch's weights ({self.best_prefix}) cannot be read ({reason}); "
                      f"keeping the last epoch's weights")
            return False
        self.best.read(self.best_prefix).assert_existing_objects_matched()
        return True

    def get_history(self) -> list[dict[str, float]]:
        return json.loads(self.history.numpy().decode())


def prepare_output_dir(folder: Path, identity: dict[str, Any], resume: bool, log: Callable[[str], None],
                       provenance: dict[str, Any] | None = None) -> bool:
    """Check the output folder and claim it; True when there is a checkpoint to resume from.

    Refuses an unwritable folder, a finished run, an unfinished run without ``resume`` and a
    resume whose settings differ, each with a message saying what to do.
    """
    resuming = check_output_dir(folder, identity, resume)
    claim_output_dir(folder, identity, resuming, resume, log, provenance)
    return resuming


def check_output_dir(folder: Path, identity: dict[str, Any], resume: bool) -> bool:
    """The refusals of ``prepare_output_dir``, writing nothing; True when there is a checkpoint to resume from.

    Only a checkpoint or a result makes a run: a start that failed before its first checkpoint
    (run_config.json and INCOMPLETE written, say) leaves nothing worth keeping, so the corrected
    command just starts again.
    """
    for path in (folder, folder / "checkpoints", folder / "best", folder / "tensorboard"):
        problem = folder_write_problem(path)
        if problem:
            raise UserInputError(f"cannot write to output folder {str(folder)!r} ({problem}); "
                                 f"choose a writable --output_dir")
    if (folder / "result.json").exists():
        raise UserInputError(f"{folder} already holds a finished run (result.json); "
                             f"choose another --output_dir or delete that folder to train again")
    has_run = bool(checkpoint_prefixes(folder / "checkpoints"))
    if has_run and not resume:
        raise UserInputError(f"{folder} holds an unfinished run; pass --resume to continue it, "
                             f"or choose another --output_dir (or delete that folder) to start over")
    config_file = folder / "run_config.json"
    if has_run and config_file.exists():
        saved = _saved_identity(config_file)
        diff = [f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in identity.items() if saved.get(k) != v]
        if diff:
            raise UserInputError(f"cannot resume the run in {folder} with different settings ({'; '.join(diff)}); "
                                 f"use the original settings, or choose another --output_dir (or delete that "
                                 f"folder) to start over")
    return has_run


def _saved_identity(config_file: Path) -> dict[str, Any]:
    try:
        saved = json.loads(config_file.read_text()).get("identity", {})
    except (OSError, ValueError, AttributeError):
        raise UserInputError(f"{config_file} is damaged, so the settings of that run are unknown; delete the "
                             f"folder (or choose another --output_dir) to start over") from None
    return saved if isinstance(saved, dict) else {}


def claim_output_dir(folder: Path, identity: dict[str, Any], resuming: bool, resume: bool,
                     log: Callable[[str], None], provenance: dict[str, Any] | None = None) -> None:
    """Create the folder and prove it writable; a new run also clears a failed start's leftovers and marks itself."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserInputError(f"cannot write to output folder {str(folder)!r} ({err.strerror or err}); "
                             f"choose a writable --output_dir") from None
    if resuming:
        return
    if resume:
        log(f"nothing to resume in {folder}; starting a new run")
    config_file = folder / "run_config.json"
    if config_file.exists() or (folder / INCOMPLETE).exists():  # ours, from a start that never checkpointed
        for stale in (folder / "tensorboard").glob("events.out.tfevents.*"):
            stale.unlink()
    (folder / INCOMPLETE).write_text("This run has not finished: result.json is written only at the very end.\n"
                                     "Continue it with the same command plus --resume.\n")
    write_json_atomic(config_file, {"identity": identity, **run_record(identity["seed"], **(provenance or {}))})
    return False
