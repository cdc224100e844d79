"""The micro space: strings and their errors, the decision encoding, networks of any shape and their bits."""
import numpy as np
import pytest

from enas.strategies.random import RandomStrategy
from qnas.errors import UserInputError
from qnas.micro_arch import OP_CODES, op_name, parse_micro
from qnas.spaces import get_space
from quantize.size import model_bits

REFERENCE = "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3"
MIXED = "0 10 1 4 1 11 2 3 0 0 3 10 4 2 1 51 2 1 0 20 1 10 0 10 2 11 1 2 3 4 0 10 4 1 2 3 5 10 1 0"


def test_the_reference_string_parses_and_round_trips():
    space = get_space("micro")
    arch = space.parse(REFERENCE)
    assert arch.num_nodes == 5 and arch.to_string() == REFERENCE
    assert arch.normal[0] == (0, 2, 1, 4) and arch.reduction[3] == (3, 2, 0, 2)
    assert arch.readable().startswith("normal[0:avg3x3 1:identity, 1:max3x3 0:sep5x5-float32")
    assert space.parse(arch.readable()) == arch  # the readable form is accepted too
    assert space.parse(f"[{REFERENCE.replace(' ', ', ')}]") == arch  # a pasted log line
    lines = arch.display_lines()
    assert lines[0] == "[0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1]  # normal cell"
    assert lines[1] == "[1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3]  # reduction cell"
    assert arch.loose_ends("normal") == [2, 3, 4, 5, 6]  # the reference's normal cell reads only its inputs
    assert arch.loose_ends("reduction") == [2, 4, 5, 6]


@pytest.mark.parametrize("text,message", [
    (REFERENCE + " 1", "got 41 integers, not a multiple of 8"),
    (" ".join(REFERENCE.split()[:39]), "got 39 integers"),
    ("", "got 0 integers"),
    ("0 2 1 4 3 3 " + " ".join(REFERENCE.split()[6:]), "position 5 (normal cell, node 2, first input): input 3"),
    (" ".join(REFERENCE.split()[:22]) + " 4 4 " + " ".join(REFERENCE.split()[24:]),
     "position 23 (reduction cell, node 1, second input): input 4 points forward"),
    ("0 2 1 9 " + " ".join(REFERENCE.split()[4:]), "position 4 (normal cell, node 1, second op): unknown operation 9"),
    ("0 2 -1 4 " + " ".join(REFERENCE.split()[4:]), "input -1 is negative"),
    ("0 x 1 4 " + " ".join(REFERENCE.split()[4:]), "position 2 ('x') is not an integer"),
    ("normal[0:sep3x3-float32 1:conv4x4]", "unknown operation 'conv4x4'"),
])
def test_malformed_strings_name_the_bad_position(text, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_space("micro").parse(text)


def test_op_codes_put_the_layer_type_in_the_tens_digit():
    assert [op_name(c) for c in (0, 1, 2, 3, 4)] == ["sep3x3-float32", "sep5x5-float32", "avg3x3", "max3x3", "identity"]
    assert op_name(10) == "conv3x3-binary" and op_name(21) == "conv5x5-ternary" and op_name(51) == "sep5x5-int8"
    assert len(OP_CODES) == 5 + 2 * 5


def test_every_decision_vector_decodes_to_a_valid_cell_and_encodes_back():
    space = get_space("micro")
    decisions = space.decisions()
    assert len(decisions) == 40 and decisions[:8] == [("input", 2), ("op", 5), ("input", 2), ("op", 5),
                                                      ("input", 3), ("op", 5), ("input", 3), ("op", 5)]
    assert [op_name(c) for c in space.ops()] == ["conv3x3-binary", "conv5x5-binary", "avg3x3", "max3x3", "identity"]
    assert len(space.decision_labels()) == 40
    for d in RandomStrategy(decisions, seed=0).ask(200):
        arch = space.decode(d)
        assert space.parse(arch.to_string()) == arch
        assert space.encode(arch) == d
    with pytest.raises(UserInputError, match="not in the search space"):
        space.encode(parse_micro(MIXED))  # int8 and ternary are not searched by default
    assert space.with_options(types=(0, 1, 2, 5)).encode(parse_micro(MIXED))


def test_micro_flags_that_do_not_apply_are_refused():
    with pytest.raises(UserInputError, match="no --num_layers or --widths"):
        get_space("micro").with_options(num_layers=3)
    with pytest.raises(UserInputError, match="candidate types"):
        get_space("micro").with_options(types=(9,))


@pytest.mark.parametrize("shape,classes", [((28, 28), 10), ((32, 32, 3), 10), ((9, 13, 2), 3), ((8, 8, 1), 4)])
def test_networks_build_for_any_image_shape_and_their_bits_agree_with_larq(shape, classes):
    space = get_space("micro")
    for text in (REFERENCE, MIXED):
        arch = space.parse(text)
        model = space.build(arch, shape, classes)
        assert model.output_shape == (None, classes)
        assert model_bits(model) == space.bits(arch, shape, classes)
        out = model(np.random.default_rng(0).random((2, *shape), dtype=np.float32), training=False)
        np.testing.assert_allclose(out.numpy().sum(1), 1.0, rtol=1e-5)


def test_cells_reduce_and_widen_and_large_images_are_pooled_after_the_stem():
    space = get_space("micro")
    model = space.build(space.parse(REFERENCE), (32, 32, 3), 10)
    assert model.get_layer("stem_pool").output_shape == (None, 16, 16, 16)
    assert [model.get_layer(f"h{i}_out").output_shape[1:] for i in range(5)] == [
        (16, 16, 16), (8, 8, 32), (8, 8, 32), (4, 4, 64), (4, 4, 64)]
    small = space.build(space.parse(REFERENCE), (12, 12, 3), 10)
    assert "stem_pool" not in [layer.name for layer in small.layers]
