"""Structured pruning: remove whole units of Dense layers or filters of Conv layers from a Keras model.

Keras layers cannot shrink in place, so every operator here *rebuilds* the model: each layer is
re-created from its config (fewer ``units``/``filters`` where asked), called on the new graph in
the same order, and given the old weights sliced to the units that stay. Pruning unit ``j`` of a
linear layer removes column ``j`` of its kernel (and bias), the channel ``j`` of a BatchNorm that
follows, and row ``j`` of the next linear layer's kernel, so the remaining computation is unchanged.

The channel bookkeeping follows the graph: per-channel layers (activations, pooling, dropout,
BatchNorm) pass the kept channel set on, ``Flatten`` maps it to flat positions, and the next linear
layer consumes it. Layers that mix channels in other ways (Reshape, Add, Concatenate, ...) are
refused when a pruned channel set reaches them, as is pruning a layer that feeds the model output.

Works on models from ``qnas.models.build_model`` (blocks ``h{i}_linear``/``h{i}_bn``, larq layers
keep their quantizers and latent weights) and on plain Sequential/functional models.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from qnas.errors import UserInputError
from qnas.keras_graph import (
    PER_CHANNEL,
    Layer,
    consumers,
    graph_layers,
    inbound_names,
    is_linear,
    linear_copy,
    resolve_linear,
    source_layer,
    unit_output_layer,
    width,
    width_key,
)
from qnas.utilities import attach_utilities, get_utilities

# ----------------------------------------------------------------------------- channel bookkeeping

@dataclass
class _Flow:
    """Kept channel indices entering (``cin``) and leaving (``cout``) each layer; None = all of them."""

    cin: dict[str, np.ndarray | None]
    cout: dict[str, np.ndarray | None]


def _propagate(model: tf.keras.Model, keep: Mapping[str, np.ndarray]) -> _Flow:
    """Follow kept channel sets from the pruned layers to the layers that consume them."""
    cin: dict[str, np.ndarray | None] = {}
    cout: dict[str, np.ndarray | None] = {}
    for lay in graph_layers(model):
        srcs = [s for s in inbound_names(lay) if s in cout]
        incoming = [cout[s] for s in srcs]
        if len(incoming) > 1 and any(c is not None for c in incoming):
            raise UserInputError(
                f"layer {lay.name!r} ({type(lay).__name__}) merges several inputs and one of them was pruned; "
                "only chains of layers can be pruned"
            )
        c = incoming[0] if incoming else None
        cin[lay.name] = c
        if is_linear(lay):
            cout[lay.name] = keep.get(lay.name)
        elif c is None:
            cout[lay.name] = None
        elif isinstance(lay, tf.keras.layers.BatchNormalization):
            axis = lay.axis if isinstance(lay.axis, int) else (lay.axis[0] if len(lay.axis) == 1 else None)
            if axis not in (-1, len(lay.input_shape) - 1):
                raise UserInputError(f"BatchNormalization {lay.name!r} must normalise the last axis to be pruned")
            cout[lay.name] = c
        elif isinstance(lay, PER_CHANNEL):
            cout[lay.name] = c
        elif isinstance(lay, tf.keras.layers.Flatten):
            positions = int(np.prod(lay.input_shape[1:-1]))
            channels = int(lay.input_shape[-1])
            cout[lay.name] = np.add.outer(np.arange(positions) * channels, c).ravel()
        elif _feeds_output(model, lay):
            raise UserInputError(
                f"pruning {sorted(keep)} would change the model output (its units reach {lay.name!r} with no Dense/Conv "
                "layer in between); prune a hidden layer"
            )
        else:
            raise UserInputError(
                f"a pruned channel set reaches layer {lay.name!r} ({type(lay).__name__}), which this pruner cannot "
                "shrink; supported between linear layers: activations, pooling, dropout, BatchNorm, Flatten"
            )
    outputs = {source_layer(t).name for t in model.outputs}
    changed = [n for n in outputs if cout.get(n) is not None]
    if changed:
        raise UserInputError(
            f"pruning {sorted(keep)} would change the shape of the model output {changed}; prune a hidden layer"
        )
    return _Flow(cin, cout)


def _feeds_output(model: tf.keras.Model, layer: Layer) -> bool:
    """True when ``layer``'s output reaches a model output without passing a linear layer."""
    outputs = {source_layer(t).name for t in model.outputs}
    after, todo, seen = consumers(model), [layer.name], set()
    while todo:
        name = todo.pop()
        if name in outputs:
            return True
        seen.add(name)
        todo += [n for n in after[name] if n not in seen and not is_linear(model.get_layer(n))]
    return False


