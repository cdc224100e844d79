"""Knowledge distillation from a float parent: soft targets (its logits) and feature targets (the similarity term).

Two losses, used by the supernet's child phase and by ``train_arc --distill``:

* ``soft_target_loss``: ``(1 - alpha) * CE(labels, student) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))``
  (Hinton et al. 2015; ``T^2`` keeps the soft part's gradients on the scale of the hard part's). Teacher
  logits may be log-probabilities: softmax ignores a constant per row, so any model that outputs
  probabilities can teach.
* ``feature_loss``: the differentiable t-SNE similarity (Student-t KL, ``qnas.similarity``) between the
  student's block outputs and the parent's affinities ``P`` on the same minibatch, summed over the matched
  layers: the reward's similarity term turned into a training loss.

``Distiller`` wraps a student Keras model so that ``fit`` trains it with both losses while ``evaluate``,
checkpoints and saving see the student alone.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from qnas.errors import UserInputError
from qnas.models import block_output_names
from qnas.parent import Parent
from qnas.similarity import EPSILON, gaussian_affinities, matching_depths, student_t_affinities


def log_probabilities(probs: np.ndarray | tf.Tensor) -> tf.Tensor:
    """Logits (up to a constant per row) of a model that outputs probabilities."""
    return tf.math.log(tf.maximum(tf.cast(probs, tf.float32), 1e-8))


def teacher_logits(model: tf.keras.Model, x: np.ndarray, batch_size: int = 500) -> tf.Tensor:
    """A trained model's logits on ``x`` (inference mode): the log of its outputs when they are probabilities."""
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return log_probabilities(out)
    return tf.constant(out)


def soft_target_loss(labels: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor | None,
                     alpha: float, temperature: float) -> tf.Tensor:
    """Hard cross-entropy blended with the temperature-softened KL to the teacher; plain CE without a teacher."""
    hard = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True))
    if teacher_logits is None or alpha == 0:
        return hard
    t = tf.cast(temperature, student_logits.dtype)
    target = tf.nn.softmax(tf.cast(teacher_logits, student_logits.dtype) / t)
    log_student = tf.nn.log_softmax(student_logits / t)
    kl = tf.reduce_mean(tf.reduce_sum(target * (tf.math.log(tf.maximum(target, 1e-8)) - log_student), axis=1))
    return (1.0 - alpha) * hard + alpha * t * t * kl


def feature_affinities(parent_embeddings: Sequence[np.ndarray], perplexity: float) -> list[tf.Tensor]:
    """The parent side of the feature loss on one minibatch: a joint ``P`` per embedding layer."""
    return [tf.constant(gaussian_affinities(np.reshape(e, (len(e), -1)), perplexity), tf.float64)
            for e in parent_embeddings]


def feature_loss(child_embeddings: Sequence[tf.Tensor], joint_p: Sequence[tf.Tensor]) -> tf.Tensor:
    """Sum over layers of the Student-t KL(P || Q_child): differentiable in the child's embeddings."""
    total = tf.constant(0.0, tf.float64)
    for emb, p in zip(child_embeddings, joint_p):
        q = student_t_affinities(emb)
        total += tf.reduce_sum(p * (tf.math.log(tf.maximum(p, EPSILON)) - tf.math.log(tf.maximum(q, EPSILON))))
    return tf.cast(total, tf.float32)


def distill_perplexity(batch_size: int, preferred: float = 30.0) -> float:
    """EComp's perplexity of 30, lowered for small minibatches (it must stay well below the batch size)."""
    return float(min(preferred, max(2.0, (batch_size - 1) / 3)))


