"""Activation contribution: how much each unit (neuron or filter) matters to the loss, tracked while training.

The utility of unit ``j`` is the first-order Taylor estimate of how much the loss of one example
would change if the unit's output ``a_j`` were set to zero: ``|sum_positions a_j * dL/da_j|``
(the sum runs over the spatial positions of a filter; one position for a Dense unit), averaged
over examples. This is the per-example form of the |activation x gradient| criterion: summing
over positions before taking the absolute value measures the effect of removing the whole filter,
not of its pixels one at a time. A unit whose output never reaches the loss (zero outgoing
weights, or always zero) scores exactly 0.

``a_j`` is read where the next layer sees the unit: after the BatchNorm that directly follows the
linear layer, when there is one. Scores are computed in inference mode. Without labels, the
model's own predictions serve as targets, which makes the criterion usable on unlabelled samples.

``ContributionTracker`` is a Keras callback: every ``every`` training batches it scores the next
chunk of a sample you give it and keeps an exponential moving average per unit, so the utility
reflects the network as it trains. Utilities are attached to the model (``get_utilities``), where
``qnas.prune.prune`` and ``qnas.warmstart`` find them.

What it is good for (BENCHMARKS.md, "compression"): it finds units the network does not use. In a
layer with many such units, removing the lowest-utility half costs nothing, while removing the
highest-utility half is ruinous. Where nearly every unit is in use, the first-order estimate says
little about removing many units at once. Well-fit examples have near-zero gradients, so it
overlooks units that carry the common case. There, a random half does better, and so does a
least-squares refit of the next layer (``prune(..., refit=x)``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from qnas.errors import UserInputError
from qnas.keras_graph import resolve_linear, unit_output_layer
from qnas.prune import prunable_layers
from qnas.utilities import attach_utilities

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def outputs_probabilities(model: tf.keras.Model) -> bool:
    """True when the model ends in a softmax (then the loss takes probabilities, not logits)."""
    last = model.outputs[0]._keras_history.layer
    return isinstance(last, tf.keras.layers.Softmax) or getattr(last, "activation", None) is tf.keras.activations.softmax


class ContributionScorer:
    """Computes activation-contribution scores of some linear layers of one model, batch by batch."""

    def __init__(self, model: tf.keras.Model, layers: Sequence[str] | None = None, loss: LossFn | None = None):
        self.model = model
        names = list(layers) if layers else prunable_layers(model)
        if not names:
            raise UserInputError(f"model {model.name!r} has no hidden Dense/Conv layer to score")
        self.layers = [resolve_linear(model, n).name for n in names]
        reads = [unit_output_layer(model, n).output for n in self.layers]
        self._probe = tf.keras.Model(model.inputs, [*reads, model.outputs[0]])
        self._loss = loss
        self._from_logits = not outputs_probabilities(model)
        self._step = tf.function(self._batch_scores, reduce_retracing=True)

    def _batch_scores(self, x: tf.Tensor, y: tf.Tensor | None) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            outs = self._probe(x, training=False)
            acts, pred = outs[:-1], outs[-1]
            target = tf.argmax(pred, axis=-1) if y is None else y
            if self._loss is not None:
                value = tf.reduce_sum(self._loss(target, pred))
            else:
                value = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(
                    target, pred, from_logits=self._from_logits))
        grads = tape.gradient(value, acts)
        out = []
        for a, g in zip(acts, grads):
            per_example = tf.reduce_sum(a * g, axis=list(range(1, len(a.shape) - 1))) if len(a.shape) > 2 else a * g
            out.append(tf.reduce_sum(tf.abs(per_example), axis=0))
        return out

    def __call__(self, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Mean score per unit over the examples of ``x`` (labels ``y`` or, if None, the model's predictions)."""
        if len(x) == 0:
            raise UserInputError("need at least one example to score units")
        if y is not None:
            y = _sparse_labels(y, len(x))
        totals = [np.zeros(resolve_linear(self.model, n).output_shape[-1]) for n in self.layers]
        for start in range(0, len(x), batch_size):
            xb = tf.convert_to_tensor(x[start:start + batch_size], dtype=tf.float32)
            yb = None if y is None else tf.convert_to_tensor(y[start:start + batch_size])
            for total, s in zip(totals, self._step(xb, yb)):
                total += s.numpy()
        return {n: t / len(x) for n, t in zip(self.layers, totals)}


