"""Checks that every CLI runs on its data at load time, before anything is trained or written.

A data file can be readable and still wrong in ways that train without complaint: a stray label 11 in
10-class data makes a 12-class model; one NaN pixel poisons every gradient; a batch larger than the
training split trains one step. Each check here refuses such data with a ``DataError`` that names the
array (``x_train``, ``y_test``, ...) or split, the offending value or count, and what is expected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qnas.errors import DataError, UserInputError

MAX_SEED = 2**32 - 1  # NumPy's legacy seeding, which Keras's set_random_seed uses, takes 0..2**32 - 1
MIN_PROBE_IMAGES = 10  # the similarity probe compares neighbourhoods: a handful of points is meaningless


@dataclass(frozen=True)
class DataNeeds:
    """What one command needs of the splits, with the flag or setting each need comes from.

    ``min_val_reason`` finishes the sentence "the validation split has N images; ...", so it should
    say what needs them and, where a flag can help, which.
    """

    batch_size: int = 1
    batch_flag: str = "--batch_size {n}"  # how a user sets the minibatch to n
    min_val: int = 1
    min_val_reason: str = "training needs at least one validation image"
    min_side: int = 1
    min_side_reason: str = ""


def probe_needs(batch_size: int, min_side: int = 1, min_side_reason: str = "") -> DataNeeds:
    """The search's needs: a minibatch of training images and a validation split the similarity probe can use."""
    return DataNeeds(batch_size=batch_size, min_val=MIN_PROBE_IMAGES,
                     min_val_reason=f"the similarity probe needs at least {MIN_PROBE_IMAGES}",
                     min_side=min_side, min_side_reason=min_side_reason)


def check_images(x: np.ndarray, key: str) -> None:
    """Numbers (not text, objects or complex values), (N, H, W) or (N, H, W, C), no empty axis, all finite."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{key} holds {_kind_name(x.dtype)} (dtype {x.dtype}); expected images as numbers "
                        f"(uint8 0..255 or floats in [0, 1])")
    if x.ndim not in (3, 4):
        raise DataError(f"{key} has shape {x.shape}; expected images (N, H, W) or (N, H, W, C)")
    if len(x) == 0:
        raise DataError(f"{key} holds no images (shape {x.shape})")
    if 0 in x.shape[1:]:
        raise DataError(f"{key} has shape {x.shape}: an image with an empty axis has no pixels")
    if x.dtype.kind == "f":
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, and is refused as such
            finite = np.isfinite(x.astype(np.float32, copy=False))
        if not finite.all():
            where = tuple(int(i) for i in np.argwhere(~finite)[0])
            count = int(np.size(finite) - np.count_nonzero(finite))
            raise DataError(f"{key} has {count} pixel value(s) that are NaN or infinite (or too large for "
                            f"float32), the first {key}[{where[0]}] at {where[1:]} = {x[where]}; expected finite "
                            f"numbers: fix or drop those images")


def check_labels(y: np.ndarray, key: str) -> np.ndarray:
    """Class labels as int32 ``(N,)``: whole, non-negative numbers; ``(N, 1)`` is accepted and flattened."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot labels? store their argmax)" if y.ndim == 2 else ""
        raise DataError(f"{key} has shape {y.shape}; expected one integer class label per image, shape (N,){hint}")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{key} holds {_kind_name(y.dtype)} (dtype {y.dtype}); expected integer class labels 0..K-1")
    if len(y) == 0:
        return y.astype(np.int32)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{key}[{i}] is {y[i].item()!r}; expected integer class labels 0..K-1")
    low = int(np.argmin(y))
    if y[low] < 0:
        raise DataError(f"{key}[{low}] is {y[low]}; class labels start at 0 (expected integers 0..K-1)")
    high = int(np.argmax(y))
    if y[high] > np.iinfo(np.int32).max:
        raise DataError(f"{key}[{high}] is {y[high]}; expected class labels 0..K-1")
    return y.astype(np.int32)


def check_num_classes(num_classes: int | None) -> None:
    """``--num_classes``, when given, must allow a classifier: at least two classes."""
    if num_classes is not None and num_classes < 2:
        raise UserInputError(f"--num_classes must be at least 2, got {num_classes}")


