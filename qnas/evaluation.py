"""The evaluator interface: what scores a batch of architectures for a search strategy.

A search asks an evaluator for the objective's terms (``reward``, ``acc``, ``sim``, ``size_ratio``,
``kib``, ...) of several architectures on one labelled batch. The shared-weight evaluator
(``enas.evaluator``) cuts each child from a supernet; a fully-trained or a distributed evaluator is
one more implementation of this class.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qnas.arch import Architecture

Terms = dict[str, float]


class Evaluator:
    """Scores architectures; ``weights_changed`` tells it that cached scores went stale."""

    def evaluate(self, archs: Sequence[Architecture], x: np.ndarray, y: np.ndarray) -> list[Terms]:
        """The objective's terms of each architecture on the labelled batch ``x, y``, in order."""
        raise NotImplementedError

    def evaluate_one(self, arch: Architecture, x: np.ndarray, y: np.ndarray) -> Terms:
        return self.evaluate([arch], x, y)[0]

    def weights_changed(self) -> None:
        """Forget whatever depends on trained weights (nothing by default)."""
