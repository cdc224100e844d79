"""Bring your own parent: a user's trained model replaces the cached float parent.

Accepted: a Keras model (``.keras``, ``.h5`` or a SavedModel folder), or, for the mlp space, an
``.npz`` of plain weight arrays for a stack of Dense layers (kernels and biases), as models coming
from other frameworks often are. Everything is checked before any work starts: input shape and
class count against the data, the embedding layers by name. The parent's own test accuracy is
measured and reported, so the user sees the starting point.

``.npz`` layout: either named arrays ``kernel_0, bias_0, kernel_1, bias_1, ...`` (``weight_i`` or
``w_i`` / ``b_i`` also work), or unnamed arrays saved in order (``np.savez(path, k0, b0, k1, b1, ...)``).
Kernels are ``(in, out)`` (Keras, ``--parent_layout in_out``) or ``(out, in)`` (PyTorch's
``nn.Linear``, ``--parent_layout out_in``). Hidden layers use ReLU, the last layer is the classifier.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import larq  # noqa: F401  (registers larq's layers and quantizers, so saved larq models load)
import numpy as np
import tensorflow as tf

from qnas.arch import parse_arch
from qnas.data import Dataset
from qnas.errors import UserInputError
from qnas.models import block_output_names
from qnas.parent import Parent, as_model_input, get_parent
from qnas.space import SearchSpace
from quantize.size import model_bits

LAYOUTS = ("in_out", "out_in")
ACCEPTED = ("a .keras or .h5 file saved with model.save(), a SavedModel folder, or an .npz of Dense weights "
            "(kernel_0, bias_0, kernel_1, bias_1, ...)")
_HIDDEN_KINDS = (tf.keras.layers.Dense, tf.keras.layers.Conv2D)
_FOLLOWERS = (tf.keras.layers.BatchNormalization, tf.keras.layers.Activation, tf.keras.layers.ReLU,
              tf.keras.layers.LeakyReLU, tf.keras.layers.MaxPool2D, tf.keras.layers.AveragePooling2D)


def load_user_parent(path: str | Path, data: Dataset, emb_layers: Sequence[str] | None = None,
                     layout: str = "in_out", log=print, emb_flag: bool = True) -> Parent:
    """Load, check and measure a user's parent; the returned ``Parent`` drives either search.

    ``emb_flag`` says whether the calling command has ``--emb_layers``, so messages only suggest it there.
    """
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"--parent {str(path)!r} does not exist; expected {ACCEPTED}")
    if path.suffix == ".npz":
        model = dense_stack_from_npz(path, data, layout)
    else:
        model = flatten_nested(_load_keras(path))
    _check_input(model, data)
    _check_classes(model, data)
    _check_finite(model, path)
    names = list(emb_layers) if emb_layers else default_embedding_layers(model)
    known = [layer.name for layer in model.layers]
    missing = [n for n in names if n not in known]
    if missing:
        raise UserInputError(f"--emb_layers {missing} are not layers of the parent; its layers are {known}")
    if not names:
        raise UserInputError(f"the parent has no hidden Dense or Conv2D layer (its layers are {known}); "
                             + ("name the layers to compare with --emb_layers" if emb_flag
                                else "expected a stack of Dense layers with ReLU between them"))
    accuracy = parent_accuracy(model, data)
    digest = weights_hash(model)
    log(f"parent: {path} (weights sha256 {digest[:12]}), embedding layers {names}, "
        f"test accuracy {accuracy:.4f}")
    try:
        bits = model_bits(model)
    except Exception:  # noqa: BLE001 - larq cannot profile every custom layer; count 32 bits a parameter
        bits = 32 * int(model.count_params())
    return Parent(model=model, arch=None, embedding_layers=names, test_accuracy=accuracy, bits=bits,
                  source=f"{path} sha256:{digest}")


def _load_keras(path: Path) -> tf.keras.Model:
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - h5py, zipfile, JSON and Keras errors alike mean "not a model we can read"
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserInputError(f"cannot load --parent {path} as a model ({type(err).__name__}: {detail}); expected "
                             f"{ACCEPTED}") from None
    if not isinstance(model, tf.keras.Model):
        raise UserInputError(f"--parent {path} is a SavedModel without a Keras model; save it with model.save()")
    return model


def flatten_nested(model: tf.keras.Model) -> tf.keras.Model:
    """A parent whose layers include whole models (a base network, say) as one flat chain of its layers.

    Only then can every layer be named (``--emb_layers``) and read. A nested model that is not a plain
    chain is refused with a message.
    """
    if not any(isinstance(layer, tf.keras.Model) for layer in model.layers):
        return model
    layers = [layer for layer in _flat_layers(model) if not isinstance(layer, tf.keras.layers.InputLayer)]
    try:
        flat = tf.keras.Sequential([tf.keras.Input(model.input_shape[1:]), *layers], name=f"{model.name}_flat")
        probe = np.random.default_rng(0).random((4, *model.input_shape[1:]), dtype=np.float32)
        same = np.allclose(flat(probe, training=False), model(probe, training=False), atol=1e-5)
    except (ValueError, TypeError):
        same = False
    if not same:
        raise UserInputError(f"the parent {model.name!r} nests models that are not a plain chain of layers; "
                             "save a flat model (or a Sequential of Sequentials)")
    return flat


def dense_stack_from_npz(path: Path, data: Dataset, layout: str = "in_out") -> tf.keras.Model:
    """A Keras Dense stack (ReLU hidden layers, softmax classifier) carrying the arrays of an ``.npz``."""
    if layout not in LAYOUTS:
        raise UserInputError(f"--parent_layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    pairs = _kernel_bias_pairs(path)
    kernels = [k if layout == "in_out" else k.T for k, _ in pairs]
    expected_in = int(np.prod(data.input_shape))
    if kernels[0].shape[0] != expected_in:
        other = kernels[0].shape[1]
        hint = " (the other layout would fit: try --parent_layout " + ("out_in" if layout == "in_out" else "in_out") \
            + ")" if other == expected_in else ""
        raise UserInputError(f"the parent's first kernel takes {kernels[0].shape[0]} inputs, but the data's images "
                             f"{data.input_shape} have {expected_in} values{hint}")
    inputs = tf.keras.Input(data.input_shape, name="image")
    x = tf.keras.layers.Flatten(name="flatten")(inputs)
    for i, ((_, bias), kernel) in enumerate(zip(pairs, kernels)):
        if i and kernel.shape[0] != kernels[i - 1].shape[1]:
            raise UserInputError(f"layer {i} kernel has shape {kernel.shape} after a layer of "
                                 f"{kernels[i - 1].shape[1]} units; check --parent_layout")
        if bias.shape != (kernel.shape[1],):
            raise UserInputError(f"layer {i}: bias shape {bias.shape} does not match kernel {kernel.shape}")
        last = i == len(pairs) - 1
        layer = tf.keras.layers.Dense(kernel.shape[1], activation=None if last else "relu",
                                      name="logits" if last else f"dense_{i}")
        x = layer(x)
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    outputs = tf.keras.layers.Softmax(name="probs")(x)
    return tf.keras.Model(inputs, outputs, name="npz_parent")


def _kernel_bias_pairs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise UserInputError(f"cannot read --parent {path} as an .npz ({err})") from None
    kernels, biases = {}, {}
    for key, value in arrays.items():
        m = re.fullmatch(r"(kernel|weight|weights|w|W)_?(\d+)", key)
        n = re.fullmatch(r"(bias|b)_?(\d+)", key)
        if m:
            kernels[int(m.group(2))] = value
        elif n:
            biases[int(n.group(2))] = value
    if not kernels:  # unnamed arrays in order: arr_0 = kernel, arr_1 = bias, ...
        ordered = [arrays[k] for k in sorted(arrays, key=lambda k: int(k.split("_")[-1]) if k.startswith("arr_") else -1)]
        if len(ordered) % 2 or not ordered:
            raise UserInputError(f"--parent {path}: expected kernel_i/bias_i arrays or an even number of arrays "
                                 f"(kernel, bias, kernel, bias, ...), found {sorted(arrays)}")
        pairs = [(ordered[i], ordered[i + 1]) for i in range(0, len(ordered), 2)]
        for i, (k, b) in enumerate(pairs):
            if k.ndim != 2 or b.ndim != 1:
                raise UserInputError(f"--parent {path}: array pair {i} has shapes {k.shape} and {b.shape}; expected a "
                                     f"2-D kernel then a 1-D bias, in that order")
        return pairs
    first = min(kernels)
    if sorted(kernels) != sorted(biases) or sorted(kernels) != list(range(first, first + len(kernels))):
        raise UserInputError(f"--parent {path}: kernels {sorted(kernels)} and biases {sorted(biases)} must be "
                             f"numbered alike and consecutively (0..n-1 or 1..n)")
    pairs = [(kernels[i], biases[i]) for i in sorted(kernels)]
    for i, (k, _) in enumerate(pairs):
        if k.ndim != 2:
            raise UserInputError(f"--parent {path}: kernel {i} has shape {k.shape}; a Dense kernel is 2-D")
    return pairs


def _check_input(model: tf.keras.Model, data: Dataset) -> None:
    """The parent must take the data's images, up to a reshape (e.g. (784,) for (28, 28, 1))."""
    want = tuple(model.input_shape[1:])
    have = data.input_shape

    def squeezed(shape):
        return tuple(d for d in shape if d != 1)

    flattened = len(want) == 1 and want[0] == int(np.prod(have))
    if want != have and not flattened and (None in want or squeezed(want) != squeezed(have)):
        raise UserInputError(f"the parent takes inputs of shape {want}, but the data's images are {have} "
                             "(a flattened or a channel-less form of the images is accepted, other layouts not)")


