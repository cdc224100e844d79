"""The objective both searches maximise: ``w_acc * accuracy - w_sim * similarity + w_size * (1 - size_ratio)``.

The ENAS search calls it the reward (``--reward_weights``), EComp the fitness (``--loss_weights``);
it is one formula. ``similarity`` is the t-SNE loss between a child's block embeddings and the
float parent's (lower is more similar); ``size_ratio`` is the child's size over the parent's.
The search may add a fourth term, ``w_lat * (1 - latency_ratio)``, the child's predicted latency over
the parent's (``w_lat`` is 0 unless ``--reward_weights`` gives a fourth number).
``Objective`` adds the budgets (``--max_kib``, ``--max_ms``): an architecture over one scores below
every one within them, whatever the weights, and the further over, the lower, so a strategy whose samples
all overshoot still learns which way the budget lies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qnas.errors import UserInputError


@dataclass(frozen=True)
class ObjectiveWeights:
    """The weights, non-negative; ``lat`` (the latency term's) is 0 unless asked for."""

    acc: float = 1.0
    sim: float = 0.05
    size: float = 0.5
    lat: float = 0.0

    @classmethod
    def parse(cls, text: str, flag: str = "--reward_weights") -> ObjectiveWeights:
        """Parse ``"a,s,c"`` or ``"a,s,c,l"`` (three or four numbers) as given to ``flag`` on the command line."""
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) not in (3, 4):
            raise UserInputError(f"{flag} {text!r}: expected three comma-separated numbers "
                                 f"'w_acc,w_sim,w_size', e.g. '1,0.05,0.5', or four with a latency weight "
                                 f"'w_acc,w_sim,w_size,w_lat'")
        if not all(0 <= v < np.inf for v in values):
            raise UserInputError(f"{flag} {text!r}: weights must be non-negative, finite numbers")
        return cls(*values)

    def __str__(self) -> str:
        text = f"{self.acc:g},{self.sim:g},{self.size:g}"
        return f"{text},{self.lat:g}" if self.lat else text  # three numbers, as before latency, when it is off

    def score(self, accuracy, similarity, size_ratio, latency_ratio=None):
        """The objective; element-wise when given arrays (a population at once).

        ``latency_ratio`` is needed only when the latency weight is not 0.
        """
        if np.ndim(accuracy) or np.ndim(similarity) or np.ndim(size_ratio):
            accuracy, similarity, size_ratio = (np.asarray(v, np.float64) for v in (accuracy, similarity, size_ratio))
        value = self.acc * accuracy - self.sim * similarity + self.size * (1.0 - size_ratio)
        if self.lat:
            if latency_ratio is None:
                raise ValueError("the latency weight is set but no latency ratio was given")
            value = value + self.lat * (1.0 - np.asarray(latency_ratio, np.float64))
        return value


@dataclass(frozen=True)
class Objective:
    """The weights and the optional budgets: size in KiB, predicted latency in ms."""

    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    max_kib: float | None = None
    max_ms: float | None = None

    @property
    def uses_latency(self) -> bool:
        """Whether the reward or a budget needs each architecture's predicted latency."""
        return self.max_ms is not None or self.weights.lat > 0

    def fits(self, kib: float, ms: float | None = None) -> bool:
        """Within the size budget and, when there is one, the latency budget (``ms`` must then be given)."""
        if self.max_ms is not None and ms is None:
            raise ValueError("--max_ms is set but no latency was given")
        return (self.max_kib is None or kib <= self.max_kib) and (self.max_ms is None or ms <= self.max_ms)

    def excess(self, kib: float, ms: float | None = None) -> float:
        """How far over the budgets, as fractions of them summed (0 within them): 1.5x the KiB budget is 0.5.

        Without it every architecture over a budget would differ only by accuracy, which grows with size: a
        controller that had drifted over the budget would be pulled further out, never back (measured: a
        CIFAR-10 search under --max_kib 64 settled on 198 KiB children).
        """
        over = 0.0 if self.max_kib is None else max(0.0, kib / self.max_kib - 1.0)
        if self.max_ms is not None and ms is not None:
            over += max(0.0, ms / self.max_ms - 1.0)
        return over

    def terms(self, accuracy: float, similarity: float, size_ratio: float, kib: float,
              latency_ratio: float | None = None, ms: float | None = None) -> dict[str, float]:
        """The reward and each of its parts, for logging; over a budget, the reward drops below every in-budget one.

        ``ms`` and ``latency_ratio`` (the predicted latency and its ratio to the parent's) join the terms when given.
        """
        w = self.weights
        reward = float(w.score(accuracy, similarity, size_ratio, latency_ratio))
        if not self.fits(kib, ms):  # the reward spans at most w_acc + w_size + w_lat: this is below every in-budget one
            reward -= 1.0 + w.acc + w.size + w.lat + self.excess(kib, ms)
        out = {"reward": reward, "acc": accuracy, "sim": similarity, "size_ratio": size_ratio, "kib": kib}
        if ms is not None:
            out.update(ms=ms, lat_ratio=latency_ratio)
        return out
