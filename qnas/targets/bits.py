"""Target ``bits``: the theoretical count (each weight at its type's bit-width, everything else 32 bits).

This is the size the search reported before deployment targets existed; no file ships at this size
(see BENCHMARKS.md, section ``targets``), so it is always labelled theoretical and has no export.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from qnas.arch import Architecture
from qnas.errors import UserInputError
from qnas.space import SearchSpace
from qnas.targets.base import LayerCost, LayerSlot, Target
from quantize.blocks import uses_batchnorm
from quantize.types import LAYER_TYPES


class BitsTarget(Target):
    """Theoretical bits / 8: agrees with ``qnas.models.arch_bits`` (tested)."""

    name = "bits"
    description = "theoretical: each weight at its type's bit-width, biases and BatchNorm at 32 bits (no file)"
    theoretical = True
    head_precision = "float32"

    def __init__(self, float_batchnorm: bool | None = None):
        self.float_batchnorm = float_batchnorm  # None: take it from the space in predict_bytes

    def runs_as(self, type_code: int, first: bool, kind: str) -> str:
        return LAYER_TYPES[type_code].name

    def layer_cost(self, slot: LayerSlot) -> LayerCost:
        layer_type = LAYER_TYPES[slot.type_code]
        per_channel = 2 if uses_batchnorm(layer_type, bool(self.float_batchnorm)) else 1
        return LayerCost(layer_type.name, slot.kernel_elements * layer_type.bits / 8, 4.0 * per_channel * slot.width)

    def head_bytes(self, fan_in: int, num_classes: int, kind: str) -> float:
        return 4.0 * (fan_in * num_classes + num_classes)

    def overhead_bytes(self, kind: str) -> float:
        return 0.0

    def unsupported(self, space) -> str | None:
        return None  # a count works for every space

    def predict_bytes(self, arch: Architecture, space: SearchSpace, input_shape, num_classes: int) -> int:
        if space.family != "chain":
            return -(-space.bits(arch, input_shape, num_classes) // 8)
        saved = self.float_batchnorm
        self.float_batchnorm = space.float_batchnorm if saved is None else saved
        try:
            return super().predict_bytes(arch, space, input_shape, num_classes)
        finally:
            self.float_batchnorm = saved

    def export(self, model, space: SearchSpace, arch: Architecture, path: str | Path,
               calibration_images: np.ndarray) -> Path:
        raise UserInputError("the 'bits' target is a theoretical count and has no file; "
                             "export with --target lce or --target tflite_int8")

    def write(self, graph, path: str | Path, calibration_images: np.ndarray) -> Path:
        raise UserInputError("the 'bits' target is a theoretical count and has no file")

    def predict(self, path: str | Path, x: np.ndarray) -> np.ndarray:
        raise UserInputError("the 'bits' target has no file to run")

    def runner(self, path: str | Path, batch: int, threads: int = 1) -> Callable[[np.ndarray], object]:
        raise UserInputError("the 'bits' target has no file to run")
