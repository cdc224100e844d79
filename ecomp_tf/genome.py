"""One EComp individual: an architecture plus plain weight arrays, its fast forward pass and its Keras export.

EComp scores 100 individuals per batch, so building a Keras model for each would cost far more than
the arithmetic. An :class:`Individual` is an :class:`~qnas.arch.Architecture` (width and layer type of
each hidden layer) and numpy arrays. :func:`forward` is a few numpy matmuls on them, with the same
larq quantizers as the Keras layers; :func:`forward_arrays` is the same pass in TensorFlow ops, for
fine-tuning; :func:`to_keras` builds the real model (``qnas.models``) only for the network we keep.
Tests check that all three agree.

Each hidden layer ``i`` computes ``y_i = act_i(y_{i-1}) @ q_i(W_i) * s_i + b_i`` where ``act_i`` is
ReLU for a float layer and the type's input quantizer otherwise (nothing on the pixels), ``q_i`` its
kernel quantizer, and ``s_i, b_i`` the BatchNorm of a quantized layer folded into a per-unit scale and
shift (a float layer has no scale and ``b_i`` is its bias). The classifier is
``relu(y_last) @ W_out + b_out``, as ``qnas.models.build_model`` lays it out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture, Layer
from qnas.errors import UserInputError
from qnas.models import arch_bits, build_model
from qnas.space import SearchSpace
from qnas.spaces import SPACES
from quantize.blocks import BN_EPSILON
from quantize.types import LAYER_TYPES

_QUANTIZERS: dict[int, tuple[Any, Any]] = {}
_COMPILED: dict[int, tuple[Any, Any]] = {}


def quantizers(code: int) -> tuple[Any, Any]:
    """(input quantizer, kernel quantizer) of a layer type, made once; (None, None) for float."""
    if code not in _QUANTIZERS:
        layer_type = LAYER_TYPES[code]
        _QUANTIZERS[code] = (layer_type.input_quantizer(), layer_type.kernel_quantizer())
    return _QUANTIZERS[code]


def compiled_quantizers(code: int) -> tuple[Any, Any]:
    """The quantizers' maths (their ``call``) as graphs, for numpy scoring: a Keras ``__call__`` re-runs
    autograph on every call for quantizers that define their gradient inside ``call`` (DoReFa), and
    a graph halves the cost of quantizing a kernel. One graph serves every 2-D input (kernels, activations)."""
    if code not in _COMPILED:
        spec = [tf.TensorSpec([None, None], tf.float32)]
        _COMPILED[code] = tuple(None if q is None else tf.function(q.call, input_signature=spec)
                                for q in quantizers(code))
    return _COMPILED[code]


@dataclass
class Individual:
    """Architecture and weights of one compressed network (see the module docstring for the maths).

    ``kernels`` and ``biases`` hold one entry per hidden layer and a last one for the classifier;
    ``scales`` one per hidden layer (None for float layers); ``origins`` the index of the parent
    neuron each hidden unit descends from, kept for inspection and tests.
    """

    arch: Architecture
    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    scales: list[np.ndarray | None]
    origins: list[np.ndarray] = field(default_factory=list)
    # quantized kernels by layer, as (latent array, type code, quantized array); never copied, so an
    # operator that edits arrays in place right after ``copy()`` cannot see a stale entry
    cache: dict[int, tuple[np.ndarray, int, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def widths(self) -> list[int]:
        return self.arch.widths

    @property
    def num_hidden(self) -> int:
        return len(self.arch)

    def copy(self) -> Individual:
        """A deep copy: operators never share arrays between individuals."""
        return Individual(self.arch, [k.copy() for k in self.kernels], [b.copy() for b in self.biases],
                          [None if s is None else s.copy() for s in self.scales], [o.copy() for o in self.origins])

    def with_arch(self, widths: Sequence[int] | None = None, types: Sequence[int] | None = None) -> Architecture:
        """This architecture with some widths or types replaced."""
        widths = self.widths if widths is None else widths
        types = self.arch.type_codes if types is None else types
        return Architecture(tuple(Layer(int(w), int(t)) for w, t in zip(widths, types)))

    def check(self) -> None:
        """Assert that every array agrees with the architecture (operators call it in tests)."""
        fan_in = self.kernels[0].shape[0]
        for i, layer in enumerate(self.arch.layers):
            assert self.kernels[i].shape == (fan_in, layer.width), (i, self.kernels[i].shape, fan_in, layer.width)
            assert self.biases[i].shape == (layer.width,), (i, self.biases[i].shape)
            quantized = LAYER_TYPES[layer.type_code].quantized
            assert (self.scales[i] is not None) == quantized, (i, layer)
            assert self.scales[i] is None or self.scales[i].shape == (layer.width,)
            assert not self.origins or self.origins[i].shape == (layer.width,)
            fan_in = layer.width
        assert self.kernels[-1].shape[0] == fan_in and self.biases[-1].shape == self.kernels[-1].shape[1:]


@dataclass
class Outputs:
    """What one forward pass gives: pre-BatchNorm ``z``, block outputs ``y`` per hidden layer, and logits
    (numpy arrays from ``forward``, tensors from ``forward_arrays``)."""

    z: list[Any]
    y: list[Any]
    logits: Any

    def embeddings(self, layers: Sequence[int], point: str = "activation") -> list[np.ndarray]:
        """Hidden representations compared with the parent's: after ReLU ("activation") or block outputs."""
        picked = [np.asarray(self.y[i]) for i in layers]
        return [np.maximum(t, 0.0) for t in picked] if point == "activation" else picked

    def accuracy(self, labels: np.ndarray) -> float:
        return float(np.mean(np.argmax(np.asarray(self.logits), axis=1) == labels))


