"""Compression operators: activation contribution, structured pruning, PCA rank reduction, warm starts (issue 6)."""
import numpy as np
import pytest
import tensorflow as tf

from ecomp_tf.rank import output_stats, rank_params, rank_reduce
from qnas.arch import parse_arch
from qnas.contribution import ContributionTracker, contribution_scores
from qnas.errors import UserInputError
from qnas.models import build_model
from qnas.prune import keep_units, prunable_layers, prune, refit_consumers
from qnas.spaces import get_space
from qnas.utilities import attach_utilities, get_utilities
from qnas.warmstart import contribution_prune_widths, init_from_parent, select_units

MLP, CONV = get_space("mlp"), get_space("conv")
SHAPE = (8, 8, 1)
RNG = np.random.default_rng(0)
X = RNG.random((64, *SHAPE), dtype=np.float32)
Y = RNG.integers(0, 10, 64)


def _predict(model, x=X):
    return model(x, training=False).numpy()


def _randomise_bn(model, seed=1):
    """Non-trivial BatchNorm parameters and statistics, so that slicing errors show."""
    rng = np.random.default_rng(seed)
    for lay in model.layers:
        if isinstance(lay, tf.keras.layers.BatchNormalization):
            n = lay.moving_mean.shape[0]
            lay.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), rng.uniform(0.5, 2, n)])


def _kill_units(model, layer, next_layer, dead):
    """Zero the outgoing weights of some units: the rest of the network never sees them."""
    nxt = model.get_layer(next_layer)
    weights = nxt.get_weights()
    weights[0][..., dead, :] = 0.0
    nxt.set_weights(weights)


@pytest.fixture(scope="module")
def mlp_model():
    tf.keras.utils.set_random_seed(0)
    model = build_model(MLP, parse_arch("24 0 16 0"), SHAPE, 10)
    for name in ("h0_linear", "h1_linear"):  # positive biases: no unit is ReLU-dead on X by accident
        kernel, bias = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([kernel, bias + 2.0])
    return model


def test_pruning_keeps_model_runnable_with_right_shapes(mlp_model):
    pruned = prune(mlp_model, "h0_linear", 10, utility=np.arange(24.0))
    assert pruned.get_layer("h0_linear").units == 14
    assert pruned.get_layer("h1_linear").get_weights()[0].shape == (14, 16)
    assert _predict(pruned).shape == (64, 10)
    # the lowest-utility units were removed: the kept columns are the original's 10..23
    np.testing.assert_array_equal(pruned.get_layer("h0_linear").get_weights()[0],
                                  mlp_model.get_layer("h0_linear").get_weights()[0][:, 10:])
    assert mlp_model.get_layer("h0_linear").units == 24  # the original is untouched


def test_pruning_dead_units_by_contribution_leaves_outputs_unchanged(mlp_model):
    model = tf.keras.models.clone_model(mlp_model)
    model.set_weights(mlp_model.get_weights())
    dead = [1, 5, 6, 11, 20]
    _kill_units(model, "h0_linear", "h1_linear", dead)
    scores = contribution_scores(model, X, Y)
    np.testing.assert_array_equal(scores["h0_linear"][dead], 0.0)
    assert np.all(np.delete(scores["h0_linear"], dead) > 0)
    pruned = prune(model, "h0_linear", len(dead), utility=scores["h0_linear"])
    np.testing.assert_allclose(_predict(pruned), _predict(model), rtol=1e-5, atol=1e-6)


def test_tracker_attaches_moving_average_and_prune_uses_it():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(12, activation="relu", input_shape=(5,)),
                                 tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = RNG.random((60, 5), dtype=np.float32)
    y = RNG.integers(0, 3, 60)
    tracker = ContributionTracker(x, y, every=2, batch_size=30, decay=0.5)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[tracker])
    assert tracker.updates == 3
    name = model.layers[0].name
    assert get_utilities(model)[name].shape == (12,)
    # one more update by hand follows the EMA rule exactly
    before = tracker.utilities[name].copy()
    chunk = (tracker._cursor + np.arange(30)) % 60
    fresh = contribution_scores(model, x[chunk], y[chunk])[name]
    tracker.update()
    np.testing.assert_allclose(tracker.utilities[name], 0.5 * before + 0.5 * fresh, rtol=1e-6)
    pruned = prune(model, name, 4)  # default utility: the tracked one
    kept = np.sort(np.argsort(tracker.utilities[name], kind="stable")[4:])
    np.testing.assert_array_equal(pruned.get_layer(name).get_weights()[0], model.get_layer(name).get_weights()[0][:, kept])
    assert get_utilities(pruned)[name].shape == (8,)  # utilities follow the kept units


