"""Rewrite a trained qnas model as a deployment graph whose constants and fake-quant nodes a converter maps 1:1.

Why not hand the Keras model to the converter as it is: larq's quantizers compute their thresholds
from the kernel at run time (TWN's ``0.7 * mean|w|``, DoReFa's ``max|tanh w|``), ternary
activations are ``sign(sign(x + t) + sign(x - t))``, which Larq Compute Engine's fallback
``ste_sign`` pattern mistakes for a binarization of ``x + t``, and nothing tells a converter that a
DoReFa layer's values sit on an 8-bit grid, so it ships them as float32.

``fold_model`` reads a model built by ``qnas.models.build_model`` (layers ``h{i}_linear``,
``h{i}_bn``, ``h{i}_pool``, ``logits``) and evaluates every kernel quantizer once, so each hidden
layer becomes ``quantized kernel, per-channel scale, per-channel shift`` (BatchNorm folded in).
``DeployGraph`` then writes the forward pass with plain TensorFlow ops, given how each layer runs
(``binary``: larq's ``ste_sign`` on the input and a +-scale kernel, which LCE turns into a bit-packed
``LceBconv2d``; Dense layers become 1x1 convolutions for it; ``int8``: fake-quant nodes whose
ranges are chosen so the 8-bit grid holds the layer's values exactly; ``float32``: plain ops).

How each input quantizer becomes exact in an int8 tensor (the *edge* between two layers):

* DoReFa k-bit activations ``round(clip(x, 0, 1) * L) / L`` with ``L = 2^k - 1``: ReLU, then an
  8-bit fake-quant on ``[-(255 - L) / L, 1]``: its step is ``1 / L``, its zero point an integer,
  and its top is 1, so rounding and clipping are the quantizer's own.
* ternary (threshold ``t``): the producer's outputs are scaled by ``1 / (2 t)`` (folded into its
  kernel and bias), clipped to [-1, 1] and fake-quantized with step 1, so ``round`` is the threshold.
* binary, read from an int8 tensor: the producer's outputs get a per-channel gain and shift that put
  every reachable value at least two steps from zero (``_binary_edge``), then are clipped to +-1.
* float32 layers and the classifier on an int8 target: calibrated ranges (post-training), the one
  place where the file is not exact by construction.

Kernels use per-channel symmetric 8-bit ranges chosen so the type's grid lands on integers (int4
values are odd multiples of 1/15: the range ``127/120`` puts them on multiples of 8). Only int8
DoReFa kernels (odd multiples of 1/255) and float32 kernels are rounded. The file still rounds the
int32 bias and the output (twice), which moves a channel's rounding boundaries by about one
accumulator step; ``snap_bias`` moves each boundary to the middle of its gap between reachable
accumulator values, where that cannot change a decision.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture
from qnas.space import SearchSpace
from quantize.types import LAYER_TYPES

PRECISIONS = ("binary", "int8", "float32")
BINARY_GAIN = 4096.0  # binary edge's gain while calibrating (the export picks one per channel: ``_binary_edge``)
BINARY_SPAN = 4.0  # output units between the two accumulator values next to a binary decision (so +-2 around it)
# Kernel grids that int8 holds exactly: (unit, most integers per unit). A binary or ternary weight is
# +-1 unit; int2 weights are odd multiples of 1/3 (up to 3 units), int4 odd multiples of 1/15 (up to 15).
KERNEL_UNITS = {1: (1.0, 127), 2: (1.0, 127), 3: (1.0 / 3.0, 42), 4: (1.0 / 15.0, 8)}
EPS = 1e-12


@dataclass
class HiddenLayer:
    """One hidden block after folding: ``y = conv(q_in(x), kernel) * scale + shift`` (per output channel)."""

    index: int
    kind: str  # "dense" or "conv"
    type_code: int
    precision: str  # how the target runs it: one of PRECISIONS
    kernel: np.ndarray  # the quantized kernel exactly as Keras multiplies with it
    scale: np.ndarray
    shift: np.ndarray
    pool: bool
    input_params: dict[str, float] = field(default_factory=dict)  # threshold (ternary) or levels (DoReFa)


@dataclass
class FoldedModel:
    """A qnas network as numbers: hidden layers, then ReLU, [global average pool], float classifier, softmax."""

    input_shape: tuple[int, ...]
    kind: str
    layers: list[HiddenLayer]
    head_kernel: np.ndarray
    head_bias: np.ndarray
    head_precision: str


def fold_model(model: tf.keras.Model, space: SearchSpace, arch: Architecture,
               precisions: Sequence[str], head_precision: str) -> FoldedModel:
    """Read the trained weights of ``model`` (from ``build_model(space, arch, ...)``) into a ``FoldedModel``."""
    if len(precisions) != len(arch):
        raise ValueError(f"{len(precisions)} precisions for {len(arch)} layers")
    pools = space.pool_after(len(arch))
    layers = []
    for i, (layer, precision) in enumerate(zip(arch.layers, precisions)):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        linear = model.get_layer(f"h{i}_linear")
        kernel = tf.convert_to_tensor(linear.kernel)
        if linear.kernel_quantizer is not None:
            kernel = linear.kernel_quantizer(kernel)
        width = int(kernel.shape[-1])
        names = {lay.name for lay in model.layers}
        if f"h{i}_bn" in names:
            bn = model.get_layer(f"h{i}_bn")
            gamma = bn.gamma.numpy() if bn.scale else np.ones(width)
            beta = bn.beta.numpy() if bn.center else np.zeros(width)
            scale = gamma.astype(np.float64) / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
            shift = beta - bn.moving_mean.numpy() * scale
        else:
            scale, shift = np.ones(width), (linear.bias.numpy() if linear.use_bias else np.zeros(width))
        layers.append(HiddenLayer(
            index=i, kind=space.kind, type_code=layer.type_code, precision=precision,
            kernel=np.asarray(kernel, np.float64), scale=np.asarray(scale, np.float64),
            shift=np.asarray(shift, np.float64), pool=i in pools,
            input_params=_input_params(linear.input_quantizer),
        ))
    logits = model.get_layer("logits")
    return FoldedModel(
        input_shape=tuple(int(d) for d in model.input_shape[1:]), kind=space.kind, layers=layers,
        head_kernel=logits.kernel.numpy().astype(np.float64), head_bias=logits.bias.numpy().astype(np.float64),
        head_precision=head_precision,
    )


def _input_params(quantizer: object) -> dict[str, float]:
    """The constants of a layer's input quantizer (the ternary threshold, the DoReFa level count)."""
    if quantizer is None:
        return {}
    if hasattr(quantizer, "threshold_value"):
        return {"threshold": float(quantizer.threshold_value)}
    if hasattr(quantizer, "precision"):
        return {"levels": float(2 ** int(quantizer.precision) - 1)}
    return {}


