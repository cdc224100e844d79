"""Regularized (aging) evolution: seeding, ageing, mutation, checkpointing, and that it climbs a toy reward."""
import numpy as np
import pytest
import tensorflow as tf

from enas.strategies import make_strategy
from enas.strategies.evolution import EvolutionStrategy

DECISIONS = [("width", 5), ("type", 6)] * 4
TARGET = [4, 0, 1, 5, 3, 2, 0, 4]


def toy_reward(decisions) -> float:
    """How many decisions match the target: an optimum of 8 that a random draw hits with chance 1 / 810,000."""
    return float(sum(d == t for d, t in zip(decisions, TARGET)))


def run(strategy, evaluations: int, batch: int = 10) -> list[float]:
    rewards = []
    for _ in range(evaluations // batch):
        proposals = strategy.ask(batch)
        scores = [toy_reward(p) for p in proposals]
        strategy.tell(proposals, scores)
        rewards += scores
    return rewards


def test_same_seed_same_proposals_other_seed_others():
    a, b, c = (EvolutionStrategy(DECISIONS, seed=s, population_size=20, sample_size=5) for s in (3, 3, 4))
    assert run(a, 60) == run(b, 60)
    assert a.ask(10) == b.ask(10)
    assert a.ask(10) != c.ask(10)


def test_the_population_holds_the_newest_members_and_the_oldest_die():
    evo = EvolutionStrategy(DECISIONS, seed=0, population_size=6, sample_size=3)
    told = []
    for step in range(4):  # 12 members added to a queue of 6, whatever their rewards
        proposals = evo.ask(3)
        evo.tell(proposals, [100.0 - step] * 3)  # the oldest are the best: ageing still removes them
        told += proposals
    members, rewards = evo.living()
    assert members.tolist() == told[-6:]
    assert rewards.tolist() == [98.0] * 3 + [97.0] * 3 and int(evo.added.numpy()) == 12


def test_children_are_one_mutation_from_a_tournament_winner():
    evo = EvolutionStrategy(DECISIONS, seed=1, population_size=10, sample_size=10)  # the tournament sees everyone
    proposals = evo.ask(10)
    evo.tell(proposals, [float(i) for i in range(10)])
    best = np.array(proposals[9])
    for child in evo.ask(20):
        changed = np.flatnonzero(np.array(child) != best)
        assert len(changed) == 1 and 0 <= child[changed[0]] < DECISIONS[changed[0]][1]
    assert evo.best_guess() == proposals[9]


def test_it_climbs_a_toy_reward_that_random_search_does_not():
    evo = make_strategy("evolution", DECISIONS, seed=0, population_size=20, sample_size=5)
    rnd = make_strategy("random", DECISIONS, seed=0)
    evolved, drawn = run(evo, 300), run(rnd, 300)
    assert max(evolved) == 8.0  # the optimum, out of 810,000 architectures
    assert np.mean(evolved[-50:]) > np.mean(drawn[-50:]) + 3


def test_a_restored_checkpoint_proposes_what_the_original_does(tmp_path):
    evo = EvolutionStrategy(DECISIONS, seed=2, population_size=8, sample_size=3)
    run(evo, 40, batch=4)
    path = tf.train.Checkpoint(strategy=evo).save(str(tmp_path / "ckpt"))
    copy = EvolutionStrategy(DECISIONS, seed=99, population_size=8, sample_size=3)
    tf.train.Checkpoint(strategy=copy).restore(path).assert_consumed()
    assert copy.ask(6) == evo.ask(6)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="sample_size"):
        EvolutionStrategy(DECISIONS, population_size=4, sample_size=5)
