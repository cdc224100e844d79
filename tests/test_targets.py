"""qnas.targets: registry, byte prediction against real files, exact export, agreement, latency (issue 12)."""
import json
import math
import os
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from qnas.arch import parse_arch
from qnas.errors import UserInputError
from qnas.export import export_tflite, lce_available, tflite_predict
from qnas.models import arch_bits, build_model
from qnas.parent import Parent
from qnas.spaces import get_space
from qnas.targets import default_target, get_target, target_names
from qnas.targets.cells import micro_graph, tflite_op_counts
from qnas.targets.deploy import deploy_model, format_deploy
from qnas.targets.flatbuffer import read_tflite
from qnas.targets.fold import DeployGraph, fold_model, snap_bias
from qnas.targets.latency import LatencyTable
from qnas.targets.measure import measure_latency, top1_agreement
from qnas.targets.pricing import LatencyPricer
from qnas.targets.quiet import quiet
from qnas.trainer import TrainConfig, format_result, train_architecture

SHAPE = (8, 8, 1)
CLASSES = 3
needs_lce = pytest.mark.skipif(lce_available() is not None, reason="Larq Compute Engine is not importable here")
REAL_TARGETS = [pytest.param("lce", marks=needs_lce), "tflite_int8"]
# One layer of every type (0 float32, 1 binary, 2 ternary, 3 int2, 4 int4, 5 int8), binary first and later.
MIXED = {"mlp": "24 1 16 2 16 3 16 4 16 5 16 0 16 1 16 1", "conv": "8 1 16 1 16 2 16 3 16 4 16 5 16 0"}


def _images(rng, n):
    """Three classes of 8x8 images, told apart by which band of rows is bright; pixels are k/255."""
    y = rng.integers(0, CLASSES, n)
    x = rng.random((n, 8, 8)) * 0.4
    for c in range(CLASSES):
        x[y == c, 2 * c:2 * c + 3, :] += 0.6
    return np.round(np.clip(x, 0, 1) * 255)[..., None].astype(np.float32) / 255.0, y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    (x, y), (xt, yt) = _images(rng, 256), _images(rng, 64)
    return x, y, xt, yt


def _model(space_name, arch_text, data, epochs=2, seed=0):
    """A briefly trained model of ``arch_text`` (BatchNorm statistics are the trained ones)."""
    tf.keras.utils.set_random_seed(seed)
    space = get_space(space_name)
    arch = parse_arch(arch_text, space)
    model = build_model(space, arch, SHAPE, CLASSES)
    model.compile(tf.keras.optimizers.legacy.Adam(3e-3), "sparse_categorical_crossentropy")
    x, y, _, _ = data
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return space, arch, model


# -- the registry --------------------------------------------------------------------------------------------

def test_unknown_target_gets_a_message_listing_the_known_ones():
    with pytest.raises(UserInputError) as err:
        get_target("edge_tpu")
    for name in ("lce", "tflite_int8", "bits"):
        assert name in str(err.value)
    assert set(target_names()) >= {"lce", "tflite_int8", "bits"}


def test_a_target_whose_converter_is_missing_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "larq_compute_engine", None)  # makes ``import larq_compute_engine`` fail
    with pytest.raises(UserInputError) as err:
        get_target("lce")
    assert "'lce' extra" in str(err.value)
    assert default_target().name == "tflite_int8"  # the best real target that is installed
    assert get_target("lce", require=False).name == "lce"  # pricing works without the converter


@needs_lce
def test_default_target_is_lce_when_installed():
    assert default_target().name == "lce"


def test_bits_target_is_the_theoretical_count():
    target = get_target("bits")
    assert target.theoretical
    for space_name, text in [("mlp", "256 1 128 2"), ("conv", MIXED["conv"]), ("mlp", MIXED["mlp"])]:
        space = get_space(space_name)
        arch = parse_arch(text, space)
        assert target.predict_bytes(arch, space, (28, 28, 1), 10) == math.ceil(arch_bits(space, arch, (28, 28, 1), 10) / 8)
    with pytest.raises(UserInputError, match="theoretical"):
        target.export(None, get_space("mlp"), parse_arch("8 1"), "x.tflite", np.zeros((1, 8, 8, 1)))


