"""Target ``lce``: a Larq Compute Engine TFLite file, run by LCE's interpreter.

How layers run (``runs_as``):

* binary, not first: bit-packed ``LceBconv2d`` (Dense layers as 1x1 convolutions), 32 weights per
  4-byte word along the input channels, plus a float multiplier and bias per output channel;
* binary first layer (its input is pixels, not signs), ternary, int2, int4, int8: int8 convolutions
  (``CONV_2D``) with per-channel weight scales; no LCE or TFLite kernel stores fewer than 8 bits a
  weight for them, so ternary, int2 and int4 cost what int8 costs and are not searched by default;
* float32 layers and the classifier: float32.

The byte constants below were fitted by ``bench/fit_target_bytes.py`` (least squares over 150 random
mlp and conv architectures of every type, exported with this target; the worst error of the fit is in
BENCHMARKS.md, section ``targets``). Weights are counted exactly; the constants are the format's
per-channel numbers (int32 bias, float scale and int64 zero point for weights and bias) and the
records (tensor names, shapes, operators) each layer adds.

Micro-cell networks are converted as they are (``write_keras``: no folding, so nothing runs as int8): binary
convolutions are bit-packed and every other weight stays float32 (``cell_precision``); a binary convolution whose
kernel is larger than its input is padded with ones plus a constant, as LCE miscomputes zero padding there
(``qnas.targets.lce_padding``). Their bytes are counted
operator by operator (``qnas.targets.cells``) with the constants ``CELL_BYTES``, fitted by
``bench/fit_cell_bytes.py`` (BENCHMARKS.md, section ``cell-bytes``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qnas.export import lce_available
from qnas.targets.artifact import convert_and_write, convert_keras_and_write
from qnas.targets.base import LayerCost, LayerSlot, Target

# Fitted constants (bytes); see the module docstring.
BYTES = {
    "overhead_dense": 833.1, "overhead_conv": 1367.3,
    "float_layer": 231.6, "float_channel": 2.5,
    "int8_layer": 376.4, "int8_channel": 28.2,  # per channel: int32 bias, float scale + int64 zero point twice
    "binary_layer": 821.5, "binary_channel": 7.4,  # per channel: float multiplier and bias
    "binary_fused_layer": 346.2, "binary_fused_channel": 10.0,  # writes bit-packed output (int32 thresholds)
    "pool": 294.5, "dense_run": 804.2,
    "to_int8": 162.5, "from_int8": 162.5,  # always paired here (image and classifier are float); fitted as one
    "uses_int8": -172.3, "uses_binary": -80.5, "uses_float": -2.1,  # per file, corrections to the above
}

# micro cells (qnas.targets.cells), fitted by bench/fit_cell_bytes.py: per operator (its records) and per channel
CELL_BYTES = {"file": 836.9, "conv_op": 345.6, "conv_channel": 4.0, "depthwise_op": 262.8, "zero_bias_channel": 7.1,
              "binary_op": 597.6, "binary_channel": 7.6, "sign_op": 156.7, "ternary_op": 459.4, "dorefa_op": 563.4,
              "relu_op": 100.5, "pool_op": 161.4, "add_op": 133.2, "scale_op": 143.6, "cell": 558.0,
              "cell_channel": 4.9, "tile": 188.6, "scalar": 21.9, "opcode": 41.2}


class LceTarget(Target):
    """Larq Compute Engine: bit-packed binary layers, int8 where quantization is known, float32 otherwise."""

    name = "lce"
    description = ("Larq Compute Engine TFLite: bit-packed binary convolutions and Dense layers, int8 for the "
                   "other quantized layers, float32 for float layers and the classifier")
    extra = "lce"
    head_precision = "float32"
    cell_bytes = CELL_BYTES

    def unavailable(self) -> str | None:
        return lce_available()

    def runs_as(self, type_code: int, first: bool, kind: str) -> str:
        if type_code == 0:
            return "float32"
        if type_code == 1 and not first:
            return "binary"
        return "int8"

    def default_types(self) -> tuple[int, ...]:
        return (0, 1, 5)

    def cell_precision(self, type_code: int) -> str:
        """Cell networks are converted as they are (no folding to int8): only binary convolutions are bit-packed.

        A ternary convolution keeps its float kernel (its values ternary, stored at 32 bits), as the
        separable convolutions of every type do.
        """
        return "binary" if type_code == 1 else "float32"

    def plan(self, slots) -> list[str]:
        """``runs_as``, except that a float32 layer between two int8 layers runs as int8.

        LCE's converter quantizes every operator whose input and output are int8 tensors; a float32
        layer between two int8 ones has both, so it ships with int8 weights (rounded per channel).
        """
        base = [self.runs_as(s.type_code, s.first, s.kind) for s in slots]
        out = list(base)
        for i in range(1, len(base) - 1):
            if base[i] == "float32" and base[i - 1] == "int8" and base[i + 1] == "int8":
                out[i] = "int8"
        return out

    def layer_cost(self, slot: LayerSlot) -> LayerCost:
        precision = slot.precision or self.runs_as(slot.type_code, slot.first, slot.kind)
        taps = slot.kernel_elements // (slot.fan_in * slot.width)
        if precision == "binary":
            weights = slot.width * taps * math.ceil(slot.fan_in / 32) * 4
            if slot.after == "binary" and not slot.pool:  # writes bit-packed output: one threshold a channel
                other = BYTES["binary_fused_layer"] + BYTES["binary_fused_channel"] * slot.width
            else:
                other = BYTES["binary_layer"] + BYTES["binary_channel"] * slot.width
        elif precision == "int8":
            weights = slot.kernel_elements
            other = BYTES["int8_layer"] + BYTES["int8_channel"] * slot.width
        else:
            weights = 4 * slot.kernel_elements
            other = BYTES["float_layer"] + BYTES["float_channel"] * slot.width
        if slot.pool:
            other += BYTES["pool"]
        if slot.kind == "dense" and precision != "float32" and (slot.first or slot.before == "float32"):
            other += BYTES["dense_run"]  # the reshapes around a run of 1x1 convolutions
        return LayerCost(precision, float(weights), other)

    def file_bytes(self, slots, kind: str) -> float:
        used = {s.precision for s in slots}
        names = {"int8": "uses_int8", "binary": "uses_binary", "float32": "uses_float"}
        return sum(BYTES[key] for precision, key in names.items() if precision in used)

    def transition_bytes(self, before: str, after: str) -> float:
        if before != "int8" and after == "int8":
            return BYTES["to_int8"]
        if before == "int8" and after != "int8":
            return BYTES["from_int8"]
        return 0.0

    def head_bytes(self, fan_in: int, num_classes: int, kind: str) -> float:
        return 4.0 * (fan_in * num_classes + num_classes)  # its records are in the overhead

    def overhead_bytes(self, kind: str) -> float:
        return BYTES[f"overhead_{kind}"]

    def write(self, graph, path: str | Path, calibration_images: np.ndarray) -> Path:
        import larq_compute_engine as lce

        return convert_and_write(graph, path, lambda saved: lce.convert_saved_model(str(saved)))

    def write_keras(self, model, path: str | Path) -> Path:
        import larq_compute_engine as lce

        from qnas.targets.lce_padding import exact_zero_padding

        return convert_keras_and_write(exact_zero_padding(model), path, lce.convert_keras_model)

    def _interpreter(self, path: str | Path, threads: int):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        return Interpreter(Path(path).read_bytes(), num_threads=threads)

    def predict(self, path: str | Path, x: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter(path, 1)
        return np.asarray(interpreter.predict(np.asarray(x, np.float32)), np.float32)

    def runner(self, path: str | Path, batch: int, threads: int = 1) -> Callable[[np.ndarray], object]:
        """LCE's files have a batch of one (its converter fixes it), so a batch is a loop of single invokes."""
        core = self._interpreter(path, threads).interpreter

        def run(x: np.ndarray) -> object:
            out = None
            for i in range(len(x)):
                out = core.predict([x[i:i + 1]])
            return out

        return run
