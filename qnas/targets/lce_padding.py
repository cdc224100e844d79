"""Binary convolutions with zero padding, rewritten so that Larq Compute Engine computes them exactly.

LCE's ``LceBconv2d`` pads a binary convolution's input with zeros (larq's ``pad_values=0``) by adding a
correction to the one-padded result. In LCE 0.16 that correction is wrong wherever a window overlaps the padding
on both sides of an axis, that is when the kernel is larger than the input along an axis (a 5x5 kernel on a
4x4 map, a 3x3 on 2x2): such an output then differs from Keras by up to the kernel's fan-in, and a trained
CIFAR-10 micro network exported as it was agreed with Keras on 68% of images. Chain networks never run a
kernel larger than its input, and neither do micro cells on images large enough.

``exact_zero_padding`` rewrites each such convolution of a Keras model as the same convolution padded with
ones, which LCE computes exactly, plus a constant: zero padding drops the padded taps, one padding adds each
padded tap's kernel weight, and the difference depends on the output position and channel only. The constant
(output height x width x channels floats) is scaled by the BatchNorm after the convolution (affine per channel)
and added after the Add that sums the node's operations, since LCE's converter folds a constant added straight
to a binary convolution's output, whatever its shape, into the per-channel bias; ``qnas.targets.cells`` prices
it (``pad_fix``).
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf


def needs_padding_fix(kernel: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether LCE miscomputes a stride-1 ``same`` zero-padded binary convolution of ``kernel`` on a ``size`` map."""
    return kernel[0] > size[0] or kernel[1] > size[1]


def _is_binary(quantizer) -> bool:
    return getattr(quantizer, "precision", None) == 1


def affected(layer) -> bool:
    """A binary convolution LCE bit-packs with zero padding, on an input smaller than its kernel."""
    if not isinstance(layer, lq.layers.QuantConv2D) or layer.padding != "same" or layer.pad_values != 0.0:
        return False
    if not (_is_binary(layer.input_quantizer) and _is_binary(layer.kernel_quantizer)):
        return False
    if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
        raise NotImplementedError(f"{layer.name}: only stride 1, undilated binary convolutions are handled")
    _, h, w, _ = layer.input_shape
    return needs_padding_fix(tuple(layer.kernel_size), (h, w))


class _AddConstant(tf.keras.layers.Layer):
    """Calls ``inner`` and adds a constant (1, H, W, C) tensor to its output."""

    def __init__(self, inner, constant: np.ndarray, **kwargs):
        super().__init__(name=inner.name, **kwargs)
        self.inner = inner
        self.constant = tf.constant(np.asarray(constant, np.float32))

    def call(self, x):
        return self.inner(x) + self.constant


def _consumers(model) -> dict[str, list[str]]:
    """Layer name -> names of the layers that read its output."""
    out: dict[str, list[str]] = {}
    for spec in model.get_config()["layers"]:
        for node in spec["inbound_nodes"]:
            for inbound in node:
                out.setdefault(inbound[0], []).append(spec["name"])
    return out


def exact_zero_padding(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` itself when LCE converts all its binary convolutions exactly, else a rewritten copy (see above).

    The copy shares every other layer (and its weights) with ``model``; it is meant for the converter only.
    """
    convs = [layer for layer in model.layers if affected(layer)]
    if not convs:
        return model
    readers, inputs = _graph(model)
    replace, fixes = {}, {}
    for conv in convs:
        ones = tf.ones((1, *conv.input_shape[1:]))
        one_padded = lq.layers.QuantConv2D.from_config({**conv.get_config(), "pad_values": 1.0})
        one_padded.build(conv.input_shape)
        one_padded.set_weights(conv.get_weights())
        replace[conv.name] = one_padded
        # the correction goes past the BatchNorm (affine per channel, so it only scales it) to the Add that sums
        # the convolution with others: LCE would fold a constant added to its output into its per-channel bias
        tail, fix = conv.name, conv(ones) - one_padded(ones)
        nxt = _only(readers, tail)
        if isinstance(nxt, str) and isinstance(model.get_layer(nxt), tf.keras.layers.BatchNormalization) \
                and inputs[nxt] == [tail]:
            bn = model.get_layer(nxt)
            tail, fix = nxt, bn(conv(ones), training=False) - bn(one_padded(ones), training=False)
        add = _only(readers, tail)
        if not (isinstance(add, str) and isinstance(model.get_layer(add), tf.keras.layers.Add)):
            raise NotImplementedError(f"{conv.name}: LCE needs its zero padding fixed in an Add after it")
        fixes[add] = fixes.get(add, 0.0) + fix.numpy()
    for name, fix in fixes.items():
        replace[name] = _AddConstant(model.get_layer(name), fix)

    def clone(layer):
        return replace.get(layer.name, layer)

    return tf.keras.models.clone_model(model, clone_function=clone)


def _graph(model) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(layer name -> the layers reading its output, layer name -> the layers it reads)."""
    readers: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    for spec in model.get_config()["layers"]:
        inputs[spec["name"]] = [inbound[0] for node in spec["inbound_nodes"] for inbound in node]
        for name in inputs[spec["name"]]:
            readers.setdefault(name, []).append(spec["name"])
    return readers, inputs


def _only(readers: dict[str, list[str]], name: str) -> str | None:
    """The one layer reading ``name`` (None when there are none or several)."""
    out = readers.get(name, [])
    return out[0] if len(out) == 1 else None
