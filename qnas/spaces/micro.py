"""The ``micro`` space: ENAS's normal and reduction cells whose operations are quantized convolutions.

Strings and operation codes are in ``qnas.micro_arch``; the network around the cells (stem, cell
sequence, classifier) in ``qnas.micro_net``. The search chooses, for each node of each cell, two
inputs among the earlier nodes and the cell's inputs, and one operation for each: 3x3 and 5x5
convolutions at each searched precision, 3x3 average and max pooling, identity.

The search's precision defaults to binary, the one that Larq Compute Engine (the deployment target
today) bit-packs: the search then chooses among binary 3x3 and 5x5 convolutions, both poolings and
identity (five operations, as ENAS), and the float stem and classifier carry the float part. With
``--types float32,binary`` it also chooses float separable convolutions, which LCE stores at 32 bits;
other types are searched at their theoretical width, while LCE keeps their weights as float32. (With
float32 in the default, uniformly drawn children were mostly over 64 KiB and the supernet learned
half as fast.) The defaults keep a search within 30 minutes on 2 CPU cores: 16 filters in the first
stage (32, 64 after the two reductions), one normal cell per stage, 5 nodes, 20 epochs but at most 24
minutes, at a learning rate of 6e-3 (2e-3 learned too slowly), and a reward of accuracy alone (``1,0,0``): the
``--max_kib`` budget bounds the size (on mnist-10k, seeds 0 and 1, the winners retrained to 98.55% both
times, against 98.00% and 98.65% with a size weight of 0.1, which pulled seed 0 to cells of poolings), and
the similarity to the float parent, which is the ``conv`` space's chain (its cache is shared), is left out. With the chain's weights (``1,0.05,0.5``) the controller
drifted to ever smaller cells, and on CIFAR-10 the search picked a cell of identities only (20% validation
accuracy), whose embeddings were the most similar to the parent's.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from qnas.errors import UserInputError
from qnas.micro_arch import CELL_KINDS, POOL_NAMES, MicroArchitecture, Node, conv_code, op_name, parse_micro
from qnas.micro_net import MicroNet, build_micro_model, micro_bits
from qnas.space import SPACES, SearchSpace, register_space
from quantize.types import LAYER_TYPES

# the controller keeps ENAS's gentler knobs here: with the conv space's (lr 1e-2, tanh 5) it settled within
# 15 epochs on cells of poolings (shared-weight accuracy 0.76-0.82 against 0.92 for the ENAS knobs' winner); and the
# schedule its results were measured with (5 epochs of warm-up, 10 updates an epoch, finalists scored on the shared
# weights as they are), not the conv space's newer one
SEARCH_DEFAULTS = {"epochs": 20, "max_minutes": 24.0, "max_kib": 63.0, "lr": 6e-3, "reward_weights": "1,0,0",
                   "controller_lr": 3.5e-3, "tanh_constant": 1.5, "controller_steps": 10, "warmup_epochs": 5,
                   "finalist_steps": 0}


@dataclass(frozen=True)
class MicroSpace:
    """Cells of ``num_nodes`` nodes over operations at the precisions ``types`` (see the module docstring)."""

    name: str = "micro"
    num_nodes: int = 5
    types: tuple[int, ...] = (1,)
    kernels: tuple[int, ...] = (3, 5)
    net: MicroNet = field(default_factory=MicroNet)
    parent: str = "conv"

    family = "micro"  # a class attribute, not a field

    # ------------------------------------------------------------------ decision encoding
    def ops(self) -> tuple[int, ...]:
        """The operation codes the search chooses from: each kernel at each type, then pools and identity."""
        return tuple(conv_code(k, t) for k in self.kernels for t in self.types) + tuple(POOL_NAMES)

    def decisions(self) -> list[tuple[str, int]]:
        """Per node, normal cell then reduction cell: ``("input", j + 2), ("op", ops), ("input", j + 2), ("op", ops)``.

        Node ``j`` (0-based) chooses among the ``j + 2`` tensors before it, so every choice is a valid cell.
        """
        n_ops = len(self.ops())
        return [d for _ in CELL_KINDS for j in range(self.num_nodes)
                for d in (("input", j + 2), ("op", n_ops), ("input", j + 2), ("op", n_ops))]

    def decision_sizes(self) -> list[int]:
        return [n for _, n in self.decisions()]

    def decision_labels(self) -> list[tuple[str, list[str]]]:
        ops = [op_name(c) for c in self.ops()]
        out = []
        for kind in CELL_KINDS:
            for j in range(1, self.num_nodes + 1):
                inputs = [str(i) for i in range(j + 1)]
                out += [(f"{kind}_node{j}_input1", inputs), (f"{kind}_node{j}_op1", ops),
                        (f"{kind}_node{j}_input2", inputs), (f"{kind}_node{j}_op2", ops)]
        return out

    def decode(self, decisions: Sequence[int]) -> MicroArchitecture:
        """The architecture the option indices describe (inputs are indices already; ops index ``ops()``)."""
        expected = 8 * self.num_nodes
        if len(decisions) != expected:
            raise UserInputError(f"expected {expected} decisions, got {len(decisions)}")
        ops = self.ops()
        nodes = [Node(int(d[0]), ops[d[1]], int(d[2]), ops[d[3]])
                 for d in (decisions[i:i + 4] for i in range(0, expected, 4))]
        arch = MicroArchitecture(tuple(nodes[:self.num_nodes]), tuple(nodes[self.num_nodes:]))
        self.check(arch)
        return arch

    def encode(self, arch: MicroArchitecture) -> list[int]:
        """The decisions ``decode`` maps back to ``arch``; refused when it uses options outside the space."""
        ops = self.ops()
        if arch.num_nodes != self.num_nodes or any(c not in ops for node in (*arch.normal, *arch.reduction)
                                                   for c in (node.op1, node.op2)):
            raise UserInputError(f"{arch.readable()} is not in the search space's candidate choices")
        return [v for node in (*arch.normal, *arch.reduction)
                for v in (node.in1, ops.index(node.op1), node.in2, ops.index(node.op2))]

    # ------------------------------------------------------------------ strings and networks
    def parse(self, text: str | Sequence[int]) -> MicroArchitecture:
        """A micro string (integer or readable form), refused with the bad position when malformed."""
        arch = parse_micro(text)
        self.check(arch)
        return arch

    def check(self, arch: MicroArchitecture) -> None:
        """Inputs must point backwards and cells must have the same node count (``parse_micro`` checks the rest)."""
        if len(arch.normal) != len(arch.reduction) or not arch.normal:
            raise UserInputError("the normal and the reduction cell need the same number of nodes, at least one")
        for kind in CELL_KINDS:
            for j, node in enumerate(arch.cell(kind), 1):
                if not (0 <= node.in1 <= j and 0 <= node.in2 <= j):
                    raise UserInputError(f"{kind} cell, node {j}: inputs ({node.in1}, {node.in2}) must be in 0..{j}")

    def build(self, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int,
              name: str = "child") -> tf.keras.Model:
        self.check(arch)
        return build_micro_model(self.net, arch, input_shape, num_classes, name=name)

    def bits(self, arch: MicroArchitecture, input_shape: Sequence[int], num_classes: int) -> int:
        """Theoretical size in bits, as ``larq.models.summary`` counts it."""
        return micro_bits(self.net, arch, input_shape, num_classes)

    def parent_space(self) -> SearchSpace:
        """The space of the float parent: the ``conv`` space's float chain (shared cache)."""
        return SPACES[self.parent]  # type: ignore[return-value]

    def search_defaults(self) -> dict[str, Any]:
        """A bounded search by default: epochs, a time budget, a size budget, a learning rate and the reward.

        The size budget is in the deployment target's predicted KiB (``qnas.targets.cells``): 63 KiB leaves
        1 KiB for the prediction's error (at most 0.1% of a file, BENCHMARKS.md "cell-bytes") inside 64 KiB.
        """
        return dict(SEARCH_DEFAULTS)

    def describe(self) -> str:
        """One line for the search's log."""
        net = self.net
        return (f"{self.name}, {self.num_nodes} nodes per cell, {net.num_normal} normal cell(s) per stage, "
                f"{net.num_reductions} reductions, {net.filters} filters, ops {[op_name(c) for c in self.ops()]}")

    def settings(self) -> dict[str, Any]:
        """The search choices a resumed search must share (``config.json``)."""
        return {"num_nodes": self.num_nodes, "types": list(self.types), "ops": list(self.ops()),
                "net": {"filters": self.net.filters, "num_normal": self.net.num_normal,
                        "num_reductions": self.net.num_reductions, "stem_pool_from": self.net.stem_pool_from}}

    def with_options(self, num_layers: int | None = None, widths: tuple[int, ...] | None = None,
                     types: tuple[int, ...] | None = None) -> MicroSpace:
        """A copy searching other precisions; depth and widths are fixed by the space (strings must rebuild it)."""
        if num_layers is not None or widths is not None:
            raise UserInputError("the micro space has no --num_layers or --widths: its cells, filters and node count "
                                 "are fixed so that a string rebuilds the network; choose precisions with --types")
        if types is None:
            return self
        types = tuple(dict.fromkeys(types))
        unknown = [t for t in types if t not in LAYER_TYPES]
        if unknown or not types:
            raise UserInputError(f"candidate types {list(types)} must be non-empty codes from {sorted(LAYER_TYPES)}")
        return MicroSpace(self.name, self.num_nodes, types, self.kernels, self.net, self.parent)


register_space(MicroSpace())
