"""PCA rank reduction: replace a linear layer by a k-dimensional projection and a k -> out linear map.

For a Dense (or Conv) layer with pre-activation outputs ``y = x W + b`` on a sample of inputs,
let ``mu`` be their mean and ``U`` (out x k) the top-k principal directions of ``y - mu``. Then

    y ~ mu + (y - mu) U U^T = (x W U + b U) U^T + (mu - mu U U^T)

so the layer becomes a layer of k units (kernel ``W U``, bias ``b U``, no activation) followed by a
``k -> out`` linear map (kernel ``U^T``, bias ``mu - mu U U^T``) that carries the original
activation, i.e. the map sits before the nonlinearity and the BatchNorm that follow are untouched.
For a Conv layer the projection keeps the kernel size and strides and the map back is a 1x1
convolution; the statistics run over every spatial position. If the outputs on the sample span
an affine subspace of dimension <= k the replacement is exact.

Parameters fall from ``in * out`` to ``in * k + k * out``, so it pays when k is well below
``in * out / (in + out)``. Only layers with a float kernel can be projected (a binary kernel times
``U`` is no longer binary); an input quantizer is kept on the projection.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from qnas.errors import UserInputError
from qnas.prune import linear_copy, rebuild, resolve_linear, width

_L = tf.keras.layers


@dataclass
class OutputStats:
    """Mean and covariance of a layer's pre-activation outputs over a sample (all positions for conv)."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    def basis(self, k: int) -> tuple[np.ndarray, float]:
        """The top-k principal directions (out x k) and the fraction of the variance they keep."""
        values, vectors = np.linalg.eigh(self.cov)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        total = float(values.sum())
        return vectors[:, :k], (float(values[:k].sum()) / total if total > 0 else 1.0)


def _check_float_kernel(layer: tf.keras.layers.Layer) -> None:
    if getattr(layer, "kernel_quantizer", None) is not None:
        raise UserInputError(
            f"layer {layer.name!r} has a quantized kernel; rank reduction needs a float kernel (a projected binary "
            "kernel is no longer binary)"
        )


def output_stats(model: tf.keras.Model, layer_name: str, x: np.ndarray, batch_size: int = 256) -> OutputStats:
    """Mean and covariance of the pre-activation outputs of ``layer_name`` on the examples ``x``."""
    layer = resolve_linear(model, layer_name)
    if len(x) == 0:
        raise UserInputError("need at least one example to estimate a layer's output statistics")
    feed = tf.keras.Model(model.inputs, layer.input)
    pre = linear_copy(layer)
    out = width(layer)
    total, outer, count = np.zeros(out), np.zeros((out, out)), 0
    for start in range(0, len(x), batch_size):
        inputs = feed(x[start:start + batch_size], training=False)
        y = pre(inputs).numpy().reshape(-1, out).astype(np.float64)
        total += y.sum(axis=0)
        outer += y.T @ y
        count += len(y)
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    return OutputStats(mean, (cov + cov.T) / 2.0, count)


def _up_layer(layer: tf.keras.layers.Layer, activation) -> tf.keras.layers.Layer:
    """The k -> out map: Dense, or a 1x1 convolution of the layer's dimensionality."""
    name = f"{layer.name}_up"
    if isinstance(layer, _L.Dense):
        return _L.Dense(width(layer), activation=activation, name=name)
    conv = {1: _L.Conv1D, 2: _L.Conv2D, 3: _L.Conv3D}[layer.rank]
    return conv(width(layer), 1, activation=activation, name=name)


def rank_reduce(model: tf.keras.Model, layer: str, k: int, x: np.ndarray, batch_size: int = 256,
                stats: OutputStats | None = None) -> tf.keras.Model:
    """A new model where ``layer`` is projected onto the top-k principal directions of its outputs on ``x``.

    The projection keeps the layer's name (with k units/filters); the map back is ``{layer}_up``
    and carries the layer's activation. Returns a new, uncompiled model.
    """
    lay = resolve_linear(model, layer)
    _check_float_kernel(lay)
    out = width(lay)
    if not 1 <= int(k) <= out:
        raise UserInputError(f"rank must be in 1..{out} for {lay.name!r}, got {k}")
    stats = stats or output_stats(model, lay.name, x, batch_size)
    basis, _ = stats.basis(int(k))
    shift = stats.mean - (stats.mean @ basis) @ basis.T

    def project(new: tf.keras.layers.Layer, weights: list[np.ndarray]):
        cfg = new.get_config()
        key = "units" if isinstance(new, _L.Dense) else "filters"
        proj = type(new).from_config({**cfg, key: int(k), "activation": "linear"})
        proj_weights = [np.tensordot(weights[0], basis, axes=([-1], [0])).astype(np.float32)]
        if lay.use_bias:
            proj_weights.append((weights[1] @ basis).astype(np.float32))
        up = _up_layer(lay, cfg["activation"])
        up_kernel = basis.T.reshape((1,) * (len(weights[0].shape) - 2) + basis.T.shape)
        return [(proj, proj_weights), (up, [up_kernel.astype(np.float32), shift.astype(np.float32)])]

    return rebuild(model, replace={lay.name: project})


def rank_params(model: tf.keras.Model, layer: str, k: int) -> tuple[int, int]:
    """Weights of ``layer`` before and after rank reduction to ``k`` (kernels and biases)."""
    lay = resolve_linear(model, layer)
    kernel = lay.get_weights()[0].shape
    fan_in, out = int(np.prod(kernel[:-1])), int(kernel[-1])
    bias = out if lay.use_bias else 0
    return fan_in * out + bias, fan_in * k + (k if lay.use_bias else 0) + k * out + out
