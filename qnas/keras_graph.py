"""Reading a Keras model as a graph: which layers are linear, how wide, who feeds whom, where a unit's output is read.

Shared by pruning (``qnas.prune``), activation contribution (``qnas.contribution``), warm starts and
rank reduction. It only reads models; nothing here changes one.
"""
from __future__ import annotations

import tensorflow as tf

from qnas.errors import UserInputError

Layer = tf.keras.layers.Layer

_L = tf.keras.layers
# Layers without weights that act on each channel separately: a kept channel set passes through.
PER_CHANNEL = (
    _L.ReLU, _L.Activation, _L.LeakyReLU, _L.ELU, _L.ThresholdedReLU, _L.Dropout, _L.SpatialDropout1D,
    _L.SpatialDropout2D, _L.SpatialDropout3D, _L.GaussianNoise, _L.GaussianDropout, _L.AlphaDropout,
    _L.MaxPooling1D, _L.MaxPooling2D, _L.MaxPooling3D, _L.AveragePooling1D, _L.AveragePooling2D,
    _L.AveragePooling3D, _L.GlobalMaxPooling1D, _L.GlobalMaxPooling2D, _L.GlobalMaxPooling3D,
    _L.GlobalAveragePooling1D, _L.GlobalAveragePooling2D, _L.GlobalAveragePooling3D, _L.ZeroPadding1D,
    _L.ZeroPadding2D, _L.ZeroPadding3D, _L.Cropping1D, _L.Cropping2D, _L.Cropping3D, _L.UpSampling1D,
    _L.UpSampling2D, _L.UpSampling3D, _L.ActivityRegularization,
)
_NOT_PLAIN_CONV = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose, _L.DepthwiseConv2D)


def is_linear(layer: Layer) -> bool:
    """A Dense or plain Conv layer (larq's QuantDense/QuantConv* included): its units can be pruned."""
    if isinstance(layer, _L.Dense):
        return True
    if isinstance(layer, (_L.Conv1D, _L.Conv2D, _L.Conv3D)) and not isinstance(layer, _NOT_PLAIN_CONV):
        return getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last"
    return False


def width(layer: Layer) -> int:
    """Number of units (Dense) or filters (Conv) of a linear layer."""
    return int(layer.units if isinstance(layer, _L.Dense) else layer.filters)


def width_key(layer: Layer) -> str:
    return "units" if isinstance(layer, _L.Dense) else "filters"


def source_layer(tensor: tf.Tensor) -> Layer:
    return tensor._keras_history.layer


def inbound_names(layer: Layer) -> list[str]:
    """Names of the layers feeding ``layer`` in the graph it was first called in."""
    nodes = layer._inbound_nodes
    if not nodes:
        return []
    return [lay.name for lay in tf.nest.flatten(nodes[0].inbound_layers)]


def graph_layers(model: tf.keras.Model) -> list[Layer]:
    """Every layer of a model in topological order, input layers first (Sequential included)."""
    if not getattr(model, "_is_graph_network", False) or not model.inputs:
        raise UserInputError(
            f"model {model.name!r} has no known input shape; build it (e.g. tf.keras.Input or input_shape=...) first"
        )
    inputs = [source_layer(t) for t in model.inputs]
    rest = [lay for lay in model.layers if lay not in inputs]
    for lay in rest:
        if isinstance(lay, tf.keras.Model):
            raise UserInputError(f"nested model {lay.name!r} inside {model.name!r} is not supported; flatten it first")
    return inputs + rest


def consumers(model: tf.keras.Model) -> dict[str, list[str]]:
    """For each layer name, the names of the layers that take its output."""
    out: dict[str, list[str]] = {lay.name: [] for lay in graph_layers(model)}
    for lay in graph_layers(model):
        for src in inbound_names(lay):
            if src in out:
                out[src].append(lay.name)
    return out


def resolve_linear(model: tf.keras.Model, name: str) -> Layer:
    """The linear layer called ``name`` (``"h0"`` is accepted for ``"h0_linear"``), checked."""
    names = {lay.name for lay in model.layers}
    if name not in names and f"{name}_linear" in names:
        name = f"{name}_linear"
    if name not in names:
        linear = [lay.name for lay in model.layers if is_linear(lay)]
        raise UserInputError(f"model {model.name!r} has no layer {name!r}; its Dense/Conv layers are {linear}")
    layer = model.get_layer(name)
    if not is_linear(layer):
        raise UserInputError(
            f"layer {name!r} is a {type(layer).__name__}; only Dense and Conv (channels-last, groups=1) units can be "
            "pruned or rank-reduced"
        )
    return layer


def unit_output_layer(model: tf.keras.Model, name: str) -> Layer:
    """Where a unit's value is read: the BatchNorm right after the linear layer if there is one, else itself."""
    nxt = consumers(model)[name]
    if len(nxt) == 1 and isinstance(model.get_layer(nxt[0]), tf.keras.layers.BatchNormalization):
        return model.get_layer(nxt[0])
    return model.get_layer(name)


def linear_copy(layer: Layer) -> Layer:
    """The layer without its activation (same weights), to read pre-activation outputs."""
    copy = type(layer).from_config({**layer.get_config(), "activation": "linear", "name": f"{layer.name}_pre"})
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy
