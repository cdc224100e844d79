"""Factories for one hidden layer block: input activation, (quantized) linear map, BatchNorm.

A block for layer ``index`` of type ``t`` is, in order:

1. its input activation, unless it is the first layer: ReLU for float, ``t``'s input quantizer otherwise
   (the quantizer sits inside the larq layer, so larq's profile sees the input precision);
2. a larq ``QuantDense`` / ``QuantConv2D`` with ``t``'s kernel quantizer and weight clip;
3. ``BatchNormalization`` when the layer is quantized or the space asks for it; otherwise a bias.

Because each block normalises its output and the next block applies its own activation, every
sequence of types is meaningful (a sign of a BatchNorm output, never a sign of a ReLU output).
Layer names carry the block index (``h{index}_linear``, ``h{index}_bn``, ...), which the
supernet, the pruning operators and the similarity loss rely on.
"""
from __future__ import annotations

import larq as lq
import tensorflow as tf

from quantize.types import LayerType

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


def uses_batchnorm(layer_type: LayerType, float_batchnorm: bool) -> bool:
    """Quantized layers always get BatchNorm (BNNs need it); float ones when the space says so."""
    return layer_type.quantized or float_batchnorm


def hidden_block(
    kind: str,
    width: int,
    layer_type: LayerType,
    index: int,
    float_batchnorm: bool,
    kernel_size: int = 3,
) -> list[tf.keras.layers.Layer]:
    """The Keras layers of one hidden block, in order (see the module docstring)."""
    layers: list[tf.keras.layers.Layer] = []
    first = index == 0
    if not first and not layer_type.quantized:
        layers.append(tf.keras.layers.ReLU(name=f"h{index}_act"))
    batchnorm = uses_batchnorm(layer_type, float_batchnorm)
    common = {
        "input_quantizer": None if first else layer_type.input_quantizer(),
        "kernel_quantizer": layer_type.kernel_quantizer(),
        "kernel_constraint": layer_type.kernel_constraint(),
        "use_bias": not batchnorm,
        "kernel_initializer": "glorot_uniform",
        "name": f"h{index}_linear",
    }
    if kind == "dense":
        layers.append(lq.layers.QuantDense(width, **common))
    elif kind == "conv":
        layers.append(lq.layers.QuantConv2D(width, kernel_size, padding="same", **common))
    else:
        raise ValueError(f"unknown block kind {kind!r}; expected 'dense' or 'conv'")
    if batchnorm:
        layers.append(
            tf.keras.layers.BatchNormalization(
                momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"h{index}_bn"
            )
        )
    return layers
