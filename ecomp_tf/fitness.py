"""EComp's fitness, scored per batch: the shared objective (``qnas.objective``) with ``compression`` as the size.

``similarity`` is the summed t-SNE loss (``qnas.similarity``) of the compared hidden layers against
the parent's on the same batch; the parent side (its embeddings and affinities P) is computed once
per batch by :class:`BatchScorer`, not once per individual. ``compression`` is the hidden width
relative to the parent's (the reference, ``COMPRESSION="width"``), the theoretical size in bits relative
to the parent's (``"bits"``) or the deployment target's predicted file size relative to the parent's
(``"size"``, ours: what ships). ``bits_ratio`` and ``size_ratio`` are recorded whatever the compression.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecomp_tf.genome import Individual, bits, forward
from qnas.objective import ObjectiveWeights
from qnas.similarity import MultiLayerTSNELoss
from qnas.space import SearchSpace
from qnas.spaces import SPACES
from qnas.targets.base import Target, get_target
from qnas.targets.deploy import resolve_target

OBJECTIVES = ("fitness", "accuracy", "similarity", "compression", "bits_ratio", "size_ratio")
HIGHER_IS_BETTER = {"fitness": True, "accuracy": True, "similarity": False, "compression": False,
                    "bits_ratio": False, "size_ratio": False}


class SizeMeter:
    """Width ratio, bits ratio and the target's predicted bytes of individuals against the parent's (cached per
    architecture). ``target``: the deployment target (None: the best installed, as the CLI's default)."""

    def __init__(self, parent: Individual, input_shape: Sequence[int], num_classes: int, mode: str = "width",
                 space: SearchSpace | None = None, target: Target | str | None = None) -> None:
        self.mode = mode
        self.space = space or SPACES["mlp"]
        self.target = resolve_target(None) if target is None else get_target(target, require=False)
        self.input_shape, self.num_classes = tuple(input_shape), int(num_classes)
        self.parent_width = float(sum(parent.widths))
        self._bits: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self.parent_bits = self.bits(parent)
        self.parent_bytes = self.bytes(parent)

    def bits(self, ind: Individual) -> int:
        key = ind.arch.to_string()
        if key not in self._bits:
            self._bits[key] = bits(ind, self.space, self.input_shape, self.num_classes)
        return self._bits[key]

    def bits_ratio(self, ind: Individual) -> float:
        return self.bits(ind) / self.parent_bits

    def bytes(self, ind: Individual) -> int:
        """The target's predicted file size of the network ``to_keras`` would build (bytes)."""
        key = ind.arch.to_string()
        if key not in self._bytes:
            self._bytes[key] = self.target.predict_bytes(ind.arch, self.space, self.input_shape, self.num_classes)
        return self._bytes[key]

    def size_ratio(self, ind: Individual) -> float:
        return self.bytes(ind) / self.parent_bytes

    def width_ratio(self, ind: Individual) -> float:
        return sum(ind.widths) / self.parent_width

    def compression(self, ind: Individual) -> float:
        """What the fitness calls compression: the size left, as a fraction of the parent's."""
        measure = {"bits": self.bits_ratio, "size": self.size_ratio}.get(self.mode, self.width_ratio)
        return measure(ind)


@dataclass
class Scores:
    """The objectives of a population on one batch, one array entry per individual."""

    accuracy: np.ndarray
    similarity: np.ndarray
    compression: np.ndarray
    bits_ratio: np.ndarray
    size_ratio: np.ndarray
    fitness: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        """Average, best and worst of each objective ("best" in that objective's own direction)."""
        out = {}
        for name in OBJECTIVES:
            values = getattr(self, name)
            best, worst = (np.max, np.min) if HIGHER_IS_BETTER[name] else (np.min, np.max)
            out[name] = {"avg": float(np.mean(values)), "best": float(best(values)), "worst": float(worst(values))}
        return out


class BatchScorer:
    """Scores individuals on one batch against the parent; the parent's side is computed once."""

    def __init__(self, parent: Individual, x: np.ndarray, y: np.ndarray, layers: Sequence[int],
                 point: str = "activation", perplexity: float = 30.0) -> None:
        self.x, self.y, self.layers, self.point = x, y, list(layers), point
        self.loss = MultiLayerTSNELoss(forward(parent, x).embeddings(self.layers, point), perplexity=perplexity)

    def __call__(self, ind: Individual) -> tuple[float, float]:
        """(accuracy on the batch, summed similarity loss)."""
        out = forward(ind, self.x)
        return out.accuracy(self.y), float(self.loss(out.embeddings(self.layers, self.point)))


def score_population(population: Sequence[Individual], scorer: BatchScorer, sizes: SizeMeter,
                     weights: Sequence[float]) -> Scores:
    """Every objective and the fitness of each individual on the scorer's batch."""
    acc, sim = (np.array(v, np.float64) for v in zip(*(scorer(ind) for ind in population)))
    comp = np.array([sizes.compression(ind) for ind in population])
    ratio = np.array([sizes.bits_ratio(ind) for ind in population])
    size = np.array([sizes.size_ratio(ind) for ind in population])
    return Scores(acc, sim, comp, ratio, size, ObjectiveWeights(*weights).score(acc, sim, comp))
