"""Search spaces: which layers a network has, which choices a search makes, and the float parent.

A space owns the *decision encoding*: a search strategy sees only a list of decisions, each a
choice among ``decision_sizes()[i]`` options, and the space turns them into an architecture
(``decode``), back (``encode``), into a Keras model (``build``) and into a size (``bits``).
Strategies never learn what a decision means. Spaces are registered by name (``register_space``),
so configs serialise as strings; a new space is one new module that registers its own.

``qnas.spaces`` registers the spaces (``get_space`` looks them up); two are spaces of chained layers
(``SearchSpace``, family ``chain``):

* ``mlp``: hidden Dense layers on the flattened image, then a float Dense classifier (EComp's setting).
* ``conv``: 3x3 Conv2D layers with 2x2 max pooling at fixed depths, then global average pooling and
  a float Dense classifier.

and ``micro`` (``qnas.spaces.micro``, family ``micro``) searches ENAS cells. Every space offers the
``Space`` interface; its architectures (``AnyArchitecture``) have ``to_string``, ``readable``,
``display_lines``, ``hparams`` and ``table``.

A space fixes the candidate widths and types the *search* draws from; an architecture string given
by hand may use any width inside the space's range (``min_width..max_width``) and any depth.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from qnas.arch import Architecture, Layer, parse_arch
from qnas.errors import UserInputError
from qnas.micro_arch import MicroArchitecture
from qnas.models import CONV_KERNEL, arch_bits, build_model
from quantize.types import LAYER_TYPES

AnyArchitecture = Architecture | MicroArchitecture


class Space(Protocol):
    """What every registered space offers: the decision encoding, strings, networks, sizes and its float parent.

    ``family`` names the supernet that can train it (``enas.supernets``): ``chain`` or ``micro``.
    """

    name: str
    family: str

    def decisions(self) -> list[tuple[str, int]]: ...
    def decision_sizes(self) -> list[int]: ...
    def decision_labels(self) -> list[tuple[str, list[str]]]: ...
    def decode(self, decisions: Sequence[int]) -> AnyArchitecture: ...
    def encode(self, arch: AnyArchitecture) -> list[int]: ...
    def parse(self, text: str | Sequence[int]) -> AnyArchitecture: ...
    def check(self, arch: AnyArchitecture) -> None: ...
    def build(self, arch: AnyArchitecture, input_shape: Sequence[int], num_classes: int,
              name: str = "child") -> tf.keras.Model: ...
    def bits(self, arch: AnyArchitecture, input_shape: Sequence[int], num_classes: int) -> int: ...
    def parent_space(self) -> SearchSpace: ...
    def search_defaults(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...
    def settings(self) -> dict[str, Any]: ...
    def with_options(self, num_layers: int | None = None, widths: tuple[int, ...] | None = None,
                     types: tuple[int, ...] | None = None) -> Space: ...


@dataclass(frozen=True)
class SearchSpace:
    """One family of networks plus the choices a search makes in it."""

    family = "chain"  # a class attribute, not a field

    name: str
    kind: str  # "dense" or "conv"
    num_layers: int
    widths: tuple[int, ...]
    types: tuple[int, ...] = tuple(LAYER_TYPES)
    min_width: int = 4
    max_width: int = 4096
    float_batchnorm: bool = False
    parent_widths: tuple[int, ...] = field(default=())

    def pool_after(self, num_layers: int) -> frozenset[int]:
        """Layers followed by 2x2 max pooling (conv only): at one and two thirds of the depth."""
        if self.kind != "conv" or num_layers < 2:
            return frozenset()
        return frozenset(i for i in {max(0, num_layers * k // 3 - 1) for k in (1, 2)} if i < num_layers - 1)

    def with_options(self, num_layers: int | None = None, widths: tuple[int, ...] | None = None,
                     types: tuple[int, ...] | None = None) -> SearchSpace:
        """A copy with other search choices, checked."""
        space = replace(
            self,
            num_layers=self.num_layers if num_layers is None else num_layers,
            widths=self.widths if widths is None else tuple(sorted(set(widths))),
            types=self.types if types is None else tuple(dict.fromkeys(types)),
        )
        space.validate()
        return space

    # ------------------------------------------------------------------ decision encoding
    def decisions(self) -> list[tuple[str, int]]:
        """Each decision's kind and number of options, in order: ``[("width", W), ("type", T)] * num_layers``.

        Decisions of one kind pick from the same options, so a learning strategy may share what it learns.
        """
        return [("width", len(self.widths)), ("type", len(self.types))] * self.num_layers

    def decision_sizes(self) -> list[int]:
        """How many options each decision has."""
        return [n for _, n in self.decisions()]

    def decision_labels(self) -> list[tuple[str, list[str]]]:
        """A name and the option labels of each decision, for logs and TensorBoard."""
        widths = [str(w) for w in self.widths]
        types = [LAYER_TYPES[c].name for c in self.types]
        return [item for i in range(self.num_layers) for item in ((f"layer{i}_width", widths), (f"layer{i}_type", types))]

    def decode(self, decisions: Sequence[int]) -> Architecture:
        """The architecture that the decisions ``[w0, t0, w1, t1, ...]`` (option indices) describe."""
        if len(decisions) != 2 * self.num_layers:
            raise UserInputError(f"expected {2 * self.num_layers} decisions, got {len(decisions)}")
        return Architecture(tuple(Layer(self.widths[decisions[i]], self.types[decisions[i + 1]])
                                  for i in range(0, len(decisions), 2)))

    def encode(self, arch: Architecture) -> list[int]:
        """The decisions that ``decode`` maps back to ``arch``; refused when it uses options outside the space."""
        out: list[int] = []
        for layer in arch.layers:
            if layer.width not in self.widths or layer.type_code not in self.types:
                raise UserInputError(f"{arch.readable()} is not in the search space's candidate choices")
            out += [self.widths.index(layer.width), self.types.index(layer.type_code)]
        return out

    # ------------------------------------------------------------------ strings
    def parse(self, text: str | Sequence[int]) -> Architecture:
        """An architecture string of this space, checked (see ``qnas.arch``)."""
        return parse_arch(text, self)

    # ------------------------------------------------------------------ networks
    def check(self, arch: Architecture) -> None:
        """Refuse widths outside the space's range, with the layer and the range in the message."""
        for i, layer in enumerate(arch.layers, 1):
            if not self.min_width <= layer.width <= self.max_width:
                raise UserInputError(
                    f"layer {i}: width {layer.width} is outside the {self.name} space's range "
                    f"{self.min_width}..{self.max_width}"
                )
        if len(arch) > 16:
            raise UserInputError(f"{len(arch)} layers; at most 16 hidden layers are supported")

    def input_fan_in(self, input_shape: Sequence[int]) -> int:
        """Inputs the first layer's kernel reads: every pixel (dense) or the image's channels (conv)."""
        if self.kind == "dense":
            return int(np.prod(input_shape))
        return int(input_shape[-1]) if len(input_shape) == 3 else 1

    def kernel_shape(self, fan_in: int, width: int) -> tuple[int, ...]:
        """A hidden layer's kernel; its last two axes are always (inputs, units), so ``k[..., :i, :w]`` slices any."""
        return (fan_in, width) if self.kind == "dense" else (CONV_KERNEL, CONV_KERNEL, fan_in, width)

    def build(self, arch: Architecture, input_shape: Sequence[int], num_classes: int,
              name: str = "child") -> tf.keras.Model:
        """A fresh, untrained Keras model for ``arch``."""
        return build_model(self, arch, input_shape, num_classes, name=name)

    def bits(self, arch: Architecture, input_shape: Sequence[int], num_classes: int) -> int:
        """The theoretical size of ``arch`` in bits (see ``qnas.models.arch_bits``)."""
        return arch_bits(self, arch, input_shape, num_classes)

    def parent_arch(self) -> Architecture:
        """The space's float parent."""
        return Architecture(tuple(Layer(w, 0) for w in self.parent_widths))

    def parent_space(self) -> SearchSpace:
        """The space whose ``parent_arch`` is this space's float parent: itself."""
        return self

    def search_defaults(self) -> dict[str, Any]:
        """Search settings this space changes from the CLI's defaults: none."""
        return {}

    def describe(self) -> str:
        """One line for the search's log."""
        return f"{self.name}, {self.num_layers} layers, widths {list(self.widths)}, types {list(self.types)}"

    def settings(self) -> dict[str, Any]:
        """The search choices a resumed search must share (``config.json``)."""
        return {"num_layers": self.num_layers, "widths": list(self.widths), "types": list(self.types)}

    def validate(self) -> None:
        if not 1 <= self.num_layers <= 16:
            raise UserInputError(f"num_layers must be between 1 and 16, got {self.num_layers}")
        if not self.widths:
            raise UserInputError("a search space needs at least one candidate width")
        bad = [w for w in self.widths if not self.min_width <= w <= self.max_width]
        if bad:
            raise UserInputError(
                f"candidate widths {bad} are outside the {self.name} space's range "
                f"{self.min_width}..{self.max_width}"
            )
        unknown = [t for t in self.types if t not in LAYER_TYPES]
        if unknown or not self.types:
            raise UserInputError(f"candidate types {list(self.types)} must be non-empty codes from {sorted(LAYER_TYPES)}")


SPACES: dict[str, Space] = {}


def register_space(space: Space) -> Space:
    """Make ``space`` available by its name (``--space NAME``)."""
    SPACES[space.name] = space
    return space