def test_conv_batchnorm_pruning_is_consistent():
    """Removing filters = zeroing the next conv's inputs from them: BN, pooling and Flatten all follow."""
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(SHAPE)
    h = tf.keras.layers.Conv2D(6, 3, padding="same", name="c0")(inp)
    h = tf.keras.layers.BatchNormalization(name="bn0")(h)
    h = tf.keras.layers.ReLU()(h)
    h = tf.keras.layers.MaxPool2D(2)(h)
    h = tf.keras.layers.Conv2D(5, 3, padding="same", name="c1")(h)
    h = tf.keras.layers.BatchNormalization(name="bn1")(h)
    h = tf.keras.layers.Activation("relu")(h)
    h = tf.keras.layers.Flatten()(h)
    out = tf.keras.layers.Dense(4, name="head")(h)
    model = tf.keras.Model(inp, out)
    _randomise_bn(model)
    assert prunable_layers(model) == ["c0", "c1"]
    pruned = keep_units(model, {"c0": [0, 2, 5], "c1": [1, 2, 4]})
    assert pruned.get_layer("bn0").moving_mean.shape == (3,) and pruned.get_layer("bn1").gamma.shape == (3,)
    assert pruned.get_layer("head").get_weights()[0].shape == (4 * 4 * 3, 4)
    reference = tf.keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    _kill_units(reference, "c0", "c1", [1, 3, 4])
    _kill_units(reference, "c1", "head", [np.arange(16) * 5 + j for j in (0, 3)])
    np.testing.assert_allclose(_predict(pruned), _predict(reference), rtol=1e-4, atol=1e-5)
    scores = contribution_scores(reference, X, Y % 4)  # filters read after their BatchNorm, summed over positions
    np.testing.assert_array_equal(scores["c0"][[1, 3, 4]], 0.0)
    assert np.all(scores["c0"][[0, 2, 5]] > 0)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_refit_lets_a_duplicate_unit_take_over(kind):
    """Unit 5 copies unit 0: after removing it, the least-squares refit of the next layer is exact."""
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(SHAPE)
    if kind == "dense":
        h = tf.keras.layers.Dense(6, activation="relu", name="a")(tf.keras.layers.Flatten()(inp))
        h = tf.keras.layers.Dense(4, name="b")(h)
    else:
        h = tf.keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
        h = tf.keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="b")(h)
        h = tf.keras.layers.BatchNormalization(name="bn")(h)
        h = tf.keras.layers.GlobalAveragePooling2D()(h)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(h))
    _randomise_bn(model)
    kernel, bias = model.get_layer("a").get_weights()
    kernel[..., 5], bias[5] = kernel[..., 0], 0.3
    bias[0] = 0.3
    model.get_layer("a").set_weights([kernel, bias])
    plain = keep_units(model, {"a": np.arange(5)})
    refitted = keep_units(model, {"a": np.arange(5)})
    assert refit_consumers(model, refitted, {"a": np.arange(5)}, X, ridge=1e-9) == ["b"]
    assert not np.allclose(_predict(plain), _predict(model), atol=1e-3)
    np.testing.assert_allclose(_predict(refitted), _predict(model), rtol=1e-3, atol=1e-4)
    assert _predict(prune(model, "a", 1, utility=-np.arange(6.0), refit=X)).shape == (64, 3)


def test_quantized_conv_model_prunes_and_keeps_quantizers():
    model = build_model(CONV, parse_arch("8 1 8 2 8 0"), SHAPE, 10)
    _randomise_bn(model)
    pruned = prune(model, "h1", 3, utility=np.arange(8.0))
    assert pruned.get_layer("h1_linear").filters == 5
    assert pruned.get_layer("h2_linear").get_weights()[0].shape == (3, 3, 5, 8)
    assert type(pruned.get_layer("h1_linear").kernel_quantizer).__name__ == "SteTern"
    np.testing.assert_array_equal(pruned.get_layer("h1_bn").moving_variance.numpy(),
                                  model.get_layer("h1_bn").moving_variance.numpy()[3:])
    assert _predict(pruned).shape == (64, 10)


