"""Tests for the t-SNE-inspired similarity loss (qnas.similarity)."""

import itertools
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tensorflow as tf

from qnas.similarity import (
    EPSILON,
    MultiLayerTSNELoss,
    TSNELoss,
    conditional_affinities,
    gaussian_affinities,
    kl_divergence,
    student_t_affinities,
)


def clustered(n: int, dim: int, k: int, seed: int) -> np.ndarray:
    """n points around k well-separated centres: a parent with clear structure."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(k, dim))
    return centres[rng.integers(0, k, n)] + rng.normal(size=(n, dim))


def trained_like(parent: np.ndarray, width: int, seed: int, noise: float = 0.3) -> np.ndarray:
    """A narrower layer that keeps the parent's structure: random projection + ReLU + noise."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(parent.shape[1], width)) / np.sqrt(parent.shape[1])
    h = np.maximum(parent @ w, 0.0)
    return h + noise * h.std() * rng.normal(size=h.shape)


def reference_joint(x: np.ndarray, perplexity: float = 30.0, tol: float = 1e-5, steps: int = 100) -> np.ndarray:
    """Plain loop-based reference: one row at a time, explicit differences, no shifts."""
    n = x.shape[0]
    target = np.log(perplexity)
    cond = np.zeros((n, n))
    for i in range(n):
        d = np.array([np.sum((x[i] - x[j]) ** 2) for j in range(n) if j != i])
        beta, lo, hi = 1.0, None, None
        for _ in range(steps):
            p = np.exp(-d * beta)
            p /= p.sum()
            entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
            if abs(entropy - target) <= tol:
                break
            if entropy > target:
                lo = beta
                beta = beta * 2.0 if hi is None else (beta + hi) / 2.0
            else:
                hi = beta
                beta = beta / 2.0 if lo is None else (beta + lo) / 2.0
        cond[i, [j for j in range(n) if j != i]] = p
    joint = (cond + cond.T) / np.sum(cond + cond.T)
    joint = np.maximum(joint, EPSILON)
    np.fill_diagonal(joint, 0.0)
    return joint


