"""Fuzz the three CLIs with generated malformed data files, architecture strings and flag values (issue 16).

Every case runs through a CLI's entry function in this process, so TensorFlow starts once. A case
must end in success (exit 0) or in a clean refusal: exit 2 with an ``error:`` line and no traceback
(argparse's usage errors count as clean: exit 2 too). Any other exception fails the test, listed
with the case that raised it. Every ``--flag`` a refusal names must be a flag of that CLI.

Most cases fail validation before any training; those that pass train for one epoch (train_arc),
one search epoch or two EComp generations on 200 tiny images, with one float parent cached for all.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import re
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import search_arc_mnist
import train_arc
from ecomp_tf import __main__ as ecomp_cli

SEED = 16
N_DATA, N_ARCH, N_FLAGS = 110, 60, 90
P_VALID = 0.03  # about how often a generated data file, architecture or flag value is a valid one
CLASSES = 3


@dataclass
class Case:
    """One generated input: which CLI, its arguments, and what was fuzzed (for the report)."""

    kind: str
    cli: str
    argv: list[str]
    what: str


@dataclass
class Outcome:
    rc: int | None = None
    err: str = ""
    crash: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


MAINS: dict[str, Callable[[list[str]], int]] = {
    "train_arc": train_arc.main, "search": search_arc_mnist.main, "ecomp": ecomp_cli.main,
}
PARSERS = {"train_arc": train_arc.build_parser, "search": search_arc_mnist.build_parser,
           "ecomp": ecomp_cli.build_parser}


# --- data ----------------------------------------------------------------------------------------------------

def base_arrays() -> dict[str, np.ndarray]:
    """200 + 40 images of 8x8 pixels, 3 classes (which pair of rows is bright), every class in every split."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 200), ("test", 40)):
        y = np.arange(n) % CLASSES
        rng.shuffle(y)
        x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
        for c in range(CLASSES):
            x[y == c, 2 * c:2 * c + 2, :] += 150
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.uint8)
    return out


def _pick(rng: np.random.Generator, keys: tuple[str, ...]) -> str:
    return keys[int(rng.integers(len(keys)))]


def _bad_pixel(rng, a):
    key = _pick(rng, ("x_train", "x_test"))
    x = a[key].astype(np.float32) / 255
    value = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
    x[tuple(int(rng.integers(d)) for d in x.shape)] = value
    return {key: x}, f"{value} pixel in {key}"


def _bad_label(rng, a):
    key = _pick(rng, ("y_train", "y_test"))
    y = a[key].astype(np.int64)
    value = int(rng.choice([-1, -7, CLASSES + int(rng.integers(0, 20)), 2**40]))
    y[int(rng.integers(len(y)))] = value
    return {key: y}, f"label {value} in {key}"


def _fractional_labels(rng, a):
    key = _pick(rng, ("y_train", "y_test"))
    y = a[key].astype(np.float64)
    y[int(rng.integers(len(y)))] += float(rng.choice([0.5, np.nan, np.inf]))
    return {key: y}, f"non-integer label in {key}"


def _text(rng, a):
    key = _pick(rng, ("x_train", "y_train", "x_test", "y_test"))
    return {key: a[key].astype(str)}, f"{key} as text"


def _complex(rng, a):
    key = _pick(rng, ("x_train", "x_test", "y_train"))
    return {key: a[key].astype(np.complex64)}, f"{key} complex"


def _objects(rng, a):
    key = _pick(rng, ("x_train", "y_test"))
    return {key: np.array(list(a[key]) + [None], dtype=object)}, f"{key} of Python objects"


