"""The objective both searches maximise: ``w_acc * accuracy - w_sim * similarity + w_size * (1 - size_ratio)``.

The ENAS search calls it the reward (``--reward_weights``), EComp the fitness (``--loss_weights``);
it is one formula. ``similarity`` is the t-SNE loss between a child's block embeddings and the
float parent's (lower is more similar); ``size_ratio`` is the child's size over the parent's.
``Objective`` adds the size budget (``--max_kib``): an architecture over it scores below every one
within it, whatever the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qnas.errors import UserInputError


@dataclass(frozen=True)
class ObjectiveWeights:
    """The three weights, non-negative."""

    acc: float = 1.0
    sim: float = 0.05
    size: float = 0.5

    @classmethod
    def parse(cls, text: str, flag: str = "--reward_weights") -> ObjectiveWeights:
        """Parse ``"a,s,c"`` (three numbers) as given to ``flag`` on the command line."""
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3:
            raise UserInputError(f"{flag} {text!r}: expected three comma-separated numbers "
                                 f"'w_acc,w_sim,w_size', e.g. '1,0.05,0.5'")
        if not all(0 <= v < np.inf for v in values):
            raise UserInputError(f"{flag} {text!r}: weights must be non-negative, finite numbers")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.acc:g},{self.sim:g},{self.size:g}"

    def score(self, accuracy, similarity, size_ratio):
        """The objective; element-wise when given arrays (a population at once)."""
        if np.ndim(accuracy) or np.ndim(similarity) or np.ndim(size_ratio):
            accuracy, similarity, size_ratio = (np.asarray(v, np.float64) for v in (accuracy, similarity, size_ratio))
        return self.acc * accuracy - self.sim * similarity + self.size * (1.0 - size_ratio)


@dataclass(frozen=True)
class Objective:
    """The weights and the optional size budget in KiB."""

    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    max_kib: float | None = None

    def fits(self, kib: float) -> bool:
        return self.max_kib is None or kib <= self.max_kib

    def terms(self, accuracy: float, similarity: float, size_ratio: float, kib: float) -> dict[str, float]:
        """The reward and each of its parts, for logging; over budget, the reward drops below every in-budget one."""
        reward = float(self.weights.score(accuracy, similarity, size_ratio))
        if not self.fits(kib):  # the reward spans at most w_acc + w_size, so this is below every in-budget reward
            reward -= 1.0 + self.weights.acc + self.weights.size
        return {"reward": reward, "acc": accuracy, "sim": similarity, "size_ratio": size_ratio, "kib": kib}
