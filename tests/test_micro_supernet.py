"""The micro supernet: a child cut from it equals its exported standalone model; only its weights move."""
import numpy as np
import pytest
import tensorflow as tf

from enas.micro_supernet import MicroSupernet
from enas.supernets import make_supernet
from qnas.micro_net import MicroNet, live_cells
from qnas.spaces import get_space
from qnas.spaces.micro import MicroSpace
from quantize.size import model_bits

SHAPE = (12, 12, 3)
ARCHS = [
    "0 10 1 4 1 11 2 3 0 0 3 10 4 2 1 51 2 1 0 20 1 10 0 10 2 11 1 2 3 4 0 10 4 1 2 3 5 10 1 0",
    "1 0 0 1 2 21 0 3 3 50 1 11 4 4 2 10 1 2 5 0 0 51 1 20 2 0 0 3 1 10 3 11 4 2 2 51 5 4 0 20",
]


def small_space() -> MicroSpace:
    return MicroSpace(types=(0, 1, 2, 5), net=MicroNet(filters=8))


def test_micro_child_equals_its_exported_model():
    space = small_space()
    net = MicroSupernet(space, SHAPE, 5, seed=1)
    rng = np.random.default_rng(0)
    x = rng.random((24, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 5, 24).astype(np.int32)
    for text in ARCHS * 2:  # move every weight away from its initial value
        net.train_step(x, y, space.parse(text))
    for text in ARCHS:
        arch = space.parse(text)
        stats = net.calibrate(arch, x)
        model = net.export_child(arch, stats)
        expected = model(x, training=False).numpy()
        np.testing.assert_allclose(tf.nn.softmax(net.predict_logits(arch, x, stats)).numpy(), expected, atol=1e-5)
        result = net.evaluate(arch, x, y, stats, x_probe=x[:5])
        assert result.accuracy == pytest.approx(np.mean(np.argmax(expected, 1) == y))
        assert [e.shape[0] for e in result.embeddings] == [5] * net.num_layers == [5] * 5


def test_only_the_childs_operations_move_and_binary_kernels_stay_clipped():
    space = small_space()
    net = MicroSupernet(space, SHAPE, 5, seed=0, learning_rate=1.0)
    x = np.random.default_rng(0).random((8, *SHAPE), dtype=np.float32)
    arch = space.parse(ARCHS[0])
    binary = net.kernels["c0_n2_a_W"]  # normal cell 0, node 1, first op: conv3x3-binary, cut from the 5x5 latent
    unused = net.kernels["c0_n2_a_D"].numpy().copy()  # the slot's depthwise kernel: no separable op there
    before = binary.numpy().copy()
    net.train_step(x, np.zeros(8, np.int32), arch)
    moved = ~np.isclose(binary.numpy(), before)
    assert moved[1:4, 1:4].all() and not moved[0].any() and np.abs(binary.numpy()).max() <= 1.0  # the centre only
    np.testing.assert_array_equal(net.kernels["c0_n2_a_D"].numpy(), unused)
    assert not np.allclose(net.gammas["c0_n2_a_op10"].numpy(), 1.0)  # its own BatchNorm moved
    np.testing.assert_array_equal(net.gammas["c0_n2_a_op11"].numpy(), 1.0)


def test_the_search_picks_the_supernet_of_the_space_family():
    assert isinstance(make_supernet(small_space(), SHAPE, 3), MicroSupernet)
    assert type(make_supernet(get_space("conv").with_options(widths=(4,)), SHAPE, 3)).__name__ == "Supernet"


def test_a_cell_no_later_cell_reads_is_left_out_everywhere():
    """The normal cell never reads input 1, so the reductions before normal cells 2 and 4 feed nothing live."""
    space = small_space()
    text = "0 10 0 4 0 2 2 10 0 4 3 4 2 3 4 10 0 10 5 4 0 10 1 4 1 11 2 3 0 2 3 10 4 4 1 10 2 3 5 10"
    arch = space.parse(text)
    net = MicroSupernet(space, SHAPE, 5, seed=0)
    live = live_cells(arch, net.plans)
    assert live == [True, False, True, False, True]  # cells 1 and 3 feed only a normal cell's unread input 1
    model = space.build(arch, SHAPE, 5)
    assert "h1_out" not in [layer.name for layer in model.layers]
    assert model_bits(model) == space.bits(arch, SHAPE, 5)
    x = np.random.default_rng(0).random((16, *SHAPE), dtype=np.float32)
    net.train_step(x, np.zeros(16, np.int32), arch)
    stats = net.calibrate(arch, x)
    exported = net.export_child(arch, stats)
    np.testing.assert_allclose(tf.nn.softmax(net.predict_logits(arch, x, stats)).numpy(),
                               exported(x, training=False).numpy(), atol=1e-5)
    assert len(net.evaluate(arch, x, np.zeros(16), stats, x_probe=x[:3]).embeddings) == 5