def _ndim(rng, a):
    key = _pick(rng, ("x_train", "x_test", "y_train", "y_test"))
    x = a[key]
    if key.startswith("y"):  # (N, 1) labels are fine: only shapes that cannot be labels
        shapes = [(len(x), 1, 1), (len(x) // 2, 2), (1, len(x))]
    else:
        shapes = [(len(x), -1), (len(x), 1, 1, 1, -1), (-1,), (len(x), 2, -1)]
    shape = shapes[int(rng.integers(len(shapes)))]
    try:
        return {key: x.reshape(shape)}, f"{key} reshaped to {shape}"
    except ValueError:
        return {key: x[..., None, None]}, f"{key} with two more axes"


def _lengths(rng, a):
    key = _pick(rng, ("x_train", "y_train", "x_test", "y_test"))
    cut = int(rng.integers(1, 10))
    return {key: a[key][:-cut]}, f"{key} {cut} shorter"


def _empty(rng, a):
    split = _pick(rng, ("train", "test"))
    return {f"x_{split}": a[f"x_{split}"][:0], f"y_{split}": a[f"y_{split}"][:0]}, f"empty {split} split"


def _few(rng, a):
    n = int(rng.integers(1, 25))
    return {"x_train": a["x_train"][:n], "y_train": a["y_train"][:n]}, f"{n} training images"


def _image_shape(rng, a):
    side = int(rng.choice([0, 1, 7, 9]))
    key = _pick(rng, ("x_train", "x_test"))
    x = np.zeros((len(a[key]), side, 8), np.uint8)
    return {key: x}, f"{key} of {side}x8 images"


def _one_class(rng, a):
    return ({"y_train": np.zeros_like(a["y_train"]), "y_test": np.zeros_like(a["y_test"])},
            "every label 0")


def _missing_class(rng, a):
    gone = int(rng.integers(CLASSES))
    keep = a["y_train"] != gone
    return {"x_train": a["x_train"][keep], "y_train": a["y_train"][keep]}, f"class {gone} absent from y_train"


def _huge(rng, a):
    key = _pick(rng, ("x_train", "x_test"))
    return {key: a[key] * float(rng.choice([1e39, 1e300]))}, f"{key} beyond float32"


# mutations that may leave the data usable: fuzzed through train_arc only (one cheap epoch when valid)
def _bool_images(rng, a):
    return {"x_train": a["x_train"] > 100, "x_test": a["x_test"] > 100}, "bool images"


def _float_labels(rng, a):
    return {"y_train": a["y_train"].astype(np.float32), "y_test": a["y_test"].astype(np.float64)}, "integral floats"


def _column_labels(rng, a):
    return {"y_train": a["y_train"][:, None]}, "labels (N, 1)"


def _signed_pixels(rng, a):
    return ({"x_train": a["x_train"].astype(np.float32) / 255 - 0.5, "x_test": a["x_test"].astype(np.float32) / 255 - 0.5},
            "pixels in [-0.5, 0.5]")


def _extra_key(rng, a):
    return {"notes": np.arange(3)}, "an extra array"


INVALID = [_bad_pixel, _bad_label, _fractional_labels, _text, _complex, _objects, _ndim, _lengths, _empty, _few,
           _image_shape, _one_class, _missing_class, _huge]
MAYBE_VALID = [_bool_images, _float_labels, _column_labels, _signed_pixels, _extra_key]


def write_bytes_case(rng, folder: Path, i: int, base: Path) -> tuple[Path, str]:
    """A file that is not a readable .npz, or an IDX folder with one file damaged."""
    raw = base.read_bytes()
    kind = int(rng.integers(6))
    path = folder / f"{i}.npz"
    if kind == 0:
        cut = int(rng.integers(0, len(raw)))
        path.write_bytes(raw[:cut])
        return path, f"npz truncated at byte {cut}"
    if kind == 1:
        path.write_bytes(rng.bytes(int(rng.integers(1, 2000))))
        return path, "random bytes"
    if kind == 2:
        path = folder / f"{i}.npy"
        np.save(path, np.zeros((4, 8, 8)))
        return path, "a .npy file"
    if kind == 3:
        path.write_text("x_train,y_train\n1,2\n")
        return path, "a text file"
    if kind == 4:
        flipped = bytearray(raw)
        for pos in rng.integers(0, len(raw), 8):
            flipped[int(pos)] ^= 0xFF
        path.write_bytes(bytes(flipped))
        return path, "npz with flipped bytes"
    return idx_folder(rng, folder / f"idx{i}", base_arrays())


def idx_folder(rng, folder: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, str]:
    folder.mkdir()
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    damaged = _pick(rng, tuple(names))
    how = _pick(rng, ("truncate", "magic", "dtype", "missing", "gzip"))
    for key, name in names.items():
        arr = arrays[key]
        data = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
        if key == damaged:
            if how == "missing":
                continue
            if how == "truncate":
                data = data[:int(rng.integers(0, len(data)))]
            elif how == "magic":
                data = b"\x12\x34" + data[2:]
            elif how == "dtype":
                data = data[:2] + b"\x0d" + data[3:]
            else:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data)[:-20])
                continue
        (folder / name).write_bytes(data)
    return folder, f"IDX folder, {damaged} {how}"


# --- architecture strings ----------------------------------------------------------------------------------------

