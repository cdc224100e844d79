"""Micro (cell) architectures and their strings: ENAS's normal and reduction cells over quantized operations.

A cell has B nodes. Node ``j`` (1-based) reads two earlier tensors and applies one operation to each, then adds
the two results. The inputs a node may read are numbered ``0`` and ``1`` for the cell's two inputs (``0``: the
output of the cell before the previous one, ``1``: the previous cell's output) and ``k >= 2`` for node ``k - 1``,
so node ``j`` may read ``0..j``. The nodes that no other node reads are averaged into the cell's output.

The string is four integers per node, ``INPUT OP INPUT OP``, for the B nodes of the normal cell and then the
B nodes of the reduction cell: ``8 * B`` integers, 40 for B = 5, exactly the reference's form.

Operation codes: the units digit is the reference's operation, the tens digit the layer type of a convolution
(``quantize.types``: 0 float32, 1 binary, 2 ternary, 3 int2, 4 int4, 5 int8).

| code      | operation                                   | readable          |
|-----------|---------------------------------------------|-------------------|
| 0, 1      | float32 separable conv 3x3, 5x5             | sep3x3-float32    |
| 10, 11    | binary conv 3x3, 5x5 (full, LCE bit-packs)  | conv3x3-binary    |
| 20, 21    | ternary conv 3x3, 5x5 (full)                | conv5x5-ternary   |
| 30..51    | int2 / int4 / int8 separable conv 3x3, 5x5  | sep3x3-int8       |
| 2         | average pooling 3x3                         | avg3x3            |
| 3         | max pooling 3x3                             | max3x3            |
| 4         | identity                                    | identity          |

So the reference's strings, whose operations are 0..4, read as float32 separable convolutions, pooling and
identity. Separable convolutions are used where they are cheap and deployable (float and multi-bit types);
binary and ternary convolutions are full, since 1-bit depthwise kernels hold 9 signs a channel and Larq
Compute Engine bit-packs only full binary convolutions. The readable form, ``normal[...] reduction[...]``
with ``INPUT:OP`` pairs (``0:sep3x3-float32 1:identity, ...``), is accepted wherever a string is.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from qnas.errors import UserInputError
from quantize.types import LAYER_TYPES

CONV_SHAPES = {0: 3, 1: 5}  # reference op -> kernel size
POOL_NAMES = {2: "avg3x3", 3: "max3x3", 4: "identity"}
FULL_CONV_TYPES = frozenset({1, 2})  # binary, ternary: full convolutions; every other type is separable
MAX_NODES = 10
CELL_KINDS = ("normal", "reduction")
EXPECTED_FORM = ("expected 4 integers per node (INPUT OP INPUT OP), the normal cell's B nodes then the reduction "
                 "cell's: 8*B integers (40 for B = 5), e.g. '0 2 1 4 1 3 0 1 ...'")


def conv_code(kernel: int, type_code: int) -> int:
    """The operation code of a ``kernel`` x ``kernel`` convolution of layer type ``type_code``."""
    shape = {k: s for s, k in CONV_SHAPES.items()}[kernel]
    return 10 * type_code + shape


def is_conv(code: int) -> bool:
    return code % 10 in CONV_SHAPES


def op_kernel(code: int) -> int:
    """Kernel size of a convolution code."""
    return CONV_SHAPES[code % 10]


def op_type(code: int) -> int:
    """Layer type code of a convolution code."""
    return code // 10


def is_separable(code: int) -> bool:
    return is_conv(code) and op_type(code) not in FULL_CONV_TYPES


def op_name(code: int) -> str:
    """The readable name of an operation code (``sep3x3-float32``, ``conv5x5-binary``, ``avg3x3``, ...)."""
    if not is_conv(code):
        return POOL_NAMES[code]
    k = op_kernel(code)
    return f"{'sep' if is_separable(code) else 'conv'}{k}x{k}-{LAYER_TYPES[op_type(code)].name}"


OP_CODES: tuple[int, ...] = tuple(sorted({*POOL_NAMES, *(conv_code(k, t) for k in CONV_SHAPES.values()
                                                          for t in LAYER_TYPES)}))
_BY_NAME = {op_name(c): c for c in OP_CODES}


def op_listing() -> str:
    """``0=sep3x3-float32, 1=sep5x5-float32, ...`` for messages."""
    return ", ".join(f"{c}={op_name(c)}" for c in OP_CODES)


class Node(NamedTuple):
    """One node: two (input, operation) pairs whose results are added."""

    in1: int
    op1: int
    in2: int
    op2: int


@dataclass(frozen=True)
class MicroArchitecture:
    """A normal cell and a reduction cell with the same number of nodes."""

    normal: tuple[Node, ...]
    reduction: tuple[Node, ...]

    def __str__(self) -> str:
        return self.to_string()

    @property
    def num_nodes(self) -> int:
        return len(self.normal)

    def cell(self, kind: str) -> tuple[Node, ...]:
        return self.normal if kind == "normal" else self.reduction

    def integers(self) -> list[int]:
        return [v for node in (*self.normal, *self.reduction) for v in node]

    def to_string(self) -> str:
        """The reference's integer form: normal cell then reduction cell, 4 integers per node."""
        return " ".join(str(v) for v in self.integers())

    def cell_string(self, kind: str) -> str:
        return " ".join(str(v) for node in self.cell(kind) for v in node)

    def readable(self) -> str:
        """``normal[0:sep3x3-float32 1:identity, ...] reduction[...]``, accepted by ``parse_micro`` too."""
        def cell(nodes: tuple[Node, ...]) -> str:
            return ", ".join(f"{n.in1}:{op_name(n.op1)} {n.in2}:{op_name(n.op2)}" for n in nodes)
        return f"normal[{cell(self.normal)}] reduction[{cell(self.reduction)}]"

    def display_lines(self) -> list[str]:
        """What the search prints for it: each cell on its own line (as the reference did), then the readable form."""
        return [f"[{self.cell_string('normal')}]  # normal cell", f"[{self.cell_string('reduction')}]  # reduction cell",
                self.readable()]

    def loose_ends(self, kind: str) -> list[int]:
        """Input indices (2..B+1) of the nodes no other node of the cell reads: averaged into the output."""
        nodes = self.cell(kind)
        read = {i for n in nodes for i in (n.in1, n.in2)}
        return [j + 2 for j in range(len(nodes)) if j + 2 not in read]

    def hparams(self) -> dict[str, int | str]:
        """Flat values for TensorBoard's hparams table: each node's inputs and operations."""
        out: dict[str, int | str] = {"num_nodes": self.num_nodes}
        for kind in CELL_KINDS:
            for j, n in enumerate(self.cell(kind), 1):
                out[f"{kind}{j}_in1"], out[f"{kind}{j}_op1"] = n.in1, op_name(n.op1)
                out[f"{kind}{j}_in2"], out[f"{kind}{j}_op2"] = n.in2, op_name(n.op2)
        return out

    def table(self) -> str:
        """A markdown table of the nodes, for TensorBoard's text tab."""
        rows = [f"| {kind} | {j} | {n.in1} | {op_name(n.op1)} | {n.in2} | {op_name(n.op2)} |"
                for kind in CELL_KINDS for j, n in enumerate(self.cell(kind), 1)]
        return "| cell | node | input 1 | op 1 | input 2 | op 2 |\n|---|---|---|---|---|---|\n" + "\n".join(rows)