def _check_finite(model: tf.keras.Model, path: Path) -> None:
    """A parent with NaN or infinite weights would poison every similarity and accuracy it enters."""
    for layer in _flat_layers(model):
        for weight in layer.weights:
            if not np.all(np.isfinite(weight.numpy())):
                raise UserInputError(f"--parent {path}: weight {weight.name!r} of layer {layer.name!r} holds NaN or "
                                     f"infinite values; expected a trained model with finite weights")


def _check_classes(model: tf.keras.Model, data: Dataset) -> None:
    classes = model.output_shape[-1]
    if classes != data.num_classes:
        raise UserInputError(f"the parent outputs {classes} classes (output shape {model.output_shape}), "
                             f"but the data has {data.num_classes}")


def default_embedding_layers(model: tf.keras.Model) -> list[str]:
    """The activation of each hidden Dense/Conv2D layer: the layer itself, or the activation/BN/pool after it."""
    layers = _flat_layers(model)
    hidden = [i for i, layer in enumerate(layers) if isinstance(layer, _HIDDEN_KINDS)][:-1]
    names = []
    for i in hidden:
        j = i
        while j + 1 < len(layers) and isinstance(layers[j + 1], _FOLLOWERS):
            j += 1
        names.append(layers[j].name)
    return names


def _flat_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    out = []
    for layer in model.layers:
        out += _flat_layers(layer) if isinstance(layer, tf.keras.Model) else [layer]
    return out


