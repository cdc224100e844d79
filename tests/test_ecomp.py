"""EComp in Keras: population, operators, fitness, the loop (faithful and improved), results and CLI.

Everything runs on a tiny synthetic problem (6x6 images, 4 classes, a 12-10 parent), so the whole
file takes seconds.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT  # noqa: F401  (puts the repo root on sys.path)

from ecomp_tf import operators as ops
from ecomp_tf.config import Configs
from ecomp_tf.evolution import run_ecomp
from ecomp_tf.finetune import finetune
from ecomp_tf.fitness import BatchScorer, SizeMeter, score_population
from ecomp_tf.genome import Individual, forward, forward_arrays, from_parent, to_keras
from ecomp_tf.population import initial_population, keep_units, prune_l1, prune_rates, split_units
from qnas.arch import parse_arch
from qnas.data import Dataset
from qnas.errors import UserInputError
from qnas.models import arch_bits, block_output_names, build_model
from qnas.objective import ObjectiveWeights
from qnas.parent import Parent
from qnas.spaces import SPACES
from qnas.targets import get_target
from qnas.targets.deploy import resolve_target

SHAPE, CLASSES = (6, 6, 1), 4
TINY = {"POP_SIZE": 6, "BATCH_SIZE": 20, "PERPLEXITY": 5.0, "GENERATIONS": 3, "CALIB_SIZE": 20, "FINAL_BATCHES": 2}


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE), dtype=np.float32)
    proj = np.random.default_rng(99).normal(size=(int(np.prod(SHAPE)), CLASSES))
    return x, np.argmax(x.reshape(n, -1) @ proj, axis=1).astype(np.int32)


@pytest.fixture(scope="module")
def data() -> Dataset:
    (xt, yt), (xv, yv), (xs, ys) = _synthetic(200, 1), _synthetic(60, 2), _synthetic(60, 3)
    return Dataset("synthetic", xt, yt, xv, yv, xs, ys, CLASSES)


@pytest.fixture(scope="module")
def parent(data: Dataset) -> Parent:
    tf.keras.utils.set_random_seed(0)
    arch = parse_arch("12 0 10 0")
    model = build_model(SPACES["mlp"], arch, SHAPE, CLASSES, name="tiny_parent")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=20, verbose=0)
    _, acc = model.evaluate(data.x_test, data.y_test, verbose=0)
    return Parent(model, arch, block_output_names(model, 2), float(acc),
                  arch_bits(SPACES["mlp"], arch, SHAPE, CLASSES), "test")


@pytest.fixture(scope="module")
def parent_ind(parent: Parent) -> Individual:
    return from_parent(parent)


def _keras_agrees(ind: Individual, data: Dataset) -> None:
    ind.check()
    model = to_keras(ind, SHAPE, CLASSES, data.x_train[:40])
    expected = model.predict(data.x_val, verbose=0)
    got = tf.nn.softmax(forward(ind, data.x_val).logits).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_faithful_defaults_are_the_reference_configs() -> None:
    cfg = Configs.faithful()
    assert (cfg.POP_SIZE, cfg.MUTATION_RATE, cfg.EPOCHS, cfg.LOSS_WEIGHTS) == (100, 0.01, 1.0, (0.0, 2.0, 1.0))
    assert cfg.EMB_LAYERS == (0, 1) and cfg.EMBEDDING == "activation"
    assert cfg.RECOMBINATION_LAYERS == ("h0_linear", "h1_linear", "logits")
    assert (cfg.SELECTION, cfg.ELITES, cfg.COMPRESSION, cfg.FINETUNE_STEPS) == ("softmax", 0, "width", 0)
    assert Configs.improved().SELECTION == "tournament" and Configs.improved().ELITES > 0
    with pytest.raises(UserInputError, match="POP_SIZE"):
        Configs.faithful(POP_SIZE=1)
    with pytest.raises(UserInputError, match="unknown EComp settings"):
        Configs.faithful(NOPE=1)


def test_parent_genome_reproduces_the_keras_parent(parent: Parent, parent_ind: Individual, data: Dataset) -> None:
    out = forward(parent_ind, data.x_val)
    np.testing.assert_allclose(tf.nn.softmax(out.logits).numpy(), parent.model.predict(data.x_val, verbose=0),
                               atol=1e-5)
    for mine, keras in zip(out.embeddings([0, 1], "block"), parent.embeddings(data.x_val)):
        np.testing.assert_allclose(mine, keras, atol=1e-5)
    tf_out = forward_arrays(parent_ind.arch.type_codes, parent_ind.kernels, parent_ind.biases, parent_ind.scales, data.x_val)
    np.testing.assert_allclose(tf_out.logits.numpy(), out.logits, atol=1e-5)


def test_a_non_mlp_parent_is_refused() -> None:
    inputs = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Flatten()(inputs)
    x = tf.keras.layers.Dense(8, activation="tanh")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(CLASSES, activation="softmax")(x))
    with pytest.raises(UserInputError, match="not a plain ReLU MLP"):
        from_parent(model)


def test_l1_pruning_removes_the_lowest_norm_units(parent_ind: Individual) -> None:
    ind = parent_ind.copy()
    norms = np.arange(1, 13, dtype=np.float32)[::-1]  # unit j has norm 12 - j: the last units are weakest
    ind.kernels[0] = np.tile(norms / ind.kernels[0].shape[0], (ind.kernels[0].shape[0], 1))
    pruned = prune_l1(ind, 0.25)  # int(0.25 * 12) = 3 units from layer 0, int(0.25 * 10) = 2 from layer 1
    pruned.check()
    assert pruned.widths == [9, 8]
    np.testing.assert_array_equal(pruned.origins[0], np.arange(9))
    np.testing.assert_array_equal(pruned.kernels[1], ind.kernels[1][:9][:, pruned.origins[1]])
    l1_layer1 = np.abs(ind.kernels[1]).sum(axis=0)
    assert set(np.argsort(l1_layer1)[:2]).isdisjoint(pruned.origins[1])
    np.testing.assert_array_equal(pruned.kernels[2], ind.kernels[2][pruned.origins[1]])


def test_initial_population_uses_the_reference_rates(parent_ind: Individual) -> None:
    np.testing.assert_allclose(prune_rates(100)[[0, 1, -1]], [0.1, 0.107, 0.793])
    pop = initial_population(parent_ind, 6)
    rates = prune_rates(6)
    assert [ind.widths[0] for ind in pop] == [12 - int(np.floor(r * 12 + 1e-9)) for r in rates]
    assert all(ind.widths[1] == 10 - int(np.floor(r * 10 + 1e-9)) for ind, r in zip(pop, rates))


def test_block_swap_keeps_shapes_and_swaps_the_leading_block(parent_ind: Individual, data: Dataset) -> None:
    a, b = prune_l1(parent_ind, 0.1), prune_l1(parent_ind, 0.5)
    rng = np.random.default_rng(3)
    child_ab, child_ba = ops.block_swap(a, b, [0, 1, 2], rng)
    assert child_ab.widths == b.widths and child_ba.widths == a.widths
    # the first layer: rows = inputs, so a cut k gives a's first k inputs of a's first k units
    rng = np.random.default_rng(3)
    k0 = int(rng.integers(1, min(*a.kernels[0].shape, *b.kernels[0].shape) + 1))
    np.testing.assert_array_equal(child_ab.kernels[0][:k0, :k0], a.kernels[0][:k0, :k0])
    np.testing.assert_array_equal(child_ab.kernels[0][k0:, :], b.kernels[0][k0:, :])
    np.testing.assert_array_equal(child_ab.biases[0][:k0], a.biases[0][:k0])
    _keras_agrees(child_ab, data)
    _keras_agrees(child_ba, data)


def test_weight_scaling_mutation_stays_within_ten_percent(parent_ind: Individual) -> None:
    out = ops.scale_weights(parent_ind, [0, 2], np.random.default_rng(0))
    ratio = out.kernels[0] / parent_ind.kernels[0]
    assert ratio.min() >= 0.9 and ratio.max() <= 1.1 and ratio.std() > 0.01
    np.testing.assert_array_equal(out.kernels[1], parent_ind.kernels[1])
    assert not np.shares_memory(out.kernels[1], parent_ind.kernels[1])


def test_width_genes_keep_shapes_and_a_split_keeps_the_function(parent_ind: Individual, data: Dataset) -> None:
    rng = np.random.default_rng(0)
    grown = split_units(parent_ind, 0, [1, 4], rng, noise=0.0)
    assert grown.widths == [14, 10]
    np.testing.assert_allclose(forward(grown, data.x_val).logits, forward(parent_ind, data.x_val).logits, atol=1e-5)
    shrunk = ops.resize(parent_ind, 1, grow=False, step=3, rng=rng, calib_x=data.x_train[:40])
    assert shrunk.widths == [12, 7]
    for ind in (grown, shrunk, ops.mutate_width(shrunk, 0, rng, 0.3, calib_x=data.x_train[:40])):
        _keras_agrees(ind, data)
    tiny = keep_units(parent_ind, 0, [0, 1, 2, 3])
    assert ops.mutate_width(tiny, 0, np.random.default_rng(1), 0.5, min_width=4).widths[0] >= 4


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5])
def test_precision_genes_match_the_keras_model(parent_ind: Individual, data: Dataset, code: int) -> None:
    calib = data.x_train[:60]
    before = forward(parent_ind, calib)
    ind = ops.retype(ops.retype(parent_ind, 0, code, calib), 1, (code % 5) + 1, calib)
    assert ind.arch.type_codes == [code, (code % 5) + 1]
    _keras_agrees(ind, data)
    after = forward(ops.retype(parent_ind, 0, code, calib), calib)  # moment matching keeps unit statistics
    np.testing.assert_allclose(after.y[0].mean(axis=0), before.y[0].mean(axis=0), atol=1e-3)
    live = before.y[0].std(axis=0) > 1e-3
    np.testing.assert_allclose(after.y[0].std(axis=0)[live], before.y[0].std(axis=0)[live], rtol=1e-3)
    back = ops.retype(ind, 0, 0, calib)
    assert back.scales[0] is None
    _keras_agrees(back, data)


def test_fitness_formula() -> None:
    got = ObjectiveWeights(1.0, 2.0, 1.0).score([0.9, 0.5], [0.3, 0.1], [0.5, 0.25])
    np.testing.assert_allclose(got, [0.9 - 0.6 + 0.5, 0.5 - 0.2 + 0.75])
    np.testing.assert_allclose(ObjectiveWeights(0, 2, 1).score([1.0], [0.2], [0.4]), [-0.4 + 0.6])


def test_scores_use_the_similarity_loss_and_both_size_measures(parent_ind: Individual, data: Dataset) -> None:
    pop = [parent_ind, prune_l1(parent_ind, 0.5)]
    scorer = BatchScorer(parent_ind, data.x_train[:20], data.y_train[:20], [0, 1], perplexity=5.0)
    sizes = SizeMeter(parent_ind, SHAPE, CLASSES, "bits")
    scores = score_population(pop, scorer, sizes, (1, 2, 1))
    assert scores.similarity[0] < 1e-6 < scores.similarity[1]  # the parent is identical to itself
    assert scores.bits_ratio[0] == 1.0 and scores.compression[1] == scores.bits_ratio[1] < 1.0
    assert SizeMeter(parent_ind, SHAPE, CLASSES, "width").compression(pop[1]) == (6 + 5) / 22
    summary = scores.summary()
    assert summary["similarity"]["best"] == scores.similarity.min()
    assert summary["fitness"]["best"] == scores.fitness.max()


def test_selections(parent_ind: Individual) -> None:
    rng = np.random.default_rng(0)
    f = np.array([0.0, 0.1, 5.0, 0.2])
    assert (ops.tournament_selection(f, 50, rng, size=4) == 2).all()
    picks = ops.softmax_selection(np.array([0.0, 0.01, 0.02, 0.03]), 4000, rng)
    assert 0.2 < np.mean(picks == 3) < 0.3  # near-equal fitnesses: softmax hardly selects
    assert (ops.softmax_selection(np.array([0.0, 50.0]), 100, rng) == 1).all()
    assert ops.layer_index("logits", 2) == 2 and ops.layer_index("h1_linear", 2) == 1
    with pytest.raises(ValueError, match="recombination layer"):
        ops.layer_index("h5_linear", 2)


def test_finetune_lowers_the_loss_and_clips_binary_kernels(parent_ind: Individual, data: Dataset) -> None:
    ind = ops.retype(prune_l1(parent_ind, 0.3), 0, 1, data.x_train[:60])
    ind.kernels[0] = ind.kernels[0] * 40  # some latent weights beyond [-1, 1]
    x, y = data.x_train[:40], data.y_train[:40]

    def loss(i: Individual) -> float:
        return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, forward(i, x).logits)))

    tuned = finetune(ind, [(x, y)] * 30, lr=1e-2)
    assert loss(tuned) < loss(ind)
    assert np.abs(tuned.kernels[0]).max() <= 1.0
    _keras_agrees(tuned, data)


@pytest.mark.parametrize("mode", ["faithful", "improved"])
def test_a_seeded_run_repeats_exactly(parent: Parent, data: Dataset, mode: str) -> None:
    extra = {"FINAL_CANDIDATES": 3, "FINAL_FINETUNE_EPOCHS": 0.2, "FINETUNE_STEPS": 2, "ELITES": 1,
             "TYPE_MUTATION_RATE": 0.5, "WIDTH_MUTATION_RATE": 0.5} if mode == "improved" else {}
    cfg = Configs.for_mode(mode, **TINY, **extra)
    first, second = (run_ecomp(parent, data, cfg, seed=7) for _ in range(2))
    assert first.history == second.history
    assert first.best.arch == second.best.arch and first.test_accuracy == second.test_accuracy
    for k1, k2 in zip(first.best.kernels, second.best.kernels):
        np.testing.assert_array_equal(k1, k2)
    assert len(first.history["fitness"]["avg"]) == 3
    assert run_ecomp(parent, data, cfg, seed=8).history != first.history
    if mode == "faithful":
        initial = [ind.widths for ind in initial_population(from_parent(parent), cfg.POP_SIZE)]
        assert set(first.best.arch.type_codes) == {0} and first.best.widths in initial  # widths only selected
    got = first.model.predict(data.x_val, verbose=0)
    np.testing.assert_allclose(got, tf.nn.softmax(forward(first.best, data.x_val).logits).numpy(), atol=2e-5)


@pytest.fixture(scope="module")
def npz(tmp_path_factory, data: Dataset):
    path = tmp_path_factory.mktemp("ecomp_data") / "tiny.npz"
    # the synthetic labels never use class 0, which loading refuses (a class without training images): shift them
    np.savez(path, x_train=(np.concatenate([data.x_train, data.x_val])[..., 0] * 255).astype(np.uint8),
             y_train=np.concatenate([data.y_train, data.y_val]) - 1, x_test=(data.x_test[..., 0] * 255).astype(np.uint8),
             y_test=data.y_test - 1)
    return path


TINY_FLAGS = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]


def test_cli_writes_results_and_refuses_bad_input(tmp_path, npz, capsys) -> None:
    from ecomp_tf.__main__ import main

    common = ["--data", str(npz), "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache")]
    tiny = TINY_FLAGS
    assert main(["1", "exp", "--mode", "faithful", *common, *tiny]) == 0
    run = json.loads((tmp_path / "out" / "exp" / "run_0.json").read_text())
    assert {"command", "seed", "versions", "configs", "generations", "best", "final_population"} <= set(run)
    assert set(run["generations"]) >= {"fitness", "accuracy", "similarity", "compression"}
    assert set(run["generations"]["similarity"]) == {"avg", "best", "worst"}
    assert {"test_accuracy", "bits", "bits_ratio", "arch"} <= set(run["best"])
    for suffix in ("keras", "png"):
        assert (tmp_path / "out" / "exp" / f"run_0.{suffix}").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "exp" / "summary.json").read_text())
    assert summary["runs"] == 1 and summary["mode"] == "faithful"
    capsys.readouterr()
    assert main(["0", "exp", *common]) == 2
    assert main(["1", "exp", "--data", str(tmp_path / "missing.npz")]) == 2
    assert main(["1", "exp", *common, "--set", "POP_SIZE=1"]) == 2
    assert main(["1", "exp", *common, "--loss_weights", "1,2"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 4 and "Traceback" not in err


def test_sizes_are_the_targets_predicted_bytes(parent_ind: Individual) -> None:
    child = ops.retype(prune_l1(parent_ind, 0.5), 0, 1, np.zeros((4, *SHAPE), np.float32))
    sizes = SizeMeter(parent_ind, SHAPE, CLASSES, "size", target="tflite_int8")
    assert sizes.bytes(child) == get_target("tflite_int8").predict_bytes(child.arch, SPACES["mlp"], SHAPE, CLASSES)
    assert sizes.size_ratio(parent_ind) == 1.0 and sizes.compression(child) == sizes.size_ratio(child) < 1.0
    theoretical = SizeMeter(parent_ind, SHAPE, CLASSES, "bits", target="bits")
    assert theoretical.bytes(child) == math.ceil(theoretical.bits(child) / 8)
    assert SizeMeter(parent_ind, SHAPE, CLASSES).target.name == resolve_target(None).name  # the best installed
    assert Configs.improved().COMPRESSION == "size" and Configs.faithful().COMPRESSION == "width"


def test_cli_target_prices_every_size_and_an_unknown_one_is_refused(tmp_path, npz, capsys) -> None:
    from ecomp_tf.__main__ import main

    common = ["--data", str(npz), "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache")]
    quick = ["--set", "FINAL_CANDIDATES=2", "--set", "FINETUNE_STEPS=0", "--set", "FINAL_FINETUNE_EPOCHS=0"]
    assert main(["1", "imp", "--target", "tflite_int8", *common, *TINY_FLAGS, *quick]) == 0
    out = capsys.readouterr().out
    assert "target: tflite_int8" in out and "KiB on tflite_int8" in out and "size best" in out
    run = json.loads((tmp_path / "out" / "imp" / "run_0.json").read_text())
    best = run["best"]
    classes = CLASSES - 1  # the file's labels are shifted down by one (see ``npz``)
    expected = get_target("tflite_int8").predict_bytes(parse_arch(best["arch"]), SPACES["mlp"], SHAPE, classes)
    assert best["target"] == "tflite_int8" and best["bytes"] == expected
    assert best["size_ratio"] == pytest.approx(expected / run["parent"]["bytes"], abs=1e-5)
    assert {"bits", "kib", "bits_ratio"} <= set(best)  # the theoretical count stays, under its old keys
    assert run["generations"]["compression"] == run["generations"]["size_ratio"]  # the improved mode's term
    summary = json.loads((tmp_path / "out" / "imp" / "summary.json").read_text())
    assert summary["target"] == "tflite_int8" and summary["kib"]["mean"] == pytest.approx(expected / 1024)
    assert summary["size_ratio"]["mean"] == pytest.approx(best["size_ratio"]) and "bits_ratio" in summary
    assert main(["1", "bad", "--target", "gpu", *common]) == 2
    err = capsys.readouterr().err
    assert "unknown deployment target 'gpu'; known targets: lce, tflite_int8, bits" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "bad").exists()
