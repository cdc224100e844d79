"""What ``train_arc.py`` checkpoints every epoch, so that a resumed run ends with the weights of an uninterrupted one.

``TrainState`` holds model, optimizer (slots and step counter, hence the learning-rate schedule's position),
epoch, early-stopping state, history and TF's global RNG; an unreadable newest checkpoint is skipped for
the one before it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from qnas.checkpoints import restore_newest_readable, unreadable_reason


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
