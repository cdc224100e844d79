"""The controller over micro cells: input choices by attention over earlier anchors, always valid cells.

The chain spaces' path must stay exactly as it was (same parameters, same samples for a seed).
"""
import numpy as np

from enas.controller import Controller, ControllerConfig
from enas.strategies import make_strategy
from qnas.spaces import get_space

MICRO = tuple(get_space("micro").decisions())


def test_the_chain_path_samples_exactly_as_before():
    """Samples recorded before input decisions existed (conv space, seed 3), before and after one update."""
    c = Controller(ControllerConfig(decisions=tuple(get_space("conv").decisions()), seed=3))
    assert not c.attention and len(c.policy_variables) == 9
    assert c.sample(6) == [[2, 3, 2, 4, 1, 5, 1, 1], [3, 5, 0, 5, 2, 3, 3, 3], [1, 3, 4, 3, 3, 1, 3, 4],
                           [2, 2, 0, 2, 4, 2, 4, 3], [3, 1, 2, 1, 1, 5, 0, 5], [1, 4, 0, 4, 0, 2, 3, 3]]
    c.update([[2, 3, 2, 4, 1, 5, 1, 1], [3, 5, 0, 5, 2, 3, 3, 3], [1, 3, 4, 3, 3, 1, 3, 4],
              [2, 2, 0, 2, 4, 2, 4, 3], [3, 1, 2, 1, 1, 5, 0, 5], [1, 4, 0, 4, 0, 2, 3, 3]],
             [0.1, 0.5, 0.2, 0.9, 0.3, 0.4])
    assert c.sample(4) == [[1, 2, 1, 3, 4, 1, 1, 5], [4, 4, 4, 1, 3, 3, 2, 5], [1, 3, 2, 5, 4, 5, 2, 0],
                           [4, 1, 0, 4, 3, 2, 1, 3]]


def test_sampled_cells_are_always_valid():
    space = get_space("micro")
    c = Controller(ControllerConfig(decisions=MICRO, seed=0))
    assert c.attention
    for batch in range(3):
        samples = c.sample(100)
        for d in samples:
            arch = space.decode(d)
            for kind in ("normal", "reduction"):
                for j, node in enumerate(arch.cell(kind), 1):
                    assert 0 <= node.in1 <= j and 0 <= node.in2 <= j
            assert space.parse(arch.to_string()) == arch
        c.update(samples[:10], list(np.linspace(0, 1, 10)))
    space.decode(c.greedy())
    probs = c.probabilities()
    assert [len(p) for p in probs] == [n for _, n in MICRO]
    np.testing.assert_allclose([p.sum() for p in probs], 1.0, rtol=1e-5)


def test_input_choices_are_learned_through_attention():
    """Two-node cells; reward node 2 reading node 1 (input index 2): that choice's probability rises."""
    decisions = (("input", 2), ("op", 3), ("input", 2), ("op", 3), ("input", 3), ("op", 3), ("input", 3), ("op", 3))
    c = Controller(ControllerConfig(decisions=decisions, seed=0, lr=1e-2))
    before = float(np.mean([s[4] == 2 for s in c.sample(200)]))
    attention = c.v_attn.numpy().copy()
    for _ in range(40):
        s = c.sample(10)
        c.update(s, [float(x[4] == 2) for x in s])
    after = float(np.mean([s[4] == 2 for s in c.sample(200)]))
    assert 0.2 < before < 0.45 and after > 0.7
    assert not np.allclose(c.v_attn.numpy(), attention)  # the attention parameters are trained


def test_teacher_forced_log_probs_match_sampling_and_strategies_work_on_cells():
    c = Controller(ControllerConfig(decisions=MICRO, seed=2))
    samples = c.sample(5)
    logp, entropy = c.log_prob_and_entropy(samples)
    assert np.all(logp.numpy() < 0) and np.all(entropy.numpy() > 0)
    greedy_logp = c.log_prob_and_entropy([c.greedy()])[0].numpy()[0]
    assert greedy_logp >= logp.numpy().max() - 1e-4  # the greedy decode is the most likely of them
    space = get_space("micro")
    for name in ("controller", "random"):
        strategy = make_strategy(name, space.decisions(), seed=0)
        for d in strategy.ask(20):
            space.decode(d)
