"""Precise BatchNorm: set the moving statistics to the average batch statistics at the current weights.

Keras keeps an exponential moving average of batch statistics. It lags behind weights that change
fast (binary latent weights flip signs; Adam's steps are large early on), so a model evaluated in
inference mode can be far worse than the same weights in training mode: on MNIST a binary conv
net's validation accuracy swung between 20% and 90% from epoch to epoch, and early stopping then
picked a lucky epoch. Re-estimating the statistics from a few thousand training images costs a few
forward passes and makes inference-mode accuracy describe the weights. Any model with BatchNorm
layers works (children of a supernet included).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


class BatchNormCalibrator:
    """Re-estimates the moving statistics of every BatchNorm layer of ``model`` (see the module docstring).

    Each layer's moving mean and variance become the average over batches of its input's batch
    mean and variance, with the network in training mode (as during training).
    """

    def __init__(self, model: tf.keras.Model, batch_size: int):
        self.layers = [lay for lay in model.layers if isinstance(lay, tf.keras.layers.BatchNormalization)]
        self.batch_size = batch_size
        if self.layers:
            probe = tf.keras.Model(model.inputs, [lay.input for lay in self.layers])
            axes = [list(range(len(lay.input.shape) - 1)) for lay in self.layers]

            def stats(x: tf.Tensor) -> list:
                return [tf.nn.moments(t, ax) for t, ax in zip(_as_list(probe(x, training=True)), axes)]

            self._stats = tf.function(stats)

    def __call__(self, x: np.ndarray) -> None:
        """Re-estimate from the images ``x`` (in training-mode batches of ``batch_size``)."""
        if not self.layers:
            return
        sums = [[np.zeros(lay.moving_mean.shape), np.zeros(lay.moving_variance.shape)] for lay in self.layers]
        starts = range(0, len(x), self.batch_size)
        for start in starts:
            for acc, (mean, var) in zip(sums, self._stats(x[start:start + self.batch_size])):
                acc[0] += mean.numpy()
                acc[1] += var.numpy()
        for lay, (mean, var) in zip(self.layers, sums):
            lay.moving_mean.assign(mean / len(starts))
            lay.moving_variance.assign(var / len(starts))


def _as_list(outputs: Any) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
