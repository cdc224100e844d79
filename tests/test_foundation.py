"""Layer types, bit counts, architecture strings and model building (issue: foundation)."""
import numpy as np
import pytest
import tensorflow as tf

from qnas.arch import Architecture, Layer, parse_arch
from qnas.errors import UserInputError
from qnas.models import arch_bits, build_model, embedding_model
from qnas.spaces import get_space
from quantize.size import SizeReport, model_bits
from quantize.types import LAYER_TYPES, get_layer_type

MLP, CONV = get_space("mlp"), get_space("conv")
SHAPE = (28, 28, 1)


def _layer_io(model, name, x):
    """The input a layer receives and the output it gives, for a batch x."""
    layer = model.get_layer(name)
    probe = tf.keras.Model(model.inputs, [layer.input, layer.output])
    return [t.numpy() for t in probe(x, training=False)]


def test_binary_kernel_is_plus_minus_one_and_inputs_are_signs():
    model = build_model(MLP, parse_arch("32 0 16 1"), SHAPE, 10)
    layer = model.get_layer("h1_linear")
    kernel = layer.kernel_quantizer(tf.convert_to_tensor(layer.kernel)).numpy()
    assert set(np.unique(kernel)) == {-1.0, 1.0}
    x = np.random.default_rng(0).random((8, *SHAPE), dtype=np.float32)
    inp, out = _layer_io(model, "h1_linear", x)
    signs = np.where(inp >= 0, 1.0, -1.0)
    np.testing.assert_allclose(out, signs @ kernel, rtol=1e-5, atol=1e-4)
    quantized_inputs = layer.input_quantizer(tf.constant(inp)).numpy()
    assert set(np.unique(quantized_inputs)) <= {-1.0, 1.0}


def test_first_layer_never_quantizes_pixels():
    model = build_model(MLP, parse_arch("32 1 16 1"), SHAPE, 10)
    assert model.get_layer("h0_linear").input_quantizer is None
    assert model.get_layer("h1_linear").input_quantizer is not None


def test_ternary_kernel_has_three_levels():
    model = build_model(CONV, parse_arch("8 2 8 2"), SHAPE, 10)
    layer = model.get_layer("h1_linear")
    assert set(np.unique(layer.kernel_quantizer(tf.convert_to_tensor(layer.kernel)).numpy())) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("code,levels", [(3, 4), (4, 16), (5, 256)])
def test_kbit_kernels_have_at_most_2_to_the_k_levels(code, levels):
    layer_type = LAYER_TYPES[code]
    w = tf.random.normal((4096,))
    assert len(np.unique(layer_type.kernel_quantizer()(w).numpy())) <= levels
    a = tf.random.uniform((4096,), -1, 2)
    assert len(np.unique(layer_type.input_quantizer()(a).numpy())) <= levels


@pytest.mark.parametrize("space,arch", [
    ("mlp", "256 1 128 2"), ("mlp", "64 5 32 0 16 3"), ("mlp", "256 0 256 0"),
    ("conv", "32 1 64 1 64 1"), ("conv", "16 4 32 0 8 2 8 5"),
])
def test_bit_count_agrees_with_larq(space, arch):
    sp = get_space(space)
    a = parse_arch(arch, sp)
    model = build_model(sp, a, SHAPE, 10)
    assert arch_bits(sp, a, SHAPE, 10) == model_bits(model)


def test_size_report_against_parent():
    parent = arch_bits(MLP, MLP.parent_arch(), SHAPE, 10)
    child = arch_bits(MLP, parse_arch("256 1 256 1"), SHAPE, 10)
    report = SizeReport(child, parent)
    assert 0 < report.ratio < 0.1
    assert report.kib == pytest.approx(child / 8192)


@pytest.mark.parametrize("text", ["256 1 128 2", "16 0", "8 5 4096 4 32 3"])
def test_format_parse_round_trip(text):
    assert parse_arch(text, MLP).to_string() == text
    assert parse_arch(parse_arch(text).readable(), MLP).to_string() == text


def test_readable_form_and_pasted_log_form():
    arch = parse_arch("256:binary 128:ternary", MLP)
    assert arch == Architecture((Layer(256, 1), Layer(128, 2)))
    assert arch.readable() == "256:binary 128:ternary"
    assert parse_arch("[256, 1, 128, 2]", MLP) == arch


@pytest.mark.parametrize("text,fragment", [
    ("256 1 128", "even count"),
    ("256 1 12x 2", "token 3 ('12x') is not an integer"),
    ("256 1 99999 2", "layer 2: width 99999 is outside the mlp space's range 4..4096"),
    ("256 7", "layer 1: unknown type code 7"),
    ("", "empty architecture"),
    ("256:octal", "unknown layer type 'octal'"),
    ("big:binary", "width 'big' is not an integer"),
])
def test_malformed_strings_get_their_own_message(text, fragment):
    with pytest.raises(UserInputError) as err:
        parse_arch(text, MLP)
    assert fragment in str(err.value)
    assert "expected" in str(err.value) or "range" in str(err.value)


def test_conv_width_range_is_the_conv_spaces():
    with pytest.raises(UserInputError, match="conv space's range 4..1024"):
        parse_arch("2048 1", CONV)


def test_indices_round_trip_through_the_search_space():
    arch = parse_arch("64 1 512 4", MLP)
    assert MLP.decode(MLP.encode(arch)) == arch


def test_layer_type_lookup_by_name_and_code():
    assert get_layer_type("binary").code == 1
    assert get_layer_type(4).name == "int4"
    with pytest.raises(ValueError, match="expected one of"):
        get_layer_type(9)


def test_models_run_and_expose_embeddings():
    x = np.zeros((3, *SHAPE), np.float32)
    for space, text in [(MLP, "32 1 16 2"), (CONV, "8 1 16 4 8 0")]:
        model = build_model(space, parse_arch(text, space), SHAPE, 10)
        probs = model(x).numpy()
        assert probs.shape == (3, 10)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        embeddings = embedding_model(model)(x)
        assert len(embeddings) == len(parse_arch(text))
