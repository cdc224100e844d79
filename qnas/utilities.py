"""Per-unit utilities remembered for a model: how useful each unit of each linear layer is.

``qnas.contribution`` computes and attaches them while training; pruning and warm starts read them.
They live beside the model (a weak reference), so they vanish with it.
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

_UTILITIES: weakref.WeakKeyDictionary[tf.keras.Model, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def attach_utilities(model: tf.keras.Model, utilities: Mapping[str, np.ndarray]) -> None:
    """Remember per-unit utilities for ``model`` (keyed by linear layer name); replaces earlier ones."""
    _UTILITIES[model] = {k: np.asarray(v, dtype=np.float64).copy() for k, v in utilities.items()}


def get_utilities(model: tf.keras.Model) -> dict[str, np.ndarray] | None:
    """The utilities attached to ``model``, or None when it has none."""
    found = _UTILITIES.get(model)
    return {k: v.copy() for k, v in found.items()} if found else None
