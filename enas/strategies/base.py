"""The strategy interface: a strategy proposes decisions (``ask``) and may learn from their rewards (``tell``).

A strategy sees only the decisions of a search space, each a kind and a number of options
(``SearchSpace.decisions()``), never widths or layer types; the space decodes what it proposes.
Strategies are ``tf.Module``s: their state, random generators included, goes into the search's
checkpoint, so a resumed search proposes what an uninterrupted one would.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

Decisions = list[int]


class Strategy(tf.Module):
    """Ask for proposals, tell their rewards; a new strategy subclasses this in one file and registers itself."""

    name = "strategy"

    def __init__(self, decisions: Sequence[tuple[str, int]], seed: int = 0):
        super().__init__(name=f"{self.name}_strategy")
        self.decisions = [(str(kind), int(n)) for kind, n in decisions]
        self.sizes = [n for _, n in self.decisions]
        self.seed = seed

    def ask(self, n: int) -> list[Decisions]:
        """``n`` proposals, each one option index per decision."""
        raise NotImplementedError

    def tell(self, proposals: Sequence[Decisions], rewards: Sequence[float]) -> dict[str, float]:
        """Learn from rewarded proposals; returns numbers worth logging (none by default)."""
        return {}

    def best_guess(self) -> Decisions | None:
        """The strategy's own pick (e.g. a greedy decode), or None if it has none."""
        return None

    def probabilities(self) -> list[np.ndarray] | None:
        """Per-decision choice probabilities of a learned policy, for TensorBoard; None when there is none."""
        return None