def test_bad_pruning_requests_are_refused(mlp_model):
    with pytest.raises(UserInputError, match="output"):
        prune(mlp_model, "logits", 1, utility=np.ones(10))
    with pytest.raises(UserInputError, match="0..23"):
        prune(mlp_model, "h0_linear", 24, utility=np.ones(24))
    with pytest.raises(UserInputError, match="24 finite numbers"):
        prune(mlp_model, "h0_linear", 2, utility=np.ones(5))
    with pytest.raises(UserInputError, match="no utility"):
        prune(mlp_model, "h1_linear", 2)
    with pytest.raises(UserInputError, match="no layer"):
        prune(mlp_model, "h7", 2, utility=np.ones(3))
    binary = build_model(MLP, parse_arch("16 0 8 1"), SHAPE, 10)
    with pytest.raises(UserInputError, match="quantized"):
        prune(binary, "h0", 2, utility=np.arange(16.0), refit=X)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_rank_k_projection_of_rank_k_outputs_is_exact(kind):
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    inp = tf.keras.Input(SHAPE)
    if kind == "dense":
        h = tf.keras.layers.Flatten()(inp)
        target = tf.keras.layers.Dense(12, activation="relu", name="target")
    else:
        h = inp
        target = tf.keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="target")
    h = target(h)
    h = tf.keras.layers.Flatten()(h) if kind == "conv" else h
    model = tf.keras.Model(inp, tf.keras.layers.Dense(5)(h))
    kernel = target.get_weights()[0]
    fan_in = int(np.prod(kernel.shape[:-1]))
    low_rank = rng.normal(size=(fan_in, 3)) @ rng.normal(size=(3, 12))  # outputs span a 3-d affine subspace
    target.set_weights([low_rank.reshape(kernel.shape).astype(np.float32), rng.normal(size=12).astype(np.float32)])
    reduced = rank_reduce(model, "target", 3, X)
    assert reduced.get_layer("target").get_weights()[0].shape[-1] == 3
    assert reduced.get_layer("target_up").get_weights()[0].shape[-2:] == (3, 12)
    np.testing.assert_allclose(_predict(reduced), _predict(model), rtol=1e-3, atol=1e-3)
    assert output_stats(model, "target", X).basis(3)[1] == pytest.approx(1.0, abs=1e-6)
    # with a lower rank the outputs do change
    assert not np.allclose(_predict(rank_reduce(model, "target", 2, X)), _predict(model), atol=1e-3)


def test_rank_reduce_on_build_model_and_refusals(mlp_model):
    reduced = rank_reduce(mlp_model, "h0", 6, X)
    assert [lay.name for lay in reduced.layers][:5] == ["image", "flatten", "h0_linear", "h0_linear_up", "h1_act"]
    assert _predict(reduced).shape == (64, 10)
    assert rank_params(mlp_model, "h0", 6) == (64 * 24 + 24, 64 * 6 + 6 + 6 * 24 + 24)
    binary = build_model(MLP, parse_arch("16 1 8 1"), SHAPE, 10)
    with pytest.raises(UserInputError, match="quantized kernel"):
        rank_reduce(binary, "h0", 4, X)
    with pytest.raises(UserInputError, match="1..24"):
        rank_reduce(mlp_model, "h0", 30, X)


def test_select_units_methods(mlp_model):
    kernel = mlp_model.get_layer("h0_linear").get_weights()[0]
    l1 = select_units(mlp_model, "h0_linear", 6, method="l1")
    np.testing.assert_array_equal(l1, np.sort(np.argsort(np.abs(kernel).sum(0))[-6:]))
    r1 = select_units(mlp_model, "h0_linear", 6, method="random", seed=4)
    assert len(r1) == 6 and np.all(np.diff(r1) > 0)
    np.testing.assert_array_equal(r1, select_units(mlp_model, "h0_linear", 6, method="random", seed=4))
    custom = select_units(mlp_model, "h0_linear", 3, utility=lambda m, name: -np.arange(24.0))
    np.testing.assert_array_equal(custom, [0, 1, 2])
    kept = contribution_prune_widths(mlp_model, [8, 4], x_sample=X)
    assert [len(k) for k in kept] == [8, 4]
    with pytest.raises(UserInputError, match="x_sample"):
        select_units(mlp_model, "h0_linear", 6, method="contribution")
    with pytest.raises(UserInputError, match="1..24"):
        select_units(mlp_model, "h0_linear", 30)


