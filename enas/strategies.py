"""Search strategies: what proposes the next architectures and learns from their rewards.

A strategy samples decisions ``[w0, t0, w1, t1, ...]`` (indices into the space's candidate
widths and types) and may learn from rewards. Two are registered: ``controller`` (the ENAS LSTM
trained with REINFORCE) and ``random`` (uniform sampling, the honest baseline). A new strategy is
one new class registered in ``STRATEGIES``. Strategies are ``tf.Module``s, so their state,
random generators included, goes into the search's checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from enas.controller import Controller, ControllerConfig
from enas.errors import UserInputError
from enas.space import SearchSpace


class Strategy(tf.Module):
    """The interface every strategy implements."""

    name = "strategy"

    def sample(self, n: int) -> list[list[int]]:
        raise NotImplementedError

    def update(self, decisions: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict[str, float]:
        """Learn from rewarded samples; returns numbers worth logging."""
        return {}

    def best_guess(self) -> list[int] | None:
        """The strategy's own pick (a greedy decode), or None if it has none."""
        return None

    def probabilities(self) -> list[np.ndarray] | None:
        """Per-decision choice probabilities, for TensorBoard; None if not meaningful."""
        return None


class RandomStrategy(Strategy):
    """Uniform over every width and type of every layer, from a seeded generator."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(name="random_strategy")
        self.sizes = [len(space.widths), len(space.types)] * space.num_layers
        self.rng = tf.random.Generator.from_seed(seed)

    def sample(self, n: int) -> list[list[int]]:
        columns = [self.rng.uniform((n,), 0, k, dtype=tf.int64).numpy() for k in self.sizes]
        return np.stack(columns, axis=1).astype(int).tolist()

    def probabilities(self) -> list[np.ndarray]:
        return [np.full(k, 1.0 / k) for k in self.sizes]


class ControllerStrategy(Strategy):
    """The ENAS controller: an LSTM policy improved by REINFORCE on the rewards."""

    name = "controller"

    def __init__(self, space: SearchSpace, seed: int = 0, **config):
        super().__init__(name="controller_strategy")
        self.controller = Controller(ControllerConfig(
            num_layers=space.num_layers, num_widths=len(space.widths), num_types=len(space.types),
            seed=seed, **config))

    def sample(self, n: int) -> list[list[int]]:
        return self.controller.sample(n)

    def update(self, decisions, rewards) -> dict[str, float]:
        return self.controller.update(decisions, rewards)

    def best_guess(self) -> list[int]:
        return self.controller.greedy()

    def probabilities(self) -> list[np.ndarray]:
        return self.controller.probabilities()


STRATEGIES: dict[str, Callable[..., Strategy]] = {"controller": ControllerStrategy, "random": RandomStrategy}


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **config) -> Strategy:
    if name not in STRATEGIES:
        raise UserInputError(f"unknown strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](space, seed=seed, **config)
