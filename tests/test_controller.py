"""Tests for the ENAS-style REINFORCE controller (no network involved)."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import tensorflow as tf

from enas.controller import Controller, ControllerConfig, clip_by_global_norm

L, W, T = 2, 4, 3  # layers, widths, types


def make(**kw) -> Controller:
    kw = {"decisions": (("width", W), ("type", T)) * L, **kw}
    return Controller(ControllerConfig(**kw))


def reference_logp_entropy(c: Controller, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Independent numpy forward pass with teacher forcing."""
    v = {name: getattr(c, name).numpy() for name in ("w_lstm", "b_lstm", "g_emb")}
    v.update({f"{kind}_emb": table.numpy() for kind, table in c.embeddings.items()})
    v.update({f"{kind}_soft": w.numpy() for kind, (w, _) in c.heads.items()})
    v.update({f"{kind}_soft_bias": b.numpy() for kind, (_, b) in c.heads.items()})
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    out_lp, out_ent = [], []
    for seq in seqs:
        x, cell, h = v["g_emb"][0], np.zeros(c.config.lstm_size), np.zeros(c.config.lstm_size)
        lp = ent = 0.0
        for s, a in enumerate(seq):
            i, f, g, o = np.split(np.concatenate([x, h]) @ v["w_lstm"] + v["b_lstm"], 4)
            cell = sig(f) * cell + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(cell)
            kind = "width" if s % 2 == 0 else "type"
            wk, bk, emb = f"{kind}_soft", f"{kind}_soft_bias", f"{kind}_emb"
            logits = c.config.tanh_constant * np.tanh(h @ v[wk] + v[bk])
            logp = logits - np.log(np.sum(np.exp(logits)))
            lp += logp[a]
            ent -= np.sum(np.exp(logp) * logp)
            x = v[emb][a]
        out_lp.append(lp)
        out_ent.append(ent)
    return np.array(out_lp), np.array(out_ent)


def p_type0_is(c: Controller, value: int, n: int = 400) -> float:
    return float(np.mean([s[1] == value for s in c.sample(n)]))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reinforce_gradient_sign(sign: float) -> None:
    c = make(lr=1e-2, seed=1)
    p0 = p_type0_is(c, 2)
    assert 0.2 < p0 < 0.5  # roughly uniform over 3 types at init
    for _ in range(40):
        s = c.sample(8)
        c.update(s, [sign * float(x[1] == 2) for x in s])
    p_greedy = c.probabilities()[1][2]
    if sign > 0:
        assert p_type0_is(c, 2) > 0.6 and p_greedy > 0.6
    else:
        assert p_type0_is(c, 2) < 0.15 and p_greedy < 0.15


def test_reward_on_width_is_learned() -> None:
    c = make(lr=1e-2, seed=3)
    for _ in range(40):
        s = c.sample(8)
        c.update(s, [float(x[2] == 0) for x in s])  # width of layer 1
    assert c.probabilities()[2][0] > 0.6
    assert c.greedy()[2] == 0


@pytest.mark.parametrize("mode", ["first", "zero"])
def test_baseline_formula(mode: str) -> None:
    c = make(baseline_init=mode, baseline_decay=0.9)
    batches = [[1.0, 2.0, 0.5], [3.0, -1.0], [0.25]]
    b = batches[0][0] if mode == "first" else 0.0
    for rewards in batches:
        b_pre = b
        for r in rewards:
            b = b - (1 - 0.9) * (b - r)
        stats = c.update(c.sample(len(rewards)), rewards)
        assert stats["baseline"] == b
        assert float(c.baseline.numpy()) == b
        assert stats["advantage_mean"] == pytest.approx(np.mean(rewards) - b_pre)
        assert stats["reward_mean"] == pytest.approx(np.mean(rewards))


def test_log_prob_matches_independent_computation() -> None:
    c = make(seed=5)
    for _ in range(3):  # move away from the near-uniform init
        s = c.sample(8)
        c.update(s, [float(x[0] == 1) for x in s])
    seqs = c.sample(16)
    lp, ent = c.log_prob_and_entropy(seqs)
    assert lp.shape == (16,) and ent.shape == (16,)
    ref_lp, ref_ent = reference_logp_entropy(c, seqs)
    np.testing.assert_allclose(lp.numpy(), ref_lp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), ref_ent, rtol=1e-4, atol=1e-5)
    assert np.all(lp.numpy() < 0)

    greedy, probs = c.greedy(), c.probabilities()
    assert [len(p) for p in probs] == [W, T] * L
    for p in probs:
        assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert greedy == [int(np.argmax(p)) for p in probs]
    g_lp, g_ent = c.log_prob_and_entropy([greedy])
    assert float(g_lp[0]) == pytest.approx(sum(np.log(p[a]) for p, a in zip(probs, greedy)), abs=1e-5)
    assert float(g_ent[0]) == pytest.approx(sum(-(p * np.log(p)).sum() for p in probs), abs=1e-5)