def _slice_weights(layer: Layer, weights: list[np.ndarray], cin: np.ndarray | None,
                   cout: np.ndarray | None) -> list[np.ndarray]:
    """The weights of ``layer`` restricted to the kept input and output channels."""
    if cin is None and cout is None:
        return weights
    if is_linear(layer):
        kernel = weights[0]
        if cin is not None:
            kernel = np.take(kernel, cin, axis=-2)
        if cout is not None:
            kernel = np.take(kernel, cout, axis=-1)
        rest = [np.take(w, cout, axis=-1) if cout is not None and w.shape[-1:] == (width(layer),) else w
                for w in weights[1:]]
        return [kernel, *rest]
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return [np.take(w, cin, axis=-1) for w in weights]
    if weights:
        raise UserInputError(f"cannot slice the weights of {layer.name!r} ({type(layer).__name__})")
    return weights


def prunable_layers(model: tf.keras.Model) -> list[str]:
    """Linear layers whose units can be removed: their output reaches another linear layer, not the output."""
    out = []
    for lay in graph_layers(model):
        if is_linear(lay):
            try:
                _propagate(model, {lay.name: np.arange(width(lay) - 1)})
            except UserInputError:
                continue
            out.append(lay.name)
    return out


# ----------------------------------------------------------------------------- rebuilding

Replacement = Callable[[Layer, list[np.ndarray]], list[tuple[Layer, list[np.ndarray]]]]


def rebuild(model: tf.keras.Model, keep: Mapping[str, np.ndarray] | None = None,
            replace: Mapping[str, Replacement] | None = None, name: str | None = None) -> tf.keras.Model:
    """A new model with fresh layers: units outside ``keep`` removed, layers in ``replace`` swapped.

    ``keep`` maps linear layer names to the unit indices that stay. ``replace`` maps a layer name to a
    function that receives the (rebuilt, unbuilt) layer and its sliced weights and returns the new
    layers, in order, each with the weights to give it once built (used by rank reduction).
    """
    keep = {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in (keep or {}).items()}
    replace = dict(replace or {})
    flow = _propagate(model, keep)
    tensors: dict[str, tf.Tensor] = {}
    to_set: list[tuple[Layer, list[np.ndarray]]] = []
    inputs = []
    for lay in graph_layers(model):
        if isinstance(lay, tf.keras.layers.InputLayer):
            cfg = lay.get_config()
            tensor = tf.keras.Input(batch_shape=cfg["batch_input_shape"], dtype=cfg.get("dtype"), name=lay.name)
            tensors[lay.name] = tensor
            inputs.append(tensor)
            continue
        cfg = lay.get_config()
        if lay.name in keep:
            cfg[width_key(lay)] = len(keep[lay.name])
        new = type(lay).from_config(cfg)
        weights = _slice_weights(lay, lay.get_weights(), flow.cin[lay.name], keep.get(lay.name))
        parts = replace[lay.name](new, weights) if lay.name in replace else [(new, weights)]
        srcs = inbound_names(lay)
        x = tensors[srcs[0]] if len(srcs) == 1 else [tensors[s] for s in srcs]
        for part, part_weights in parts:
            x = part(x)
            to_set.append((part, part_weights))
        tensors[lay.name] = x
    outputs = [tensors[source_layer(t).name] for t in model.outputs]
    new_model = tf.keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name or model.name)
    for part, part_weights in to_set:
        if part_weights:
            part.set_weights(part_weights)
    return new_model


