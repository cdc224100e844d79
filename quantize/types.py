"""The registry of layer types: one integer code per precision, mapped to larq quantizers.

| code | name    | weights                      | inputs (activations)          | bits |
|------|---------|------------------------------|-------------------------------|------|
| 0    | float32 | float                        | ReLU                          | 32   |
| 1    | binary  | ``ste_sign`` + weight clip   | ``ste_sign``                  | 1    |
| 2    | ternary | ``ste_tern`` (TWN threshold) | ``ste_tern``                  | 2    |
| 3    | int2    | DoReFa 2-bit (weights mode)  | DoReFa 2-bit (activations)    | 2    |
| 4    | int4    | DoReFa 4-bit (weights mode)  | DoReFa 4-bit (activations)    | 4    |
| 5    | int8    | DoReFa 8-bit (weights mode)  | DoReFa 8-bit (activations)    | 8    |

A layer's type sets the precision of its weights *and* of its inputs: the input activation of a
layer is applied by that layer (ReLU for float, the quantizer otherwise), so any sequence of
types composes. The first layer's input (the pixels) is never quantized.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import larq as lq


@dataclass(frozen=True)
class LayerType:
    """One precision a hidden layer can have."""

    code: int
    name: str
    bits: int
    make_kernel_quantizer: Callable[[], Any] | None
    make_input_quantizer: Callable[[], Any] | None
    clip_weights: bool

    @property
    def quantized(self) -> bool:
        return self.make_kernel_quantizer is not None

    def kernel_quantizer(self) -> Any:
        """A fresh larq kernel quantizer (None for float)."""
        return self.make_kernel_quantizer() if self.make_kernel_quantizer else None

    def input_quantizer(self) -> Any:
        """A fresh larq input quantizer (None for float, which uses ReLU instead)."""
        return self.make_input_quantizer() if self.make_input_quantizer else None

    def kernel_constraint(self) -> Any:
        return lq.constraints.WeightClip(1.0) if self.clip_weights else None


def _twn() -> Any:
    """Ternary weights with TWN's threshold, 0.7 * mean |w|: scale-free, so weights of any size ternarize
    (the fixed 0.05 threshold zeroes a freshly initialised conv kernel, whose weights are all below it)."""
    return lq.quantizers.SteTern(ternary_weight_networks=True)


def _dorefa(bits: int, mode: str) -> Callable[[], Any]:
    return lambda: lq.quantizers.DoReFa(k_bit=bits, mode=mode)


LAYER_TYPES: dict[int, LayerType] = {
    t.code: t
    for t in (
        LayerType(0, "float32", 32, None, None, False),
        LayerType(1, "binary", 1, lq.quantizers.SteSign, lq.quantizers.SteSign, True),
        LayerType(2, "ternary", 2, _twn, lq.quantizers.SteTern, True),
        LayerType(3, "int2", 2, _dorefa(2, "weights"), _dorefa(2, "activations"), False),
        LayerType(4, "int4", 4, _dorefa(4, "weights"), _dorefa(4, "activations"), False),
        LayerType(5, "int8", 8, _dorefa(8, "weights"), _dorefa(8, "activations"), False),
    )
}
_BY_NAME = {t.name: t for t in LAYER_TYPES.values()}
_ALIASES = {"float": "float32", "fp32": "float32", "bin": "binary", "tern": "ternary"}


def type_names() -> str:
    """A short listing such as ``0=float32, 1=binary, ...`` for messages."""
    return ", ".join(f"{t.code}={t.name}" for t in LAYER_TYPES.values())


def get_layer_type(key: int | str) -> LayerType:
    """Look a layer type up by integer code or by name (``"binary"``, ``"int4"``, ...)."""
    if isinstance(key, str) and not key.strip().lstrip("-").isdigit():
        name = _ALIASES.get(key.strip().lower(), key.strip().lower())
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise ValueError(f"unknown layer type {key!r}; expected one of: {type_names()}")
    code = int(key)
    if code not in LAYER_TYPES:
        raise ValueError(f"unknown layer type code {code}; expected one of: {type_names()}")
    return LAYER_TYPES[code]