def arch_string(rng: np.random.Generator) -> str:
    """A valid architecture string (1 to 3 layers, integer or readable form), then, mostly, corrupted."""
    readable = rng.random() < 0.3
    layers = []
    for _ in range(int(rng.integers(1, 4))):
        width, code = _pick(rng, ("4", "8", "16")), int(rng.integers(6))
        kind = ("float32", "binary", "ternary", "int2", "int4", "int8")[code]
        layers.append([width, kind if readable else str(code)])
    if rng.random() > P_VALID:
        bad_widths = ("0", "-8", "3", "5000", "99999999999999999999", "x", "1e3", "8.0", "", "8e0")
        bad_types = ("6", "-1", "octal", "1.5", ":", "", "binary" if not readable else "7")
        for _ in range(int(rng.integers(1, 3))):
            layer = layers[int(rng.integers(len(layers)))]
            slot = int(rng.integers(2))
            layer[slot] = _pick(rng, bad_widths if slot == 0 else bad_types)
        if rng.random() < 0.2:
            layers.append([_pick(rng, ("7", "[", "]", "::", "8 1 8", "\t"))])
        if rng.random() < 0.1:
            layers = []
    text = " ".join((":" if readable else " ").join(layer) for layer in layers)
    if rng.random() < 0.1:
        text = f"[{text.replace(' ', ', ')}]"
    return text


# --- flags -------------------------------------------------------------------------------------------------------

TRAIN_FLAGS = {
    "--max_epochs": ["0", "-1", "x", "1.5", "", "1"],
    "--patience": ["0", "-5", "nan", "1"],
    "--batch_size": ["0", "-1", "1000000", "x", "64"],
    "--lr": ["0", "-1", "nan", "inf", "-inf", "x", "0.001"],
    "--seed": ["-1", "4294967296", "99999999999999999999", "x", "7"],
    "--space": ["lstm", "", "MLP", "conv"],
    "--init": ["zeros", "parent"],
    "--num_classes": ["0", "1", "2", "11", "x", "3"],
    "--parent_layout": ["sideways", "out_in"],
    "--dataset": ["cifar", "fashion"],
}
SEARCH_FLAGS = {
    "--epochs": ["0", "-2", "x", "1"],
    "--batch_size": ["0", "100000", "x", "90"],
    "--controller_steps": ["0", "-1", "1"],
    "--controller_batch": ["0", "x", "2"],
    "--lr": ["0", "nan", "-inf", "0.01"],
    "--max_kib": ["0", "-1", "nan", "inf", "0.5"],
    "--max_minutes": ["0", "-1", "nan", "100"],
    "--reward_weights": ["1,2", "a,b,c", "1,-1,1", "nan,0,0", "", ",", "1,0.05,0.5"],
    "--strategy": ["bayes", "random,random", "", ",", "random"],
    "--space": ["rnn", "CONV", ""],
    "--widths": ["8,x", "0", "-4", "", "99999", ",", "4"],
    "--types": ["0,octal", "9", "-1", ",", "binary,int4"],
    "--num_layers": ["0", "17", "-1", "x", "1"],
    "--seed": ["-1", "4294967296", "x", "0"],
    "--num_classes": ["1", "2", "x", "3"],
    "--child_sampling": ["bad", "strategy"],
    "--parent_layout": ["sideways", "out_in"],
    "--finalist_steps": ["-1", "x", "2"],
}
ECOMP_FLAGS = {
    "--mode": ["weird", "faithful"],
    "--pop_size": ["1", "0", "-3", "x", "1e3", "3"],
    "--mutation_rate": ["-0.1", "1.5", "nan", "0.5"],
    "--epochs": ["0", "-1", "nan", "inf", "x"],
    "--generations": ["0", "-1", "x", "1"],
    "--loss_weights": ["1,2", "a,b,c", "nan,1,1", "1,2,3,4", "1,2,1"],
    "--final_batches": ["0", "-1", "x", "1"],
    "--types": ["9", "x", "-1", "0,4"],
    "--seed": ["-1", "4294967295", "x", "3"],
    "--parent_seed": ["-1", "x", "4294967296"],
    "--num_classes": ["1", "x", "5"],
    "--set": ["SET", "SET"],  # a generated KEY=VALUE
}
SET_KEYS = ["POP_SIZE", "EMB_LAYERS", "RECOMBINATION_LAYERS", "LOSS_WEIGHTS", "PRUNE_RATES", "PERPLEXITY",
            "EMBEDDING", "FINAL_SPLIT", "SELECTION", "ELITES", "TYPES", "TRAIN_SUBSET", "BATCH_SIZE",
            "FINETUNE_STEPS", "FINETUNE_LR", "CALIB_SIZE", "NOT_A_SETTING", "pop size"]
SET_VALUES = ["0", "-1", "nan", "x", "[1,2]", "h9_linear", "None", "1e999", "()", "{}", "'a'", "0.5", "2",
              "h0_linear,logits", "(0, 1)", "", "9" * 5000, "[" * 200]