def test_how_layers_run_on_each_target():
    lce, int8 = get_target("lce", require=False), get_target("tflite_int8")
    space = get_space("conv")
    assert lce.precisions(parse_arch("8 1 8 1 8 2 8 0", space), space) == ["int8", "binary", "int8", "float32"]
    # LCE's converter runs a float32 layer between two int8 ones as int8; the prediction says so
    assert lce.precisions(parse_arch("8 5 8 0 8 5", space), space) == ["int8", "int8", "int8"]
    assert int8.precisions(parse_arch("8 1 8 1 8 2 8 0", space), space) == ["int8"] * 4
    # types that cost what int8 costs and lose accuracy are not searched by default
    assert lce.default_types() == (0, 1, 5) and int8.default_types() == (0, 5)
    # a binary layer is 32x cheaper than int8 only where LCE bit-packs it
    table = lce.layer_table(parse_arch("64 1 64 1 64 5", space), space, (28, 28, 1))
    assert [row["runs_as"] for row in table] == ["int8", "binary", "int8"]
    assert table[1]["bytes"] < table[2]["bytes"] / 4


# -- byte prediction against real files ----------------------------------------------------------------------

@pytest.mark.parametrize("space_name", ["mlp", "conv"])
@pytest.mark.parametrize("name", REAL_TARGETS)
def test_predicted_bytes_match_the_exported_file(name, space_name, data, tmp_path):
    target = get_target(name)
    space, arch, model = _model(space_name, MIXED[space_name], data, epochs=1)
    path = target.export(model, space, arch, tmp_path / "m.tflite", data[0])
    size = path.stat().st_size
    predicted = target.predict_bytes(arch, space, SHAPE, CLASSES)
    assert abs(predicted - size) <= max(0.05 * size, 2048), (predicted, size)
    contents = read_tflite(path)
    assert contents.size == size
    int8_kernels = [c for c in contents.constants if c.dtype == "INT8" and len(c.shape) == 4]
    if name == "lce":  # binary layers after the first are bit-packed (Dense ones as 1x1 convolutions)
        assert contents.count("LceBconv2d") == (2 if space_name == "mlp" else 1)
        assert len(int8_kernels) == 5  # binary first, ternary, int2, int4, int8
    else:  # every layer int8, no float weights left
        assert len(int8_kernels) == len(arch)
        assert not any(c.dtype == "FLOAT32" and np.prod(c.shape) > CLASSES for c in contents.constants)


@needs_lce
def test_a_micro_network_ships_as_priced_and_computes_what_keras_computes(data, tmp_path):
    """Binary convolutions, a float separable one, both poolings and identities, deployed as train_arc deploys."""
    tf.keras.utils.set_random_seed(0)
    space = get_space("micro").with_options(types=(0, 1))
    arch = space.parse("0 10 1 0 2 2 0 4 0 3 1 11 2 4 1 10")  # two nodes a cell
    model = space.build(arch, SHAPE, CLASSES)
    model.compile(tf.keras.optimizers.legacy.Adam(3e-3), "sparse_categorical_crossentropy")
    x, y, xt, yt = data
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # BatchNorm gets statistics of its own
    record = deploy_model(model, space, arch, "lce", tmp_path, x, xt[:16], latency_repeats=2, y_test=yt[:16])
    keras_accuracy = np.mean(np.argmax(model.predict(xt[:16], verbose=0), 1) == yt[:16])
    assert record["test_accuracy"] == pytest.approx(keras_accuracy)  # the file's own, on the labels
    assert f"test accuracy {keras_accuracy:.4f}" in format_deploy(record)
    size = (tmp_path / record["path"]).stat().st_size
    assert record["bytes"] == size and abs(record["predicted_bytes"] - size) <= max(0.05 * size, 2048), record
    assert record["top1_agreement"] == 1.0 and record["agreement_images"] == 16  # the file computes what Keras does
    assert record["latency_ms"]["single_ms"] > 0 and record["layers"] == []
    ops = read_tflite(tmp_path / record["path"]).ops
    target = get_target("lce")
    assert Counter(ops) == tflite_op_counts(micro_graph(space, arch, SHAPE, CLASSES, target.cell_precision))
    assert ops.count("LceBconv2d") == 7 and ops.count("DEPTHWISE_CONV_2D") == 3  # 3 normal, 2 reduction cells


