"""Architecture strings: ``"WIDTH TYPE WIDTH TYPE ..."``, two integers per hidden layer.

``"256 1 128 2"`` is 256 binary units then 128 ternary units. The readable form
``"256:binary 128:ternary"`` is accepted too. With the space name and the data set, the string
rebuilds the exact network (see ``qnas.models.build_model``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qnas.errors import UserInputError
from quantize.types import LAYER_TYPES, get_layer_type, type_names

if TYPE_CHECKING:
    from qnas.space import SearchSpace

EXPECTED_FORM = "expected 'WIDTH TYPE WIDTH TYPE ...' (e.g. '256 1 128 2') or '256:binary 128:ternary'"


@dataclass(frozen=True)
class Layer:
    """One hidden layer: its width (units or filters) and its type code."""

    width: int
    type_code: int

    @property
    def type_name(self) -> str:
        return LAYER_TYPES[self.type_code].name


@dataclass(frozen=True)
class Architecture:
    """The hidden layers of a network, in order."""

    layers: tuple[Layer, ...]

    def __str__(self) -> str:
        return self.to_string()

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def widths(self) -> list[int]:
        return [layer.width for layer in self.layers]

    @property
    def type_codes(self) -> list[int]:
        return [layer.type_code for layer in self.layers]

    def to_string(self) -> str:
        """The canonical integer form, ``"256 1 128 2"``."""
        return " ".join(f"{layer.width} {layer.type_code}" for layer in self.layers)

    def readable(self) -> str:
        """The readable form, ``"256:binary 128:ternary"``."""
        return " ".join(f"{layer.width}:{layer.type_name}" for layer in self.layers)

    def display_lines(self) -> list[str]:
        """What the search prints for it: the integer and the readable form on one line."""
        return [f"[{self.to_string()}] {self.readable()}"]

    def hparams(self) -> dict[str, int | str]:
        """Width and type name of every layer, 1-based: ``{"layer1_width": 256, "layer1_type": "binary", ...}``."""
        out: dict[str, int | str] = {"num_layers": len(self)}
        for i, layer in enumerate(self.layers, 1):
            out[f"layer{i}_width"] = layer.width
            out[f"layer{i}_type"] = layer.type_name
        return out

    def table(self) -> str:
        """A markdown table of the layers, for TensorBoard's text tab."""
        rows = "\n".join(f"| {i} | {lay.width} | {lay.type_code} | {lay.type_name} |" for i, lay in enumerate(self.layers, 1))
        return f"| layer | width | code | type |\n|---|---|---|---|\n{rows}"


def parse_arch(text: str | Sequence[int], space: SearchSpace | None = None) -> Architecture:
    """Parse an architecture string (integer or readable form), checking it against ``space``.

    Brackets and commas, as in a pasted log line ``[256, 1, 128, 2]``, are ignored.
    """
    if not isinstance(text, str):
        text = " ".join(str(t) for t in text)
    tokens = re.sub(r"[\[\](),]", " ", text).split()
    if not tokens:
        raise UserInputError(f"empty architecture; {EXPECTED_FORM}")
    if any(":" in tok for tok in tokens):
        layers = [_parse_readable_token(tok, pos) for pos, tok in enumerate(tokens, 1)]
    else:
        layers = _parse_integer_tokens(tokens)
    arch = Architecture(tuple(layers))
    if space is not None:
        space.check(arch)
    return arch


def _parse_integer_tokens(tokens: list[str]) -> list[Layer]:
    values = []
    for pos, tok in enumerate(tokens, 1):
        try:
            values.append(int(tok))
        except ValueError:
            raise UserInputError(f"token {pos} ({tok!r}) is not an integer; {EXPECTED_FORM}") from None
    if len(values) % 2:
        raise UserInputError(
            f"got {len(values)} integers, but an architecture has two per layer (WIDTH TYPE), "
            f"so an even count; {EXPECTED_FORM}"
        )
    layers = []
    for i in range(0, len(values), 2):
        width, code = values[i], values[i + 1]
        if code not in LAYER_TYPES:
            raise UserInputError(
                f"layer {i // 2 + 1}: unknown type code {code} (token {i + 2}); expected one of: {type_names()}"
            )
        layers.append(Layer(width, code))
    return layers


def _parse_readable_token(tok: str, pos: int) -> Layer:
    width_text, _, type_text = tok.partition(":")
    try:
        width = int(width_text)
    except ValueError:
        raise UserInputError(f"token {pos} ({tok!r}): width {width_text!r} is not an integer; {EXPECTED_FORM}") from None
    try:
        layer_type = get_layer_type(type_text)
    except ValueError as err:
        raise UserInputError(f"token {pos} ({tok!r}): {err}") from None
    return Layer(width, layer_type.code)
