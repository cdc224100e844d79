"""The registered search spaces, by name; a new space is one module here plus its import line below."""
from __future__ import annotations

from qnas.errors import UserInputError
from qnas.space import SPACES, SearchSpace, Space, register_space
from qnas.spaces import chain, micro  # noqa: F401  (each registers its spaces: mlp and conv; micro)

__all__ = ["SPACES", "SearchSpace", "Space", "get_space", "register_space"]


def get_space(name: str) -> Space:
    """Look a space up by name, with a clear message for an unknown one."""
    if name not in SPACES:
        raise UserInputError(f"unknown search space {name!r}; expected one of: {', '.join(SPACES)}")
    return SPACES[name]