@needs_lce
def test_binary_convolutions_larger_than_their_input_ship_exactly(tmp_path):
    """LCE miscomputes zero padding where a kernel exceeds its input (5x5 on 4x4, 3x3 on 2x2): the lce target
    rewrites those convolutions (``qnas.targets.lce_padding``), so the file agrees with Keras, priced as it ships."""
    tf.keras.utils.set_random_seed(1)
    space = get_space("micro").with_options(types=(0, 1))
    arch = space.parse("0 11 1 10 2 3 0 4 0 10 1 11 2 2 0 10")  # binary 3x3 and 5x5 convolutions on 8x8, 4x4, 2x2
    shape, classes = (8, 8, 3), 10
    model = space.build(arch, shape, classes)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, *shape)).astype(np.float32)  # standardised colour images: negative and positive
    for layer in model.layers:  # BatchNorm statistics of the data, shifted and scaled a little, as after training
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            h = tf.keras.Model(model.inputs, layer.input).predict(x, verbose=0)
            mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
            n = len(mean)
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n), mean + 0.3 * np.sqrt(var) * rng.normal(size=n),
                               var * rng.uniform(0.5, 2, n)])
    target = get_target("lce")
    path = target.export(model, space, arch, tmp_path / "m.tflite", x)
    assert top1_agreement(model, target, path, x) >= 0.99
    np.testing.assert_allclose(target.predict(path, x), model.predict(x, verbose=0), atol=1e-3)
    size = path.stat().st_size
    assert abs(target.predict_bytes(arch, space, shape, classes) - size) <= max(0.05 * size, 2048)
    ops = read_tflite(path).ops
    assert Counter(ops) == tflite_op_counts(micro_graph(space, arch, shape, classes, target.cell_precision))