def set_item(rng: np.random.Generator) -> str:
    if rng.random() < 0.05:
        return _pick(rng, ("POP_SIZE", "=3", "=", "=="))  # not KEY=VALUE at all
    return f"{_pick(rng, tuple(SET_KEYS))}={_pick(rng, tuple(SET_VALUES))}"


@dataclass
class Fixtures:
    folder: Path
    base: Path
    cache: Path
    blocker: Path
    not_a_model: Path

    def out(self, i: int) -> Path:
        return self.folder / "out" / str(i)


def base_options(cli: str, fx: Fixtures, i: int, data: Path | None = None) -> list[tuple[str, str | None]]:
    """The cheap, valid arguments every case of ``cli`` starts from, as (flag, value) pairs."""
    data = str(data or fx.base)
    if cli == "train_arc":
        return [("-fixed_arc", "8 1"), ("--data", data), ("--max_epochs", "1"), ("--batch_size", "64"),
                ("--no_tflite", None), ("--output_dir", str(fx.out(i))), ("--cache_dir", str(fx.cache))]
    if cli == "search":
        return [("--space", "mlp"), ("--data", data), ("--widths", "4,8"), ("--types", "0,1"), ("--epochs", "1"),
                ("--batch_size", "60"), ("--controller_steps", "1"), ("--controller_batch", "2"),
                ("--output_dir", str(fx.out(i))), ("--cache_dir", str(fx.cache))]
    tiny = [("--set", f"{k}={v}") for k, v in {"BATCH_SIZE": 20, "PERPLEXITY": 5, "FINAL_CANDIDATES": 2,
                                                  "FINAL_FINETUNE_EPOCHS": 0.1, "CALIB_SIZE": 20}.items()]
    return [("1", None), ("exp", None), ("--data", data), ("--output_dir", str(fx.out(i))),
            ("--cache_dir", str(fx.cache)), ("--pop_size", "4"), ("--generations", "2"), *tiny]


def to_argv(options: list[tuple[str, str | None]]) -> list[str]:
    return [a for flag, value in options for a in ((flag,) if value is None else (flag, value))]


def with_flag(options: list[tuple[str, str | None]], flag: str, value: str | None) -> list[tuple[str, str | None]]:
    """Replace ``flag``'s value (``--set`` is repeatable: appended)."""
    if flag != "--set" and any(f == flag for f, _ in options):
        return [(f, value if f == flag else v) for f, v in options]
    return [*options, (flag, value)]


def generate(fx: Fixtures) -> list[Case]:
    rng = np.random.default_rng(SEED)
    arrays = base_arrays()
    data_dir = fx.folder / "data"
    data_dir.mkdir()
    cases = []
    for i in range(N_DATA):
        if rng.random() < 0.2:
            path, what = write_bytes_case(rng, data_dir, i, fx.base)
            cli = _pick(rng, tuple(MAINS))
        else:
            maybe_valid = rng.random() < P_VALID
            mutation = MAYBE_VALID[int(rng.integers(len(MAYBE_VALID)))] if maybe_valid \
                else INVALID[int(rng.integers(len(INVALID)))]
            changes, what = mutation(rng, arrays)
            path = data_dir / f"{i}.npz"
            np.savez(path, **{**arrays, **changes})
            cli = "train_arc" if maybe_valid else _pick(rng, tuple(MAINS))
        cases.append(Case("data", cli, to_argv(base_options(cli, fx, i, path)), what))
    for i in range(N_DATA, N_DATA + N_ARCH):
        text = arch_string(rng)
        options = with_flag(base_options("train_arc", fx, i), "-fixed_arc", text)
        if rng.random() < 0.3:
            options = with_flag(options, "--space", "conv")
        cases.append(Case("arch", "train_arc", to_argv(options), repr(text)))
    for i in range(N_DATA + N_ARCH, N_DATA + N_ARCH + N_FLAGS):
        cli = _pick(rng, tuple(MAINS))
        pool = {"train_arc": TRAIN_FLAGS, "search": SEARCH_FLAGS, "ecomp": ECOMP_FLAGS}[cli]
        options = base_options(cli, fx, i)
        changed = []
        for flag in rng.choice(sorted(pool), size=int(rng.integers(1, 4)), replace=False):
            values = pool[flag]  # the last one is valid, unless there is only one
            if len(values) > 1:
                value = values[-1] if rng.random() < 3 * P_VALID else _pick(rng, tuple(values[:-1]))
            else:
                value = values[0]
            value = set_item(rng) if value == "SET" else value
            options = with_flag(options, str(flag), value)
            changed.append(f"{flag} {value!r}"[:60])
        if rng.random() < 0.08:
            place = _pick(rng, ("--output_dir", "--cache_dir", "--parent", "--data"))
            value = {"--output_dir": str(fx.blocker), "--cache_dir": str(fx.blocker / "cache"),
                     "--parent": str(fx.not_a_model), "--data": str(fx.folder / "missing.npz")}[place]
            options = with_flag(options, place, value)
            changed.append(f"{place} (bad path)")
        if cli == "ecomp" and rng.random() < 0.15:
            positional = _pick(rng, ("0", "-1", "x", "", "../up", "a/b"))
            slot = 0 if positional in ("0", "-1", "x") else 1
            options[slot] = (positional, None)
            changed.append(f"positional {positional!r}")
        cases.append(Case("flags", cli, to_argv(options), ", ".join(changed)))
    for cli in MAINS:  # controls: each CLI's base arguments must give a result
        cases.append(Case("control", cli, to_argv(base_options(cli, fx, len(cases))), "the base arguments"))
    return cases


