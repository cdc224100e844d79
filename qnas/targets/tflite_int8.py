"""Target ``tflite_int8``: a full-integer TFLite file (int8 in, int8 out), what TensorFlow Lite Micro runs.

Every layer runs as int8 with per-channel weight scales, whatever its type: TFLite has no kernel that
stores a binary, ternary, 2- or 4-bit weight in less than a byte (its converter writes 8-bit weights
whatever a fake-quant node's bit count says). Ternary, int2 and int4 layers are exact on that grid
(see ``fold``), and so are binary inputs; float32 layers, int8 (DoReFa) kernels and the classifier
are rounded to 8 bits, with ranges observed on training images where they have no grid.
So only int8 (quantization-aware) and float32 (post-training) are searched by default: the
others cost the same bytes and lose accuracy.

The file is run with TFLite's built-in kernels without the XNNPACK delegate: the integer reference
semantics TFLite Micro shares. The byte constants were fitted by ``bench/fit_target_bytes.py``
(least squares over 40 random mlp and conv architectures of every type; see ``qnas.targets.lce``).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qnas.targets.artifact import CALIBRATION_IMAGES, convert_and_write
from qnas.targets.base import LayerCost, LayerSlot, Target

# Fitted constants (bytes); see the module docstring.
BYTES = {
    "overhead_dense": 1771.6, "overhead_conv": 1319.2,
    "int8_layer": 698.5, "int8_channel": 27.9,  # per channel: int32 bias, float scale + int64 zero point twice
}


class TfliteInt8Target(Target):
    """Full-integer TFLite (TFLite Micro): every layer int8."""

    name = "tflite_int8"
    description = "full-integer TFLite (int8 weights and activations, int8 input/output), as TFLite Micro runs it"
    extra = None
    head_precision = "int8"

    def unavailable(self) -> str | None:
        try:
            import tensorflow as tf

            tf.lite.TFLiteConverter  # noqa: B018  (present in every TensorFlow build we support)
        except Exception as err:  # noqa: BLE001
            return f"TensorFlow Lite is not usable here ({type(err).__name__}: {err}); reinstall tensorflow"
        return None

    def runs_as(self, type_code: int, first: bool, kind: str) -> str:
        return "int8"

    def default_types(self) -> tuple[int, ...]:
        return (0, 5)

    def layer_cost(self, slot: LayerSlot) -> LayerCost:
        # Pooling and the reshapes around 1x1 convolutions are in the per-layer and fixed constants:
        # fitted separately they came out collinear with them.
        other = BYTES["int8_layer"] + BYTES["int8_channel"] * slot.width
        return LayerCost("int8", float(slot.kernel_elements), other)

    def head_bytes(self, fan_in: int, num_classes: int, kind: str) -> float:
        return float(fan_in * num_classes + 4 * num_classes)  # its records are in the overhead

    def overhead_bytes(self, kind: str) -> float:
        return BYTES[f"overhead_{kind}"]

    def write(self, graph, path: str | Path, calibration_images: np.ndarray) -> Path:
        import tensorflow as tf

        images = np.asarray(calibration_images[:CALIBRATION_IMAGES], np.float32)

        def convert(saved: Path) -> bytes:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # Every tensor already has a fake-quant range; the converter still asks for data to check it.
            converter.representative_dataset = lambda: ([images[i:i + 1]] for i in range(min(len(images), 32)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            return converter.convert()

        return convert_and_write(graph, path, convert)

    def _interpreter(self, path: str | Path, threads: int):
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(
                model_content=Path(path).read_bytes(), num_threads=threads,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    def predict(self, path: str | Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
        x = np.asarray(x, np.float32)
        run = self.runner(path, batch)
        outputs = []
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch]
            if len(chunk) < batch:
                run = self.runner(path, len(chunk))
            outputs.append(run(chunk))
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def runner(self, path: str | Path, batch: int, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
        """Resizes the input to ``batch`` images, quantizes float images (once per batch object, so timing
        loops measure the interpreter, as an int8 application would run it), dequantizes the probabilities."""
        interpreter = self._interpreter(path, threads)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
        interpreter.allocate_tensors()
        in_scale, in_zero = inp["quantization"]
        out_scale, out_zero = out["quantization"]

        last: list = [None, None]  # the last float batch and its int8 version: timing loops reuse one batch

        def run(x: np.ndarray) -> np.ndarray:
            if last[0] is not x:
                last[:] = [x, np.clip(np.round(np.asarray(x, np.float32) / in_scale) + in_zero, -128, 127)
                           .astype(np.int8)]
            interpreter.set_tensor(inp["index"], last[1])
            interpreter.invoke()
            return (interpreter.get_tensor(out["index"]).astype(np.float32) - out_zero) * out_scale

        return run