# -- exact export ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("space_name", ["mlp", "conv"])
def test_folded_graph_computes_what_keras_computes(space_name, data):
    """Every kernel quantizer evaluated once and BatchNorm folded: the float graph is Keras to float precision."""
    space, arch, model = _model(space_name, MIXED[space_name], data)
    graph = DeployGraph(fold_model(model, space, arch, ["float32"] * len(arch), "float32"))
    x = data[2]
    np.testing.assert_allclose(graph.forward(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_int8_grids_hold_every_low_bit_layer_exactly(data):
    """Binary (first), ternary, int2 and int4 kernels and inputs sit on int8 integers: with LCE's plan only the
    classifier's input range is calibrated (int8 DoReFa kernels, odd multiples of 1/255, are rounded: not here)."""
    space, arch, model = _model("conv", "8 1 16 1 16 2 16 3 16 4", data)
    precisions = get_target("lce", require=False).precisions(arch, space)
    assert precisions == ["int8", "binary", "int8", "int8", "int8"]
    graph = DeployGraph(fold_model(model, space, arch, precisions, "float32"))
    graph.calibrate(data[0])
    x = data[2]
    np.testing.assert_allclose(graph.forward(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=0.01)


@pytest.mark.parametrize("name", REAL_TARGETS)
def test_exported_file_agrees_with_keras(name, data, tmp_path):
    target = get_target(name)
    space, arch, model = _model("conv", MIXED["conv"], data, epochs=3)
    path = target.export(model, space, arch, tmp_path / "m.tflite", data[0])
    x = data[2]
    assert top1_agreement(model, target, path, x) >= 63 / 64
    # exact grids everywhere but the ranges calibrated for the float32 layer and the classifier
    np.testing.assert_allclose(target.predict(path, x), model.predict(x, verbose=0), atol=0.06)


@needs_lce
def test_ternary_inputs_in_the_dead_zone_stay_zero_in_the_lce_file(data, tmp_path):
    """LCE's converter reads ``sign(sign(x + t) + sign(x - t))`` as a binarization of ``x + t`` (zero becomes +1)."""
    space, arch, model = _model("mlp", "16 0 16 2", data)
    first = model.get_layer("h0_linear")  # float layers of the mlp space have a bias and no BatchNorm
    x = data[2]
    features = tf.keras.Model(model.inputs, first.output).predict(x, verbose=0)
    centre = np.median(features, axis=0)
    scale = 0.1 / np.std(features - centre)
    first.kernel.assign(first.kernel.numpy() * scale)
    first.bias.assign((first.bias.numpy() - centre) * scale)
    inputs = tf.keras.Model(model.inputs, first.output).predict(x, verbose=0)
    assert np.mean(np.abs(inputs) < 0.05) > 0.3  # many ternary inputs fall in the dead zone
    expected = model.predict(x, verbose=0)
    target = get_target("lce")
    path = target.export(model, space, arch, tmp_path / "t.tflite", data[0])
    assert np.max(np.abs(target.predict(path, x) - expected)) < 0.02
    legacy = export_tflite(model, tmp_path / "legacy.tflite")  # the Keras model handed to LCE as it is
    assert np.max(np.abs(tflite_predict(legacy.path, x) - expected)) > 0.05


def test_snapped_bias_changes_no_decision_and_widens_the_margin():
    rng = np.random.default_rng(1)
    n, step = 42, 1.0 / 3.0
    boundaries = (np.arange(3) + 0.5) * step
    bias = rng.normal(0.0, 1.0, 200)
    delta = rng.uniform(1e-4, 1e-3, 200)
    snapped = snap_bias(bias, delta, n, boundaries)
    acc = n * np.arange(-3000, 3001)[:, None]  # reachable accumulators: multiples of n

    def levels(b):
        return np.sum(delta * acc + b >= boundaries[:, None, None], axis=0)

    def margin(b):  # per channel: accumulator units from any boundary to the nearest reachable value
        r = np.mod((boundaries[:, None] - b) / delta, n)
        return np.minimum(r, n - r).min(axis=0)

    assert np.array_equal(levels(bias), levels(snapped))
    assert np.all(margin(snapped) >= margin(bias) - 1e-6)
    assert np.mean(margin(snapped)) > 2 * np.mean(margin(bias))


def test_quiet_keeps_file_descriptor_output_away_and_attaches_it_to_errors(capfd):
    with quiet():
        os.write(2, b"NodeDef mentions attribute noise\n")
        os.write(1, b"converter chatter\n")
    out, err = capfd.readouterr()
    assert "noise" not in err and "chatter" not in out
    with pytest.raises(RuntimeError) as info, quiet():
        os.write(2, b"the reason it failed\n")
        raise RuntimeError("boom")
    assert "the reason it failed" in info.value.converter_log
    os.write(2, b"visible again\n")
    assert "visible again" in capfd.readouterr().err


# -- latency -----------------------------------------------------------------------------------------------

def test_latency_is_measured_and_the_table_is_cached(data, tmp_path):
    target = get_target("tflite_int8")
    space, arch, model = _model("mlp", "16 5 8 0", data, epochs=1)
    path = target.export(model, space, arch, tmp_path / "m.tflite", data[0])
    latency = measure_latency(target, path, data[2], repeats=5, warmup=2, batch=8)
    assert latency.single_ms > 0 and latency.batch_ms > 0 and latency.batch == 8 and latency.threads == 1
    table = LatencyTable(target, tmp_path / "cache", repeats=5, warmup=2)
    predicted = table.predict(arch, space, SHAPE, CLASSES)
    assert predicted > 0 and table.measured == 4  # two layers, and the head on each one's output
    saved = json.loads(table.path.read_text())
    assert saved["target"] == "tflite_int8" and len(saved["entries"]) == 4
    again = LatencyTable(target, tmp_path / "cache")
    assert again.predict(arch, space, SHAPE, CLASSES) == pytest.approx(predicted) and again.measured == 0


def test_latency_pricer_predicts_from_the_table_and_refuses_what_has_none(tmp_path):
    target, space = get_target("tflite_int8"), replace(get_space("mlp"), parent_widths=(16, 8))  # a small parent
    user_parent = Parent(None, None, [], 0.9, 0, "my_model.keras")  # not in the table: the space's parent stands in
    table = LatencyTable(target, tmp_path / "cache", repeats=5, warmup=2)
    pricer = LatencyPricer(target, space, SHAPE, CLASSES, user_parent, table=table)
    assert pricer.reference == "the space's float parent"
    assert pricer.parent_ms == pytest.approx(table.predict(space.parent_arch(), space, SHAPE, CLASSES))
    arch = parse_arch("16 5 8 0", space)
    ms = pricer.ms(arch)
    assert ms == pytest.approx(table.predict(arch, space, SHAPE, CLASSES)) and ms > 0
    assert pricer.ratio(arch) == pytest.approx(ms / pricer.parent_ms)
    with pytest.raises(UserInputError, match="the micro space has no per-layer latency table"):
        LatencyPricer(get_target("lce", require=False), get_space("micro"), SHAPE, CLASSES, user_parent)
    with pytest.raises(UserInputError, match="'bits' is a theoretical count with no file to time"):
        LatencyPricer(get_target("bits"), space, SHAPE, CLASSES, user_parent)


# -- train_arc's hook ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(2)
    (x, y), (xt, yt) = _images(rng, 240), _images(rng, 60)
    path = tmp_path_factory.mktemp("data") / "bands.npz"
    np.savez(path, x_train=(x[..., 0] * 255).astype(np.uint8), y_train=y, x_test=(xt[..., 0] * 255).astype(np.uint8),
             y_test=yt)
    return path


def _train(data_file, out, **kw):
    config = TrainConfig(**{"arch": "12 1 8 2", "space": "mlp", "data_path": str(data_file), "max_epochs": 2,
                            "batch_size": 32, "seed": 1, "output_dir": str(out), "patience": 5, **kw})
    return train_architecture(config, log=lambda text: None, progress=False)


def test_train_arc_records_the_deployed_file(data_file, tmp_path):
    result = _train(data_file, tmp_path / "run", target="tflite_int8")
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    deploy = record["deploy"]
    assert deploy["target"] == "tflite_int8" and deploy["path"] == "model.tflite"
    assert deploy["bytes"] == (tmp_path / "run" / "model.tflite").stat().st_size
    assert abs(deploy["predicted_bytes"] - deploy["bytes"]) <= max(0.05 * deploy["bytes"], 2048)
    assert deploy["agreement_images"] == 60 and 0.9 <= deploy["top1_agreement"] <= 1.0
    assert deploy["latency_ms"]["single_ms"] > 0 and deploy["latency_ms"]["threads"] == 1
    assert record["config"]["target"] == "tflite_int8"
    summary = format_result(result)
    assert f"{deploy['bytes']:,} bytes (predicted {deploy['predicted_bytes']:,})" in summary


def test_train_arc_refuses_an_unknown_target_before_training(data_file, tmp_path):
    with pytest.raises(UserInputError, match="known targets"):
        _train(data_file, tmp_path / "bad", target="gpu")
    assert not (tmp_path / "bad").exists()


def test_train_arc_with_the_bits_target_writes_no_file(data_file, tmp_path):
    result = _train(data_file, tmp_path / "bits", target="bits", max_epochs=2)
    deploy = result.record["deploy"]
    assert deploy["theoretical"] and deploy["path"] is None and not (tmp_path / "bits" / "model.tflite").exists()
    assert deploy["predicted_bytes"] == math.ceil(result.record["size"]["bits"] / 8)
    assert "theoretical" in format_result(result)