def _sparse_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != n:
        raise UserInputError(f"got {n} examples but {len(y)} labels")
    return (np.argmax(y, axis=-1) if y.ndim == 2 else y.reshape(-1)).astype(np.int64)


def contribution_scores(model: tf.keras.Model, x: np.ndarray, y: np.ndarray | None = None,
                        layers: Sequence[str] | None = None, batch_size: int = 256,
                        loss: LossFn | None = None) -> dict[str, np.ndarray]:
    """Activation contribution of every unit of the given (default: all prunable) layers on ``x``."""
    return ContributionScorer(model, layers, loss)(x, y, batch_size)


def activation_scores(model: tf.keras.Model, x: np.ndarray, layers: Sequence[str] | None = None,
                      batch_size: int = 256) -> dict[str, np.ndarray]:
    """Mean |activation| of every unit on ``x`` (a cheaper, gradient-free data-driven utility)."""
    names = [resolve_linear(model, n).name for n in (layers or prunable_layers(model))]
    probe = tf.keras.Model(model.inputs, [unit_output_layer(model, n).output for n in names])
    outs = probe.predict(x, batch_size=batch_size, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return {n: np.abs(o).reshape(-1, o.shape[-1]).mean(axis=0).astype(np.float64) for n, o in zip(names, outs)}


class ContributionTracker(tf.keras.callbacks.Callback):
    """Keras callback: an exponential moving average of each unit's activation contribution during ``fit``.

    Every ``every`` training batches, the next ``batch_size`` examples of ``(x, y)`` (cycling) are
    scored and ``u <- decay * u + (1 - decay) * score`` (the first score initialises ``u``).
    ``y=None`` uses the model's predictions as targets. Read the result from ``.utilities`` or
    ``get_utilities(model)``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, layers: Sequence[str] | None = None,
                 decay: float = 0.9, every: int = 10, batch_size: int = 256, loss: LossFn | None = None):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise UserInputError(f"decay must be in [0, 1), got {decay}")
        if every < 1 or batch_size < 1:
            raise UserInputError("every and batch_size must be positive")
        self.x = np.asarray(x)
        self.y = None if y is None else _sparse_labels(y, len(self.x))
        self.layers, self.decay, self.every, self.batch_size, self.loss = layers, decay, every, batch_size, loss
        self.utilities: dict[str, np.ndarray] = {}
        self.updates = 0
        self._scorer: ContributionScorer | None = None
        self._batches = 0
        self._cursor = 0

    def on_train_begin(self, logs=None) -> None:
        if self._scorer is None or self._scorer.model is not self.model:
            self._scorer = ContributionScorer(self.model, self.layers, self.loss)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._batches += 1
        if self._batches % self.every == 0:
            self.update()

    def on_train_end(self, logs=None) -> None:
        if not self.updates:
            self.update()

    def update(self) -> None:
        """Score the next chunk of the sample and fold it into the moving averages."""
        if self._scorer is None:
            self._scorer = ContributionScorer(self.model, self.layers, self.loss)
        idx = (self._cursor + np.arange(min(self.batch_size, len(self.x)))) % len(self.x)
        self._cursor = int(idx[-1] + 1) % len(self.x)
        scores = self._scorer(self.x[idx], None if self.y is None else self.y[idx], self.batch_size)
        for name, s in scores.items():
            old = self.utilities.get(name)
            self.utilities[name] = s if old is None else self.decay * old + (1.0 - self.decay) * s
        self.updates += 1
        attach_utilities(self.model, self.utilities)
