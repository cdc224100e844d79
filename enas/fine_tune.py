"""The search's last ranking: each finalist trains alone for a while from the shared weights, then is scored.

Shared weights serve every child at once, so a child's shared-weight accuracy is what it reaches with weights
tuned for all of them, and the supernet ranks children less well than training each from scratch. A few
hundred minibatches of training each finalist alone, starting from the shared weights, moves every finalist
towards what it trains to by itself; the same minibatches in the same order for every finalist keep their
differences the architectures'. Measured on 16 conv architectures (BENCHMARKS.md, "fidelity"): Kendall's
tau against standalone training rises from 0.750 to 0.857 with 200 minibatches (0.802 to 0.881 over two
supernets and three draws), while the same 200 minibatches from untrained weights rank at 0.550. The shared
weights (and the supernet's optimizer) are restored afterwards, so each finalist starts from the same point and
the search's state is unchanged.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

# the most passes over the training split that a finalist's own training makes (a small split is not overfitted)
MAX_PASSES = 3


def finalist_minibatches(seed: int, n: int, batch_size: int, steps: int) -> list[np.ndarray]:
    """The training indices of a finalist's ``steps`` minibatches (the same for every finalist of a run).

    At most ``MAX_PASSES`` passes over the ``n`` training images: fewer steps on a small split.
    """
    per_pass = n // batch_size
    steps = min(steps, MAX_PASSES * per_pass)
    rng = np.random.default_rng([seed, 3])
    orders = [rng.permutation(n) for _ in range(-(-steps // per_pass))] if steps > 0 else []
    return [orders[k // per_pass][(k % per_pass) * batch_size:(k % per_pass + 1) * batch_size] for k in range(steps)]


@contextlib.contextmanager
def trained_alone(supernet, arch, x: np.ndarray, y: np.ndarray, minibatches: Sequence[np.ndarray],
                  learning_rate: float) -> Iterator[None]:
    """Within the block the supernet's weights are ``arch`` trained alone on ``minibatches`` (a fresh Adam);
    on leaving it (also on an error or Ctrl-C) the shared weights and the supernet's optimizer are restored."""
    saved = [v.numpy() for v in supernet.variables]
    shared_optimizer = supernet.optimizer
    with supernet.strategy.scope() if getattr(supernet, "strategy", None) else contextlib.nullcontext():
        supernet.optimizer = tf.keras.optimizers.legacy.Adam(learning_rate)
    try:
        for idx in minibatches:
            supernet.train_step(x[idx], y[idx], arch)
        yield
    finally:
        supernet.optimizer = shared_optimizer
        for variable, value in zip(supernet.variables, saved):
            variable.assign(value)