@dataclass(frozen=True)
class Edge:
    """How a producer's output becomes the consumer's input (see the module docstring).

    ``pre`` runs before pooling, ``fq`` is ``None`` (no int8 tensor), a fixed ``(min, max)`` or
    ``"calibrate"`` (ReLU output: ``[0, observed max]``), ``post`` is a float quantizer or larq's
    sign pattern applied after pooling. ``gain``/``offset`` are folded into the producer.
    """

    pre: str | None = None  # "relu" | "clip"
    gain: float = 1.0
    offset: float = 0.0
    fq: tuple[float, float] | str | None = None
    post: str | None = None  # "sign" | "ternary" | "dorefa": a quantizer computed in float
    threshold: float = 0.0  # of a float ternary post
    binary: bool = False  # a sign taken from an int8 tensor: the producer places it exactly (``_binary_edge``)
    levels: float = 0.0  # of a float DoReFa post


def consumer_edge(type_code: int | None, consumer: str, producer: str, params: dict[str, float]) -> Edge:
    """The edge into a layer of ``type_code`` (None: the classifier head) that runs at ``consumer`` precision."""
    int8_tensor = "int8" in (consumer, producer)
    name = "head" if type_code is None else LAYER_TYPES[type_code].name
    if name in ("head", "float32"):
        return Edge(pre="relu", fq="calibrate" if int8_tensor else None)
    if name == "binary":
        if consumer == "int8":
            return Edge(pre="clip", gain=BINARY_GAIN, offset=0.5, fq=(-128.0, 127.0), binary=True)
        post = None if consumer == "binary" else "sign"  # a binary layer applies the sign itself
        if producer == "int8":  # LCE binarizes an int8 tensor by its sign: make 0 impossible first
            return Edge(pre="clip", gain=BINARY_GAIN, offset=0.5, fq=(-128.0, 127.0), post=post, binary=True)
        return Edge(post=post)
    if name == "ternary":
        gain = 1.0 / (2.0 * params["threshold"])
        if int8_tensor:
            return Edge(pre="clip", gain=gain, fq=(-128.0, 127.0))
        return Edge(post="ternary", threshold=params["threshold"])
    levels = params["levels"]
    if not int8_tensor:
        return Edge(post="dorefa", levels=levels)
    return Edge(pre="relu", fq=(-(255.0 - levels) / levels, 1.0))