def forward(ind: Individual, x: np.ndarray) -> Outputs:
    """Run ``ind`` on images ``x`` in numpy (quantizers through larq), for scoring; outputs are arrays.

    Float matmuls run in numpy, which has far less per-call overhead than eager TensorFlow for
    100-image batches; each quantized kernel is computed once per individual and cached.
    """
    a = np.asarray(x, np.float32).reshape(len(x), -1)
    zs, ys = [], []
    y = a
    for i, layer in enumerate(ind.arch.layers):
        in_q, _ = compiled_quantizers(layer.type_code)
        if i > 0:
            a = np.maximum(y, 0.0) if in_q is None else _quantize(in_q, y)
        z = a @ _kernel(ind, i)
        y = z + ind.biases[i] if ind.scales[i] is None else z * ind.scales[i] + ind.biases[i]
        zs.append(z)
        ys.append(y)
    logits = np.maximum(y, 0.0) @ ind.kernels[-1] + ind.biases[-1]
    return Outputs(zs, ys, logits)


def _quantize(compiled: Any, values: np.ndarray) -> np.ndarray:
    return compiled(tf.convert_to_tensor(values, tf.float32)).numpy()


def _kernel(ind: Individual, layer: int) -> np.ndarray:
    """The kernel as the layer uses it: quantized (cached while the same array is in place) or as is."""
    code = ind.arch.layers[layer].type_code
    k_q = compiled_quantizers(code)[1]
    latent = ind.kernels[layer]
    if k_q is None:
        return latent
    cached = ind.cache.get(layer)
    if cached is None or cached[0] is not latent or cached[1] != code:
        cached = (latent, code, _quantize(k_q, latent))
        ind.cache[layer] = cached
    return cached[2]


def forward_arrays(type_codes: Sequence[int], kernels: Sequence[Any], biases: Sequence[Any],
                   scales: Sequence[Any], x: np.ndarray | tf.Tensor) -> Outputs:
    """The same forward pass in TensorFlow ops, for fine-tuning under ``tf.function`` and a ``GradientTape``.

    Takes the hidden layers' type codes and their weights (arrays or tensors); the widths come from
    the weights, so one graph serves every width.
    """
    a = tf.reshape(tf.convert_to_tensor(x, tf.float32), (tf.shape(x)[0], -1))
    zs, ys = [], []
    y = a
    for i, code in enumerate(type_codes):
        in_q, k_q = quantizers(code)
        if i > 0:
            a = tf.nn.relu(y) if in_q is None else in_q(y)
        z = tf.matmul(a, kernels[i] if k_q is None else k_q(kernels[i]))
        y = z + biases[i] if scales[i] is None else z * scales[i] + biases[i]
        zs.append(z)
        ys.append(y)
    logits = tf.matmul(tf.nn.relu(y), kernels[-1]) + biases[-1]
    return Outputs(zs, ys, logits)


