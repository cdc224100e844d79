"""The search's reward: ``w_acc * accuracy - w_sim * similarity + w_size * (1 - size_ratio)``.

``similarity`` is the t-SNE loss between the child's block embeddings and the float parent's on a
fixed probe batch (lower is more similar); ``size_ratio`` is the child's bits over the parent's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from enas.errors import UserInputError


@dataclass(frozen=True)
class RewardWeights:
    acc: float = 1.0
    sim: float = 0.05
    size: float = 0.5

    @classmethod
    def parse(cls, text: str) -> RewardWeights:
        """Parse ``"a,s,c"`` (three numbers) as given on the command line."""
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3:
            raise UserInputError(f"--reward_weights {text!r}: expected three comma-separated numbers "
                                 f"'w_acc,w_sim,w_size', e.g. '1,0.05,0.5'")
        if any(not (0 <= v < math.inf) for v in values):
            raise UserInputError(f"--reward_weights {text!r}: weights must be non-negative, finite numbers")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.acc:g},{self.sim:g},{self.size:g}"

    def reward(self, accuracy: float, similarity: float, size_ratio: float) -> float:
        return self.acc * accuracy - self.sim * similarity + self.size * (1.0 - size_ratio)

    def terms(self, accuracy: float, similarity: float, size_ratio: float) -> dict[str, float]:
        """The reward and each of its parts, for logging."""
        return {"reward": self.reward(accuracy, similarity, size_ratio), "acc": accuracy,
                "sim": similarity, "size_ratio": size_ratio}
