"""ENAS-style LSTM controller trained with REINFORCE.

The controller samples a sequence of decisions, each an option index. It is
told only each decision's *kind* and option count (``config.decisions``, e.g.
``[("width", 5), ("type", 6)] * 4`` for the conv space); decisions of one kind
share an embedding table and a softmax head. It knows nothing about networks:
the search space maps indices to architectures.

Design (after Pham et al. 2018, "Efficient Neural Architecture Search"):

* one LSTM layer (``lstm_size`` units, no peepholes), every parameter drawn
  uniform in [-0.1, 0.1]; one decision per step; step 0 is fed a learned
  ``g_emb`` and step i > 0 the embedding of decision i - 1 (one table per
  decision kind); one softmax head per decision kind;
* logits -> ``logits / temperature`` (if set) -> ``tanh_constant * tanh(.)``;
* loss = mean_k[-log p(a_k) * stop_grad(R_k - b)] - entropy_weight *
  mean_k[H_k], where H_k is the exact policy entropy summed along sequence k.
  We use the *differentiable entropy regulariser* rather than ENAS's
  ``reward += w * entropy`` so the bonus never leaks into the baseline
  (``config.entropy_weight`` is read at every update, so it may be scheduled);
* the advantage uses the baseline from *before* the batch (so it does not
  depend on the batch's own rewards); afterwards the baseline is moved with
  every reward in turn: ``b <- b - (1 - decay) * (b - R_k)``. With
  ``baseline_init="first"`` (default) the very first reward seen initialises
  ``b``; ``"zero"`` starts from 0 as ENAS does;
* global-norm gradient clipping (applied to the gradients that reach the
  optimizer), Adam with beta1 = 0 and epsilon = 1e-3 as in ENAS.

Input decisions (ENAS micro): a decision of kind ``"input"`` with ``n`` options
chooses one of ``n`` earlier tensors of a cell. It has no softmax head: its
logits are attention scores ``v . tanh(W1 a_i + W2 h)`` over the *anchors*
``a_0..a_{n-1}`` of the current cell, and the chosen anchor is the next step's
input. The anchors of the cell's inputs come from LSTM steps fed ``g_emb``
(their value fed onward is zero, as in ENAS); when an input decision has more
options than anchors exist, the missing ones (the nodes just decided) come from
an LSTM step fed the last choice's embedding. An input decision with fewer
options than anchors exist starts a new cell. Input decisions may differ in
their option counts; the decision sequence of a chain space has none of them
and runs exactly as before.

Rewards must be computed by the caller with the child network in *inference
mode* (``training=False``: BN moving statistics, no dropout), otherwise they
are noisy and biased by the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["ATTENTION_KINDS", "Controller", "ControllerConfig", "clip_by_global_norm"]

ATTENTION_KINDS = ("input",)  # decisions chosen by attention over earlier anchors, with any number of options


@dataclass
class ControllerConfig:
    """Hyper-parameters of the controller (defaults follow ENAS)."""

    decisions: tuple[tuple[str, int], ...]  # (kind, number of options) of each decision, in order
    lstm_size: int = 64
    tanh_constant: float = 1.5
    temperature: float | None = None
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    lr: float = 3.5e-3
    grad_clip_norm: float | None = 5.0
    seed: int = 0
    baseline_init: str = "first"  # "first" reward seen, or "zero" (ENAS)
    adam_epsilon: float = 1e-3
    init_range: float = 0.1

    def __post_init__(self) -> None:
        self.decisions = tuple((str(kind), n) for kind, n in self.decisions)
        if not self.decisions:
            raise ValueError("decisions must name at least one (kind, number of options)")
        sizes: dict[str, int] = {}
        for kind, n in self.decisions:
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"decision {kind!r} must have a positive int number of options, got {n!r}")
            if kind not in ATTENTION_KINDS and sizes.setdefault(kind, n) != n:
                raise ValueError(f"decisions of kind {kind!r} must all have {sizes[kind]} options, got {n}")
        if not isinstance(self.lstm_size, (int, np.integer)) or isinstance(self.lstm_size, bool) or self.lstm_size < 1:
            raise ValueError(f"lstm_size must be a positive int, got {self.lstm_size!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 or None, got {self.temperature}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")
        if not 0.0 <= self.baseline_decay <= 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1], got {self.baseline_decay}")
        if self.baseline_init not in ("first", "zero"):
            raise ValueError(f"baseline_init must be 'first' or 'zero', got {self.baseline_init!r}")


def clip_by_global_norm(
    grads: Sequence[tf.Tensor], max_norm: float | None
) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Return (clipped grads, pre-clip global norm); the clipped list is what must be applied."""
    norm = tf.linalg.global_norm(list(grads))
    if max_norm is None:
        return list(grads), norm
    clipped, _ = tf.clip_by_global_norm(list(grads), max_norm, use_norm=norm)
    return clipped, norm


