"""The shared-weight supernet: one set of weights from which every child of a search space is cut.

Layer ``i`` holds one latent kernel at the space's largest width, shared by every type: a type
only chooses the quantizer applied to it, so a binary child sees the signs of the features a float
child uses and layers can co-adapt whatever types their neighbours have. (With one kernel per type,
a supernet trained on uniformly drawn children barely learned: 22% train accuracy after two conv
epochs against 96% for one fixed child.) Statistics differ by precision, so BatchNorm's
scale/offset are kept per type, and float layers without BatchNorm have a bias. A child (a width and a type per layer) uses the first ``width`` units of
its type's kernel (and the first inputs matching the previous layer's width). The forward pass
slices to the child's real widths and runs eagerly, so a child costs what its own network
costs, and only the variables the child used receive gradients (Adam's momentum may still move the
slices of those variables beyond the child's widths a little).

BatchNorm statistics depend on the whole child, so a child is never scored with batch statistics or
with statistics shared between children. ``calibrate`` measures its own statistics on a training batch,
and ``evaluate`` then runs it in inference mode. ``export_child`` builds the standalone Keras model
with the sliced weights and those statistics, which gives the same outputs (tested).

A training step may train several children on one minibatch (the sandwich rule: the largest, the smallest and
a sampled child; their gradients are summed into one update) and may distil from the float parent: its logits as
soft targets and, weighted by ``feature_weight``, the similarity term as a loss on the child's block outputs
(``qnas.distill``). Each child keeps its own batch statistics.

``step="compiled"`` runs the training step's forward and backward pass as one ``tf.function`` traced
once for every child: widths and types enter as tensors, slices are dynamic and each layer's
quantizer and normalisation are picked by ``tf.switch_case``. The optimizer then updates only the
child's variables, as the eager step does, so both give the same weights within float tolerance
(tested). ``step="auto"`` compiles: it measured about twice as fast as eager slicing even on these CPUs
(BENCHMARKS.md, "Compiled supernet step"), and a GPU only widens the gap.

Built inside a ``tf.distribute`` strategy's scope (``--distribute``), the supernet's variables and
optimizer are mirrored and every step is the compiled one, run data-parallel by
``qnas.distribute.data_parallel_grads``: BatchNorm statistics and gradients are reduced over the whole
minibatch, so the weights match the one-device step's (tested), and only the child's variables move.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture, Layer
from qnas.distill import feature_loss, soft_target_loss
from qnas.distribute import apply_on_every_replica, data_parallel_grads, global_moments
from qnas.models import build_model
from qnas.space import SearchSpace
from quantize.blocks import BN_EPSILON, uses_batchnorm
from quantize.types import LAYER_TYPES

BNStats = list[tuple[tf.Tensor, tf.Tensor]]
FeatureTargets = list[tuple[int, tf.Tensor]]  # (child layer, the parent's joint affinities P on the minibatch)
STEP_MODES = ("auto", "eager", "compiled")


@dataclass
class ChildResult:
    """What one evaluation of a child returns."""

    accuracy: float
    loss: float
    embeddings: list[np.ndarray]


class ChildScoring:
    """Calibrating and scoring one child of a supernet: shared by the chain and the cell supernets.

    The supernet provides ``_child(arch)`` (the child's weights) and ``_forward(x, child, bn_stats)``, which
    returns ``(logits, embeddings, batch statistics, ...)``; statistics are whatever that supernet keeps.
    """

    def calibrate(self, arch, x_calib: np.ndarray) -> Any:
        """The child's own BatchNorm statistics, measured on a batch of training images."""
        return self._forward(tf.convert_to_tensor(x_calib), self._child(arch))[2]

    def predict_logits(self, arch, x: np.ndarray, bn_stats: Any) -> np.ndarray:
        """Logits of a calibrated child in inference mode."""
        return self._forward(tf.convert_to_tensor(x), self._child(arch), bn_stats)[0].numpy()

    def evaluate(self, arch, x: np.ndarray, y: np.ndarray, bn_stats: Any,
                 x_probe: np.ndarray | None = None, batch_size: int = 1000) -> ChildResult:
        """Accuracy and loss of a calibrated child in inference mode, plus its block outputs on ``x_probe``."""
        child = self._child(arch)
        correct, total_loss = 0, 0.0
        for start in range(0, len(x), batch_size):
            logits = self._forward(tf.convert_to_tensor(x[start:start + batch_size]), child, bn_stats)[0]
            yb = y[start:start + batch_size]
            correct += int(np.sum(np.argmax(logits.numpy(), 1) == yb))
            total_loss += float(tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(
                yb, logits, from_logits=True)))
        embeddings: list[np.ndarray] = []
        if x_probe is not None:
            embs = self._forward(tf.convert_to_tensor(x_probe), child, bn_stats)[1]
            embeddings = [e.numpy().reshape(len(x_probe), -1) for e in embs]
        return ChildResult(accuracy=correct / len(x), loss=total_loss / len(x), embeddings=embeddings)


