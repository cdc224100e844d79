"""Supernet training options: the sandwich rule and distillation from the float parent (soft and feature targets)."""
import numpy as np
import pytest
import tensorflow as tf

from enas.supernet import Supernet
from qnas.arch import parse_arch
from qnas.distill import feature_affinities, feature_loss, soft_target_loss, teacher_logits
from qnas.spaces import get_space

SHAPE = (8, 8, 1)


def _batch(seed: int, n: int = 24):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE), dtype=np.float32), rng.integers(0, 4, n).astype(np.int32)


def test_soft_targets_blend_labels_and_the_teachers_softened_distribution():
    rng = np.random.default_rng(0)
    labels = tf.constant(rng.integers(0, 4, 16), tf.int32)
    student = tf.constant(rng.normal(size=(16, 4)), tf.float32)
    hard = soft_target_loss(labels, student, None, 0.5, 2.0)
    np.testing.assert_allclose(hard, tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
        labels, student, from_logits=True)), rtol=1e-6)
    # a teacher that agrees with the student adds nothing; one that disagrees adds a positive KL
    np.testing.assert_allclose(soft_target_loss(labels, student, student + 3.0, 0.5, 2.0), 0.5 * hard, rtol=1e-5)
    assert float(soft_target_loss(labels, student, -student, 0.5, 2.0)) > float(0.5 * hard) + 0.1
    # a model that outputs probabilities teaches its log-probabilities, one that outputs logits teaches those
    probs = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="softmax")])
    raw = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4)])
    x = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(tf.nn.softmax(teacher_logits(probs, x)), probs.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(teacher_logits(raw, x), raw.predict(x, verbose=0), atol=1e-6)


def test_feature_loss_is_lower_for_a_child_that_keeps_the_parents_neighbourhoods():
    rng = np.random.default_rng(1)
    parent = rng.normal(size=(40, 6))
    joint = feature_affinities([parent], perplexity=10.0)
    same = feature_loss([tf.constant(2.0 * parent, tf.float32)], joint)
    shuffled = feature_loss([tf.constant(rng.permutation(parent), tf.float32)], joint)
    assert float(same) < float(shuffled)


def test_extreme_children_are_the_sandwich_bounds():
    space = get_space("conv").with_options(num_layers=3, widths=(4, 8), types=(5, 0, 1, 3))
    net = Supernet(space, SHAPE, 4, seed=0)
    assert net.extreme_child(True).to_string() == "8 0 8 0 8 0"
    assert net.extreme_child(False).to_string() == "4 1 4 1 4 1"


def test_a_sandwich_step_trains_the_largest_childs_units_too():
    space = get_space("mlp").with_options(widths=(4, 16), types=(0, 1))
    net = Supernet(space, SHAPE, 4, seed=0)
    x, y = _batch(0)
    before = net.kernels[0].numpy().copy()
    net.train_step(x, y, parse_arch("4 1 4 1"))
    np.testing.assert_array_equal(net.kernels[0].numpy()[:, 4:], before[:, 4:])  # beyond the child: untouched
    net.train_step(x, y, [parse_arch("4 1 4 1"), net.extreme_child(True), net.extreme_child(False)])
    assert not np.allclose(net.kernels[0].numpy()[:, 4:], before[:, 4:])


@pytest.mark.parametrize("space_name", ["mlp", "conv"])
def test_compiled_step_gives_the_eager_weights_with_distillation_and_sandwich(space_name):
    space = get_space(space_name).with_options(num_layers=3, widths=(4, 8), types=(0, 1, 4))
    options = {"distill_alpha": 0.5, "distill_temperature": 2.0, "feature_weight": 0.1}
    eager, compiled = (Supernet(space, SHAPE, 4, seed=2, step=mode, **options) for mode in ("eager", "compiled"))
    rng = np.random.default_rng(3)
    for text in ["8 1 4 0 8 4", "4 4 8 1 4 0"]:
        x, y = _batch(int(rng.integers(100)))
        teacher = rng.normal(size=(len(x), 4)).astype(np.float32)
        features = list(zip([0, 2], feature_affinities([rng.normal(size=(len(x), 5)) for _ in range(2)], 5.0)))
        children = [parse_arch(text), eager.extreme_child(True), eager.extreme_child(False)]
        a = eager.train_step(x, y, children, teacher, features)
        b = compiled.train_step(x, y, children, teacher, features)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for v, w in zip(eager.trainable_variables, compiled.trainable_variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), atol=5e-5)