def count_classes(y_file_train: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None,
                  held_out: int) -> int:
    """K: ``num_classes`` or the largest label + 1, with every class 0..K-1 present in the training split.

    ``y_file_train`` is the file's ``y_train`` before the validation split was held out, ``y_train`` what
    is left for training and ``held_out`` how many images went to validation.
    """
    check_num_classes(num_classes)
    if num_classes is not None:
        for key, y in (("y_train", y_file_train), ("y_test", y_test)):
            if len(y) and int(y.max()) >= num_classes:
                i = int(np.argmax(y))
                raise DataError(f"{key}[{i}] is {y[i]}, but --num_classes is {num_classes}; expected labels "
                                f"0..{num_classes - 1}")
        k, origin = num_classes, f"--num_classes {num_classes}"
    else:
        k = int(max(y_file_train.max(), y_test.max() if len(y_test) else 0)) + 1
        origin = f"the largest label is {k - 1}, so {k} classes are assumed"
        if k < 2:
            raise DataError("every label is 0: a classifier needs at least two classes (labels 0..K-1, K >= 2)")
    counts = np.bincount(y_train, minlength=k)
    missing = [int(c) for c in np.flatnonzero(counts == 0)]
    if not missing:
        return k
    shown = ", ".join(str(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
    subject = f"class {shown} has" if len(missing) == 1 else f"classes {shown} have"
    in_file = np.bincount(y_file_train, minlength=k)
    if all(in_file[c] > 0 for c in missing):
        raise DataError(f"{subject} no image left in the training split: all {int(in_file[missing[0]])} "
                        f"of y_train's images of class {missing[0]} went to the validation split ({held_out} "
                        f"images held out); every class needs training images, so add images of that class")
    message = f"{subject} no training image ({origin}); every class 0..{k - 1} needs training images"
    if num_classes is None:
        top = k - 1
        where = ("y_train", y_file_train) if (y_file_train == top).any() else ("y_test", y_test)
        first = int(np.argmax(where[1] == top))
        occurrences = int((y_file_train == top).sum() + (y_test == top).sum())
        message += (f". Label {top} occurs {occurrences} time(s), first at {where[0]}[{first}]: if it is a mistake "
                    f"fix those labels; if the data really has {k} classes, the training split needs images of each")
    raise DataError(message)


def check_sizes(n_file_train: int, n_train: int, n_val: int, needs: DataNeeds, input_shape: tuple[int, ...]) -> None:
    """Enough training images for a minibatch, validation images for what uses them, and pixels for the pooling."""
    held = f"{n_file_train} images in x_train less {n_val} held out for validation"
    if n_train < 1:
        raise DataError(f"the training split is empty ({held}); use more images")
    if n_train < needs.batch_size:
        raise DataError(f"{needs.batch_flag.format(n=needs.batch_size)} is larger than the training split ({n_train} "
                        f"images: {held}); use {needs.batch_flag.format(n=n_train)} or less, or more data")
    if n_val < needs.min_val:
        enough = math.ceil(needs.min_val * n_file_train / max(n_val, 1))
        raise DataError(f"the validation split has {n_val} images (held out from x_train's {n_file_train}); "
                        f"{needs.min_val_reason}: use at least about {enough} training images")
    check_image_side(input_shape, needs.min_side, needs.min_side_reason)


def check_image_side(input_shape: tuple[int, ...], min_side: int, reason: str) -> None:
    """Images at least ``min_side`` pixels high and wide (``reason`` says what needs that)."""
    if min(input_shape[:2]) < min_side:
        raise DataError(f"images of {input_shape[0]}x{input_shape[1]} pixels are too small: {reason} "
                        f"needs at least {min_side}x{min_side}")


def conv_min_side(num_pools: int) -> int:
    """The smallest image side that survives ``num_pools`` 2x2 max poolings (each halves it, rounding down)."""
    return 2 ** num_pools


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Seeds seed NumPy, whose legacy generator only takes 0..2**32 - 1."""
    if not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"{flag} must be between 0 and {MAX_SEED}, got {seed}")


def check_positive_number(value: float | None, flag: str) -> None:
    """A finite, positive float flag (None: not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserInputError(f"{flag} must be a positive number, got {value}")


def _kind_name(dtype: np.dtype) -> str:
    return {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "M": "dates",
            "m": "time spans", "V": "raw records"}.get(dtype.kind, f"values of kind {dtype.kind!r}")
