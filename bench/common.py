"""What the benchmark scripts share: the repo on sys.path, BENCHMARKS.md sections, 95% intervals over seeds, Kendall's
tau, random BatchNorm."""
from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = str(ROOT.parent / "shared" / "data" / "mnist-10k.npz")
BENCHMARKS = ROOT / "BENCHMARKS.md"
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}  # Student t, two-sided 95%


def project_relative(path: str) -> str:
    """``path`` as the docs name it: relative to the project folder (``../shared/data/...``), never absolute."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the ``<!-- section: name -->`` block of BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"<!-- section: {name} -->\n{markdown.strip()}\n<!-- end: {name} -->"
    pattern = re.compile(rf"<!-- section: {re.escape(name)} -->.*?<!-- end: {re.escape(name)} -->", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def interval(values: Sequence[float], spec: str = ".4f") -> str:
    """``mean ± half-width`` of the 95% interval over seeds (t distribution), both formatted with ``spec``."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return f"{v.mean():{spec}}"
    half = T95.get(len(v) - 1, 1.96) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():{spec}} ± {half:{spec.lstrip('+')}}"


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking handled), from scratch: O(n^2) is fine for a few dozen points."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else 0.0


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def randomise_batchnorm(model, rng) -> None:
    """Random BatchNorm parameters and statistics, so that no two folded constants of an untrained model are equal."""
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.5, 2.0, n)])


def log(line: str) -> None:
    print(line, flush=True)