class Supernet(ChildScoring, tf.Module):
    """Shared weights for every child of ``space`` on inputs of ``input_shape``."""

    def __init__(self, space: SearchSpace, input_shape: Sequence[int], num_classes: int, seed: int = 0,
                 learning_rate: float = 2e-3, decay_steps: int | None = None, name: str = "supernet",
                 step: str = "auto", distill_alpha: float = 0.0, distill_temperature: float = 1.0,
                 feature_weight: float = 0.0):
        super().__init__(name=name)
        self.distill_alpha, self.distill_temperature = float(distill_alpha), float(distill_temperature)
        self.feature_weight = float(feature_weight)
        if step not in STEP_MODES:
            raise ValueError(f"step must be one of {STEP_MODES}, got {step!r}")
        # built inside ``strategy.scope()``: variables are mirrored and every step is compiled and data-parallel
        self.strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        if self.strategy is not None and step == "eager":
            raise ValueError("a distributed supernet runs the compiled step; use step='compiled' or 'auto'")
        self.compiled = step != "eager"
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = num_classes
        self.max_width = max(space.widths)
        self.types = [LAYER_TYPES[c] for c in space.types]
        self.num_layers = space.num_layers
        self.pools = space.pool_after(space.num_layers)
        rng = np.random.default_rng(seed)

        def glorot(shape):
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
            return tf.Variable(rng.uniform(-limit, limit, size=shape).astype(np.float32))

        wmax = self.max_width
        self.kernels: list[tf.Variable] = []
        self.gammas: list[list[tf.Variable]] = []
        self.betas: list[list[tf.Variable]] = []
        self.biases: list[tf.Variable] = []
        for i in range(self.num_layers):
            fan_in = self._fan_in(i)
            self.kernels.append(glorot(space.kernel_shape(fan_in, wmax)))
            self.gammas.append([tf.Variable(tf.ones(wmax)) for _ in self.types])
            self.betas.append([tf.Variable(tf.zeros(wmax)) for _ in self.types])
            self.biases.append(tf.Variable(tf.zeros(wmax)))
        self.classifier_kernel = glorot((wmax, num_classes))
        self.classifier_bias = tf.Variable(tf.zeros(num_classes))
        self._kernel_quantizers = [t.kernel_quantizer() for t in self.types]
        self._input_quantizers = [t.input_quantizer() for t in self.types]
        self._uses_bn = [uses_batchnorm(t, space.float_batchnorm) for t in self.types]
        self.schedule = (tf.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)
                         if decay_steps else (lambda step: learning_rate))
        self.optimizer = tf.keras.optimizers.legacy.Adam(self.schedule if decay_steps else learning_rate)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._compiled_grads = tf.function(self._graph_grads, reduce_retracing=True)
        if self.strategy is not None:
            self._compiled_grads = data_parallel_grads(self.strategy, self._graph_grads)

    # ------------------------------------------------------------------ children
    def current_lr(self) -> float:
        return float(self.schedule(self.step))

    def _child(self, arch: Architecture) -> list[tuple[int, int]]:
        """(width, type index) per layer, checked against this supernet."""
        if len(arch) != self.num_layers:
            raise ValueError(f"the supernet has {self.num_layers} layers, the architecture {arch} has {len(arch)}")
        bad = [lay for lay in arch.layers if lay.width > self.max_width or lay.type_code not in self.space.types]
        if bad:
            raise ValueError(f"layers {bad} are outside this supernet (widths <= {self.max_width}, "
                             f"types {list(self.space.types)})")
        return [(lay.width, self.space.types.index(lay.type_code)) for lay in arch.layers]

    def extreme_child(self, largest: bool) -> Architecture:
        """The sandwich rule's bounds: every layer at the widest width and most bits, or the narrowest and fewest."""
        pick = max if largest else min
        width = pick(self.space.widths)
        code = pick(self.space.types, key=lambda c: (LAYER_TYPES[c].bits, c))
        return Architecture(tuple(Layer(width, code) for _ in range(self.num_layers)))

    def _fan_in(self, i: int) -> int:
        return self.max_width if i > 0 else self.space.input_fan_in(self.input_shape)

    # ------------------------------------------------------------------ forward
    def _forward(self, x: tf.Tensor, child: list[tuple[int, int]], bn_stats: BNStats | None = None):
        """Logits, block embeddings, BatchNorm batch moments and the variables used, for one child.

        ``bn_stats`` None uses batch statistics (training and calibration); otherwise the child's own
        (mean, variance) per layer (inference).
        """
        dense = self.space.kind == "dense"
        h = tf.reshape(x, (-1, self._fan_in(0))) if dense else x
        if not dense and len(self.input_shape) == 2:
            h = h[..., None]
        fan_in = self._fan_in(0)
        embeddings, moments = [], []
        used = [self.classifier_kernel, self.classifier_bias]
        for i, (width, t) in enumerate(child):
            if i > 0:
                quantizer = self._input_quantizers[t]
                h = tf.nn.relu(h) if quantizer is None else quantizer(h)
            variable = self.kernels[i]
            kernel = variable[..., :fan_in, :width]
            quantizer = self._kernel_quantizers[t]
            kernel = kernel if quantizer is None else quantizer(kernel)
            z = tf.matmul(h, kernel) if dense else tf.nn.conv2d(h, kernel, strides=1, padding="SAME")
            used.append(variable)
            if self._uses_bn[t]:
                if bn_stats is None:  # training and calibration: this batch's statistics
                    mean, var = tf.nn.moments(z, [0] if dense else [0, 1, 2])
                    moments.append((mean, var))
                else:
                    mean, var = bn_stats[i]
                gamma, beta = self.gammas[i][t], self.betas[i][t]
                h = tf.nn.batch_normalization(z, mean, var, beta[:width], gamma[:width], BN_EPSILON)
                used += [gamma, beta]
            else:
                moments.append((tf.zeros(width), tf.ones(width)))
                h = z + self.biases[i][:width]
                used.append(self.biases[i])
            h = self._pool(i, h)
            embeddings.append(h)
            fan_in = width
        return self._classify(h, fan_in), embeddings, moments, used

    def _pool(self, i: int, h: tf.Tensor) -> tf.Tensor:
        """The 2x2 max pooling the space puts after layer ``i``, if any."""
        return tf.nn.max_pool2d(h, 2, 2, "VALID") if i in self.pools else h

    def _classify(self, h: tf.Tensor, fan_in) -> tf.Tensor:
        """Logits from the last block's output: ReLU, global average pooling (conv), the float classifier."""
        h = tf.nn.relu(h)
        if self.space.kind != "dense":
            h = tf.reduce_mean(h, axis=[1, 2])
        return tf.matmul(h, self.classifier_kernel[:fan_in]) + self.classifier_bias

    def _all_variables(self) -> list[tf.Variable]:
        """Every trainable variable, in a fixed order: classifier, then per layer kernel, bias, gammas, betas."""
        out = [self.classifier_kernel, self.classifier_bias]
        for i in range(self.num_layers):
            out += [self.kernels[i], self.biases[i], *self.gammas[i], *self.betas[i]]
        return out

    def _graph_forward(self, x: tf.Tensor, widths: tf.Tensor, types: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Training-mode logits and block outputs of the child ``(widths, types)``, every choice a tensor (one trace)."""
        dense = self.space.kind == "dense"
        h = tf.reshape(x, (-1, self._fan_in(0))) if dense else x
        if not dense and len(self.input_shape) == 2:
            h = h[..., None]
        fan_in = tf.constant(self._fan_in(0))
        axes = [0] if dense else [0, 1, 2]
        embeddings = []
        for i in range(self.num_layers):
            width, t = widths[i], types[i]
            if i > 0:
                h = tf.switch_case(t, [(lambda q=q, h=h: tf.nn.relu(h) if q is None else q(h))
                                       for q in self._input_quantizers])
            raw = self.kernels[i][..., :fan_in, :width]
            kernel = tf.switch_case(t, [(lambda q=q, raw=raw: raw if q is None else q(raw))
                                        for q in self._kernel_quantizers])
            z = tf.matmul(h, kernel) if dense else tf.nn.conv2d(h, kernel, strides=1, padding="SAME")
            mean, var = global_moments(z, axes)  # outside the switch: replicas reduce together, never inside a branch

            def normalise(k: int, z=z, i=i, width=width, mean=mean, var=var) -> tf.Tensor:
                if not self._uses_bn[k]:
                    return z + self.biases[i][:width]
                return tf.nn.batch_normalization(z, mean, var, self.betas[i][k][:width], self.gammas[i][k][:width],
                                                 BN_EPSILON)

            h = tf.switch_case(t, [(lambda k=k: normalise(k)) for k in range(len(self.types))])
            h = self._pool(i, h)
            embeddings.append(h)
            fan_in = width
        return self._classify(h, fan_in), embeddings

    def _loss(self, y: tf.Tensor, logits: tf.Tensor, embeddings: list[tf.Tensor], teacher_logits: tf.Tensor | None,
              features: FeatureTargets | None) -> tf.Tensor:
        """Cross-entropy, blended with the parent's soft targets and plus the feature loss when those are given."""
        loss = soft_target_loss(y, logits, teacher_logits, self.distill_alpha, self.distill_temperature)
        if features:
            loss += self.feature_weight * feature_loss([embeddings[d] for d, _ in features], [p for _, p in features])
        return loss

    def _graph_grads(self, x: tf.Tensor, y: tf.Tensor, widths: tf.Tensor, types: tf.Tensor,
                     teacher_logits: tf.Tensor | None = None, features: FeatureTargets | None = None, weight=1.0):
        """Loss (times ``weight``: a replica's share of the global batch), logits and every variable's gradient."""
        with tf.GradientTape() as tape:
            logits, embeddings = self._graph_forward(x, widths, types)
            loss = self._loss(y, logits, embeddings, teacher_logits, features) * weight
        grads = tape.gradient(loss, self._all_variables(), unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, logits, grads

    def _used_variables(self, child: list[tuple[int, int]]) -> list[tf.Variable]:
        """The variables child ``child`` reads, in ``_forward``'s order."""
        used = [self.classifier_kernel, self.classifier_bias]
        for i, (_, t) in enumerate(child):
            used += [self.kernels[i], self.gammas[i][t], self.betas[i][t]] if self._uses_bn[t] else \
                [self.kernels[i], self.biases[i]]
        return used

    def _loss_and_grads(self, x: np.ndarray, y: tf.Tensor, child: list[tuple[int, int]],
                        teacher_logits: tf.Tensor | None = None, features: FeatureTargets | None = None):
        """Loss, logits, and the gradients of the child's own variables (eager slicing, or the compiled trace)."""
        if not self.compiled:
            with tf.GradientTape() as tape:
                logits, embeddings, _, used = self._forward(tf.convert_to_tensor(x), child)
                loss = self._loss(y, logits, embeddings, teacher_logits, features)
            return loss, logits, used, tape.gradient(loss, used)
        widths = tf.constant([w for w, _ in child], tf.int32)
        types = tf.constant([t for _, t in child], tf.int32)
        loss, logits, grads = self._compiled_grads(tf.convert_to_tensor(x), y, widths, types, teacher_logits,
                                                   features or None)
        by_variable = {v.ref(): g for v, g in zip(self._all_variables(), grads)}
        used = self._used_variables(child)
        return loss, logits, used, [by_variable[v.ref()] for v in used]

    # ------------------------------------------------------------------ training
    def train_step(self, x: np.ndarray, y: np.ndarray, arch: Architecture | Sequence[Architecture],
                   teacher_logits: np.ndarray | None = None, features: FeatureTargets | None = None) -> dict[str, float]:
        """One gradient step of the shared weights through child ``arch``, or the summed gradients of several.

        Only the children's weights move. ``teacher_logits`` (the parent's, on ``x``) turn on soft targets and
        ``features`` the feature loss. The loss and accuracy returned are the first child's.
        """
        archs = [arch] if isinstance(arch, Architecture) else list(arch)
        children = [self._child(a) for a in archs]
        y = tf.convert_to_tensor(y, tf.int32)
        teacher = None if teacher_logits is None else tf.convert_to_tensor(teacher_logits, tf.float32)
        if self.strategy is not None and (teacher is not None or features):
            raise ValueError("a distributed supernet trains without distillation from the parent")
        summed: dict = {}
        for k, child in enumerate(children):
            loss_k, logits_k, used, grads = self._loss_and_grads(x, y, child, teacher, features)
            if k == 0:
                loss, logits = loss_k, logits_k
            for v, g in zip(used, grads):
                ref = v.ref()
                summed[ref] = g if ref not in summed else summed[ref] + g
        variables = [ref.deref() for ref in summed]
        grads, grad_norm = tf.clip_by_global_norm(list(summed.values()), 5.0)
        if self.strategy is None:
            self.optimizer.apply_gradients(zip(grads, variables))
        else:
            apply_on_every_replica(self.strategy, self.optimizer, grads, variables)
        clipped = {i for child in children for i, (_, t) in enumerate(child) if self.types[t].clip_weights}
        for i in sorted(clipped):  # the weight clip of binary and ternary layers
            self.kernels[i].assign(tf.clip_by_value(self.kernels[i], -1.0, 1.0))
        self.step.assign_add(1)
        correct = int(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.int32)))
        return {"loss": float(loss), "correct": correct, "grad_norm": float(grad_norm)}

    # ------------------------------------------------------------------ export
    def export_child(self, arch: Architecture, bn_stats: BNStats, name: str = "child") -> tf.keras.Model:
        """The standalone Keras model of ``arch`` carrying this supernet's weights and the child's statistics."""
        child = self._child(arch)
        model = build_model(self.space, arch, self.input_shape, self.num_classes, name=name)
        fan_in = self._fan_in(0)
        for i, (w, t) in enumerate(child):
            kernel = self.kernels[i].numpy()
            kernel = kernel[..., :fan_in, :w]
            linear = model.get_layer(f"h{i}_linear")
            if self._uses_bn[t]:
                linear.set_weights([kernel])
                mean, var = (s.numpy() for s in bn_stats[i])
                model.get_layer(f"h{i}_bn").set_weights(
                    [self.gammas[i][t].numpy()[:w], self.betas[i][t].numpy()[:w], mean, var])
            else:
                linear.set_weights([kernel, self.biases[i].numpy()[:w]])
            fan_in = w
        model.get_layer("logits").set_weights([self.classifier_kernel.numpy()[:fan_in], self.classifier_bias.numpy()])
        return model
