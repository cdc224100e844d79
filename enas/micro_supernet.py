"""The shared-weight supernet of the ``micro`` space: every child's cells cut from one set of weights.

Weights are shared per (cell, node, slot): each node's first and second operation (``slot`` a and b)
at each position of the network has one latent full kernel ``W`` of the largest kernel size and one
latent depthwise kernel ``D``, which every convolution of that slot cuts from:

* a full k x k convolution (binary, ternary) uses the centre k x k of ``W``;
* a separable k x k convolution (float, int2/4/8) uses the centre k x k of ``D`` and, as its pointwise
  1x1 kernel, the centre tap of ``W``.

A type only chooses the quantizer applied to them, as in the chain supernet (``enas.supernet``), whose
experience this follows: a set of weights per (kernel size, type) is trained too rarely when children are
drawn uniformly (on MNIST, 19% training accuracy after 96 steps with separate weights for the 4
convolutions of a slot, against 44% when a slot had only one convolution to train). BatchNorm's scale
and offset are kept per operation code, since statistics differ by precision, and per cell output. The
stem and the classifier are shared by every child.

A child runs eagerly through exactly its own operations, so it costs what its own network costs and
only its variables receive gradients. As in the chain supernet, a child is scored with its own
BatchNorm statistics (``calibrate`` on a training batch, then ``evaluate`` in inference mode), and
``export_child`` hands the weights and statistics to the standalone Keras model of
``qnas.micro_net``, which gives the same outputs (tested).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from enas.supernet import ChildScoring
from qnas.micro_arch import MicroArchitecture, is_conv, is_separable, op_kernel, op_type
from qnas.micro_net import SLOTS, STEM_KERNEL, CellPlan, image_shape, live_cells, op_prefix, plan_cells
from qnas.spaces.micro import MicroSpace
from quantize.blocks import BN_EPSILON
from quantize.types import LAYER_TYPES

BNStats = dict[str, tuple[tf.Tensor, tf.Tensor]]


class MicroSupernet(ChildScoring, tf.Module):
    """Shared weights for every child of a ``MicroSpace`` on inputs of ``input_shape``."""

    def __init__(self, space: MicroSpace, input_shape: Sequence[int], num_classes: int, seed: int = 0,
                 learning_rate: float = 2e-3, decay_steps: int | None = None, name: str = "micro_supernet"):
        super().__init__(name=name)
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = num_classes
        self.plans: list[CellPlan] = plan_cells(space.net, self.input_shape)
        self.num_layers = len(self.plans)  # one embedding per cell, for the similarity's depth matching
        self.ops = space.ops()
        self.max_kernel = max((op_kernel(c) for c in self.ops if is_conv(c)), default=1)
        rng = np.random.default_rng(seed)

        def glorot(shape: tuple[int, ...]) -> tf.Variable:
            receptive = int(np.prod(shape[:-2]))
            limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
            return tf.Variable(rng.uniform(-limit, limit, size=shape).astype(np.float32))

        filters, channels = space.net.filters, image_shape(self.input_shape)[2]
        self.stem_kernel = glorot((STEM_KERNEL, STEM_KERNEL, channels, filters))
        self.kernels: dict[str, tf.Variable] = {}
        self.gammas: dict[str, tf.Variable] = {"stem": tf.Variable(tf.ones(filters))}
        self.betas: dict[str, tf.Variable] = {"stem": tf.Variable(tf.zeros(filters))}
        for plan in self.plans:
            f = plan.filters
            self.gammas[f"h{plan.index}_out"] = tf.Variable(tf.ones(f))
            self.betas[f"h{plan.index}_out"] = tf.Variable(tf.zeros(f))
            for j in range(space.num_nodes):
                for slot in SLOTS:
                    prefix = op_prefix(plan.index, j + 2, slot)
                    convs = [c for c in self.ops if is_conv(c)]
                    if convs:
                        self.kernels[f"{prefix}_W"] = glorot((self.max_kernel, self.max_kernel, f, f))
                    if any(is_separable(c) for c in convs):
                        self.kernels[f"{prefix}_D"] = glorot((self.max_kernel, self.max_kernel, f, 1))
                    for code in convs:
                        self.gammas[f"{prefix}_op{code}"] = tf.Variable(tf.ones(f))
                        self.betas[f"{prefix}_op{code}"] = tf.Variable(tf.zeros(f))
        last = self.plans[-1].filters if self.plans else filters
        self.classifier_kernel = glorot((last, num_classes))
        self.classifier_bias = tf.Variable(tf.zeros(num_classes))
        types = {op_type(c) for c in self.ops if is_conv(c)}
        # keyed by the type's name: checkpoints need string keys
        self._kernel_quantizers = {LAYER_TYPES[t].name: LAYER_TYPES[t].kernel_quantizer() for t in types}
        self._input_quantizers = {LAYER_TYPES[t].name: LAYER_TYPES[t].input_quantizer() for t in types}
        self.schedule = (tf.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)
                         if decay_steps else (lambda step: learning_rate))
        self.optimizer = tf.keras.optimizers.legacy.Adam(self.schedule if decay_steps else learning_rate)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def _weights(self, prefix: str, code: int) -> tuple[list[tf.Tensor], list[tf.Variable]]:
        """The kernels of one convolution, cut from its slot's latent ones (see the module docstring), and those."""
        k, latent = op_kernel(code), self.kernels[f"{prefix}_W"]
        lo = (self.max_kernel - k) // 2
        if not is_separable(code):
            return [latent[lo:lo + k, lo:lo + k]], [latent]
        centre = self.max_kernel // 2
        depthwise = self.kernels[f"{prefix}_D"]
        return [depthwise[lo:lo + k, lo:lo + k], latent[centre:centre + 1, centre:centre + 1]], [depthwise, latent]

    def current_lr(self) -> float:
        return float(self.schedule(self.step))

    def _child(self, arch: MicroArchitecture) -> MicroArchitecture:
        """``arch``, checked against this supernet."""
        if arch.num_nodes != self.space.num_nodes:
            raise ValueError(f"the supernet's cells have {self.space.num_nodes} nodes, {arch} has {arch.num_nodes}")
        bad = sorted({c for n in (*arch.normal, *arch.reduction) for c in (n.op1, n.op2) if c not in self.ops})
        if bad:
            raise ValueError(f"operations {bad} are outside this supernet (operations {list(self.ops)})")
        return arch

    # ------------------------------------------------------------------ forward
    def _forward(self, x: tf.Tensor, arch: MicroArchitecture, bn_stats: BNStats | None = None):
        """Logits, cell outputs, BatchNorm batch moments (by layer name) and the variables used, for one child.

        ``bn_stats`` None uses batch statistics (training and calibration); otherwise the child's own.
        """
        moments: BNStats = {}
        used: list[tf.Variable] = [self.stem_kernel, self.classifier_kernel, self.classifier_bias]

        def batchnorm(z: tf.Tensor, layer: str, key: str) -> tf.Tensor:
            """Fused BatchNorm, one op (as Keras runs it): batch statistics, or the child's own in inference."""
            gamma, beta = self.gammas[key], self.betas[key]
            used.extend((gamma, beta))
            if bn_stats is None:
                out, mean, var = tf.compat.v1.nn.fused_batch_norm(z, gamma, beta, epsilon=BN_EPSILON, is_training=True)
                moments[layer] = (mean, var)
                return out
            mean, var = bn_stats[layer]
            return tf.compat.v1.nn.fused_batch_norm(z, gamma, beta, mean=mean, variance=var, epsilon=BN_EPSILON,
                                                    is_training=False)[0]

        h = tf.reshape(x, (-1, *image_shape(self.input_shape)))
        h = batchnorm(tf.nn.conv2d(h, self.stem_kernel, 1, "SAME"), "stem_bn", "stem")
        if self.space.net.stem_pools(*image_shape(self.input_shape)[:2]):
            h = tf.nn.max_pool2d(h, 2, 2, "SAME")
        prev, embeddings = [h, h], []
        for plan, live in zip(self.plans, live_cells(arch, self.plans)):
            if not live:  # left out of the network; its embedding is the last live output
                embeddings.append(prev[1])
                prev = [prev[1], prev[1]]
                continue
            states = [self._adapt(t, p) for t, p in zip(prev, plan.inputs)]
            for j, node in enumerate(arch.cell(plan.kind)):
                outs = [self._op(states[i], code, op_prefix(plan.index, j + 2, slot), batchnorm, used)
                        for slot, (i, code) in zip(SLOTS, ((node.in1, node.op1), (node.in2, node.op2)))]
                states.append(outs[0] + outs[1])
            ends = [states[i] for i in arch.loose_ends(plan.kind)]
            out = ends[0]
            for e in ends[1:]:  # as Keras's Average adds them up
                out = out + e
            out = out / len(ends) if len(ends) > 1 else out
            out = batchnorm(out, f"h{plan.index}_out", f"h{plan.index}_out")
            embeddings.append(out)
            prev = [prev[1], out]
        h = tf.reduce_mean(tf.nn.relu(prev[1]), axis=[1, 2])
        logits = tf.matmul(h, self.classifier_kernel) + self.classifier_bias
        return logits, embeddings, moments, used

    @staticmethod
    def _adapt(x: tf.Tensor, plan) -> tf.Tensor:
        for _ in range(plan.pools):
            x = tf.nn.avg_pool2d(x, 2, 2, "SAME")
        return tf.concat([x] * plan.tiles, axis=-1) if plan.tiles > 1 else x

    def _op(self, x: tf.Tensor, code: int, prefix: str, batchnorm, used: list[tf.Variable]) -> tf.Tensor:
        if code == 2:
            return tf.nn.avg_pool2d(x, 3, 1, "SAME")
        if code == 3:
            return tf.nn.max_pool2d(x, 3, 1, "SAME")
        if not is_conv(code):
            return x
        t = LAYER_TYPES[op_type(code)].name
        in_q, k_q = self._input_quantizers[t], self._kernel_quantizers[t]
        kernels, variables = self._weights(prefix, code)
        used.extend(variables)
        if k_q is not None:
            kernels = [k_q.call(kernel) for kernel in kernels]
        h = tf.nn.relu(x) if in_q is None else in_q.call(x)  # .call: the quantizer without Keras's layer overhead
        if is_separable(code):
            z = tf.nn.conv2d(tf.nn.depthwise_conv2d(h, kernels[0], [1, 1, 1, 1], "SAME"), kernels[1], 1, "SAME")
        else:
            z = tf.nn.conv2d(h, kernels[0], 1, "SAME")
        return batchnorm(z, f"{prefix}_bn", f"{prefix}_op{code}")

    # ------------------------------------------------------------------ training
    def train_step(self, x: np.ndarray, y: np.ndarray, arch: MicroArchitecture | Sequence[MicroArchitecture],
                   teacher_logits: np.ndarray | None = None, features: object | None = None) -> dict[str, float]:
        """One gradient step of the shared weights through child ``arch`` (only its weights move).

        The chain supernet's signature: a list must hold one child, and distillation targets are refused.
        """
        if not isinstance(arch, MicroArchitecture):
            if len(arch) != 1:
                raise ValueError("the micro supernet trains one child per step (no sandwich rule)")
            arch = arch[0]
        if teacher_logits is not None or features is not None:
            raise ValueError("the micro supernet does not distil from the parent")
        arch = self._child(arch)
        y = tf.convert_to_tensor(y, tf.int32)
        with tf.GradientTape() as tape:
            logits, _, _, used = self._forward(tf.convert_to_tensor(x), arch)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        used = list({id(v): v for v in used}.values())
        grads = tape.gradient(loss, used)
        grads, grad_norm = tf.clip_by_global_norm(grads, 5.0)
        self.optimizer.apply_gradients(zip(grads, used))
        for plan in self.plans:  # the weight clip of binary and ternary kernels
            for j, node in enumerate(arch.cell(plan.kind)):
                for slot, code in zip(SLOTS, (node.op1, node.op2)):
                    if is_conv(code) and LAYER_TYPES[op_type(code)].clip_weights:
                        kernel = self.kernels[f"{op_prefix(plan.index, j + 2, slot)}_W"]
                        kernel.assign(tf.clip_by_value(kernel, -1.0, 1.0))
        self.step.assign_add(1)
        correct = int(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.int32)))
        return {"loss": float(loss), "correct": correct, "grad_norm": float(grad_norm)}

    # ------------------------------------------------------------------ export
    def export_child(self, arch: MicroArchitecture, bn_stats: BNStats, name: str = "child") -> tf.keras.Model:
        """The standalone Keras model of ``arch`` carrying this supernet's weights and the child's statistics."""
        arch = self._child(arch)
        model = self.space.build(arch, self.input_shape, self.num_classes, name=name)

        def set_bn(layer: str, key: str) -> None:
            mean, var = (s.numpy() for s in bn_stats[layer])
            model.get_layer(layer).set_weights([self.gammas[key].numpy(), self.betas[key].numpy(), mean, var])

        model.get_layer("stem_conv").set_weights([self.stem_kernel.numpy()])
        set_bn("stem_bn", "stem")
        for plan, live in zip(self.plans, live_cells(arch, self.plans)):
            if not live:
                continue
            set_bn(f"h{plan.index}_out", f"h{plan.index}_out")
            for j, node in enumerate(arch.cell(plan.kind)):
                for slot, code in zip(SLOTS, (node.op1, node.op2)):
                    if not is_conv(code):
                        continue
                    prefix = op_prefix(plan.index, j + 2, slot)
                    kernels = [k.numpy() for k in self._weights(prefix, code)[0]]
                    if is_separable(code):
                        model.get_layer(f"{prefix}_dw").set_weights(kernels[:1])
                        model.get_layer(f"{prefix}_pw").set_weights(kernels[1:])
                    else:
                        model.get_layer(f"{prefix}_conv").set_weights(kernels)
                    set_bn(f"{prefix}_bn", f"{prefix}_op{code}")
        model.get_layer("logits").set_weights([self.classifier_kernel.numpy(), self.classifier_bias.numpy()])
        return model
