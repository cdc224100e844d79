"""One call makes a run repeat: Python, NumPy and TensorFlow seeds plus deterministic TF ops."""
from __future__ import annotations

import tensorflow as tf

_determinism_on = False


def seed_everything(seed: int) -> None:
    """Seed every random source a run uses; also turns on TF's deterministic kernels (once)."""
    global _determinism_on
    tf.keras.utils.set_random_seed(int(seed))
    if not _determinism_on:
        tf.config.experimental.enable_op_determinism()
        _determinism_on = True
