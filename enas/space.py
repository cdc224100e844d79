"""Search spaces: which layers a network has, which widths and types a search may pick, and the float parent.

Two spaces, registered by name so configs serialise as strings:

* ``mlp``: hidden Dense layers on the flattened image, then a float Dense classifier (EComp's setting).
* ``conv``: 3x3 Conv2D layers with 2x2 max pooling at fixed depths, then global average pooling and
  a float Dense classifier.

A space fixes the candidate widths and types the *search* draws from; an architecture string given
by hand may use any width inside the space's range (``min_width..max_width``) and any depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from enas.errors import UserInputError
from quantize.types import LAYER_TYPES


@dataclass(frozen=True)
class SearchSpace:
    """One family of networks plus the choices a search makes in it."""

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

    def parent_arch_string(self) -> str:
        """The float parent of this space, as an architecture string."""
        return " ".join(f"{w} 0" for w in self.parent_widths)

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


SPACES: dict[str, SearchSpace] = {
    "mlp": SearchSpace(
        name="mlp", kind="dense", num_layers=2, widths=(16, 32, 64, 128, 256, 512),
        min_width=4, max_width=4096, float_batchnorm=False, parent_widths=(256, 256),
    ),
    "conv": SearchSpace(
        name="conv", kind="conv", num_layers=4, widths=(8, 16, 32, 64, 128),
        min_width=4, max_width=1024, float_batchnorm=True, parent_widths=(32, 64, 128),
    ),
}


def get_space(name: str) -> SearchSpace:
    """Look a space up by name, with a clear message for an unknown one."""
    if name not in SPACES:
        raise UserInputError(f"unknown search space {name!r}; expected one of: {', '.join(SPACES)}")
    return SPACES[name]
