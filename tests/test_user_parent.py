"""Bring your own parent: a user's Keras model or .npz of Dense weights replaces the cached parent."""
import json
import shlex

import numpy as np
import pytest
import tensorflow as tf

import search_arc_mnist
from qnas.data import load_dataset
from qnas.errors import UserInputError
from qnas.user_parent import default_embedding_layers, load_user_parent, parent_accuracy


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Tiny 8x8 data with 3 classes, and a small trained Keras parent saved to disk."""
    folder = tmp_path_factory.mktemp("byop")
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, :, int(c) * 2:int(c) * 2 + 3] += 200
        return x, y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = make(240), make(60)
    np.savez(folder / "data.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    data = load_dataset(data_path=folder / "data.npz", seed=0, val_fraction=0.25)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((64,)),
        tf.keras.layers.Dense(24, activation="relu", name="first"),
        tf.keras.layers.Dense(12, name="second"),
        tf.keras.layers.ReLU(name="second_act"),
        tf.keras.layers.Dense(3, activation="softmax", name="classes"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train.reshape(-1, 64), data.y_train, epochs=3, verbose=0)
    model.save(folder / "parent.keras")
    return folder, data, model


def test_default_embedding_layers_are_each_hidden_activation(toy):
    _, _, model = toy
    assert default_embedding_layers(model) == ["first", "second_act"]


def test_reported_accuracy_equals_direct_evaluation(toy):
    folder, data, model = toy
    parent = load_user_parent(folder / "parent.keras", data, log=lambda s: None)
    direct = np.mean(np.argmax(model.predict(data.x_test.reshape(-1, 64), verbose=0), 1) == data.y_test)
    assert parent.test_accuracy == pytest.approx(direct)
    assert parent.embedding_layers == ["first", "second_act"]
    assert [e.shape for e in parent.embeddings(data.x_val[:7])] == [(7, 24), (7, 12)]
    assert "sha256:" in parent.source


@pytest.mark.parametrize("kind,message", [
    ("shape", "the parent takes inputs of shape (10,), but the data's images are (8, 8, 1)"),
    ("classes", "the parent outputs 5 classes"),
    ("layer", "--emb_layers ['nope'] are not layers of the parent"),
    ("missing", "does not exist"),
])
def test_mismatches_get_clear_messages(toy, tmp_path, kind, message):
    folder, data, _ = toy
    path, layers = folder / "parent.keras", None
    if kind in ("shape", "classes"):
        model = tf.keras.Sequential([tf.keras.Input((10,) if kind == "shape" else (64,)),
                                     tf.keras.layers.Dense(4, activation="relu"),
                                     tf.keras.layers.Dense(3 if kind == "shape" else 5)])
        path = tmp_path / f"{kind}.keras"
        model.save(path)
    elif kind == "layer":
        layers = ["nope"]
    else:
        path = tmp_path / "absent.keras"
    with pytest.raises(UserInputError) as err:
        load_user_parent(path, data, layers, log=lambda s: None)
    assert message in str(err.value)


def test_npz_parent_in_either_layout_predicts_the_same(toy, tmp_path):
    _, data, model = toy
    weights = model.get_weights()  # kernel, bias per Dense layer, (in, out)
    np.savez(tmp_path / "in_out.npz", **{f"kernel_{i}": weights[2 * i] for i in range(3)},
             **{f"bias_{i}": weights[2 * i + 1] for i in range(3)})
    np.savez(tmp_path / "out_in.npz", *[w.T if w.ndim == 2 else w for w in weights])  # unnamed, PyTorch layout
    a = load_user_parent(tmp_path / "in_out.npz", data, layout="in_out", log=lambda s: None)
    b = load_user_parent(tmp_path / "out_in.npz", data, layout="out_in", log=lambda s: None)
    x = data.x_test[:20]
    np.testing.assert_allclose(a.model.predict(x, verbose=0), b.model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(a.model.predict(x, verbose=0), model.predict(x.reshape(-1, 64), verbose=0), atol=1e-5)
    assert a.test_accuracy == pytest.approx(parent_accuracy(model, data))
    with pytest.raises(UserInputError, match="try --parent_layout out_in"):
        load_user_parent(tmp_path / "out_in.npz", data, layout="in_out", log=lambda s: None)


def test_users_parent_drives_a_search_and_is_recorded(toy, tmp_path, capsys):
    folder, _, _ = toy
    out = tmp_path / "run"
    argv = ["--space", "mlp", "--data", str(folder / "data.npz"), "--parent", str(folder / "parent.keras"), "--widths", "4,8",
            "--types", "0,1", "--epochs", "1", "--batch_size", "60", "--controller_steps", "1",
            "--controller_batch", "2", "--output_dir", str(out)]
    assert search_arc_mnist.main(argv) == 0
    printed = capsys.readouterr().out
    assert "embedding layers ['first', 'second_act']" in printed and "test accuracy" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["parent"]["source"].startswith(str(folder / "parent.keras"))
    assert len(result["best_arch"].split()) == 4  # depth follows the parent's two hidden layers
    command = shlex.split(result["retrain_command"])  # keeps the parent: warm start and distillation
    assert command[command.index("--parent") + 1] == str(folder / "parent.keras") and "--distill" in command
    assert command[command.index("--max_epochs") + 1] == "100" and command[command.index("--keep") + 1] == "last"
    import train_arc
    assert train_arc.main([*command[2:], "--max_epochs", "1", "--output_dir", str(tmp_path / "re"), "--no_tflite"]) == 0
    retrained = json.loads((tmp_path / "re" / "result.json").read_text())
    assert retrained["init_parent"]["source"].startswith(str(folder / "parent.keras"))
    assert retrained["config"]["distill"]["alpha"] > 0 and retrained["config"]["keep"] == "last"
    assert retrained["metrics"]["kept_epoch"] == 1
    assert search_arc_mnist.main([*argv[:6], "--emb_layers", "first,bogus", "--output_dir", str(tmp_path / "x")]) == 2
    assert "'bogus'" in capsys.readouterr().err


def test_a_parent_of_another_kind_teaches_the_conv_search_s_retrain(toy, tmp_path, capsys):
    import train_arc

    folder, _, _ = toy
    out = tmp_path / "conv"
    argv = ["--data", str(folder / "data.npz"), "--parent", str(folder / "parent.keras"), "--widths", "4,8",
            "--types", "0", "--epochs", "1", "--batch_size", "60", "--controller_steps", "1", "--controller_batch", "2",
            "--retrain_epochs", "1", "--output_dir", str(out)]
    assert search_arc_mnist.main(argv) == 0
    printed = capsys.readouterr().out
    assert "learns from your parent (--distill) but starts from random weights" in printed
    assert "keep the higher validation accuracy" in printed  # how to tell whether the parent is the stronger model
    result = json.loads((out / "result.json").read_text())
    assert len(result["best_arch"].split()) == 8  # the conv space's own 4 layers, not the Dense parent's 2
    command = shlex.split(result["retrain_command"])
    assert command[command.index("--parent") + 1] == str(folder / "parent.keras")
    assert command[command.index("--init") + 1] == "random" and "--distill" in command
    assert command[command.index("--max_epochs") + 1] == "1"  # --retrain_epochs
    assert train_arc.main([*command[2:], "--output_dir", str(tmp_path / "re"), "--no_tflite"]) == 0
    retrained = json.loads((tmp_path / "re" / "result.json").read_text())
    assert retrained["init_parent"] is None and retrained["config"]["init"] == "random"
    assert retrained["config"]["parent"] == str(folder / "parent.keras") and retrained["config"]["distill"]["alpha"] > 0
    unused = [*command[2:command.index("--distill")], "--output_dir", str(tmp_path / "unused")]
    assert train_arc.main(unused) == 2  # --parent with --init random and nothing to teach: refused, nothing written
    assert "add --distill" in capsys.readouterr().err and not (tmp_path / "unused").exists()


def test_train_arc_starts_from_the_users_parent(toy, tmp_path, capsys):
    import train_arc

    folder, _, _ = toy
    out = tmp_path / "warm"
    rc = train_arc.main(["-fixed_arc", "24 0 12 0", "--space", "mlp", "--data", str(folder / "data.npz"),
                         "--parent", str(folder / "parent.keras"), "--max_epochs", "2", "--output_dir", str(out),
                         "--no_tflite"])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["init_parent"]["source"].startswith(str(folder / "parent.keras"))
    assert "test accuracy" in capsys.readouterr().out


def test_users_dense_stack_maps_exactly_onto_the_mlp_space(toy):
    from qnas.spaces import get_space
    from qnas.user_parent import as_space_model

    _, data, model = toy
    rebuilt = as_space_model(model, get_space("mlp"), data)
    np.testing.assert_allclose(rebuilt.predict(data.x_test, verbose=0),
                               model.predict(data.x_test.reshape(-1, 64), verbose=0), atol=1e-5)
    with pytest.raises(UserInputError, match="mlp space"):
        as_space_model(model, get_space("conv"), data)


def test_users_parent_drives_an_ecomp_run(toy, tmp_path, capsys):
    from ecomp_tf.__main__ import main as ecomp_main

    folder, data, model = toy
    argv = ["1", "byop", "--data", str(folder / "data.npz"), "--parent", str(folder / "parent.keras"),
            "--emb_layers", "second_act", "--pop_size", "4", "--generations", "2", "--set", "BATCH_SIZE=20", "--set", "PERPLEXITY=5",
            "--output_dir", str(tmp_path)]
    assert ecomp_main(argv) == 0
    run = json.loads((tmp_path / "byop" / "run_0.json").read_text())
    assert run["parent"]["source"].startswith(str(folder / "parent.keras"))
    assert run["configs"]["EMB_LAYERS"] == [1]  # 'second_act' belongs to the second hidden layer
    direct = float(np.mean(np.argmax(model.predict(data.x_test.reshape(-1, 64), verbose=0), 1) == data.y_test))
    assert run["parent"]["test_accuracy"] == pytest.approx(direct)
    assert "test accuracy" in capsys.readouterr().out


def test_nested_parent_is_flattened_so_its_layers_can_be_named(toy, tmp_path):
    _, data, model = toy
    base = tf.keras.Sequential([tf.keras.Input((64,)), model.get_layer("first"), model.get_layer("second"),
                                model.get_layer("second_act")], name="base")
    nested = tf.keras.Sequential([tf.keras.Input((64,)), base, model.get_layer("classes")])
    nested.save(tmp_path / "nested.keras")
    parent = load_user_parent(tmp_path / "nested.keras", data, log=lambda s: None)
    assert parent.embedding_layers == ["first", "second_act"]
    assert parent.test_accuracy == pytest.approx(parent_accuracy(model, data))


def test_parents_that_are_not_relu_stacks_or_have_other_layouts_are_refused(toy, tmp_path):
    from qnas.spaces import get_space
    from qnas.user_parent import as_space_model

    _, data, _ = toy
    tanh = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(8, activation="tanh"),
                                tf.keras.layers.Dense(3)])
    with pytest.raises(UserInputError, match="ReLU"):
        as_space_model(tanh, get_space("mlp"), data)
    odd = tf.keras.Sequential([tf.keras.Input((4, 16)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(3)])
    odd.save(tmp_path / "odd.keras")
    with pytest.raises(UserInputError, match=r"\(4, 16\)"):
        load_user_parent(tmp_path / "odd.keras", data, log=lambda s: None)


def test_npz_with_one_based_names(toy, tmp_path):
    _, data, model = toy
    w = model.get_weights()
    np.savez(tmp_path / "one.npz", **{f"w{i + 1}": w[2 * i] for i in range(3)},
             **{f"b{i + 1}": w[2 * i + 1] for i in range(3)})
    parent = load_user_parent(tmp_path / "one.npz", data, log=lambda s: None)
    assert parent.test_accuracy == pytest.approx(parent_accuracy(model, data))
