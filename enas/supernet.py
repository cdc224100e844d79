"""The shared-weight supernet: one set of weights from which every child of a search space is cut.

Layer ``i`` holds one kernel per candidate type (as ENAS keeps one set of weights per operation),
each at the space's largest width, plus one BatchNorm scale/offset per type and, for float layers
without BatchNorm, a bias. A child (a width and a type per layer) uses the first ``width`` units of
its type's kernel. Widths are applied with masks and types with ``tf.switch_case``, so one traced
graph serves every child: no retracing when the child changes each minibatch.

The quantized kernel is ``q(K * M) * M`` with ``M`` the child's width mask. That equals quantizing
the sliced kernel, also for DoReFa's weight mode, whose normalisation takes a maximum over the tensor.

BatchNorm statistics depend on the whole child, so a child is never scored with batch statistics or
with statistics shared between children. ``calibrate`` measures its own statistics on a training batch,
and ``evaluate`` then runs it in inference mode. ``export_child`` builds the standalone Keras model
with the sliced weights and those statistics, which gives the same outputs (tested).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from enas.arch import Architecture
from enas.models import CONV_KERNEL, build_model
from enas.space import SearchSpace
from quantize.blocks import BN_EPSILON, uses_batchnorm
from quantize.types import LAYER_TYPES


@dataclass
class ChildResult:
    """What one evaluation of a child returns."""

    accuracy: float
    loss: float
    embeddings: list[np.ndarray]


class Supernet(tf.Module):
    """Shared weights for every child of ``space`` on inputs of ``input_shape``."""

    def __init__(self, space: SearchSpace, input_shape: Sequence[int], num_classes: int, seed: int = 0,
                 learning_rate: float = 2e-3, name: str = "supernet"):
        super().__init__(name=name)
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = num_classes
        self.max_width = max(space.widths)
        self.types = [LAYER_TYPES[c] for c in space.types]
        self.num_layers = space.num_layers
        self.pools = space.pool_after(space.num_layers)
        rng = np.random.default_rng(seed)

        def init(shape):  # Glorot uniform; a distinct draw for every type and layer
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
            return rng.uniform(-limit, limit, size=shape).astype(np.float32)

        num_types, wmax = len(self.types), self.max_width
        self.kernels, self.biases, self.gammas, self.betas = [], [], [], []
        for i in range(self.num_layers):
            fan_in = self._fan_in(i)
            shape = (fan_in, wmax) if space.kind == "dense" else (CONV_KERNEL, CONV_KERNEL, fan_in, wmax)
            self.kernels.append(tf.Variable(tf.stack([init(shape) for _ in range(num_types)]), name=f"kernel_{i}"))
            self.biases.append(tf.Variable(tf.zeros(wmax), name=f"bias_{i}"))
            self.gammas.append(tf.Variable(tf.ones((num_types, wmax)), name=f"gamma_{i}"))
            self.betas.append(tf.Variable(tf.zeros((num_types, wmax)), name=f"beta_{i}"))
        self.classifier_kernel = tf.Variable(init((wmax, num_classes)), name="classifier_kernel")
        self.classifier_bias = tf.Variable(tf.zeros(num_classes), name="classifier_bias")
        self._kernel_quantizers = [t.kernel_quantizer() for t in self.types]
        self._input_quantizers = [t.input_quantizer() for t in self.types]
        self._uses_bn = [uses_batchnorm(t, space.float_batchnorm) for t in self.types]
        self.optimizer = tf.keras.optimizers.legacy.Adam(learning_rate)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    # ------------------------------------------------------------------ children
    def child_tensors(self, arch: Architecture) -> tuple[tf.Tensor, tf.Tensor]:
        """Widths and type indices of a child, as the int32 tensors the traced graph takes."""
        if len(arch) != self.num_layers:
            raise ValueError(f"the supernet has {self.num_layers} layers, the architecture {arch} has {len(arch)}")
        bad = [lay for lay in arch.layers if lay.width > self.max_width or lay.type_code not in self.space.types]
        if bad:
            raise ValueError(f"layers {bad} are outside this supernet (widths <= {self.max_width}, "
                             f"types {list(self.space.types)})")
        widths = tf.constant(arch.widths, tf.int32)
        types = tf.constant([self.space.types.index(c) for c in arch.type_codes], tf.int32)
        return widths, types

    def _fan_in(self, i: int) -> int:
        if i > 0:
            return self.max_width
        if self.space.kind == "dense":
            return int(np.prod(self.input_shape))
        return self.input_shape[-1] if len(self.input_shape) == 3 else 1

    # ------------------------------------------------------------------ forward
    def _masked_kernel(self, i: int, t: tf.Tensor, in_mask: tf.Tensor, out_mask: tf.Tensor) -> tf.Tensor:
        """Type ``t``'s kernel of layer ``i``, cut to the child's widths and quantized."""
        kernel = tf.gather(self.kernels[i], t)
        mask = in_mask[:, None] * out_mask[None, :]
        if self.space.kind == "conv":
            mask = mask[None, None]
        branches = [
            (lambda q=q: kernel * mask if q is None else q(kernel * mask) * mask)
            for q in self._kernel_quantizers
        ]
        return tf.switch_case(t, branches)

    def _input_activation(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        branches = [(lambda q=q: tf.nn.relu(x) if q is None else q(x)) for q in self._input_quantizers]
        return tf.switch_case(t, branches)

    def _forward(self, x, widths, types, bn_stats=None):
        """Logits, block embeddings and the BatchNorm batch moments of one child.

        ``bn_stats`` None uses batch statistics (training and calibration); otherwise a list of
        (mean, variance) per layer (inference).
        """
        h = tf.reshape(x, (-1, int(np.prod(self.input_shape)))) if self.space.kind == "dense" else x
        if self.space.kind == "conv" and len(self.input_shape) == 2:
            h = h[..., None]
        in_mask = tf.ones(self._fan_in(0))
        embeddings, moments = [], []
        for i in range(self.num_layers):
            t = types[i]
            if i > 0:
                h = self._input_activation(h, t)
            out_mask = tf.sequence_mask(widths[i], self.max_width, dtype=tf.float32)
            kernel = self._masked_kernel(i, t, in_mask, out_mask)
            if self.space.kind == "dense":
                z = tf.matmul(h, kernel)
            else:
                z = tf.nn.conv2d(h, kernel, strides=1, padding="SAME")
            axes = [0] if self.space.kind == "dense" else [0, 1, 2]
            mean, var = tf.nn.moments(z, axes)
            moments.append((mean, var))
            if bn_stats is not None:
                mean, var = bn_stats[i]
            gamma, beta = tf.gather(self.gammas[i], t), tf.gather(self.betas[i], t)
            normalized = tf.nn.batch_normalization(z, mean, var, beta, gamma, BN_EPSILON)
            uses_bn = tf.gather(tf.constant(self._uses_bn), t)
            h = tf.where(uses_bn, normalized, z + self.biases[i] * out_mask)
            if i in self.pools:
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            embeddings.append(h)
            in_mask = out_mask
        h = tf.nn.relu(h)
        if self.space.kind == "conv":
            h = tf.reduce_mean(h, axis=[1, 2])
        logits = tf.matmul(h, self.classifier_kernel * in_mask[:, None]) + self.classifier_bias
        return logits, embeddings, moments

    # ------------------------------------------------------------------ training
    @tf.function(reduce_retracing=True)
    def _train_step(self, x, y, widths, types):
        with tf.GradientTape() as tape:
            logits, _, _ = self._forward(x, widths, types)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        grads, grad_norm = tf.clip_by_global_norm(grads, 5.0)
        self.optimizer.apply_gradients(zip(grads, variables))
        for i in range(self.num_layers):  # the weight clip of binary and ternary layers
            for t, layer_type in enumerate(self.types):
                if layer_type.clip_weights:
                    self.kernels[i][t].assign(tf.clip_by_value(self.kernels[i][t], -1.0, 1.0))
        self.step.assign_add(1)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.int32))
        return loss, correct, grad_norm

    def train_step(self, x: np.ndarray, y: np.ndarray, arch: Architecture) -> dict[str, float]:
        """One gradient step of the shared weights through child ``arch``."""
        widths, types = self.child_tensors(arch)
        loss, correct, grad_norm = self._train_step(tf.convert_to_tensor(x), tf.convert_to_tensor(y, tf.int32),
                                                    widths, types)
        return {"loss": float(loss), "correct": int(correct), "grad_norm": float(grad_norm)}

    # ------------------------------------------------------------------ evaluation
    @tf.function(reduce_retracing=True)
    def _moments(self, x, widths, types):
        return self._forward(x, widths, types)[2]

    @tf.function(reduce_retracing=True)
    def _infer(self, x, widths, types, bn_stats):
        logits, embeddings, _ = self._forward(x, widths, types, bn_stats)
        return logits, embeddings

    def calibrate(self, arch: Architecture, x_calib: np.ndarray) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """The child's own BatchNorm statistics, measured on a batch of training images."""
        widths, types = self.child_tensors(arch)
        return [(m, v) for m, v in self._moments(tf.convert_to_tensor(x_calib), widths, types)]

    def evaluate(self, arch: Architecture, x: np.ndarray, y: np.ndarray, bn_stats, x_probe: np.ndarray | None = None,
                 batch_size: int = 1000) -> ChildResult:
        """Accuracy and loss of a calibrated child in inference mode, plus its embeddings on ``x_probe``."""
        widths, types = self.child_tensors(arch)
        correct, total_loss = 0, 0.0
        for start in range(0, len(x), batch_size):
            logits, _ = self._infer(tf.convert_to_tensor(x[start:start + batch_size]), widths, types, bn_stats)
            yb = y[start:start + batch_size]
            correct += int(np.sum(np.argmax(logits.numpy(), 1) == yb))
            total_loss += float(tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(
                yb, logits, from_logits=True)))
        embeddings: list[np.ndarray] = []
        if x_probe is not None:
            _, embs = self._infer(tf.convert_to_tensor(x_probe), widths, types, bn_stats)
            embeddings = [self._sliced_embedding(e.numpy(), w) for e, w in zip(embs, arch.widths)]
        return ChildResult(accuracy=correct / len(x), loss=total_loss / len(x), embeddings=embeddings)

    @staticmethod
    def _sliced_embedding(e: np.ndarray, width: int) -> np.ndarray:
        return e[..., :width].reshape(len(e), -1)

    # ------------------------------------------------------------------ export
    def export_child(self, arch: Architecture, bn_stats, name: str = "child") -> tf.keras.Model:
        """The standalone Keras model of ``arch`` carrying this supernet's weights and the child's statistics."""
        _, types = self.child_tensors(arch)
        model = build_model(self.space, arch, self.input_shape, self.num_classes, name=name)
        fan_in = self._fan_in(0)
        for i, (layer, t) in enumerate(zip(arch.layers, types.numpy())):
            w = layer.width
            kernel = self.kernels[i][t].numpy()
            kernel = kernel[:fan_in, :w] if self.space.kind == "dense" else kernel[:, :, :fan_in, :w]
            linear = model.get_layer(f"h{i}_linear")
            if self._uses_bn[t]:
                linear.set_weights([kernel])
                mean, var = (s.numpy()[:w] for s in bn_stats[i])
                model.get_layer(f"h{i}_bn").set_weights(
                    [self.gammas[i][t].numpy()[:w], self.betas[i][t].numpy()[:w], mean, var])
            else:
                linear.set_weights([kernel, self.biases[i].numpy()[:w]])
            fan_in = w
        model.get_layer("logits").set_weights([self.classifier_kernel.numpy()[:fan_in], self.classifier_bias.numpy()])
        return model
