"""Regularized (aging) evolution (Real et al. 2019) as a strategy: tournaments over a queue of the newest children.

The population is the ``population_size`` most recently rewarded architectures. A proposal is a
uniformly random architecture until the population is full; after that, ``sample_size`` members
are drawn without replacement, the one with the highest reward is the parent, and the child is the
parent with one decision changed to another option. ``tell`` appends each rewarded proposal and
the oldest member dies, whatever its reward: on shared weights, whose rewards drift as the weights
train, ageing keeps stale scores from ruling the population.

Everything (population, rewards, the number of members ever added, the random generator) is a
``tf.Variable``, so a resumed search proposes what an uninterrupted one would.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from enas.strategies.base import Decisions, Strategy
from enas.strategies.registry import register_strategy

POPULATION_SIZE = 50
SAMPLE_SIZE = 10


@register_strategy
class EvolutionStrategy(Strategy):
    """Tournament selection on the living population, one-decision mutation, death of the oldest."""

    name = "evolution"

    def __init__(self, decisions, seed: int = 0, population_size: int = POPULATION_SIZE,
                 sample_size: int = SAMPLE_SIZE):
        super().__init__(decisions, seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(f"need population_size >= 2 and 1 <= sample_size <= population_size, got "
                             f"{population_size} and {sample_size}")
        self.population_size, self.sample_size = int(population_size), int(sample_size)
        width = len(self.sizes)
        self.population = tf.Variable(tf.zeros((population_size, width), tf.int32), trainable=False, name="population")
        self.rewards = tf.Variable(tf.zeros(population_size, tf.float64), trainable=False, name="rewards")
        self.added = tf.Variable(0, dtype=tf.int64, trainable=False, name="added")  # the oldest sits at added % P
        self.rng = tf.random.Generator.from_seed(seed)

    # ------------------------------------------------------------------ state
    def living(self) -> tuple[np.ndarray, np.ndarray]:
        """The current members and their rewards, oldest first."""
        n, added = self.population_size, int(self.added.numpy())
        order = np.arange(added) if added < n else (np.arange(n) + added) % n
        return self.population.numpy()[order], self.rewards.numpy()[order]

    # ------------------------------------------------------------------ ask / tell
    def ask(self, n: int) -> list[Decisions]:
        if int(self.added.numpy()) < self.population_size:
            return self._random(n)
        members, rewards = self.population.numpy(), self.rewards.numpy()
        # tournament without replacement: the sample_size smallest of P uniform keys per proposal
        keys = self.rng.uniform((n, self.population_size), dtype=tf.float64).numpy()
        picked = np.argsort(keys, axis=1)[:, :self.sample_size]
        parents = members[picked[np.arange(n), np.argmax(rewards[picked], axis=1)]]
        return [self._mutate(p) for p in parents]

    def tell(self, proposals: Sequence[Decisions], rewards: Sequence[float]) -> dict[str, float]:
        members, scores = self.population.numpy(), self.rewards.numpy()
        added = int(self.added.numpy())
        for decisions, reward in zip(proposals, rewards):
            members[added % self.population_size] = decisions
            scores[added % self.population_size] = reward
            added += 1
        self.population.assign(members)
        self.rewards.assign(scores)
        self.added.assign(added)
        alive = scores[:min(added, self.population_size)]
        return {"population_best": float(alive.max()), "population_mean": float(alive.mean())}

    def best_guess(self) -> Decisions | None:
        """The living member with the highest reward."""
        members, rewards = self.living()
        return members[int(np.argmax(rewards))].tolist() if len(rewards) else None

    # ------------------------------------------------------------------ variation
    def _random(self, n: int) -> list[Decisions]:
        columns = [self.rng.uniform((n,), 0, k, dtype=tf.int64).numpy() for k in self.sizes]
        return np.stack(columns, axis=1).astype(int).tolist()

    def _mutate(self, parent: np.ndarray) -> Decisions:
        """``parent`` with one decision (among those with a choice) moved to another of its options."""
        child = parent.astype(int).tolist()
        free = [i for i, k in enumerate(self.sizes) if k > 1]
        if not free:
            return child
        position = free[int(self.rng.uniform((), 0, len(free), dtype=tf.int64))]
        shift = 1 + int(self.rng.uniform((), 0, self.sizes[position] - 1, dtype=tf.int64))
        child[position] = (child[position] + shift) % self.sizes[position]
        return child
