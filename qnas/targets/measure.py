"""Measure an exported file: top-1 agreement with the Keras model, and latency with the target's interpreter."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qnas.targets.base import Target, get_target


def top1_agreement(keras_model, target: Target | str, path: str | Path, x: np.ndarray) -> float:
    """Fraction of images on which the file's top-1 class equals the Keras model's."""
    return file_top1(keras_model, target, path, x)[0]


def file_top1(keras_model, target: Target | str, path: str | Path, x: np.ndarray,
              labels: np.ndarray | None = None) -> tuple[float, float | None]:
    """The file's top-1 agreement with the Keras model on ``x`` and, given ``labels``, the file's own accuracy."""
    target = get_target(target)
    expected = np.argmax(np.asarray(keras_model.predict(np.asarray(x, np.float32), batch_size=500, verbose=0)), axis=1)
    got = np.argmax(target.predict(path, x), axis=1)
    accuracy = None if labels is None else float(np.mean(got == np.reshape(labels, -1)))
    return float(np.mean(got == expected)), accuracy


@dataclass(frozen=True)
class Latency:
    """Median wall-clock times of the file with one thread: one image, and one batch of ``batch`` images."""

    single_ms: float
    batch_ms: float
    batch: int
    threads: int
    repeats: int

    def as_dict(self) -> dict[str, float | int]:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def median_ms(run, x: np.ndarray, warmup: int, repeats: int) -> float:
    """Median of ``repeats`` timed calls of ``run(x)`` after ``warmup`` untimed ones, in milliseconds."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def measure_latency(target: Target | str, path: str | Path, x: np.ndarray, threads: int = 1, warmup: int = 10,
                    repeats: int = 50, batch: int = 32) -> Latency:
    """Median single-image and batch latency of the file at ``path`` on this CPU, with the target's interpreter.

    ``x`` supplies the images (its first image for the single-image time, its first ``batch`` for the
    batch time; repeated if there are fewer). The batch is timed with ``max(3, repeats // 5)`` repeats.
    """
    target = get_target(target)
    x = np.asarray(x, np.float32)
    single = median_ms(target.runner(path, 1, threads), x[:1], warmup, repeats)
    images = x[np.arange(batch) % len(x)]
    batch_ms = median_ms(target.runner(path, batch, threads), images, max(1, warmup // 5), max(3, repeats // 5))
    return Latency(single, batch_ms, batch, threads, repeats)
