"""Colour images' per-channel standardisation, and the augmentation of training images when retraining.

Colour images (three or more channels, CIFAR-style) are standardised per channel with the mean and
standard deviation of the training split, the same for every split, so a search and the retraining
of its winner see the same inputs; the statistics go into result.json, since a deployed model expects
its inputs standardised the same way. Grey images (digits) are left in [0, 1], as before.

Augmentation (``--augment``, on by default) pads each image by an eighth of its size on every side and takes a
random crop of the original size (a shift of up to an eighth); colour images are also flipped
horizontally with probability one half, digits never (a mirror image can change a digit's class).
An epoch's draws are a function of (seed, epoch), so a resumed training run sees the same images.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from qnas.data import Dataset

COLOUR_CHANNELS = 3


def is_colour(data: Dataset) -> bool:
    """Whether the images have colour channels (CIFAR-style) rather than one grey channel."""
    return data.input_shape[-1] >= COLOUR_CHANNELS


def standardize_colour(data: Dataset) -> tuple[Dataset, dict[str, list[float]] | None]:
    """Colour images standardised per channel with the training split's statistics; grey images unchanged.

    Returns the data and the statistics (None when nothing was changed).
    """
    if not is_colour(data):
        return data, None
    mean = data.x_train.mean(axis=(0, 1, 2), dtype=np.float64)
    std = np.maximum(data.x_train.std(axis=(0, 1, 2), dtype=np.float64), 1e-6)

    def apply(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    out = replace(data, x_train=apply(data.x_train), x_val=apply(data.x_val), x_test=apply(data.x_test))
    return out, {"mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std]}


def augment_images(x: np.ndarray, rng: np.random.Generator, flip: bool = True) -> np.ndarray:
    """Padded random crops (zero padding of an eighth of the size) and, with ``flip``, random horizontal flips."""
    n, height, width = x.shape[:3]
    pad_h, pad_w = max(1, height // 8), max(1, width // 8)
    padded = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), *[(0, 0)] * (x.ndim - 3)))
    dy = rng.integers(0, 2 * pad_h + 1, n)
    dx = rng.integers(0, 2 * pad_w + 1, n)
    rows = dy[:, None] + np.arange(height)[None, :]
    cols = dx[:, None] + np.arange(width)[None, :]
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        mirrored = rng.random(n) < 0.5
        out[mirrored] = out[mirrored, :, ::-1]
    return out


def epoch_images(x: np.ndarray, seed: int, epoch: int, augment: bool) -> np.ndarray:
    """The training images of one epoch (already in the epoch's order): augmented with draws fixed by (seed, epoch).

    Colour images are shifted and flipped, grey ones only shifted.
    """
    if not augment:
        return x
    return augment_images(x, np.random.default_rng([int(seed), int(epoch), 7]), flip=x.shape[-1] >= COLOUR_CHANNELS)
