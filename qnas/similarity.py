"""t-SNE-inspired similarity loss between a parent's and a child's activations (EComp).

The parent's activations on n points define a joint distribution P over pairs of
points (Gaussian kernels, each row calibrated to a fixed perplexity, symmetrised).
The child's activations on the same points define Q, and the loss is KL(P || Q).
Because every row is calibrated to the same perplexity, the loss only depends on
neighbourhood structure: it is (almost) invariant to scaling the activations and
the two layers may have different widths.

Numerical conventions (shared by every function here):

* Computations run in float64; inputs of any float dtype or ``tf.Tensor`` work.
* Inputs with more than two dimensions, e.g. conv activations ``(n, h, w, c)``,
  are flattened to ``(n, h * w * c)``.
* Off-diagonal joint probabilities are clipped to ``EPSILON``, the float64
  machine epsilon (~2.2e-16, as in the EComp reference); the diagonal is 0 and
  never enters the KL divergence.
* The per-row search subtracts the row's smallest off-diagonal distance before
  exponentiating. This leaves P unchanged mathematically, but avoids underflow
  to an all-zero row when distances are large (e.g. activations scaled by 1000).

Memory and time are O(n^2) per layer: fine for the few hundred to few thousand
points EComp evaluates on.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = [
    "EPSILON",
    "MultiLayerTSNELoss",
    "TSNELoss",
    "conditional_affinities",
    "gaussian_affinities",
    "kl_divergence",
    "matching_depths",
    "pairwise_sq_distances",
    "student_t_affinities",
]

EPSILON: float = float(np.finfo(np.float64).eps)
KINDS = ("gaussian", "student_t")

ArrayLike = np.ndarray | tf.Tensor | tf.Variable


def _as_matrix(x: ArrayLike, name: str = "embeddings") -> np.ndarray:
    """Return ``x`` as a float64 (n, features) array, flattening trailing dims."""
    arr = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_points, n_features), or N-D activations "
            f"(n_points, ...) that get flattened; got shape {arr.shape}"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 points and 1 feature; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} of shape {arr.shape} contains NaN or inf")
    return arr


def _check_perplexity(perplexity: float, shape: tuple[int, ...]) -> None:
    """Perplexity is an effective neighbour count, so it must lie in [1, n - 1]."""
    n = shape[0]
    if not 1.0 <= perplexity <= n - 1:
        raise ValueError(
            f"perplexity must be in [1, n_points - 1] = [1, {n - 1}] (i.e. < n) for "
            f"embeddings of shape {shape}; got perplexity={perplexity}"
        )


def pairwise_sq_distances(x: ArrayLike) -> np.ndarray:
    """Squared Euclidean distances (n, n), float64, exact zeros on the diagonal."""
    x = _as_matrix(x)
    sq = np.einsum("ij,ij->i", x, x)
    d = x @ x.T
    d *= -2.0
    d += sq[:, None]
    d += sq[None, :]
    np.maximum(d, 0.0, out=d)  # round-off can make tiny distances negative
    np.fill_diagonal(d, 0.0)
    return d


def _search_rows(dist: np.ndarray, perplexity: float, tol: float, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrate every row of a distance matrix to ``perplexity`` at once.

    Binary search on the precision beta_i (start 1, double/halve until bracketed,
    then bisect) until |H_i - ln(perplexity)| <= tol, H_i the natural-log entropy
    of p_{.|i}. Rows that converge drop out of the working set. A row that does
    not converge within ``max_steps`` keeps the last beta evaluated.
    Returns the conditional matrix (rows sum to 1, zero diagonal) and the betas.
    """
    n = dist.shape[0]
    idx = np.arange(n)
    shifted = dist.copy()
    shifted[idx, idx] = np.inf
    shifted -= shifted.min(axis=1, keepdims=True)
    shifted[idx, idx] = 0.0

    target = np.log(perplexity)
    beta = np.ones(n)
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    cond = np.empty_like(shifted)
    buf = np.empty_like(shifted)  # reused: fresh n*n allocations cost page faults
    work, rows = shifted, idx  # rows[k]: original row index of work[k]
    live = np.ones(n, dtype=bool)  # work rows still searching
    for step in range(max_steps):
        m = rows.size
        e = np.multiply(work, -beta[rows][:, None], out=buf[:m])
        np.exp(e, out=e)
        e[np.arange(m), rows] = 0.0  # p_{i|i} = 0
        total = e.sum(axis=1)  # >= 1: the nearest neighbour contributes exp(0)
        entropy = np.log(total) + beta[rows] * np.einsum("ij,ij->i", work, e) / total
        diff = entropy - target
        done = live.copy() if step == max_steps - 1 else live & (np.abs(diff) <= tol)
        if done.any():
            cond[rows[done]] = e[done] / total[done, None]
            live &= ~done
            n_live = np.count_nonzero(live)
            if n_live == 0:
                break
            if n_live <= 0.75 * m:  # compacting copies work, so only do it in big chunks
                work, rows, diff, live = work[live], rows[live], diff[live], np.ones(n_live, dtype=bool)
        sel, d = rows[live], diff[live]
        b = beta[sel]
        too_high = d > 0  # entropy too high -> distribution too flat -> grow beta
        lo_s = np.where(too_high, b, lo[sel])
        hi_s = np.where(too_high, hi[sel], b)
        grow = np.where(np.isinf(hi_s), b * 2.0, (b + hi_s) / 2.0)
        shrink = np.where(np.isinf(lo_s), b / 2.0, (b + lo_s) / 2.0)
        lo[sel], hi[sel] = lo_s, hi_s
        beta[sel] = np.where(too_high, grow, shrink)
    return cond, beta