def test_loss_value_and_entropy_term_sign() -> None:
    c = make(entropy_weight=0.5, baseline_init="zero")
    seqs, rewards = c.sample(6), [0.3, -1.0, 2.0, 0.0, 1.0, 0.5]
    lp, ent = (t.numpy() for t in c.log_prob_and_entropy(seqs))
    stats = c.update(seqs, rewards)
    expected = np.mean(-lp * np.asarray(rewards)) - 0.5 * np.mean(ent)
    assert stats["loss"] == pytest.approx(expected, rel=1e-4)
    assert stats["log_prob_mean"] == pytest.approx(lp.mean(), rel=1e-5)

    # With zero advantages (rewards == baseline) only the entropy term acts.
    def greedy_entropy(c: Controller) -> float:
        return float(c.log_prob_and_entropy([c.greedy()])[1][0])

    c = make(entropy_weight=-1.0, lr=2e-2, seed=2)  # negative weight: entropy falls from ~max
    h0 = greedy_entropy(c)
    for _ in range(10):
        c.update(c.sample(4), [0.0] * 4)
    assert greedy_entropy(c) < h0 - 0.3

    c.config.entropy_weight = 1.0  # read at every update; positive weight: entropy rises again
    h1 = greedy_entropy(c)
    for _ in range(10):
        stats = c.update(c.sample(4), [float(c.baseline.numpy())] * 4)
        assert stats["advantage_mean"] == 0.0
    assert greedy_entropy(c) > h1 + 0.1


def test_seeding() -> None:
    a, b, d = make(seed=7), make(seed=7), make(seed=8)
    sa, sb, sd = a.sample(20), b.sample(20), d.sample(20)
    assert sa == sb
    assert sa != sd
    assert a.sample(5) == b.sample(5)
    assert a.sample(5) != sa[:5] or a.sample(5) != sa[5:10]  # the stream advances
    np.testing.assert_array_equal(a.w_lstm.numpy(), b.w_lstm.numpy())
    assert np.abs(a.w_lstm.numpy()).max() <= 0.1


def test_gradient_clipping_actually_clips() -> None:
    c = make(grad_clip_norm=0.5)
    stats = c.update(c.sample(8), [1e4 * i for i in range(8)])
    assert stats["grad_norm"] > 0.5
    assert stats["grad_norm_clipped"] <= 0.5 * (1 + 1e-5)

    # The clipped gradient is what reaches the optimizer (SGD with lr 1 => step == gradient).
    c = make(grad_clip_norm=0.5)
    c.optimizer = tf.keras.optimizers.legacy.SGD(learning_rate=1.0)
    before = [v.numpy() for v in c.policy_variables]
    stats = c.update(c.sample(8), [1e4 * i for i in range(8)])
    step = np.sqrt(sum(((v.numpy() - b) ** 2).sum() for v, b in zip(c.policy_variables, before)))
    assert stats["grad_norm"] > 0.5
    assert step == pytest.approx(0.5, rel=1e-3)

    grads = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert float(norm) == pytest.approx(5.0)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(1.0)
    unclipped, _ = clip_by_global_norm(grads, None)
    assert float(tf.linalg.global_norm(unclipped)) == pytest.approx(5.0)


def test_checkpoint_round_trip(tmp_path) -> None:
    c = make(seed=11)
    for _ in range(3):
        s = c.sample(5)
        c.update(s, [float(x[1] == 0) for x in s])
    c.sample(3)
    path = tf.train.Checkpoint(controller=c).save(str(tmp_path / "ckpt"))

    fresh = make(seed=99)  # different seed: everything must come from the checkpoint
    tf.train.Checkpoint(controller=fresh).restore(path).assert_existing_objects_matched()
    assert float(fresh.baseline.numpy()) == float(c.baseline.numpy())
    assert fresh.sample(10) == c.sample(10)
    assert fresh.probabilities()[1].tolist() == c.probabilities()[1].tolist()
    # Optimizer state (Adam moments, iterations) is restored too: next update is identical.
    s = c.sample(6)
    assert fresh.sample(6) == s
    rewards = [float(x[0] == 2) for x in s]
    sc, sf = c.update(s, rewards), fresh.update(s, rewards)
    assert sc == sf
    np.testing.assert_allclose(fresh.w_lstm.numpy(), c.w_lstm.numpy(), rtol=0, atol=1e-7)
    assert int(fresh.optimizer.iterations.numpy()) == 4


def test_bad_inputs() -> None:
    c = make()
    good = [[0, 0, 3, 2]]
    with pytest.raises(ValueError, match="sequences of 4 ints"):
        c.update([[0, 0, 1]], [1.0])
    with pytest.raises(ValueError, match=r"position 0 is 4 \(allowed \[0, 4\)\)"):
        c.update([[4, 0, 0, 0]], [1.0])
    with pytest.raises(ValueError, match=r"position 3 is 3 \(allowed \[0, 3\)\)"):
        c.log_prob_and_entropy([[0, 0, 0, 3]])
    with pytest.raises(ValueError, match="allowed"):
        c.update([[0, -1, 0, 0]], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        c.update([], [])
    with pytest.raises(ValueError, match="non-integer"):
        c.update([[0, 0.5, 0, 0]], [1.0])
    with pytest.raises(ValueError, match="decisions must be"):
        c.update([[0, 0, 1, 1], [0, 0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="one per decision sequence"):
        c.update(good, [1.0, 2.0])
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            c.update(good, [bad])
    with pytest.raises(ValueError, match="positive int"):
        c.sample(0)
    with pytest.raises(ValueError, match="'type' must have a positive int"):
        ControllerConfig(decisions=(("width", 3), ("type", 0)))
    with pytest.raises(ValueError, match="must all have 3 options"):
        ControllerConfig(decisions=(("width", 3), ("width", 4)))
    assert float(c.baseline.numpy()) == 0.0  # nothing was applied
    assert c.update(good, [1.0])["baseline"] == 1.0