# ----------------------------------------------------------------------------- pruning

def keep_units(model: tf.keras.Model, keep: Mapping[str, Sequence[int]],
               refit: np.ndarray | None = None) -> tf.keras.Model:
    """A copy of ``model`` keeping only the given units of each named linear layer (others untouched).

    With ``refit`` (a sample of model inputs), the linear layers that lost inputs are re-solved by
    least squares on that sample (see ``refit_consumers``).
    """
    checked: dict[str, np.ndarray] = {}
    for name, idx in keep.items():
        layer = resolve_linear(model, name)
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        if len(idx) == 0 or idx.min() < 0 or idx.max() >= width(layer):
            raise UserInputError(
                f"kept units of {layer.name!r} must be a non-empty set of indices in 0..{width(layer) - 1}"
            )
        checked[layer.name] = idx
    new_model = rebuild(model, keep=checked)
    if refit is not None:
        refit_consumers(model, new_model, checked, refit)
    _carry_utilities(model, new_model, checked)
    return new_model


def lowest(scores: np.ndarray, n: int) -> np.ndarray:
    """Sorted indices of all but the ``n`` lowest scores (ties broken by index, so it is deterministic)."""
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[n:])


def resolve_utility(model: tf.keras.Model, layer_name: str, utility=None) -> np.ndarray:
    """Per-unit utility of a layer: an array, a ``callable(model, layer_name)``, or the tracked one."""
    layer = resolve_linear(model, layer_name)
    if utility is None:
        tracked = get_utilities(model) or {}
        if layer.name not in tracked:
            raise UserInputError(
                f"no utility for {layer.name!r}: train with qnas.contribution.ContributionTracker, compute it with "
                "contribution_scores(model, x, y), or pass utility= (an array or a function of (model, layer_name))"
            )
        utility = tracked[layer.name]
    elif callable(utility):
        utility = utility(model, layer.name)
    scores = np.asarray(utility, dtype=np.float64).reshape(-1)
    if scores.shape != (width(layer),) or not np.all(np.isfinite(scores)):
        raise UserInputError(
            f"utility of {layer.name!r} must be {width(layer)} finite numbers (one per unit), got shape {scores.shape}"
        )
    return scores


def prune(model: tf.keras.Model, layer: str, n: int, utility=None, refit: np.ndarray | None = None) -> tf.keras.Model:
    """Remove the ``n`` lowest-utility units of ``layer``; the next layer's inputs shrink to match.

    ``utility`` is the per-unit score (higher = more useful): an array, a function
    ``(model, layer_name) -> array``, or None for the activation contribution tracked by
    ``ContributionTracker`` / stored with ``attach_utilities``. ``refit``: a sample of inputs on
    which the next linear layer is re-solved to make up for the removed units. Returns a new
    (uncompiled) model.
    """
    lay = resolve_linear(model, layer)
    if not 0 <= int(n) < width(lay):
        raise UserInputError(f"can remove 0..{width(lay) - 1} of the {width(lay)} units of {lay.name!r}, not {n}")
    scores = resolve_utility(model, lay.name, utility)
    return keep_units(model, {lay.name: lowest(scores, int(n))}, refit=refit)


def _carry_utilities(old: tf.keras.Model, new: tf.keras.Model, keep: Mapping[str, np.ndarray]) -> None:
    """The pruned model inherits the old utilities, sliced to the units it kept (for iterative pruning)."""
    tracked = get_utilities(old)
    if tracked:
        attach_utilities(new, {k: (v[keep[k]] if k in keep else v) for k, v in tracked.items()})


# ----------------------------------------------------------------------------- least-squares refit