class Ranges:
    """Observed activation ranges, keyed by tensor name, filled by a calibration pass."""

    def __init__(self) -> None:
        self.max: dict[str, float] = {}

    def observe(self, name: str, x: tf.Tensor) -> None:
        self.max[name] = max(self.max.get(name, 0.0), float(tf.reduce_max(x)))


class DeployGraph:
    """The forward pass of a ``FoldedModel`` as TF ops with exact fake-quant nodes (see the module docstring)."""

    def __init__(self, folded: FoldedModel, input_range: tuple[float, float] = (0.0, 1.0)):
        self.folded = folded
        self.input_range = input_range
        layers = folded.layers
        self.edges: list[Edge] = []
        for i, layer in enumerate(layers):
            if i == 0:
                self.edges.append(Edge(fq=("input" if layer.precision == "int8" else None)))
            else:
                self.edges.append(consumer_edge(layer.type_code, layer.precision, layers[i - 1].precision,
                                                layer.input_params))
        last = layers[-1].precision if layers else "float32"
        self.head_edge = consumer_edge(None, folded.head_precision, last, {})
        self.ranges = Ranges()
        self._calibrating = False

    # -- calibration and export -------------------------------------------------------------
    def calibrate(self, images: np.ndarray, batch: int = 256) -> None:
        """Record the ranges of the tensors that have no fixed grid (float32 layers, the head), as PTQ does."""
        self._calibrating = True
        try:
            for start in range(0, len(images), batch):
                self.forward(tf.convert_to_tensor(images[start:start + batch], tf.float32))
        finally:
            self._calibrating = False

    def save(self, directory: str | Path) -> Path:
        """Write the graph as a SavedModel (constants only, dynamic batch) for a converter."""
        shape = [None, *self.folded.input_shape]
        module = tf.Module()
        # autograph=False: the loops are over Python values, and the trace must not re-read this file's source
        module.forward = tf.function(self.forward, input_signature=[tf.TensorSpec(shape, tf.float32, name="image")],
                                     autograph=False)
        tf.saved_model.save(module, str(directory), signatures={"serving_default": module.forward})
        return Path(directory)

    # -- the forward pass ---------------------------------------------------------------------
    def forward(self, x: tf.Tensor) -> tf.Tensor:
        """Class probabilities for a batch of images, as the deployed file will compute them."""
        folded = self.folded
        if folded.kind == "dense":
            x = tf.reshape(x, [-1, int(np.prod(folded.input_shape))])
        elif len(folded.input_shape) == 2:
            x = tf.reshape(x, [-1, *folded.input_shape, 1])
        layers = folded.layers
        for i, layer in enumerate(layers):
            edge = self.edges[i]
            if i == 0:
                if edge.fq == "input":
                    lo, hi = self.input_range
                    x = tf.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi, num_bits=8)
            else:
                x = self._after_pool(x, edge, f"in{i}")
            out_edge = self.edges[i + 1] if i + 1 < len(layers) else self.head_edge
            x = self._linear(x, layer, out_edge)
            x = self._before_pool(x, out_edge)
            if layer.pool:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        if layers:
            x = self._after_pool(x, self.head_edge, "head_in")
        elif folded.head_precision == "int8":  # the head alone (a latency baseline): its input is the features
            lo, hi = self.input_range
            x = tf.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi, num_bits=8)
        return self._head(x)

    def _linear(self, x: tf.Tensor, layer: HiddenLayer, out: Edge) -> tf.Tensor:
        """The layer's product with its kernel, BatchNorm and the next edge's gain/offset folded in."""
        factor = layer.scale * out.gain
        bias = layer.shift * out.gain + out.offset
        placed = self._binary_edge(layer) if out.binary else None
        if placed is not None:
            gain, shift = placed
            factor, bias = layer.scale * gain, shift * gain
        else:
            bias = self._file_bias(layer, factor, bias, out)
        kernel = layer.kernel * factor  # broadcasts over the last (output channel) axis
        bias = tf.constant(bias.astype(np.float32))
        if layer.kind == "dense" and layer.precision == "float32":
            return tf.nn.bias_add(tf.matmul(x, tf.constant(kernel.astype(np.float32))), bias)
        # Quantized Dense layers run as 1x1 convolutions on a 1x1 map: LCE has no binary Dense op, and
        # the TFLite converter cannot carry a per-channel weight range through the Dense kernel's transpose.
        dense = layer.kind == "dense"
        if dense:
            width = int(kernel.shape[0])
            x = tf.reshape(x, [-1, 1, 1, width])
            kernel = kernel.reshape(1, 1, *kernel.shape)
        if layer.precision == "binary":
            y = tf.nn.conv2d(_ste_sign(x), tf.constant(kernel.astype(np.float32)), 1, "VALID" if dense else "SAME")
        else:
            k = tf.constant(kernel.astype(np.float32))
            if layer.precision == "int8":
                r = self._kernel_range(layer, kernel, factor)
                k = tf.quantization.fake_quant_with_min_max_vars_per_channel(k, -r, r, num_bits=8, narrow_range=True)
            y = tf.nn.conv2d(x, k, 1, "VALID" if dense else "SAME")
        y = tf.nn.bias_add(y, bias)
        return tf.reshape(y, [-1, int(kernel.shape[-1])]) if dense else y

    def _kernel_range(self, layer: HiddenLayer, kernel: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """Per-channel symmetric range of an int8 kernel (its 8-bit step is ``range / 127``).

        Float32 and int8 (DoReFa) kernels get their max: they are rounded either way. An exact grid
        gets ``n_max`` integers per unit of the type, the most int8 holds (see ``KERNEL_UNITS``).
        """
        if layer.type_code not in KERNEL_UNITS:
            r = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
        else:
            unit, n_max = KERNEL_UNITS[layer.type_code]
            r = 127.0 * np.abs(factor) * unit / n_max
        return np.maximum(r, EPS).astype(np.float32)

    def _file_bias(self, layer: HiddenLayer, factor: np.ndarray, bias: np.ndarray, out: Edge) -> np.ndarray:
        """The bias an int8 layer of an exact grid gets in the file: Keras's, moved within its lattice gaps.

        The file rounds the bias to an int32 and its output twice, so it places a rounding boundary
        up to about one accumulator unit away from where Keras does; in a chain of low-bit layers one
        decision moved that way changes many downstream ones. But the accumulator only takes multiples
        of ``n`` (integer inputs times weights on the grid), and moving every boundary of a channel
        by the same amount changes no decision as long as none crosses a multiple of ``n``. So each
        channel's bias is moved to the middle of the shifts that keep all its boundaries inside their
        gaps (``snap_bias``); the file then agrees with Keras on every value, with a margin.
        """
        if layer.precision != "int8" or layer.type_code not in KERNEL_UNITS or self._calibrating:
            return bias
        s_in = self._input_scale(layer.index)
        name = f"in{layer.index + 1}" if layer.index + 1 < len(self.folded.layers) else "head_in"
        boundaries = self._boundaries(out, name)
        if s_in is None or boundaries is None or not isinstance(out.fq, tuple):
            return bias
        unit, n_max = KERNEL_UNITS[layer.type_code]
        return snap_bias(bias, np.abs(factor) * unit / n_max * s_in, n_max, boundaries)

    def _binary_edge(self, layer: HiddenLayer) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-channel gain and (pre-gain) shift that make an int8 layer's output carry exactly Keras's sign.

        The layer's output ``y = delta * acc + shift`` only takes accumulator values on a lattice (step
        ``n``; every integer for kernels that are rounded anyway). Keras's sign flips at ``acc = t``;
        with ``U`` the first lattice value at or above ``t``, the shift is moved so ``y = 0`` falls half
        way between ``U - n`` and ``U``, and the gain puts those two values ``BINARY_SPAN`` output steps
        apart. After clipping to [-1, 1] every reachable value is then +-1 with Keras's sign, far from
        any rounding of the file (which a fixed gain and offset cannot promise: they leave a window
        of values that round to 0).
        """
        if layer.precision != "int8" or self._calibrating:
            return None
        s_in = self._input_scale(layer.index)
        if s_in is None:
            return None
        a = np.abs(layer.scale)
        if layer.type_code in KERNEL_UNITS:
            unit, n = KERNEL_UNITS[layer.type_code]
            delta = s_in * a * unit / n
        else:  # the kernel is rounded to 127 steps of its channel's max: every integer accumulator is reachable
            n = 1
            delta = s_in * np.abs(layer.kernel * layer.scale).reshape(-1, layer.kernel.shape[-1]).max(axis=0) / 127.0
        delta = np.maximum(delta, EPS)
        upper = n * np.ceil(-layer.shift / delta / n)
        shift = -delta * (upper - n / 2.0)
        gain = BINARY_SPAN / (delta * n)
        return gain, shift

    def _input_scale(self, index: int) -> float | None:
        """The 8-bit step of layer ``index``'s input tensor (None when it is not int8 or not calibrated)."""
        edge = self.edges[index]
        if edge.fq == "input":
            lo, hi = self.input_range
        elif isinstance(edge.fq, tuple):
            lo, hi = edge.fq
        elif edge.fq == "calibrate" and f"in{index}" in self.ranges.max:
            lo, hi = 0.0, max(self.ranges.max[f"in{index}"], 1e-6)
        else:
            return None
        return (hi - lo) / 255.0

    def _boundaries(self, edge: Edge, name: str) -> np.ndarray | None:
        """Values of a producer's (gain-scaled) output where its 8-bit rounding changes level, inside the clamps."""
        if isinstance(edge.fq, tuple):
            lo, hi = edge.fq
        elif edge.fq == "calibrate" and name in self.ranges.max:
            lo, hi = 0.0, max(self.ranges.max[name], 1e-6)
        else:
            return None
        step = (hi - lo) / 255.0
        zero = round(-lo / step)  # grid points are (q - zero) * step for q = 0..255
        points = (np.arange(256) - zero) * step
        cuts = (points[:-1] + points[1:]) / 2.0
        low, high = {"relu": (0.0, hi), "clip": (-1.0, 1.0)}.get(edge.pre or "", (lo, hi))
        return cuts[(cuts > low) & (cuts < high)]

    @staticmethod
    def _before_pool(x: tf.Tensor, edge: Edge) -> tf.Tensor:
        if edge.pre == "relu":
            return tf.nn.relu(x)
        if edge.pre == "clip":
            return tf.minimum(tf.maximum(x, -1.0), 1.0)
        return x

    def _after_pool(self, x: tf.Tensor, edge: Edge, name: str) -> tf.Tensor:
        if edge.fq == "calibrate":
            x = self._calibrated(x, name)
        elif isinstance(edge.fq, tuple):
            x = tf.quantization.fake_quant_with_min_max_args(x, min=edge.fq[0], max=edge.fq[1], num_bits=8)
        if edge.post == "sign":
            return _ste_sign(x)
        if edge.post == "ternary":
            return _ternary(x, edge.threshold)
        if edge.post == "dorefa":
            return tf.round(tf.clip_by_value(x, 0.0, 1.0) * edge.levels) / edge.levels
        return x

    def _calibrated(self, x: tf.Tensor, name: str) -> tf.Tensor:
        """A ReLU output with a post-training range: ``[0, observed max]``."""
        if self._calibrating:
            self.ranges.observe(name, x)
            return x
        hi = self.ranges.max.get(name)
        if hi is None:
            raise RuntimeError(f"tensor {name!r} has no calibrated range; call calibrate() first")
        return tf.quantization.fake_quant_with_min_max_args(x, min=0.0, max=max(hi, 1e-6), num_bits=8)

    def _head(self, x: tf.Tensor) -> tf.Tensor:
        folded = self.folded
        int8 = folded.head_precision == "int8"
        if folded.kind == "conv":
            x = tf.reduce_mean(x, axis=[1, 2])
            if int8:
                x = self._calibrated(x, "pooled")
        k = folded.head_kernel
        kernel = tf.constant(k.astype(np.float32))
        if int8:  # per-tensor: a Dense kernel's per-channel range does not survive the converter's transpose
            r = float(max(np.abs(k).max(), EPS))
            kernel = tf.quantization.fake_quant_with_min_max_args(kernel, min=-r, max=r, num_bits=8, narrow_range=True)
        logits = tf.nn.bias_add(tf.matmul(x, kernel), tf.constant(folded.head_bias.astype(np.float32)))
        if int8:
            logits = self._calibrated_logits(logits)
        return tf.nn.softmax(logits)

    def _calibrated_logits(self, logits: tf.Tensor) -> tf.Tensor:
        """Int8 logits whose range spans, on the calibration images, the two largest logits of each image.

        Only the top of the logits decides the class; a range that also covers the lowest logits
        would make the step several times coarser there and tie close top-2 pairs (0.7 points of
        agreement on a ternary net in our measurements). Lower logits saturate at the range's bottom.
        """
        if self._calibrating:
            ordered = tf.sort(logits, axis=1)
            self.ranges.observe("logits_top", ordered[:, -1])
            self.ranges.observe("logits_second", -ordered[:, -2])
            return logits
        hi = self.ranges.max.get("logits_top", 1.0)
        lo = -self.ranges.max.get("logits_second", 1.0)
        lo, hi = min(lo, 0.0, hi - 1e-3), max(hi, 1e-3)
        return tf.quantization.fake_quant_with_min_max_args(logits, min=lo, max=hi, num_bits=8)