def reference_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Double loop over i != j."""
    n = p.shape[0]
    return sum(p[i, j] * np.log(p[i, j] / q[i, j]) for i in range(n) for j in range(n) if i != j)


def test_identical_embeddings_give_zero_loss():
    x = clustered(90, 12, 4, seed=0)
    assert abs(TSNELoss(x)(x)) < 1e-6
    assert abs(TSNELoss(x)(x.astype(np.float32))) < 1e-6


def test_loss_grows_as_rows_are_shuffled():
    parent = clustered(120, 16, 5, seed=1)
    child = trained_like(parent, 8, seed=2)
    loss = TSNELoss(parent)
    order = np.random.default_rng(3).permutation(len(child))
    values = []
    for frac in (0.0, 0.25, 0.5, 1.0):
        rows = order[: int(frac * len(child))]  # nested subsets; cyclic shift moves every chosen row
        shuffled = child.copy()
        shuffled[rows] = child[np.roll(rows, 1)]
        values.append(loss(shuffled))
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert values[-1] > 3 * values[0]


def test_nearly_invariant_to_scaling_child():
    parent = clustered(100, 16, 5, seed=4)
    child = trained_like(parent, 6, seed=5, noise=1.0)
    loss = TSNELoss(parent)
    base = loss(child)
    for scale in (1e3, 1e-3):
        # not exactly equal: each row only hits ln(perplexity) within tol (measured ~1e-7)
        assert abs(loss(scale * child) - base) / base < 1e-4
    # the Student-t kernel has a fixed bandwidth: shrinking the child flattens Q
    t_loss = TSNELoss(parent, kind="student_t")
    assert abs(t_loss(1e-3 * child) - t_loss(child)) / t_loss(child) > 0.05


def test_matches_loop_reference():
    rng = np.random.default_rng(6)
    parent = rng.normal(size=(70, 12))
    child = np.tanh(parent @ rng.normal(size=(12, 5))) + 0.3 * rng.normal(size=(70, 5))
    p_ref, q_ref = reference_joint(parent), reference_joint(child)
    np.testing.assert_allclose(gaussian_affinities(parent), p_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(gaussian_affinities(child), q_ref, rtol=1e-6, atol=1e-12)
    expected = reference_kl(p_ref, q_ref)
    assert expected > 0.05
    assert abs(TSNELoss(parent)(child) - expected) < 1e-5
    assert abs(kl_divergence(p_ref, q_ref) - expected) < 1e-9


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_every_row_reaches_target_perplexity(scale):
    x = scale * np.random.default_rng(7).normal(size=(100, 10))
    cond, betas = conditional_affinities(x, perplexity=30.0, tol=1e-5)
    np.testing.assert_allclose(cond.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.diag(cond) == 0) and np.all(betas > 0)
    entropy = -np.sum(np.where(cond > 0, cond * np.log(np.where(cond > 0, cond, 1.0)), 0.0), axis=1)
    assert np.max(np.abs(entropy - np.log(30.0))) <= 1e-5 + 1e-9
    np.testing.assert_allclose(np.exp(entropy), 30.0, rtol=2e-5)
    joint = gaussian_affinities(x)
    np.testing.assert_allclose(joint, joint.T)
    assert abs(joint.sum() - 1.0) < 1e-6 and joint[~np.eye(100, dtype=bool)].min() >= EPSILON


def test_far_apart_clusters_are_clipped_to_epsilon_and_loss_stays_finite():
    rng = np.random.default_rng(19)
    x = np.concatenate([rng.normal(size=(40, 4)), 1e3 + rng.normal(size=(40, 4))])
    joint = gaussian_affinities(x, perplexity=10)
    assert np.all(joint[:40, 40:] == EPSILON)  # exp underflows to 0 -> clipped
    mixed = x.copy()
    mixed[[0, 79]] = x[[79, 0]]  # swap one point across clusters
    value = TSNELoss(x, perplexity=10)(mixed)
    assert np.isfinite(value) and value > 0.1


def test_student_t_tf_loss_is_differentiable_and_decreases():
    parent = clustered(60, 8, 3, seed=8)
    loss = TSNELoss(parent, kind="student_t")
    y = tf.Variable(np.random.default_rng(9).normal(size=(60, 3)).astype(np.float32))
    values = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            value = loss.tf_loss(y)
        grad = tape.gradient(value, y)
        assert grad is not None and bool(tf.reduce_all(tf.math.is_finite(grad)))
        assert value.dtype == tf.float32
        values.append(float(value))
        y.assign_sub(50.0 * grad)
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[-1] < 0.8 * values[0]
    # the numpy entry point of the student_t kind agrees with tf_loss
    assert abs(loss(y.numpy()) - float(loss.tf_loss(y))) < 1e-5
    q = student_t_affinities(y).numpy()
    assert abs(q.sum() - 1.0) < 1e-9 and np.all(np.diag(q) == 0)


def test_random_child_of_clustered_parent_has_large_loss():
    parent = clustered(150, 20, 6, seed=10)
    loss = TSNELoss(parent)
    noise = loss(np.random.default_rng(11).normal(size=(150, 10)))
    good = loss(trained_like(parent, 10, seed=12))
    assert noise > 1.0
    assert good < 0.5 < noise / 3


def test_conv_activations_are_flattened():
    acts = np.random.default_rng(13).normal(size=(50, 4, 4, 3))
    flat = acts.reshape(50, -1)
    np.testing.assert_array_equal(gaussian_affinities(acts, perplexity=10), gaussian_affinities(flat, perplexity=10))
    assert TSNELoss(acts, perplexity=10)(flat) < 1e-12


def test_multilayer_sums_layers_and_records_them():
    parents = [clustered(80, 10, 4, seed=14), clustered(80, 6, 4, seed=15)]
    children = [trained_like(parents[0], 5, seed=16), np.random.default_rng(17).normal(size=(80, 3))]
    multi = MultiLayerTSNELoss(parents)
    per_layer = multi.per_layer(children)
    assert per_layer == [TSNELoss(p)(c) for p, c in zip(parents, children)]
    assert abs(multi(children) - sum(per_layer)) < 1e-12 and multi.last_per_layer == per_layer
    tf_total = multi.tf_loss([tf.constant(c, tf.float32) for c in children])
    assert np.isfinite(float(tf_total)) and float(tf_total) > 0


def test_kl_divergence_small_example():
    p = np.array([[0.0, 0.3, 0.2], [0.3, 0.0, 0.0], [0.2, 0.0, 0.0]])
    q = np.array([[0.0, 0.25, 0.25], [0.25, 0.0, 0.0], [0.25, 0.0, 0.0]])
    expected = 2 * (0.3 * np.log(0.3 / 0.25) + 0.2 * np.log(0.2 / 0.25))
    assert abs(kl_divergence(p, q) - expected) < 1e-12
    assert kl_divergence(p, p) == 0.0


def _bad_inputs():
    x = np.random.default_rng(18).normal(size=(60, 8))
    return {
        "child n mismatch": (lambda: TSNELoss(x)(x[:50]), r"\(60, 8\).*\(50, 8\)"),
        "child 1-D": (lambda: TSNELoss(x)(x[:, 0]), r"\(60,\)"),
        "parent 1-D": (lambda: TSNELoss(x[:, 0]), r"2-D.*\(60,\)"),
        "perplexity >= n": (lambda: TSNELoss(x[:20]), r"perplexity.*\(20, 8\).*30"),
        "bad kind": (lambda: TSNELoss(x, kind="cosine"), r"gaussian.*student_t.*cosine"),
        "tf child n mismatch": (lambda: TSNELoss(x).tf_loss(tf.zeros((5, 3))), r"\(60, 8\).*\(5, 3\)"),
        "layer count": (lambda: MultiLayerTSNELoss([x, x])([x]), r"expected 2.*got 1"),
        "kl shapes": (lambda: kl_divergence(np.ones((3, 3)), np.ones((4, 4))), r"\(3, 3\).*\(4, 4\)"),
        "nan": (lambda: gaussian_affinities(np.full((40, 3), np.nan)), r"\(40, 3\).*NaN"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_inputs_raise_value_error(case):
    call, pattern = _bad_inputs()[case]
    with pytest.raises(ValueError, match=pattern):
        call()