def parent_accuracy(model: tf.keras.Model, data: Dataset) -> float:
    """Test accuracy of the parent, by the argmax of its outputs (probabilities or logits alike)."""
    predictions = model.predict(as_model_input(model, data.x_test), batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == data.y_test))


def weights_hash(model: tf.keras.Model) -> str:
    """sha256 of the model's weights, in order: which parent a result came from."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(str(w.shape).encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def as_space_model(model: tf.keras.Model, space: SearchSpace, data: Dataset) -> tf.keras.Model:
    """The user's Dense/ReLU stack rebuilt as this toolkit's float mlp model (same weights, same outputs).

    Warm starts and EComp's genomes address hidden blocks by their names (``h0_linear``, ...); a Dense stack
    with ReLU hidden layers maps onto them exactly. Other structures are refused with what is supported.
    """
    if space.kind != "dense":
        raise UserInputError("starting from your own parent is supported for the mlp space (a stack of Dense layers "
                             f"with ReLU); this run uses the {space.name} space")
    layers = _flat_layers(model)
    dense = [lay for lay in layers if isinstance(lay, tf.keras.layers.Dense)]
    unsupported = [lay.name for lay in layers if not isinstance(lay, (tf.keras.layers.Dense, tf.keras.layers.ReLU,
                                                                       tf.keras.layers.Activation, tf.keras.layers.Flatten,
                                                                       tf.keras.layers.Reshape, tf.keras.layers.Softmax,
                                                                       tf.keras.layers.InputLayer, tf.keras.layers.Dropout))]
    activations = {getattr(lay.activation, "__name__", "") for lay in dense[:-1]} - {"relu", "linear"}
    if len(dense) < 2 or unsupported or activations or not all(lay.use_bias for lay in dense):
        raise UserInputError(
            "starting from your own parent needs a stack of Dense layers (with biases) and ReLU between them; "
            f"this parent has {[type(lay).__name__ for lay in layers]}")
    arch = parse_arch(" ".join(f"{lay.units} 0" for lay in dense[:-1]), space)
    rebuilt = space.build(arch, data.input_shape, data.num_classes, name="user_parent")
    for i, lay in enumerate(dense[:-1]):
        rebuilt.get_layer(f"h{i}_linear").set_weights(lay.get_weights())
    rebuilt.get_layer("logits").set_weights(dense[-1].get_weights())
    probe = data.x_val[:32]
    rebuilt_logits = tf.keras.Model(rebuilt.inputs, rebuilt.get_layer("logits").output)(probe, training=False)
    if not np.allclose(rebuilt_logits.numpy(), _logits_of(model, as_model_input(model, probe)), atol=1e-4):
        raise UserInputError("this parent is not a plain stack of Dense layers with ReLU between them (its outputs "
                             "differ once rebuilt that way); warm starts and EComp need exactly that structure")
    return rebuilt


def _logits_of(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
    """The last Dense layer's pre-activation output, so parents ending in softmax or in logits compare alike."""
    last = [layer for layer in _flat_layers(model) if isinstance(layer, tf.keras.layers.Dense)][-1]
    features = tf.keras.Model(model.inputs, last.input)(x, training=False).numpy()
    kernel, bias = last.get_weights()
    return features @ kernel + bias