@dataclass(frozen=True)
class DistillConfig:
    """``train_arc --distill``: how much a retrained architecture learns from the parent rather than the labels."""

    alpha: float = 0.5  # weight of the soft targets; 1 - alpha on the labels
    temperature: float = 4.0
    features: float = 0.0  # weight of the similarity term on block outputs (0: off)

    def __str__(self) -> str:
        return f"alpha={self.alpha:g},temperature={self.temperature:g},features={self.features:g}"

    def validate(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise UserInputError(f"--distill must be in (0, 1], got {self.alpha}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise UserInputError(f"--distill_temperature must be a positive number, got {self.temperature}")
        if not (self.features >= 0 and math.isfinite(self.features)):
            raise UserInputError(f"--distill_features must be 0 or a positive number, got {self.features}")


def _output_is_probability(model: tf.keras.Model) -> bool:
    """Whether ``model`` ends in a softmax (a Softmax layer, or a layer whose activation is softmax)."""
    last = model.layers[-1]
    return isinstance(last, tf.keras.layers.Softmax) or getattr(last, "activation", None) is tf.keras.activations.softmax


class Distiller(tf.keras.Model):
    """Trains ``student`` on the labels and on a frozen ``teacher``; evaluation, weights and saving stay the student's.

    ``fit`` on a Distiller updates the student's variables only. With ``config.features`` the student's
    ``student_layers`` and the teacher's ``teacher_layers`` (paired in order) add the similarity loss,
    computed on each minibatch (the teacher's affinities by ``qnas.similarity``'s perplexity search).
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, config: DistillConfig,
                 student_layers: Sequence[str] = (), teacher_layers: Sequence[str] = (), batch_size: int = 100):
        super().__init__(name="distiller")
        self.student, self.teacher, self.config = student, teacher, config
        teacher.trainable = False
        self._teacher_is_probability = _output_is_probability(teacher)
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        features = config.features > 0 and len(student_layers) > 0
        s_outs = [student.get_layer(n).output for n in student_layers] if features else []
        t_outs = [teacher.get_layer(n).output for n in teacher_layers] if features else []
        self.student_outputs = tf.keras.Model(student.inputs, [*s_outs, student.get_layer("logits").output])
        self.teacher_outputs = tf.keras.Model(teacher.inputs, [*t_outs, teacher.output])
        self.num_features = len(s_outs)
        self.perplexity = distill_perplexity(batch_size)

    @property
    def metrics(self) -> list:
        return [self.loss_tracker, *self.compiled_metrics.metrics]

    def call(self, x, training: bool = False):
        return self.student(x, training=training)

    def _teacher(self, x) -> tuple[list[tf.Tensor], tf.Tensor]:
        outs = self.teacher_outputs(tf.reshape(x, [-1, *self.teacher.input_shape[1:]]), training=False)
        outs = outs if isinstance(outs, list) else [outs]
        logits = log_probabilities(outs[-1]) if self._teacher_is_probability else outs[-1]
        return outs[:-1], tf.stop_gradient(logits)

    def train_step(self, data):
        x, y = data
        teacher_features, teacher_logits = self._teacher(x)
        joint = [tf.numpy_function(lambda e: gaussian_affinities(e.reshape(len(e), -1), self.perplexity),
                                   [f], tf.float64) for f in teacher_features]
        with tf.GradientTape() as tape:
            outs = self.student_outputs(x, training=True)
            outs = outs if isinstance(outs, list) else [outs]
            logits = outs[-1]
            loss = soft_target_loss(tf.reshape(tf.cast(y, tf.int32), [-1]), logits, teacher_logits,
                                    self.config.alpha, self.config.temperature)
            if self.num_features:
                loss += self.config.features * feature_loss(outs[:-1], joint)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._results(loss, y, tf.nn.softmax(logits))

    def test_step(self, data):
        x, y = data
        probs = self.student(x, training=False)
        return self._results(tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, probs)), y, probs)

    def _results(self, loss: tf.Tensor, y: tf.Tensor, probs: tf.Tensor) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics}


def make_distiller(student: tf.keras.Model, parent: Parent, config: DistillConfig, num_layers: int,
                   batch_size: int) -> Distiller:
    """A Distiller of ``student`` (``num_layers`` hidden blocks) from ``parent``, block outputs paired by depth."""
    student_layers, teacher_layers = [], []
    if config.features > 0:
        blocks = block_output_names(student, num_layers)
        depths = matching_depths(num_layers, len(parent.embedding_layers))
        student_layers, teacher_layers = [blocks[d] for d in depths], list(parent.embedding_layers)
    return Distiller(student, parent.model, config, student_layers, teacher_layers, batch_size)