@pytest.mark.parametrize("space,arch", [(MLP, "24 0 16 0"), (CONV, "8 0 8 0 8 0")])
def test_warm_start_with_parent_widths_reproduces_parent(space, arch):
    parent = build_model(space, parse_arch(arch), SHAPE, 10, name="parent")
    _randomise_bn(parent)
    child = build_model(space, parse_arch(arch), SHAPE, 10)
    init_from_parent(child, parent, X)
    np.testing.assert_allclose(_predict(child), _predict(parent), rtol=1e-5, atol=1e-6)


def test_warm_start_drops_dead_units_exactly(mlp_model):
    parent = tf.keras.models.clone_model(mlp_model)
    parent.set_weights(mlp_model.get_weights())
    _kill_units(parent, "h0_linear", "h1_linear", np.arange(0, 24, 2))  # half of h0 is dead
    child = build_model(MLP, parse_arch("12 0 16 0"), SHAPE, 10)
    kept = init_from_parent(child, parent, X, method="contribution")
    np.testing.assert_array_equal(kept[0], np.arange(1, 24, 2))
    np.testing.assert_allclose(_predict(child), _predict(parent), rtol=1e-5, atol=1e-6)


def test_warm_start_quantized_child_matches_parent_moments(mlp_model):
    attach_utilities(mlp_model, {"h0_linear": np.arange(24.0), "h1_linear": np.arange(16.0)})
    child = build_model(MLP, parse_arch("8 1 20 2"), SHAPE, 10)
    kept = init_from_parent(child, mlp_model, X)
    np.testing.assert_array_equal(kept[0], np.arange(16, 24))  # the tracked utilities chose the units
    np.testing.assert_array_equal(kept[1], np.arange(16))  # a wider child keeps every parent unit
    latent = child.get_layer("h1_linear").get_weights()[0]
    assert np.abs(latent).max() <= 1.0
    np.testing.assert_allclose(child.get_layer("h0_linear").get_weights()[0],
                               np.clip(mlp_model.get_layer("h0_linear").get_weights()[0][:, 16:], -1, 1))
    parent_out = tf.keras.Model(mlp_model.inputs, mlp_model.get_layer("h0_linear").output)(X).numpy()[:, 16:]
    child_out = tf.keras.Model(child.inputs, child.get_layer("h0_bn").output)(X, training=False).numpy()
    np.testing.assert_allclose(child_out.mean(0), parent_out.mean(0), atol=1e-4)
    np.testing.assert_allclose(child_out.std(0), parent_out.std(0), rtol=0.05)
    attach_utilities(mlp_model, {})


def test_warm_start_refuses_other_depths_and_models(mlp_model):
    with pytest.raises(UserInputError, match="same depth"):
        init_from_parent(build_model(MLP, parse_arch("16 1"), SHAPE, 10), mlp_model, X)
    plain = tf.keras.Sequential([tf.keras.layers.Dense(4, input_shape=(3,))])
    with pytest.raises(UserInputError, match="build_model"):
        init_from_parent(plain, mlp_model, X)


def test_compress_cli_reports_accuracies_and_refuses_bad_input(tmp_path, capsys):
    from ecomp_tf.compress import main

    rng = np.random.default_rng(1)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=rng.integers(0, 255, (80, 8, 8), dtype=np.uint8), y_train=rng.integers(0, 10, 80),
             x_test=rng.integers(0, 255, (20, 8, 8), dtype=np.uint8), y_test=rng.integers(0, 10, 20))
    model = build_model(MLP, parse_arch("16 0 8 0"), SHAPE, 10)
    model.save(tmp_path / "m.keras")
    out_json = tmp_path / "r.json"
    argv = ["--model", str(tmp_path / "m.keras"), "--data", str(npz), "--layer", "h0", "--sample", "40"]
    assert main(["prune", *argv, "--fraction", "0.5", "--refit", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "pruned h0_linear to 8 units by l1 with least-squares refit" in printed and "fine-tune epoch 1" in printed
    import json

    report = json.loads(out_json.read_text())
    assert report["keep"] == 8 and len(report["accuracy_fine_tuned"]) == 1 and report["seed"] == 0
    assert main(["rank", *argv, "--keep", "4", "--fine_tune_epochs", "0"]) == 0
    assert main(["prune", *argv[:-4], "--layer", "logits", "--keep", "4", "--sample", "40"]) == 2
    assert "error: pruning ['logits'] would change the model output" in capsys.readouterr().err
