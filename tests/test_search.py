"""Supernet, reward, search loop, resume and the search CLI (issue: controller search)."""
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import search_arc_mnist
from enas.evaluator import matching_depths
from enas.fine_tune import finalist_minibatches
from enas.report import pareto_front, read_evaluations
from enas.search import Search, SearchConfig, epoch_minibatches, shuffle, write_summary
from enas.search_cli import apply_space_defaults
from enas.strategies import make_strategy
from enas.strategies.random import RandomStrategy
from enas.supernet import Supernet
from qnas.arch import parse_arch
from qnas.data import load_dataset
from qnas.objective import Objective, ObjectiveWeights
from qnas.parent import get_parent
from qnas.seeding import seed_everything
from qnas.spaces import get_space
from qnas.targets import get_target
from qnas.targets.pricing import LatencyPricer
from qnas.tensorboard_logging import read_scalars, read_text

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    """A tiny learnable data set: the class is which image quadrant is bright."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, r * 4:(r + 1) * 4, col * 4:(col + 1) * 4] += 150
        return x, y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = make(300), make(60)
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


@pytest.mark.parametrize("space_name,archs", [
    ("mlp", ["16 1 8 2", "32 0 4 4", "4 5 32 3"]),
    ("conv", ["8 1 4 2 8 4", "4 0 8 5 4 3"]),
])
def test_supernet_child_equals_standalone_model(space_name, archs):
    space = get_space(space_name).with_options(num_layers=len(parse_arch(archs[0])),
                                               widths=(4, 8, 16, 32) if space_name == "mlp" else (4, 8))
    net = Supernet(space, SHAPE, 4, seed=1)
    rng = np.random.default_rng(0)
    x = rng.random((32, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 4, 32).astype(np.int32)
    for text in archs * 2:  # move every weight away from its initial value
        net.train_step(x, y, parse_arch(text))
    for text in archs:
        arch = parse_arch(text)
        stats = net.calibrate(arch, x)
        model = net.export_child(arch, stats)
        expected = model.predict(x, verbose=0)
        logits = net.predict_logits(arch, x, stats)
        np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), expected, atol=1e-5)
        result = net.evaluate(arch, x, y, stats, x_probe=x[:5])
        assert result.accuracy == pytest.approx(np.mean(np.argmax(expected, 1) == y))
        assert [e.shape[0] for e in result.embeddings] == [5] * len(arch)


@pytest.mark.parametrize("space_name,archs", [
    ("mlp", ["16 1 8 2 4 0", "32 0 4 4 8 1", "4 5 32 3 16 2"]),
    ("conv", ["8 1 4 2 8 4", "4 0 8 5 4 3", "8 3 8 0 4 1"]),
])
def test_compiled_step_gives_the_eager_weights(space_name, archs):
    space = get_space(space_name).with_options(num_layers=3, widths=(4, 8, 16, 32) if space_name == "mlp" else (4, 8))
    eager, compiled = (Supernet(space, SHAPE, 4, seed=2, step=mode) for mode in ("eager", "compiled"))
    assert compiled.compiled and not eager.compiled
    rng = np.random.default_rng(1)
    for text in archs:  # children of different widths and types share the one trace
        x = rng.random((24, *SHAPE), dtype=np.float32)
        y = rng.integers(0, 4, 24).astype(np.int32)
        a, b = eager.train_step(x, y, parse_arch(text)), compiled.train_step(x, y, parse_arch(text))
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["correct"] == b["correct"]
    for v, w in zip(eager.trainable_variables, compiled.trainable_variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), atol=2e-5)
    assert compiled._compiled_grads.experimental_get_tracing_count() == 1


def test_only_the_childs_weights_move_and_binary_kernels_stay_clipped():
    space = get_space("mlp").with_options(widths=(8,), types=(0, 1))
    net = Supernet(space, SHAPE, 4, seed=0, learning_rate=1.0)
    x = np.random.default_rng(0).random((16, *SHAPE), dtype=np.float32)
    gamma = net.gammas[1][1].numpy().copy()
    net.train_step(x, np.zeros(16, np.int32), parse_arch("8 0 8 0"))
    np.testing.assert_array_equal(net.gammas[1][1].numpy(), gamma)  # a float child leaves binary BN alone
    before = net.kernels[1].numpy().copy()
    net.train_step(x, np.zeros(16, np.int32), parse_arch("8 1 8 1"))
    assert np.abs(net.kernels[1].numpy()).max() <= 1.0 and not np.allclose(net.kernels[1].numpy(), before)
    assert not np.allclose(net.gammas[1][1].numpy(), gamma)


def test_reward_formula_and_weights_parsing():
    w = ObjectiveWeights.parse("1, 2, 0.5")
    assert w.score(0.9, 0.3, 0.1) == pytest.approx(0.9 - 0.6 + 0.45)
    assert w.lat == 0 and str(w) == "1,2,0.5"  # as before the latency term: a resumed run's config matches
    for bad in ("1,2", "a,b,c", "1,-1,1", "1,0,0.5,-1", "1,0,0.5,inf", "1,2,3,4,5"):
        with pytest.raises(ValueError, match="reward_weights"):
            ObjectiveWeights.parse(bad)


def test_latency_term_and_budget_of_the_objective():
    w = ObjectiveWeights.parse("1,0,0.5,0.2")
    assert str(w) == "1,0,0.5,0.2" and w.score(0.9, 0.0, 0.1, 0.5) == pytest.approx(0.9 + 0.45 + 0.1)
    with pytest.raises(ValueError, match="latency"):
        w.score(0.9, 0.0, 0.1)
    plain = Objective(ObjectiveWeights()).terms(0.9, 0.1, 0.2, 3.0)
    assert "ms" not in plain and not Objective().uses_latency  # latency off: the terms are as before
    budget = Objective(w, max_ms=0.5)
    within, over = budget.terms(0.9, 0.0, 0.1, 3.0, 0.5, 0.4), budget.terms(0.9, 0.0, 0.1, 3.0, 0.75, 0.6)
    assert budget.uses_latency and within["ms"] == 0.4 and within["lat_ratio"] == 0.5
    assert over["reward"] < within["reward"] - 1.0 and not budget.fits(3.0, 0.6) and budget.fits(3.0, 0.4)
    further = budget.terms(0.95, 0.0, 0.1, 3.0, 0.75, 0.9)  # more accurate, but further over: lower
    assert further["reward"] < over["reward"] and budget.excess(3.0, 0.9) == pytest.approx(0.8)
    sized = Objective(w, max_kib=10.0)
    assert sized.excess(15.0) == pytest.approx(0.5) and sized.excess(9.0) == 0.0


def test_pareto_front_keeps_only_undominated_points():
    points = [(1, 0.5), (2, 0.9), (1.5, 0.4), (3, 0.85), (0.5, 0.3), (2, 0.95)]
    assert pareto_front(points) == [4, 0, 5]


def test_matching_depths():
    assert matching_depths(3, 3) == [0, 1, 2]
    assert matching_depths(4, 2) == [1, 3]
    assert matching_depths(2, 3) == [0, 0, 1] or matching_depths(2, 3) == [0, 1, 1]


def test_strategies_are_seeded_and_random_covers_the_space():
    space = get_space("mlp")
    a, b = RandomStrategy(space.decisions(), seed=3), RandomStrategy(space.decisions(), seed=3)
    assert a.ask(5) == b.ask(5)
    draws = np.array(RandomStrategy(space.decisions(), seed=4).ask(600))
    assert set(draws[:, 0]) == set(range(len(space.widths))) and set(draws[:, 1]) == set(range(len(space.types)))
    c1, c2 = make_strategy("controller", space.decisions(), seed=7), make_strategy("controller", space.decisions(), seed=7)
    assert c1.ask(4) == c2.ask(4)
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("bayes", space.decisions())


def _tiny_search(toy_npz, out, epochs, cache, strategy="controller", table=None, log=None, **options):
    seed_everything(0)
    space = get_space("mlp").with_options(widths=(4, 8, 16), types=(0, 1, 3))
    data = load_dataset(data_path=toy_npz, seed=0, val_fraction=0.2)
    parent = get_parent(get_space("mlp"), data, seed=0, cache_dir=cache, epochs=2, log=lambda s: None)
    config = SearchConfig(strategy=strategy, epochs=epochs, batch_size=50, controller_steps=2, controller_batch=4, eval_batch=30,
                          calib_size=60, probe_size=40, num_shown=3, final_candidates=3, seed=0, **options)
    latency = None if table is None else LatencyPricer(get_target(config.target), space, data.input_shape,
                                                       data.num_classes, parent, table=table)
    return Search(space, data, parent, config, out, log=log or (lambda s: None), latency=latency)


class FakeLatencyTable:
    """A latency table that measures nothing: binary layers are ten times faster than the others."""

    path, measured, entries = Path("fake-latency.json"), 0, {}

    @staticmethod
    def predict(arch, space, input_shape, num_classes):
        return 0.01 + sum(layer.width * (0.1 if layer.type_code == 1 else 1.0) for layer in arch.layers) / 1000


def _evaluated(folder):
    return [json.loads(line)["arch"] for line in (folder / "evaluations.jsonl").read_text().splitlines()]


def test_resume_gives_the_same_state_as_an_uninterrupted_run(toy_npz, tmp_path):
    cache = tmp_path / "cache"
    full = _tiny_search(toy_npz, tmp_path / "full", 2, cache)
    full_result = full.run()
    first = _tiny_search(toy_npz, tmp_path / "part", 2, cache)
    assert first.run(stop_after=1) is None  # stops after epoch 1, as an interrupted run would
    resumed = _tiny_search(toy_npz, tmp_path / "part", 2, cache)
    assert resumed.restore()
    assert int(resumed.epoch.numpy()) == 1
    resumed_result = resumed.run()
    for a, b in zip(full.supernet.trainable_variables, resumed.supernet.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(full.strategy.trainable_variables, resumed.strategy.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert _evaluated(tmp_path / "full") == _evaluated(tmp_path / "part")
    assert full_result.best == resumed_result.best
    assert full.strategy.ask(3) == resumed.strategy.ask(3)


@pytest.mark.parametrize("flags,message", [
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--retrain_epochs", "0"], "--retrain_epochs must be a positive integer"),
    (["--reward_weights", "1,2"], "expected three comma-separated numbers"),
    (["--space", "rnn"], "unknown search space 'rnn'"),
    (["--widths", "8,x"], "--widths '8,x': expected comma-separated integers"),
    (["--types", "0,octal"], "unknown layer type 'octal'"),
    (["--strategy", "bayes"], "--strategy 'bayes'"),
    (["--strategy", "random,random"], "each once"),
    (["--num_layers", "40"], "num_layers must be between 1 and 16"),
    (["--max_kib", "-3"], "--max_kib must be positive"),
    (["--max_minutes", "0"], "--max_minutes must be positive"),
    (["--max_ms", "-1"], "--max_ms must be a positive number of milliseconds, got -1.0"),
    (["--max_ms", "nan"], "--max_ms must be a positive number of milliseconds, got nan"),
    (["--space", "micro", "--max_ms", "5"], "--max_ms: the micro space has no per-layer latency table"),
    (["--space", "mlp", "--target", "bits", "--reward_weights", "1,0,0.5,0.2"],
     "a latency weight in --reward_weights: target 'bits' is a theoretical count with no file to time"),
    (["--space", "mlp", "--data", "TOY", "--batch_size", "100000"], "is larger than the"),
    (["--data", "/nonexistent/x.npz"], "does not exist"),
])
def test_malformed_flags_get_clear_messages(flags, message, tmp_path, capsys, toy_npz):
    flags = [str(toy_npz) if f == "TOY" else f for f in flags]
    rc = search_arc_mnist.main([*flags, "--output_dir", str(tmp_path / "o"), "--cache_dir", str(tmp_path / "c")])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_strategies_share_the_supernet_and_minibatches(toy_npz, tmp_path):
    search = _tiny_search(toy_npz, tmp_path / "both", 1, tmp_path / "cache", strategy="controller,random")
    result = search.run()
    assert set(result.by_strategy) == {"controller", "random"}
    rows = [json.loads(line) for line in (tmp_path / "both" / "evaluations.jsonl").read_text().splitlines()]
    per = {name: [r for r in rows if r["strategy"] == name and r["phase"] == "controller"] for name in result.by_strategy}
    assert len(per["controller"]) == len(per["random"]) == 2 * 4  # same number of child evaluations
    for name in result.by_strategy:  # TensorBoard: the best reward so far against evaluations, one run per strategy
        curve = read_scalars(tmp_path / "both" / "tensorboard" / name)["search/best_reward"]
        assert [step for step, _ in curve] == list(range(1, 9))
        assert [v for _, v in curve] == pytest.approx(np.maximum.accumulate([r["reward"] for r in per[name]]))
    again = _tiny_search(toy_npz, tmp_path / "alone", 1, tmp_path / "cache", strategy="controller").run()
    assert again.best == result.by_strategy["controller"].best  # the extra strategy changes nothing for the first


def test_warm_up_sandwich_and_distillation_in_a_search_of_three_strategies(toy_npz, tmp_path):
    options = {"warmup_epochs": 1, "sandwich": True, "distill": 0.5, "distill_temperature": 2.0,
               "feature_distill": 0.1, "population_size": 4, "sample_size": 2}
    search = _tiny_search(toy_npz, tmp_path / "three", 2, tmp_path / "cache", strategy="controller,random,evolution",
                          **options)
    assert search.strategies.by_name["evolution"].population_size == 4
    result = search.run()
    rows = [json.loads(line) for line in (tmp_path / "three" / "evaluations.jsonl").read_text().splitlines()]
    updates = [r for r in rows if r["phase"] == "controller"]
    assert {r["epoch"] for r in updates} == {2}  # nothing is updated during the warm-up epoch
    assert sorted(r["strategy"] for r in updates) == sorted(["controller", "random", "evolution"] * 8)
    assert set(result.by_strategy) == {"controller", "random", "evolution"}


def test_size_budget_is_respected_by_the_final_pick(toy_npz, tmp_path):
    search = _tiny_search(toy_npz, tmp_path / "budget", 1, tmp_path / "cache")
    search.config.max_kib = 2.0
    search.evaluator.objective = search.config.objective
    result = search.run()
    assert result.best_terms["kib"] <= 2.0
    rows = [json.loads(line) for line in (tmp_path / "budget" / "evaluations.jsonl").read_text().splitlines()]
    over = [r for r in rows if r["kib"] > 2.0]
    assert over and all(r["reward"] < r["acc"] - 0.5 for r in over)  # penalised
    assert search.latency is None and not any("ms" in r for r in rows)  # no latency unless asked for


def test_latency_budget_and_term_in_a_search(toy_npz, tmp_path):
    logged = []
    weights = ObjectiveWeights(1.0, 0.05, 0.5, 0.3)
    search = _tiny_search(toy_npz, tmp_path / "latency", 1, tmp_path / "cache", table=FakeLatencyTable(),
                          log=logged.append, target="tflite_int8", max_ms=0.02, reward=weights)
    result = search.run()
    parent_ms = search.latency.parent_ms
    assert parent_ms == pytest.approx(FakeLatencyTable.predict(parse_arch("256 0 256 0"), None, None, None))
    rows = [json.loads(line) for line in (tmp_path / "latency" / "evaluations.jsonl").read_text().splitlines()]
    for r in rows:
        ms = FakeLatencyTable.predict(parse_arch(r["arch"]), None, None, None)
        assert r["ms"] == pytest.approx(ms, abs=1e-6) and r["lat_ratio"] == pytest.approx(ms / parent_ms, abs=1e-6)
        penalty = 2.8 + ms / 0.02 - 1.0 if ms > 0.02 else 0.0  # below every reward within it, lower the further over
        reward = weights.score(r["acc"], r["sim"], r["size_ratio"], r["lat_ratio"]) - penalty
        assert r["reward"] == pytest.approx(reward, abs=1e-5)
    assert any(r["ms"] > 0.02 for r in rows) and result.best_terms["ms"] <= 0.02  # never picked
    shown = [line for line in logged if line.startswith("val_acc=")]
    assert shown and all(" ms=" in line and "KiB ms=" in line for line in shown)
    write_summary(search, result, "python train_arc.py ...", {})
    saved = json.loads((tmp_path / "latency" / "result.json").read_text())
    assert saved["parent_ms"] == pytest.approx(parent_ms) and all("ms" in c for c in saved["candidates"])
    assert saved["config"]["max_ms"] == 0.02 and saved["config"]["reward"] == "1,0.05,0.5,0.3"


def test_time_budget_stops_after_the_epoch_that_passes_it(toy_npz, tmp_path):
    search = _tiny_search(toy_npz, tmp_path / "budget", 3, tmp_path / "cache")
    search.config.max_minutes = 1e-6
    result = search.run()
    assert int(search.epoch.numpy()) == 1 and result is not None and result.best is not None
    resumed = _tiny_search(toy_npz, tmp_path / "budget", 3, tmp_path / "cache", finalist_steps=0)
    resumed.config.max_minutes = 1e-6
    assert resumed.restore()
    again = resumed.run()  # the budget is spent: the finalists are ranked again, no epoch is added
    assert int(resumed.epoch.numpy()) == 1 and again.best is not None


def test_cli_end_to_end_prints_a_runnable_retrain_command(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--space", "mlp", "--data", str(toy_npz), "--widths", "4,8", "--types", "0,1", "--epochs", "1",
            "--batch_size", "50",
            "--controller_steps", "1", "--controller_batch", "3", "--output_dir", str(out),
            "--cache_dir", str(tmp_path / "cache")]
    assert search_arc_mnist.main([*argv, "--plot"]) == 0
    printed = capsys.readouterr().out
    assert "Here are 10 architectures" in printed and "ctrl_step=" in printed and "ch_step=" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["retrain_command"] in printed
    assert result["retrain_command"].startswith("python train_arc.py -fixed_arc ")
    assert "--distill" not in result["retrain_command"]  # the cached parent knows only this split: it does not teach
    assert "--max_epochs" not in result["retrain_command"]  # train_arc's own default unless --retrain_epochs
    assert parse_arch(result["best_arch"], get_space("mlp"))
    assert result["seed"] == 0 and "tensorflow" in result["versions"] and "command" in result
    assert (out / "pareto.png").stat().st_size > 1000 and "Pareto-optimal" in printed
    scalars = read_scalars(out / "tensorboard")
    for tag in ("child/loss", "child/train_accuracy", "child/lr", "controller/loss", "controller/entropy",
                "controller/baseline", "controller/reward_terms/reward", "controller/reward_terms/sim",
                "controller/reward_terms/size_ratio", "policy_controller/layer0_type/binary"):
        assert tag in scalars, tag
    assert "readable" in read_text(out / "tensorboard", "architectures_controller")[0]
    # the same folder again without --resume is refused; with --resume but other settings too
    assert search_arc_mnist.main(argv) == 2
    assert search_arc_mnist.main([*argv, "--resume", "--seed", "5"]) == 2
    assert "different settings" in capsys.readouterr().err
    other_types = [a if a != "0,1" else "0,3" for a in argv]  # same variable shapes, other meaning: refused
    assert search_arc_mnist.main([*other_types, "--resume"]) == 2
    assert "run.types" in capsys.readouterr().err
    with (out / "evaluations.jsonl").open("a") as f:
        f.write('{"epoch": 1, "phase": "contr')  # a line torn by a kill
    assert search_arc_mnist.main([*argv, "--resume", "--max_minutes", "5"]) == 0  # a budget may change


def test_search_epochs_walk_through_passes_of_the_training_split():
    # an epoch shorter than a pass takes the next minibatches of the current shuffle, then of the next one
    n, batch = 100, 10
    epochs = [epoch_minibatches(3, n, batch, 4, e) for e in (1, 2, 3)]
    first_pass = np.concatenate([b for e in epochs for b in e][:10])
    assert sorted(first_pass.tolist()) == list(range(n))  # one full pass, every image once
    np.testing.assert_array_equal(epochs[2][2], shuffle(3, 2, n)[0][:batch])  # the second pass begins
    # an epoch of one whole pass is that epoch's own shuffle, as before epochs had a fixed length
    whole = epoch_minibatches(3, n, batch, 10, 5)
    np.testing.assert_array_equal(np.concatenate(whole), shuffle(3, 5, n)[0])


def test_the_clis_defaults_are_the_search_configs():
    args = search_arc_mnist.build_parser().parse_args([])
    apply_space_defaults(args)
    config = SearchConfig()
    for key in ("epochs", "controller_steps", "controller_batch", "warmup_epochs", "controller_lr", "tanh_constant",
                "controller_temperature", "entropy_weight", "baseline_decay", "population_size", "sample_size",
                "sandwich", "distill", "distill_temperature", "feature_distill", "child_steps", "batch_size",
                "finalist_steps"):
        assert getattr(args, key) == getattr(config, key), key
    assert config.warmup == 10 and SearchConfig(epochs=1).warmup == 0
    micro = search_arc_mnist.build_parser().parse_args(["--space", "micro"])
    apply_space_defaults(micro)  # the micro search keeps the schedule its results were measured with
    assert (micro.warmup_epochs, micro.controller_steps, micro.reward_weights, micro.finalist_steps) == (5, 10, "1,0,0", 0)
    overridden = search_arc_mnist.build_parser().parse_args(["--space", "micro", "--controller_steps", "3"])
    apply_space_defaults(overridden)
    assert overridden.controller_steps == 3


def test_finalist_minibatches_are_seeded_passes_capped_at_three():
    batches = finalist_minibatches(4, 100, 10, 25)
    assert len(batches) == 25 and all(len(b) == 10 for b in batches)
    for p in range(2):  # whole passes visit every image once
        assert sorted(np.concatenate(batches[p * 10:(p + 1) * 10]).tolist()) == list(range(100))
    assert [b.tolist() for b in batches] == [b.tolist() for b in finalist_minibatches(4, 100, 10, 25)]
    assert batches[0].tolist() != finalist_minibatches(5, 100, 10, 25)[0].tolist()
    assert len(finalist_minibatches(4, 100, 10, 500)) == 30  # at most three passes of a small split
    assert finalist_minibatches(4, 100, 10, 0) == []


def test_finalists_train_alone_and_the_shared_weights_are_restored(toy_npz, tmp_path):
    search = _tiny_search(toy_npz, tmp_path / "final", 1, tmp_path / "cache", finalist_steps=8)
    assert len(search.final_batches) == 8
    result = search.run()
    rows = [json.loads(line) for line in (tmp_path / "final" / "evaluations.jsonl").read_text().splitlines()]
    final = {r["arch"]: r for r in rows if r["phase"] == "final"}
    assert result.best.to_string() in final and final[result.best.to_string()]["alone_steps"] == 8
    assert "alone_steps" not in read_evaluations(tmp_path / "final")[result.best.to_string()]  # off the front
    shared = [v.numpy() for v in search.supernet.variables]
    tuned = search.final_terms(result.best)  # cached: what the final ranking saw
    assert tuned["acc"] == pytest.approx(final[result.best.to_string()]["acc"], abs=1e-6)
    plain = search.evaluator.evaluate_one(result.best, search.data.x_val, search.data.y_val)
    assert plain["val_loss"] != pytest.approx(tuned["val_loss"], abs=1e-6)  # training alone changed the child
    search._final_terms.clear()
    again = search.final_terms(result.best)  # the same minibatches from the same weights: the same score
    assert again["val_loss"] == pytest.approx(tuned["val_loss"], rel=1e-4)
    for before, after in zip(shared, search.supernet.variables):  # every finalist started from the shared weights
        np.testing.assert_array_equal(before, after.numpy())
    assert search.supernet.optimizer is search.checkpoint.optimizer  # the search's optimizer is back in place