def bits(ind: Individual, space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> int:
    """Model size in bits of the network ``to_keras`` would build."""
    return arch_bits(space, ind.arch, input_shape, num_classes)


def from_parent(parent: Any) -> Individual:
    """The parent network as an individual: a float ReLU MLP of Dense layers (``Parent`` or Keras model).

    Checked against the model's own predictions, so a parent of another form is refused with a clear
    message instead of being compressed wrongly.
    """
    model = getattr(parent, "model", parent)
    dense = [lay for lay in model.layers if isinstance(lay, tf.keras.layers.Dense)]
    if len(dense) < 2:
        raise UserInputError(f"EComp needs an MLP parent with hidden Dense layers; {model.name!r} has "
                             f"{len(dense)} Dense layer(s)")
    for lay in dense:
        if getattr(lay, "kernel_quantizer", None) is not None or getattr(lay, "input_quantizer", None) is not None:
            raise UserInputError(f"parent layer {lay.name!r} is quantized; EComp compresses a float parent")
    kernels = [np.asarray(lay.kernel.numpy(), np.float32) for lay in dense]
    biases = [np.asarray(lay.bias.numpy(), np.float32) if lay.use_bias else np.zeros(lay.units, np.float32)
              for lay in dense]
    arch = Architecture(tuple(Layer(k.shape[1], 0) for k in kernels[:-1]))
    ind = Individual(arch, kernels, biases, [None] * len(arch), [np.arange(w) for w in arch.widths])
    ind.check()
    probe = np.random.default_rng(0).random((8, *model.input_shape[1:]), dtype=np.float32)
    expected = model(probe, training=False).numpy()
    got = tf.nn.softmax(forward(ind, probe).logits).numpy()
    if expected.shape != got.shape or not np.allclose(expected, got, atol=1e-4):
        raise UserInputError(f"parent {model.name!r} is not a plain ReLU MLP (Dense, ReLU, Dense, softmax): "
                             "EComp cannot reproduce its outputs from its Dense weights")
    return ind


def to_keras(ind: Individual, input_shape: Sequence[int], num_classes: int, calib_x: np.ndarray,
             space: SearchSpace | None = None, name: str = "ecomp_child") -> tf.keras.Model:
    """The Keras model of ``ind`` (``qnas.models.build_model``), weights set so it computes ``forward``.

    A folded BatchNorm (scale ``s``, shift ``b``) is written back with moving statistics measured on
    ``calib_x``, so that the layer is also well conditioned if it is trained further. The model comes
    compiled (Adam, cross-entropy, accuracy), ready to evaluate or to retrain.
    """
    space = space or SPACES["mlp"]
    model = build_model(space, ind.arch, input_shape, num_classes, name=name)
    outs = forward(ind, calib_x)
    for i, layer in enumerate(ind.arch.layers):
        linear = model.get_layer(f"h{i}_linear")
        if ind.scales[i] is None:
            linear.set_weights([ind.kernels[i], ind.biases[i]])
            continue
        linear.set_weights([ind.kernels[i]])
        z = outs.z[i].astype(np.float64)
        mean, var = z.mean(axis=0), z.var(axis=0)
        scale = ind.scales[i].astype(np.float64)
        gamma = scale * np.sqrt(var + BN_EPSILON)
        beta = ind.biases[i] + mean * scale
        model.get_layer(f"h{i}_bn").set_weights([a.astype(np.float32) for a in (gamma, beta, mean, var)])
    model.get_layer("logits").set_weights([ind.kernels[-1], ind.biases[-1]])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