def conditional_affinities(
    x: ArrayLike, perplexity: float = 30.0, tol: float = 1e-5, max_steps: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row conditional p_{j|i} (rows sum to 1, p_{i|i} = 0) and the betas found.

    Each row's Gaussian precision beta_i is searched so that the row's entropy
    (natural log) equals ln(perplexity) within ``tol``.
    """
    x = _as_matrix(x)
    _check_perplexity(perplexity, x.shape)
    return _search_rows(pairwise_sq_distances(x), perplexity, tol, max_steps)


def gaussian_affinities(x: ArrayLike, perplexity: float = 30.0, tol: float = 1e-5, max_steps: int = 100) -> np.ndarray:
    """Symmetric joint P (n, n), float64: (C + C^T) / sum(C + C^T), C conditional.

    Off-diagonal entries are clipped to ``EPSILON``; the diagonal is 0.
    """
    cond, _ = conditional_affinities(x, perplexity, tol, max_steps)
    joint = cond + cond.T
    joint /= joint.sum()
    np.maximum(joint, EPSILON, out=joint)
    np.fill_diagonal(joint, 0.0)
    return joint


def student_t_affinities(y: ArrayLike, dof: float = 1.0) -> tf.Tensor:
    """Differentiable Student-t joint Q (n, n), float64, as in t-SNE.

    q_ij ∝ (1 + ||y_i - y_j||^2 / dof)^(-(dof + 1) / 2), normalised over i != j;
    ``dof=1`` is the usual t-SNE kernel (1 + d^2)^-1. Off-diagonal entries are
    clipped to ``EPSILON``, the diagonal is 0. N-D inputs are flattened.
    """
    y = tf.convert_to_tensor(y)
    if y.shape.rank is not None and y.shape.rank < 2:
        raise ValueError(f"embeddings must be at least 2-D (n_points, ...); got shape {y.shape}")
    y = tf.cast(tf.reshape(y, [tf.shape(y)[0], -1]), tf.float64)
    sq = tf.reduce_sum(tf.square(y), axis=1)
    dist = tf.maximum(sq[:, None] + sq[None, :] - 2.0 * tf.matmul(y, y, transpose_b=True), 0.0)
    kernel = tf.pow(1.0 + dist / dof, -(dof + 1.0) / 2.0)
    off_diag = 1.0 - tf.eye(tf.shape(y)[0], dtype=tf.float64)
    kernel *= off_diag
    q = kernel / tf.reduce_sum(kernel)
    return tf.maximum(q, EPSILON) * off_diag


def _sum_p_log(p: np.ndarray, q: np.ndarray) -> float:
    """sum_ij p_ij * log(max(q_ij, EPSILON)) without the diagonal (BLAS dot, no masks)."""
    total = np.vdot(p, np.log(np.maximum(q, EPSILON)))
    if p.ndim == 2 and p.shape[0] == p.shape[1]:
        total -= np.dot(np.diagonal(p), np.log(np.maximum(np.diagonal(q), EPSILON)))
    return float(total)


def kl_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """KL(P || Q) = sum p * log(p / q), float64; entries with p == 0 contribute 0.

    For square matrices the diagonal is excluded (p_ii = q_ii = 0 by definition).
    p and q are clipped to ``EPSILON`` inside the log so the result stays finite.
    """
    p = np.asarray(p.numpy() if hasattr(p, "numpy") else p, dtype=np.float64)
    q = np.asarray(q.numpy() if hasattr(q, "numpy") else q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"P and Q must have the same shape; got {p.shape} and {q.shape}")
    return np.float64(_sum_p_log(p, p) - _sum_p_log(p, q))


class TSNELoss:
    """Similarity of a child's embeddings to fixed parent embeddings; parent side computed once.

    ``kind="gaussian"`` (EComp default) calibrates Q exactly like P, which makes the
    loss scale-invariant but non-differentiable; ``kind="student_t"`` uses the
    heavy-tailed t-SNE kernel for Q. :meth:`tf_loss` is always the differentiable
    Student-t KL, for use as a training loss.
    """

    def __init__(
        self,
        parent_embeddings: ArrayLike,
        perplexity: float = 30.0,
        kind: str = "gaussian",
        tol: float = 1e-5,
        max_steps: int = 100,
        dof: float = 1.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        parent = _as_matrix(parent_embeddings, "parent embeddings")
        self.n_points = parent.shape[0]
        self.parent_shape = tuple(parent.shape)
        self.perplexity = float(perplexity)
        self.kind = kind
        self.tol = tol
        self.max_steps = max_steps
        self.dof = dof
        self.P = gaussian_affinities(parent, perplexity, tol, max_steps)
        self._p_log_p = _sum_p_log(self.P, self.P)  # constant part of KL(P || Q)
        self._P_tf: tf.Tensor | None = None

    def _check_child(self, shape: tuple) -> None:
        n = shape[0] if len(shape) else None
        if len(shape) < 2 or (n is not None and n != self.n_points):
            raise ValueError(
                f"child embeddings must have shape (n_points={self.n_points}, ...) like "
                f"the parent's {self.parent_shape}; got shape {tuple(shape)}"
            )

    def child_affinities(self, child_embeddings: ArrayLike) -> np.ndarray:
        """Q for the child, computed according to ``kind`` (numpy, float64)."""
        if self.kind == "student_t":
            self._check_child(tuple(getattr(child_embeddings, "shape", np.shape(child_embeddings))))
            return student_t_affinities(child_embeddings, self.dof).numpy()
        child = _as_matrix(child_embeddings, "child embeddings")
        self._check_child(child.shape)
        return gaussian_affinities(child, self.perplexity, self.tol, self.max_steps)

    def __call__(self, child_embeddings: ArrayLike) -> float:
        """KL(P_parent || Q_child) as a numpy float64 scalar."""
        q = self.child_affinities(child_embeddings)
        return np.float64(self._p_log_p - _sum_p_log(self.P, q))

    def tf_loss(self, child_embeddings: tf.Tensor) -> tf.Tensor:
        """Differentiable Student-t KL(P || Q), returned in the input's float dtype."""
        y = tf.convert_to_tensor(child_embeddings)
        self._check_child(tuple(y.shape))
        if self._P_tf is None:
            with tf.init_scope():  # eager constant, safe to reuse across tf.function traces
                self._P_tf = tf.constant(self.P, dtype=tf.float64)
        p = self._P_tf
        q = student_t_affinities(y, self.dof)
        log_ratio = tf.math.log(tf.maximum(p, EPSILON)) - tf.math.log(tf.maximum(q, EPSILON))
        loss = tf.reduce_sum(p * log_ratio)  # p_ii = 0: the diagonal adds nothing
        out_dtype = y.dtype if y.dtype.is_floating else tf.float32
        return tf.cast(loss, out_dtype)


class MultiLayerTSNELoss:
    """Sum of :class:`TSNELoss` over several embedding layers (EComp: both hidden layers)."""

    def __init__(self, parent_embeddings: list[ArrayLike], **kwargs) -> None:
        if len(parent_embeddings) == 0:
            raise ValueError("need at least one parent embedding layer; got 0")
        self.losses = [TSNELoss(p, **kwargs) for p in parent_embeddings]
        self.last_per_layer: list[float] = []

    def _check(self, child_embeddings: list) -> None:
        if len(child_embeddings) != len(self.losses):
            raise ValueError(
                f"expected {len(self.losses)} child embedding layers (one per parent "
                f"layer); got {len(child_embeddings)}"
            )

    def per_layer(self, child_embeddings: list[ArrayLike]) -> list[float]:
        """Loss of each layer, in order; also stored in ``last_per_layer``."""
        self._check(child_embeddings)
        self.last_per_layer = [loss(c) for loss, c in zip(self.losses, child_embeddings)]
        return self.last_per_layer

    def __call__(self, child_embeddings: list[ArrayLike]) -> float:
        """Summed loss over layers (numpy float64); per-layer values in ``last_per_layer``."""
        return np.float64(sum(self.per_layer(child_embeddings)))

    def tf_loss(self, child_embeddings: list[tf.Tensor]) -> tf.Tensor:
        """Differentiable sum of the per-layer Student-t losses."""
        self._check(child_embeddings)
        return tf.add_n([loss.tf_loss(c) for loss, c in zip(self.losses, child_embeddings)])


def matching_depths(num_child: int, num_parent: int) -> list[int]:
    """For each parent embedding layer, the child layer at the same relative depth (how the two are paired)."""
    return [max(0, round((k + 1) * num_child / num_parent) - 1) for k in range(num_parent)]
