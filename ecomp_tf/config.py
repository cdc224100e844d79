"""EComp's settings: one dataclass, with the reference's defaults (faithful) and our improved preset.

Names follow the reference's ``Configs`` (upper case) so a reader can map them one to one:

* ``POP_SIZE=100``, ``MUTATION_RATE=0.01``, ``EPOCHS=1``, ``LOSS_WEIGHTS=(0, 2, 1)``;
* ``EMB_LAYERS=(0, 1)`` with ``EMBEDDING="activation"``: both hidden layers after their ReLU, which is
  what the reference's ``["layer_1_act", "layer_2_act"]`` names;
* ``RECOMBINATION_LAYERS=("h0_linear", "h1_linear", "logits")``: our names for the reference's
  ``["layer_1_linear", "layer_2_linear", "output"]``.

Everything after those is ours: each improvement of the improved mode is one field, so an ablation
switches them on one at a time (``Configs.faithful().with_changes(ELITES=2)``).
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from qnas.errors import UserInputError
from quantize.types import LAYER_TYPES

MODES = ("faithful", "improved")
REFERENCE_EMB_LAYERS = (0, 1)
REFERENCE_RECOMBINATION = ("h0_linear", "h1_linear", "logits")
SELECTIONS = ("softmax", "tournament")
COMPRESSIONS = ("width", "bits", "size")  # hidden width, theoretical bits, the target's predicted bytes
EMBEDDINGS = ("activation", "block")


@dataclass(frozen=True)
class Configs:
    """All knobs of one EComp run (see the module docstring for the reference's names)."""

    POP_SIZE: int = 100
    MUTATION_RATE: float = 0.01
    EMB_LAYERS: tuple[int, ...] = REFERENCE_EMB_LAYERS
    RECOMBINATION_LAYERS: tuple[str, ...] = REFERENCE_RECOMBINATION
    EPOCHS: float = 1.0
    LOSS_WEIGHTS: tuple[float, float, float] = (0.0, 2.0, 1.0)
    # reference facts that were constants in its code
    BATCH_SIZE: int = 100
    TRAIN_SUBSET: int = 10_000
    PRUNE_RATES: tuple[float, float] = (0.1, 0.8)
    PERPLEXITY: float = 30.0
    EMBEDDING: str = "activation"
    FINAL_SPLIT: str = "train"  # the reference ranks its last population on the training batches
    FINAL_BATCHES: int | None = None  # None: all of them
    FINAL_CANDIDATES: int | None = None  # None: the whole last population
    # our improvements (the faithful values switch them off)
    COMPRESSION: str = "width"
    SELECTION: str = "softmax"
    TOURNAMENT_SIZE: int = 3
    ELITES: int = 0
    WIDTH_MUTATION_RATE: float = 0.0
    WIDTH_STEP: float = 0.1
    TYPE_MUTATION_RATE: float = 0.0
    TYPES: tuple[int, ...] = tuple(LAYER_TYPES)
    INIT_TYPES: str = "float"  # "float" (the parent's) or "random"
    FINETUNE_STEPS: int = 0  # gradient steps for each elite, each generation
    FINAL_FINETUNE_EPOCHS: float = 0.0  # passes over the training subset for each final candidate
    FINETUNE_LR: float = 1e-3
    CALIB_SIZE: int = 100
    GENERATIONS: int | None = None  # None: EPOCHS passes over the training subset, one batch each

    @classmethod
    def faithful(cls, **changes: Any) -> Configs:
        """The reference's defaults."""
        return cls().with_changes(**changes)

    @classmethod
    def improved(cls, **changes: Any) -> Configs:
        """Our default: elitism, tournament selection, width and precision genes, size on the target, fine-tuning."""
        return cls(
            COMPRESSION="size", SELECTION="tournament", ELITES=2,
            WIDTH_MUTATION_RATE=0.1, TYPE_MUTATION_RATE=0.05, INIT_TYPES="random",
            FINETUNE_STEPS=5, FINAL_FINETUNE_EPOCHS=1.0,
            FINAL_SPLIT="val", FINAL_CANDIDATES=8, LOSS_WEIGHTS=(1.0, 2.0, 1.0),
        ).with_changes(**changes)

    @classmethod
    def for_mode(cls, mode: str, **changes: Any) -> Configs:
        if mode not in MODES:
            raise UserInputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        return cls.faithful(**changes) if mode == "faithful" else cls.improved(**changes)

    def with_changes(self, **changes: Any) -> Configs:
        """A checked copy; ``None`` values leave a field as it is (handy for CLI flags).

        Values are converted to the field's type from their natural forms: ``"0,4,5"``, ``"0 4 5"``,
        ``[0, 4, 5]`` or ``0`` for a tuple of ints, ``"h0_linear,logits"`` for names, ``"3"`` for an int;
        anything else is refused with a message naming the setting.
        """
        kinds = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(kinds))
        if unknown:
            raise UserInputError(f"unknown EComp settings {unknown}; known: {sorted(kinds)}")
        out = replace(self, **{k: coerce_setting(k, str(kinds[k]), v) for k, v in changes.items() if v is not None})
        out.validate()
        return out

    def for_depth(self, num_hidden: int) -> Configs:
        """These settings for a parent with ``num_hidden`` hidden layers.

        The reference's defaults name the two hidden layers of its parent. For a parent of another
        depth, default recombination layers become every hidden layer plus the classifier, and default
        embedding layers that do not exist become every hidden layer. Settings the user changed stay.
        """
        changes: dict[str, Any] = {}
        if self.RECOMBINATION_LAYERS == REFERENCE_RECOMBINATION and num_hidden != 2:
            changes["RECOMBINATION_LAYERS"] = (*(f"h{i}_linear" for i in range(num_hidden)), "logits")
        if self.EMB_LAYERS == REFERENCE_EMB_LAYERS and max(self.EMB_LAYERS) >= num_hidden:
            changes["EMB_LAYERS"] = tuple(range(num_hidden))
        return self.with_changes(**changes) if changes else self

    def validate(self) -> None:
        """Refuse settings that cannot run, saying what is expected."""
        checks = [
            (self.POP_SIZE >= 2, f"POP_SIZE must be at least 2, got {self.POP_SIZE}"),
            (0.0 <= self.MUTATION_RATE <= 1.0, f"MUTATION_RATE must be in [0, 1], got {self.MUTATION_RATE}"),
            (len(self.LOSS_WEIGHTS) == 3, f"LOSS_WEIGHTS needs three numbers (acc, sim, comp), got {self.LOSS_WEIGHTS}"),
            (self.EPOCHS > 0, f"EPOCHS must be positive, got {self.EPOCHS}"),
            (self.BATCH_SIZE >= 4, f"BATCH_SIZE must be at least 4, got {self.BATCH_SIZE}"),
            (1.0 <= self.PERPLEXITY < self.BATCH_SIZE,
             f"PERPLEXITY ({self.PERPLEXITY}) must be in [1, BATCH_SIZE ({self.BATCH_SIZE})): a neighbour count"),
            (self.TRAIN_SUBSET >= self.BATCH_SIZE,
             f"TRAIN_SUBSET ({self.TRAIN_SUBSET}) must be at least BATCH_SIZE ({self.BATCH_SIZE})"),
            (self.FINETUNE_STEPS >= 0, f"FINETUNE_STEPS must be 0 or more, got {self.FINETUNE_STEPS}"),
            (self.FINAL_FINETUNE_EPOCHS >= 0,
             f"FINAL_FINETUNE_EPOCHS must be 0 or more, got {self.FINAL_FINETUNE_EPOCHS}"),
            (self.FINETUNE_LR > 0, f"FINETUNE_LR must be positive, got {self.FINETUNE_LR}"),
            (0.0 <= self.PRUNE_RATES[0] <= self.PRUNE_RATES[1] < 1.0,
             f"PRUNE_RATES must be (low, high) with 0 <= low <= high < 1, got {self.PRUNE_RATES}"),
            (self.EMBEDDING in EMBEDDINGS, f"EMBEDDING must be one of {EMBEDDINGS}, got {self.EMBEDDING!r}"),
            (self.COMPRESSION in COMPRESSIONS, f"COMPRESSION must be one of {COMPRESSIONS}, got {self.COMPRESSION!r}"),
            (self.SELECTION in SELECTIONS, f"SELECTION must be one of {SELECTIONS}, got {self.SELECTION!r}"),
            (self.FINAL_SPLIT in ("train", "val"), f"FINAL_SPLIT must be 'train' or 'val', got {self.FINAL_SPLIT!r}"),
            (self.INIT_TYPES in ("float", "random"), f"INIT_TYPES must be 'float' or 'random', got {self.INIT_TYPES!r}"),
            (0 <= self.ELITES < self.POP_SIZE, f"ELITES must be in [0, POP_SIZE), got {self.ELITES}"),
            (self.TOURNAMENT_SIZE >= 1, f"TOURNAMENT_SIZE must be at least 1, got {self.TOURNAMENT_SIZE}"),
            (all(t in LAYER_TYPES for t in self.TYPES) and self.TYPES,
             f"TYPES must be non-empty layer type codes from {sorted(LAYER_TYPES)}, got {self.TYPES}"),
            (self.GENERATIONS is None or self.GENERATIONS >= 1, f"GENERATIONS must be at least 1, got {self.GENERATIONS}"),
            (self.FINAL_BATCHES is None or self.FINAL_BATCHES >= 1,
             f"FINAL_BATCHES must be at least 1, got {self.FINAL_BATCHES}"),
            (self.FINAL_CANDIDATES is None or self.FINAL_CANDIDATES >= 1,
             f"FINAL_CANDIDATES must be at least 1, got {self.FINAL_CANDIDATES}"),
            (self.CALIB_SIZE >= 2, f"CALIB_SIZE must be at least 2, got {self.CALIB_SIZE}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserInputError(message)
        for rate in (self.WIDTH_MUTATION_RATE, self.TYPE_MUTATION_RATE):
            if not 0.0 <= rate <= 1.0:
                raise UserInputError(f"mutation rates must be in [0, 1], got {rate}")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def coerce_setting(name: str, annotation: str, value: Any) -> Any:
    """``value`` as the type ``annotation`` names (``int``, ``float``, ``str``, ``tuple[int, ...]``, ...).

    A tuple takes a list or tuple, one value, or text separated by commas or spaces (brackets ignored);
    a fixed-length tuple must get exactly its count.
    """
    kind = annotation.replace(" | None", "").strip()
    if not kind.startswith("tuple["):
        return _coerce_scalar(name, kind, value)
    parts = [p.strip() for p in kind[len("tuple["):-1].split(",")]
    if isinstance(value, str):
        items: list[Any] = [v for v in re.split(r"[,\s]+", re.sub(r"[\[\]()'\"]", " ", value)) if v]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if parts[-1] != "..." and len(items) != len(parts):
        raise UserInputError(f"{name} takes {len(parts)} values ({', '.join(parts)}), got {len(items)} in {value!r}")
    return tuple(_coerce_scalar(name, parts[0], item) for item in items)


def _coerce_scalar(name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
            return int(value)
        raise UserInputError(f"{name} takes a whole number, got {value!r}")
    if kind == "float":
        number = None
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise UserInputError(f"{name} takes a finite number, got {value!r}")
        return number
    if kind == "str":
        if isinstance(value, str):
            return value
        raise UserInputError(f"{name} takes a word, got {value!r}")
    return value