def hidden_layer_indices(model: tf.keras.Model, names: Sequence[str]) -> tuple[int, ...]:
    """Which hidden Dense layer (0, 1, ...) each named layer belongs to: itself, or the Dense layer before it."""
    layers = _flat_layers(model)
    positions = {layer.name: k for k, layer in enumerate(layers)}
    dense_positions = [k for k, layer in enumerate(layers) if isinstance(layer, tf.keras.layers.Dense)][:-1]
    out = []
    for name in names:
        before = [i for i, k in enumerate(dense_positions) if k <= positions[name]]
        if not before:
            raise UserInputError(f"--emb_layers {name!r} comes before the first hidden Dense layer")
        out.append(before[-1])
    return tuple(out)


def user_parent_for_space(path: str | Path, data: Dataset, space: SearchSpace, emb_layers: Sequence[str] | None = None,
                          layout: str = "in_out", log=print, emb_flag: bool = True) -> tuple[Parent, tuple[int, ...]]:
    """A user's Dense/ReLU parent rebuilt in this toolkit's naming, and its embedding layers as hidden indices.

    EComp's genomes and the warm starts address hidden blocks by position; this is the bridge.
    """
    parent = load_user_parent(path, data, emb_layers, layout, log=log, emb_flag=emb_flag)
    rebuilt = as_space_model(parent.model, space, data)
    indices = hidden_layer_indices(parent.model, parent.embedding_layers)
    blocks = block_output_names(rebuilt, max(indices) + 1)
    names = [blocks[i] for i in indices]
    return replace(parent, model=rebuilt, embedding_layers=names), indices


def resolve_parent(space: SearchSpace, data: Dataset, path: str | Path | None = None,
                   emb_layers: Sequence[str] | None = None, layout: str = "in_out", in_space: bool = False,
                   seed: int = 0, cache_dir: str | Path = "cache", log=print, emb_flag: bool = True) -> Parent:
    """The one way every CLI gets its parent: the user's model at ``path`` when given, else the cached float parent.

    ``in_space``: rebuild the user's Dense/ReLU stack in this toolkit's naming (``as_space_model``), as warm
    starts and EComp's genomes need; the search compares against the user's model as it is. ``emb_flag``: whether
    the calling command has ``--emb_layers`` (messages suggest it only there).
    """
    if path is None:
        return get_parent(space, data, seed=seed, cache_dir=cache_dir, log=log)
    if in_space:
        return user_parent_for_space(path, data, space, emb_layers, layout, log=log, emb_flag=emb_flag)[0]
    return load_user_parent(path, data, emb_layers, layout, log=log, emb_flag=emb_flag)


def parent_depth_in(model: tf.keras.Model, kind: str) -> int | None:
    """Hidden layers of a parent (classifier excluded) when all are of ``kind`` ("dense": Dense, "conv": Conv2D).

    A search follows the depth of a parent like its own networks; a parent of another kind (a Dense stack for
    the conv space) says nothing about it: None.
    """
    layer_class = {"dense": tf.keras.layers.Dense, "conv": tf.keras.layers.Conv2D}.get(kind)
    hidden = hidden_linear_layers(model)
    if layer_class is None or not hidden or not all(isinstance(layer, layer_class) for layer in hidden):
        return None
    return len(hidden)


def hidden_linear_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The Dense/Conv2D layers of a model in order, without the last one (the classifier)."""
    return [layer for layer in _flat_layers(model) if isinstance(layer, _HIDDEN_KINDS)][:-1]
