"""Random search, the honest baseline: every option of every decision equally likely, from a seeded generator."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from enas.strategies.base import Decisions, Strategy
from enas.strategies.registry import register_strategy


@register_strategy
class RandomStrategy(Strategy):
    """Uniform proposals; ``tell`` learns nothing."""

    name = "random"

    def __init__(self, decisions, seed: int = 0):
        super().__init__(decisions, seed)
        self.rng = tf.random.Generator.from_seed(seed)

    def ask(self, n: int) -> list[Decisions]:
        columns = [self.rng.uniform((n,), 0, k, dtype=tf.int64).numpy() for k in self.sizes]
        return np.stack(columns, axis=1).astype(int).tolist()
