"""Build a Keras model from an architecture, and count its bits without building it.

The network for space ``mlp``: flatten, hidden blocks (``quantize.blocks``), ReLU, Dense classifier,
softmax. For ``conv``: hidden 3x3 conv blocks with 2x2 max pooling after the positions the space
fixes, ReLU, global average pooling, Dense classifier, softmax. The classifier stays float.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture
from quantize.blocks import hidden_block, uses_batchnorm
from quantize.types import LAYER_TYPES

if TYPE_CHECKING:
    from qnas.space import SearchSpace

CONV_KERNEL = 3


def build_model(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    name: str = "child",
) -> tf.keras.Model:
    """A fresh, untrained Keras model for ``arch`` in ``space``."""
    space.check(arch)
    input_shape = tuple(int(d) for d in input_shape)
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = inputs
    if space.kind == "dense":
        x = tf.keras.layers.Flatten(name="flatten")(x)
    elif len(input_shape) == 2:
        x = tf.keras.layers.Reshape(input_shape + (1,), name="add_channel")(x)
    pools = space.pool_after(len(arch))
    for i, layer in enumerate(arch.layers):
        for keras_layer in hidden_block(space.kind, layer.width, LAYER_TYPES[layer.type_code], i,
                                        space.float_batchnorm, CONV_KERNEL):
            x = keras_layer(x)
        if i in pools:
            x = tf.keras.layers.MaxPool2D(2, name=f"h{i}_pool")(x)
    x = tf.keras.layers.ReLU(name="out_act")(x)
    if space.kind == "conv":
        x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = tf.keras.layers.Dense(num_classes, name="logits")(x)
    probs = tf.keras.layers.Softmax(name="probs")(logits)
    return tf.keras.Model(inputs, probs, name=name)


def block_output_names(model: tf.keras.Model, num_layers: int) -> list[str]:
    """Name of the last layer of each hidden block: where the block's embedding is read."""
    names = [layer.name for layer in model.layers]
    out = []
    for i in range(num_layers):
        own = [n for n in names if n.startswith(f"h{i}_") and not n.endswith("_act")]
        if not own:
            raise ValueError(f"model {model.name!r} has no hidden block {i}")
        out.append(own[-1])
    return out


def block_index(layer_name: str) -> int:
    """The hidden block a layer belongs to, from its name (``h2_linear`` -> 2)."""
    match = re.match(r"h(\d+)_", layer_name)
    if match is None:
        raise ValueError(f"{layer_name!r} is not a layer of a hidden block (h<i>_...)")
    return int(match.group(1))


def embedding_model(model: tf.keras.Model, layer_names: Sequence[str] | None = None) -> tf.keras.Model:
    """A model mapping inputs to the outputs of the given layers (default: every hidden block)."""
    if layer_names is None:
        blocks = {m.group(1) for lay in model.layers if (m := re.match(r"h(\d+)_", lay.name))}
        layer_names = block_output_names(model, len(blocks))
    return tf.keras.Model(model.inputs, [model.get_layer(n).output for n in layer_names])


def arch_bits(space: SearchSpace, arch: Architecture, input_shape: Sequence[int], num_classes: int) -> int:
    """Memory of the model ``build_model`` would make, in bits, without building it.

    Weights count at their type's bit-width; biases and BatchNorm (two numbers a channel, as larq
    counts it) at 32 bits. Agrees with ``quantize.size.model_bits`` (tested).
    """
    fan_in = space.input_fan_in(input_shape)
    bits = 0
    for layer in arch.layers:
        layer_type = LAYER_TYPES[layer.type_code]
        kernel = int(np.prod(space.kernel_shape(fan_in, layer.width)))
        extra = 2 * layer.width if uses_batchnorm(layer_type, space.float_batchnorm) else layer.width
        bits += kernel * layer_type.bits + extra * 32
        fan_in = layer.width
    bits += (fan_in * num_classes + num_classes) * 32
    return bits
