"""Model size in bits: each weight at its type's bit-width, everything else at 32 bits.

``model_bits`` asks larq (the reference); the architecture-level count in ``qnas.space`` must agree
with it and is what the search uses, since it needs no model. larq counts a BatchNorm layer as two
32-bit numbers per channel (scale and offset after folding), and so do we.
"""
from __future__ import annotations

from dataclasses import dataclass

import larq as lq
import tensorflow as tf

BITS_PER_KIB = 8 * 1024


def model_bits(model: tf.keras.Model) -> int:
    """Total memory of a model in bits, as larq's ``ModelProfile`` reports it."""
    return int(lq.models.ModelProfile(model).memory)


def model_macs(model: tf.keras.Model) -> dict[str, int]:
    """Multiply-accumulates in total and by input precision (``binary`` = 1-bit inputs and weights)."""
    profile = lq.models.ModelProfile(model)
    return {"total": int(profile.op_count("mac")), "binary": int(profile.op_count("mac", 1))}


@dataclass(frozen=True)
class SizeReport:
    """A model's size next to its float parent's."""

    bits: int
    parent_bits: int

    @property
    def kib(self) -> float:
        return self.bits / BITS_PER_KIB

    @property
    def ratio(self) -> float:
        """Fraction of the float parent's bits (0.05 means 20x smaller)."""
        return self.bits / self.parent_bits

    def as_dict(self) -> dict[str, float]:
        return {"bits": self.bits, "kib": round(self.kib, 3), "parent_bits": self.parent_bits,
                "bits_ratio": round(self.ratio, 5)}