def _design(layer: Layer, inputs: tf.Tensor) -> np.ndarray:
    """Rows of the inputs a linear layer multiplies by its (flattened) kernel: features or conv patches."""
    if getattr(layer, "input_quantizer", None) is not None:
        inputs = layer.input_quantizer(inputs)
    if isinstance(layer, tf.keras.layers.Dense):
        arr = np.asarray(inputs)
        return arr.reshape(-1, arr.shape[-1])
    if not isinstance(layer, tf.keras.layers.Conv2D):
        raise UserInputError(f"least-squares refit supports Dense and Conv2D layers, not {type(layer).__name__}")
    kh, kw = layer.kernel_size
    patches = tf.image.extract_patches(
        inputs, sizes=[1, kh, kw, 1], strides=[1, *layer.strides, 1], rates=[1, *layer.dilation_rate, 1],
        padding=layer.padding.upper())
    arr = patches.numpy()
    return arr.reshape(-1, arr.shape[-1])


def refit_consumers(original: tf.keras.Model, pruned: tf.keras.Model, keep: Mapping[str, np.ndarray],
                    x: np.ndarray, ridge: float = 1e-3, batch_size: int = 256) -> list[str]:
    """Re-solve the linear layers that lost inputs so their pre-activations match the original's on ``x``.

    For each such layer (in graph order), kernel and bias come from a ridge least-squares fit of the
    original layer's pre-activation outputs (its kept units) on the pruned model's inputs to it. This
    makes up for the removed units as well as the remaining ones can: the lost mean goes into the bias,
    correlated units take over. Without a bias, the intercept is folded into the moving mean of the
    BatchNorm that follows (or dropped when there is none). Changes ``pruned`` in place; returns the
    names of the refitted layers. Needs float kernels (a refitted binary kernel would be re-quantized).
    """
    if len(x) == 0:
        raise UserInputError("refit needs a non-empty sample of inputs")
    flow = _propagate(original, keep)
    names = [lay.name for lay in graph_layers(original) if is_linear(lay) and flow.cin[lay.name] is not None]
    for name in names:
        _refit_layer(original, pruned, name, keep.get(name), x, ridge, batch_size)
    return names


def _refit_layer(original: tf.keras.Model, pruned: tf.keras.Model, name: str, cout: np.ndarray | None,
                 x: np.ndarray, ridge: float, batch_size: int) -> None:
    old, new = original.get_layer(name), pruned.get_layer(name)
    if getattr(new, "kernel_quantizer", None) is not None:
        raise UserInputError(f"cannot refit {name!r}: its kernel is quantized; prune without refit")
    feed_old = tf.keras.Model(original.inputs, old.input)
    feed_new = tf.keras.Model(pruned.inputs, new.input)
    target = linear_copy(old)
    gram = rhs = None
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        design = _design(new, feed_new(xb, training=False)).astype(np.float64)
        design = np.concatenate([design, np.ones((len(design), 1))], axis=1)
        z = target(feed_old(xb, training=False)).numpy()
        z = z.reshape(-1, z.shape[-1])[:, cout if cout is not None else slice(None)].astype(np.float64)
        gram = design.T @ design if gram is None else gram + design.T @ design
        rhs = design.T @ z if rhs is None else rhs + design.T @ z
    follower = unit_output_layer(pruned, name)
    bn = follower if isinstance(follower, tf.keras.layers.BatchNormalization) else None
    if not new.use_bias and bn is None:
        gram, rhs = gram[:-1, :-1], rhs[:-1]
    reg = ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    solution = np.linalg.solve(gram + reg, rhs)
    weights = new.get_weights()
    weights[0] = solution[: int(np.prod(weights[0].shape[:-1]))].reshape(weights[0].shape).astype(np.float32)
    if new.use_bias:
        weights[1] = solution[-1].astype(np.float32)
    elif bn is not None:
        bn.moving_mean.assign(bn.moving_mean.numpy() - solution[-1].astype(np.float32))
    new.set_weights(weights)