def _ste_sign(x: tf.Tensor) -> tf.Tensor:
    """larq's sign (``sign(0) = +1``) in the form Larq Compute Engine's converter recognises."""
    return tf.sign(tf.sign(x) + 0.1)


def _ternary(x: tf.Tensor, threshold: float) -> tf.Tensor:
    """Ternarization written with comparisons, so no converter mistakes it for a sign."""
    return tf.cast(x >= threshold, x.dtype) - tf.cast(x <= -threshold, x.dtype)


def snap_bias(bias: np.ndarray, delta: np.ndarray, n: int, boundaries: np.ndarray) -> np.ndarray:
    """Move each channel's bias so its rounding boundaries sit mid-way between reachable accumulator values.

    ``delta`` is the channel's accumulator step (input step times kernel step), reachable accumulators
    are multiples of ``n`` and the channel's output changes level where ``delta * acc + bias`` crosses
    one of ``boundaries``. Keras's threshold for boundary ``b`` is ``t = b / delta - bias / delta``;
    the shifts ``d`` with ``t - d`` still in ``t``'s gap ``(U - n, U]`` (``U`` the first multiple of ``n``
    at or above ``t``) keep every decision; the middle of the shifts allowed for all boundaries is
    taken, which leaves the largest margin for the file's roundings.
    """
    out = bias.astype(np.float64).copy()
    for c in range(len(bias)):
        if delta[c] <= EPS:
            continue
        t = (boundaries - bias[c]) / delta[c]
        upper = n * np.ceil(t / n)
        low, high = float(np.max(t - upper)), float(np.min(t - upper)) + n
        out[c] = bias[c] + delta[c] * (low + high) / 2.0
    return out