class Controller(tf.Module):
    """LSTM policy over sequences of option indices, trained with REINFORCE.

    Everything stateful (weights, ``baseline``, ``optimizer``, sampling ``rng``)
    hangs off this module, so ``tf.train.Checkpoint(controller=c)`` saves it all.
    """

    def __init__(self, config: ControllerConfig) -> None:
        super().__init__(name="controller")
        self.config = config
        c, h = config, config.lstm_size
        self.num_decisions = len(c.decisions)
        self.kinds = [kind for kind, _ in c.decisions]
        self.sizes = [n for _, n in c.decisions]
        vocab = {k: n for k, n in c.decisions if k not in ATTENTION_KINDS}  # kind -> options, first appearance
        init_rng = np.random.default_rng(c.seed)

        def uniform(shape: tuple[int, ...], name: str) -> tf.Variable:
            v = init_rng.uniform(-c.init_range, c.init_range, size=shape).astype(np.float32)
            return tf.Variable(v, name=name)

        self.w_lstm = uniform((2 * h, 4 * h), "w_lstm")
        self.b_lstm = uniform((4 * h,), "b_lstm")
        self.g_emb = uniform((1, h), "g_emb")
        self.embeddings = {kind: uniform((n, h), f"{kind}_emb") for kind, n in vocab.items()}
        self.heads = {kind: (uniform((h, n), f"{kind}_soft"), uniform((n,), f"{kind}_soft_bias"))
                      for kind, n in vocab.items()}
        self._params = (self.w_lstm, self.b_lstm, self.g_emb, *self.embeddings.values(),
                        *(v for head in self.heads.values() for v in head))
        self.attention = any(kind in ATTENTION_KINDS for kind in self.kinds)
        if self.attention:  # created last, so a chain space's parameters are drawn exactly as before
            self.w_attn_1 = uniform((h, h), "w_attn_1")
            self.w_attn_2 = uniform((h, h), "w_attn_2")
            self.v_attn = uniform((h, 1), "v_attn")
            self._params += (self.w_attn_1, self.w_attn_2, self.v_attn)

        self.baseline = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="baseline")
        self.baseline_initialized = tf.Variable(False, trainable=False, name="baseline_init")
        self.rng = tf.random.Generator.from_seed(c.seed)
        self.optimizer = tf.keras.optimizers.legacy.Adam(
            learning_rate=c.lr, beta_1=0.0, epsilon=c.adam_epsilon)

        n_spec = tf.TensorSpec([], tf.int32)
        d_spec = tf.TensorSpec([None, self.num_decisions], tf.int32)
        r_spec = tf.TensorSpec([None], tf.float32)
        w_spec = tf.TensorSpec([], tf.float32)
        self._sample_fn = tf.function(self._sample_impl, input_signature=[n_spec])
        self._greedy_fn = tf.function(self._greedy_impl, input_signature=[])
        self._logp_fn = tf.function(self._logp_impl, input_signature=[d_spec])
        self._train_fn = tf.function(self._train_impl, input_signature=[d_spec, r_spec, w_spec])

    @property
    def policy_variables(self) -> tuple[tf.Variable, ...]:
        """Trainable policy parameters (excludes baseline, optimizer and RNG state)."""
        return self._params

    # ------------------------------------------------------------------ core
    def _logits(self, hidden: tf.Tensor, step: int) -> tf.Tensor:
        w, b = self.heads[self.kinds[step]]
        logits = tf.matmul(hidden, w) + b
        if self.config.temperature is not None:
            logits = logits / self.config.temperature
        if self.config.tanh_constant is not None:
            logits = self.config.tanh_constant * tf.tanh(logits)
        return logits

    def _lstm(self, x: tf.Tensor, c: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        z = tf.matmul(tf.concat([x, h], axis=1), self.w_lstm) + self.b_lstm
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return c, tf.sigmoid(o) * tf.tanh(c)

    def _grow_anchors(self, options: int, x: tf.Tensor, c: tf.Tensor, h: tf.Tensor, anchors: list[tf.Tensor],
                      keys: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Make sure ``options`` anchors exist (see the module docstring); returns the next input and state."""
        if options < len(anchors):  # a new cell: its inputs' anchors come from steps fed g_emb
            anchors.clear()
            keys.clear()
        if not anchors:
            g = tf.tile(self.g_emb, [tf.shape(x)[0], 1])
            while len(anchors) < options:
                c, h = self._lstm(g, c, h)
                anchors.append(tf.zeros_like(h))
                keys.append(tf.matmul(h, self.w_attn_1))
            return g, c, h
        if len(anchors) < options:  # the nodes just decided: one step each, fed the last choice's embedding
            while len(anchors) < options:
                c, h = self._lstm(x, c, h)
                anchors.append(h)
                keys.append(tf.matmul(h, self.w_attn_1))
            x = tf.tile(self.g_emb, [tf.shape(x)[0], 1])
        return x, c, h

    def _attention_logits(self, hidden: tf.Tensor, keys: list[tf.Tensor]) -> tf.Tensor:
        """ENAS's input scores ``v . tanh(W1 a_i + W2 h)``, squashed like the other logits; shape (n, options)."""
        query = tf.tanh(tf.stack(keys, axis=1) + tf.matmul(hidden, self.w_attn_2)[:, None, :])
        logits = tf.squeeze(tf.tensordot(query, self.v_attn, axes=1), axis=-1)
        if self.config.temperature is not None:
            logits = logits / self.config.temperature
        if self.config.tanh_constant is not None:
            logits = self.config.tanh_constant * tf.tanh(logits)
        return logits

    @staticmethod
    def _select(anchors: list[tf.Tensor], choice: tf.Tensor) -> tf.Tensor:
        """The chosen anchor of each sequence: the next step's input."""
        return tf.gather(tf.stack(anchors, axis=1), choice, axis=1, batch_dims=1)

    def _embed(self, choice: tf.Tensor, step: int) -> tf.Tensor:
        # one-hot matmul instead of gather: dense gradients for Adam and clipping.
        return tf.matmul(tf.one_hot(choice, self.sizes[step]), self.embeddings[self.kinds[step]])

    def _decode(self, n: tf.Tensor, mode: str, forced: tf.Tensor | None = None):
        """Unrolled decode; mode is 'sample' (Gumbel-max with self.rng), 'greedy' or 'forced'.

        Returns (decisions (n, num_decisions) int32, log_prob (n,), entropy (n,), per-step probs).
        """
        size = self.config.lstm_size
        x = tf.tile(self.g_emb, [n, 1])
        c = h = tf.zeros([n, size])
        choices, log_probs, entropies, probs = [], [], [], []
        anchors: list[tf.Tensor] = []  # values fed onward and attention keys of the current cell's tensors
        keys: list[tf.Tensor] = []
        for step in range(self.num_decisions):
            attend = self.kinds[step] in ATTENTION_KINDS
            if attend:
                x, c, h = self._grow_anchors(self.sizes[step], x, c, h, anchors, keys)
            c, h = self._lstm(x, c, h)
            logits = self._attention_logits(h, keys[:self.sizes[step]]) if attend else self._logits(h, step)
            logp = tf.nn.log_softmax(logits)
            if mode == "sample":
                u = self.rng.uniform([n, self.sizes[step]], minval=1e-20, maxval=1.0)
                choice = tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)
            elif mode == "greedy":
                choice = tf.argmax(logits, axis=1, output_type=tf.int32)
            else:
                choice = forced[:, step]
            log_probs.append(tf.gather(logp, choice, axis=1, batch_dims=1))
            entropies.append(-tf.reduce_sum(tf.exp(logp) * logp, axis=1))
            probs.append(tf.exp(logp))
            choices.append(choice)
            x = self._select(anchors[:self.sizes[step]], choice) if attend else self._embed(choice, step)
        return (tf.stack(choices, axis=1), tf.add_n(log_probs), tf.add_n(entropies), probs)

    def _sample_impl(self, n: tf.Tensor) -> tf.Tensor:
        return self._decode(n, "sample")[0]

    def _greedy_impl(self):
        decisions, _, _, probs = self._decode(tf.constant(1), "greedy")
        return decisions[0], [p[0] for p in probs]

    def _logp_impl(self, decisions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        _, logp, ent, _ = self._decode(tf.shape(decisions)[0], "forced", decisions)
        return logp, ent

    def _train_impl(self, decisions: tf.Tensor, advantages: tf.Tensor, entropy_weight: tf.Tensor):
        with tf.GradientTape() as tape:
            logp, ent = self._logp_impl(decisions)
            pg_loss = -tf.reduce_mean(logp * tf.stop_gradient(advantages))
            loss = pg_loss - entropy_weight * tf.reduce_mean(ent)
        grads = tape.gradient(loss, self._params)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self._params)]
        clipped, norm = clip_by_global_norm(grads, self.config.grad_clip_norm)
        self.optimizer.apply_gradients(zip(clipped, self._params))
        return {"loss": loss, "entropy": tf.reduce_mean(ent), "log_prob_mean": tf.reduce_mean(logp),
                "grad_norm": norm, "grad_norm_clipped": tf.linalg.global_norm(clipped)}

    # ------------------------------------------------------------ validation
    def _check_decisions(self, decisions: Sequence[Sequence[int]]) -> np.ndarray:
        expected = (f"a non-empty list of sequences of {self.num_decisions} ints, "
                    f"decision i in [0, options of decision i) with options {self.sizes}")
        try:
            arr = np.asarray([list(d) for d in decisions])
        except (TypeError, ValueError) as e:
            raise ValueError(f"decisions must be {expected}; got {decisions!r}") from e
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != self.num_decisions:
            raise ValueError(f"decisions must be {expected}; got shape {arr.shape}")
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.all(np.mod(arr, 1) == 0)):
            raise ValueError(f"decisions must be {expected}; got non-integer values")
        arr = arr.astype(np.int64)
        limits = np.array(self.sizes)
        bad = np.argwhere((arr < 0) | (arr >= limits))
        if bad.size:
            k, s = bad[0]
            raise ValueError(f"decisions must be {expected}; sample {k} position {s} is "
                             f"{arr[k, s]} (allowed [0, {limits[s]}))")
        return arr.astype(np.int32)

    # ----------------------------------------------------------------- API
    def sample(self, n: int = 1) -> list[list[int]]:
        """Sample ``n`` architectures at once (advances ``self.rng``)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        return self._sample_fn(tf.constant(n, tf.int32)).numpy().tolist()

    def log_prob_and_entropy(self, decisions: Sequence[Sequence[int]]) -> tuple[tf.Tensor, tf.Tensor]:
        """Log p and policy entropy (summed over decisions) of each given sequence, shape (n,)."""
        return self._logp_fn(tf.constant(self._check_decisions(decisions)))

    def greedy(self) -> list[int]:
        """Most likely architecture, decoded step by step with argmax."""
        return self._greedy_fn()[0].numpy().tolist()

    def probabilities(self) -> list[np.ndarray]:
        """Softmax of each decision along the greedy path."""
        return [p.numpy() for p in self._greedy_fn()[1]]

    def update(self, decisions: Sequence[Sequence[int]], rewards: Sequence[float]) -> dict[str, float]:
        """One REINFORCE step on a batch of K sampled architectures and their rewards.

        Rewards must come from the child network in inference mode. Advantages are
        ``R_k - b`` with ``b`` the baseline before this batch; then ``b`` is moved
        with each reward in turn. Returns scalars for logging; ``grad_norm`` is the
        pre-clip global norm, ``grad_norm_clipped`` the norm actually applied.
        """
        arr = self._check_decisions(decisions)
        try:
            r = np.asarray(rewards, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"rewards must be {len(arr)} finite floats; got {rewards!r}") from e
        if r.shape != (len(arr),):
            raise ValueError(f"rewards must be {len(arr)} finite floats (one per decision "
                             f"sequence); got shape {r.shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError(f"rewards must be finite floats; got {r.tolist()}")
        b = float(self.baseline.numpy())
        if not bool(self.baseline_initialized.numpy()):
            b = float(r[0]) if self.config.baseline_init == "first" else 0.0
        advantages = r - b
        decay = self.config.baseline_decay
        b_new = b
        for reward in r:
            b_new = b_new - (1.0 - decay) * (b_new - float(reward))
        out = self._train_fn(tf.constant(arr), tf.constant(advantages, tf.float32),
                             tf.constant(self.config.entropy_weight, tf.float32))
        self.baseline.assign(b_new)
        self.baseline_initialized.assign(True)
        stats = {k: float(v.numpy()) for k, v in out.items()}
        stats.update(baseline=b_new, reward_mean=float(r.mean()),
                     advantage_mean=float(advantages.mean()))
        return stats
