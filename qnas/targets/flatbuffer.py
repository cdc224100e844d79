"""Read what a ``.tflite`` file actually holds: its operators and its constant tensors with their storage.

Used by the tests (a binary layer must become ``LceBconv2d``, an int8 layer an INT8 kernel) and by
the calibration of the byte model (how many bytes each kind of constant takes in the file).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Constant:
    """One constant tensor: its name, element type, shape and the bytes of its data in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    channels_quantized: int  # length of its per-channel scale list (0: not quantized)


@dataclass(frozen=True)
class FileContents:
    """The operators (in execution order) and constants of a TFLite file, and its size."""

    ops: list[str]
    constants: list[Constant]
    activations: dict[str, str]  # non-constant tensor name -> element type
    size: int

    @property
    def constant_bytes(self) -> int:
        return sum(c.nbytes for c in self.constants)

    def count(self, op: str) -> int:
        return sum(1 for o in self.ops if o == op)


def read_tflite(path: str | Path) -> FileContents:
    """Parse ``path`` with TFLite's flatbuffer schema (custom ops such as LCE's are listed by their name)."""
    data = Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for code in model.operatorCodes:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = builtin_names.get(builtin, str(builtin))
        codes.append(code.customCode.decode() if name == "CUSTOM" and code.customCode else name)
    graph = model.subgraphs[0]
    ops = [codes[op.opcodeIndex] for op in graph.operators]
    constants, activations = [], {}
    for tensor in graph.tensors:
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        dtype = _TYPE_NAMES.get(tensor.type, str(tensor.type))
        buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
        raw = getattr(buffer, "data", None) if buffer is not None else None
        size = int(np.asarray(raw).size) if raw is not None else int(getattr(buffer, "size", 0) or 0)
        if size:
            quant = tensor.quantization
            scales = 0 if quant is None or quant.scale is None else len(quant.scale)
            constants.append(Constant(name, dtype, tuple(int(d) for d in tensor.shape), size, scales))
        else:
            activations[name] = dtype
    return FileContents(ops=ops, constants=constants, activations=activations, size=len(data))