def run_case(case: Case) -> Outcome:
    """Run one case; a clean refusal is exit 2 (UserInputError or argparse), anything else raised is a crash."""
    outcome = Outcome()
    err, out = io.StringIO(), io.StringIO()
    start = time.time()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            outcome.rc = MAINS[case.cli](case.argv)
    except SystemExit as stop:  # argparse: a usage message and exit status 2
        outcome.rc = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the point of the fuzz: report anything that escapes
        outcome.crash = traceback.format_exc(limit=-8)
    outcome.seconds = time.time() - start
    outcome.err = err.getvalue()
    return outcome


def flags_named(message: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z_-]*[a-z]", message))


def known_flags(cli: str) -> set[str]:
    return {s for action in PARSERS[cli]()._actions for s in action.option_strings}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Fixtures:
    folder = tmp_path_factory.mktemp("fuzz")
    base = folder / "base.npz"
    np.savez(base, **base_arrays())
    blocker = folder / "a_file"
    blocker.write_text("a file where a folder is expected")
    not_a_model = folder / "parent.keras"
    not_a_model.write_text("not a model")
    return Fixtures(folder, base, folder / "cache", blocker, not_a_model)


def test_generated_bad_inputs_get_a_clean_refusal_or_a_result(fixtures, capsys):
    cases = generate(fixtures)
    assert len(cases) >= 200
    started = time.time()
    outcomes = [(case, run_case(case)) for case in cases]
    seconds = time.time() - started
    crashes = [f"[{c.kind} {c.cli}: {c.what}] argv={c.argv}\n{o.crash}" for c, o in outcomes if o.crash]
    assert not crashes, f"{len(crashes)} case(s) raised instead of refusing cleanly:\n\n" + "\n\n".join(crashes[:5])
    unclean = [f"[{c.kind} {c.cli}: {c.what}] rc={o.rc} stderr={o.err[-600:]!r}" for c, o in outcomes
               if o.rc not in (0, 2) or (o.rc == 2 and ("Traceback" in o.err or "error:" not in o.err))]
    assert not unclean, "\n".join(unclean[:10])
    wrong_flags = [f"[{c.cli}: {c.what}] names {sorted(flags_named(o.err) - known_flags(c.cli))}: {o.err.strip()}"
                   for c, o in outcomes if o.rc == 2 and flags_named(o.err) - known_flags(c.cli)]
    assert not wrong_flags, "\n".join(wrong_flags[:10])
    for case, outcome in outcomes:
        if outcome.rc == 0 and case.cli == "train_arc":
            out = Path(case.argv[case.argv.index("--output_dir") + 1])
            assert (out / "result.json").exists() and (out / "model.keras").exists(), case
    succeeded = [c for c, o in outcomes if o.rc == 0]
    by_kind = {kind: sum(c.kind == kind for c in cases) for kind in ("data", "arch", "flags", "control")}
    with capsys.disabled():
        slowest = max(outcomes, key=lambda item: item[1].seconds)
        print(f"\nfuzz: {len(cases)} cases {by_kind}, {len(succeeded)} trained to a result, "
              f"{len(cases) - len(succeeded)} refused cleanly, in {seconds:.1f} s "
              f"(slowest {slowest[1].seconds:.1f} s: {slowest[0].cli} {slowest[0].what})")
    controls = [o.rc for c, o in outcomes if c.kind == "control"]
    assert controls == [0] * len(MAINS), "each CLI's base arguments must train to a result"