def parse_micro(text: str | Sequence[int]) -> MicroArchitecture:
    """Parse a micro string (integer or readable form); a bad one is refused naming its position."""
    if not isinstance(text, str):
        text = " ".join(str(t) for t in text)
    if ":" in text:
        values = _readable_values(text)
    else:
        tokens = re.sub(r"[\[\](),]", " ", text).split()
        values = []
        for pos, tok in enumerate(tokens, 1):
            try:
                values.append(int(tok))
            except ValueError:
                raise UserInputError(f"position {pos} ({tok!r}) is not an integer; {EXPECTED_FORM}") from None
    if not values or len(values) % 8:
        raise UserInputError(f"got {len(values)} integers, not a multiple of 8; {EXPECTED_FORM}")
    num_nodes = len(values) // 8
    if num_nodes > MAX_NODES:
        raise UserInputError(f"{num_nodes} nodes per cell; at most {MAX_NODES} are supported")
    cells = []
    for c, kind in enumerate(CELL_KINDS):
        nodes = []
        for j in range(num_nodes):
            start = (c * num_nodes + j) * 4
            for k, value in enumerate(values[start:start + 4]):
                _check_value(value, start + k + 1, kind, j + 1, k)
            nodes.append(Node(*values[start:start + 4]))
        cells.append(tuple(nodes))
    return MicroArchitecture(*cells)


def _check_value(value: int, pos: int, kind: str, node: int, k: int) -> None:
    """Refuse an input that points at the node itself or later, or an unknown operation code."""
    what = f"position {pos} ({kind} cell, node {node}, {'first' if k < 2 else 'second'} {'input' if k % 2 == 0 else 'op'})"
    if k % 2 == 0:
        if not 0 <= value <= node:
            direction = "is negative" if value < 0 else "points forward (at the node itself or a later node)"
            raise UserInputError(f"{what}: input {value} {direction}; node {node} may read 0..{node} "
                                 f"(0, 1: the cell's inputs; k >= 2: node k-1)")
    elif value not in OP_CODES:
        raise UserInputError(f"{what}: unknown operation {value}; expected one of: {op_listing()}")


def _readable_values(text: str) -> list[int]:
    """The integers of a readable string (``normal[0:sep3x3-float32 1:identity, ...] reduction[...]``)."""
    values = []
    for pos, (inp, name) in enumerate(re.findall(r"(-?\w+):([\w-]+)", text), 1):
        if name not in _BY_NAME:
            raise UserInputError(f"pair {pos} ({inp}:{name}): unknown operation {name!r}; expected one of: "
                                 f"{', '.join(_BY_NAME)}")
        try:
            values += [int(inp), _BY_NAME[name]]
        except ValueError:
            raise UserInputError(f"pair {pos} ({inp}:{name}): input {inp!r} is not an integer") from None
    return values
