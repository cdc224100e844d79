"""The shared-weight evaluator: a child's accuracy, similarity to the float parent, size and reward, cut from the supernet.

When the objective uses latency (``--max_ms`` or a latency weight), each child's predicted latency on the
target (``ms``) and its ratio to the parent's (``lat_ratio``) join its terms.

The parent's side of the similarity loss (its embeddings and affinities on the fixed probe batch)
is computed once, here, and never again. A child is calibrated (its own BatchNorm statistics) once
per supernet state; the cache is cleared whenever the shared weights change.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enas.supernet import Supernet
from qnas.arch import Architecture
from qnas.data import Dataset
from qnas.evaluation import Evaluator, Terms
from qnas.objective import Objective
from qnas.similarity import TSNELoss, matching_depths
from qnas.targets.pricing import LatencyPricer, SizePricer

__all__ = ["SharedWeightEvaluator", "matching_depths", "probe_perplexity"]


def probe_perplexity(num_points: int, preferred: float = 30.0) -> float:
    """EComp's perplexity of 30, lowered for tiny probe batches (t-SNE needs perplexity well below n)."""
    return float(min(preferred, max(2.0, (num_points - 1) / 3)))


class SharedWeightEvaluator(Evaluator):
    """Turns architectures into their reward terms, using the supernet in inference mode."""

    def __init__(self, supernet: Supernet, data: Dataset, parent_embeddings: list[np.ndarray], size: SizePricer,
                 x_probe: np.ndarray, x_calib: np.ndarray, objective: Objective, latency: LatencyPricer | None = None):
        self.supernet, self.data, self.objective = supernet, data, objective
        self.size = size  # the deployment target's predicted bytes, the parent's included
        self.latency = latency  # the target's predicted latency here; None when the objective does not use it
        self.x_probe, self.x_calib = x_probe, x_calib
        self.perplexity = probe_perplexity(len(x_probe))
        self.similarity = [TSNELoss(e.reshape(len(e), -1), perplexity=self.perplexity) for e in parent_embeddings]
        self.depths = matching_depths(supernet.num_layers, len(parent_embeddings))
        self._stats: dict[str, list] = {}
        self._similarity: dict[str, float] = {}

    def weights_changed(self) -> None:
        """Forget calibrations and similarities: the shared weights were updated."""
        self._stats.clear()
        self._similarity.clear()

    def evaluate(self, archs: Sequence[Architecture], x: np.ndarray, y: np.ndarray) -> list[Terms]:
        return [self._evaluate(arch, x, y) for arch in archs]

    def _evaluate(self, arch: Architecture, x: np.ndarray, y: np.ndarray) -> Terms:
        """Reward terms of ``arch`` on the labelled batch ``x, y`` (plus probe-batch similarity)."""
        key = arch.to_string()
        if key not in self._stats:
            self._stats[key] = self.supernet.calibrate(arch, self.x_calib)
        if self.objective.weights.sim == 0:  # not part of the reward: skip the probe pass and the t-SNE loss
            self._similarity[key] = 0.0
        probe = self.x_probe if key not in self._similarity else None
        result = self.supernet.evaluate(arch, x, y, self._stats[key], x_probe=probe)
        if probe is not None:
            self._similarity[key] = float(sum(
                loss(result.embeddings[d]) for loss, d in zip(self.similarity, self.depths)))
        size = self.size.bytes(arch)
        latency = () if self.latency is None else (self.latency.ratio(arch), self.latency.ms(arch))
        terms = self.objective.terms(result.accuracy, self._similarity[key], size / self.size.parent_bytes,
                                     size / 1024, *latency)
        terms["val_loss"] = result.loss
        return terms
