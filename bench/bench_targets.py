"""Deployment targets: predicted against real bytes, agreement with Keras and latency, for every type x target.

    nice python bench/bench_targets.py --data ../shared/data/mnist-10k.npz              # both parts
    nice python bench/bench_targets.py --parts types --max_epochs 2                     # the type x target table
    nice python bench/bench_targets.py --parts latency --archs 21                       # the latency table's fit

Part ``types``: for each space's reference architecture (conv ``32 T 64 T 64 T 64 T``, mlp
``256 T 256 T``) and each type T, train with ``train_arc``'s trainer for ``--max_epochs`` (no export),
then export the same model with every real target (run folders ``runs/bench_targets/<space>-<type>``,
replaced on every run): predicted bytes, file bytes, top-1 agreement
with Keras on all test images, predicted (per-layer table) and measured median single-image latency
(1 thread). Part ``latency``: ``--archs`` random architectures per target (both spaces, every type,
untrained weights): the table's predicted latency against the measured one (median of three timing passes over all files;
R^2, worst error), and the byte prediction against the file. Raw numbers go to ``runs/bench_targets.json``; the tables replace
the ``targets`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import platform
import shlex
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, ROOT, log, randomise_batchnorm, write_section

from qnas.arch import Architecture, Layer, parse_arch
from qnas.data import load_dataset
from qnas.models import build_model
from qnas.spaces import get_space
from qnas.targets import get_target
from qnas.targets.latency import LatencyTable, machine_id
from qnas.targets.measure import measure_latency, top1_agreement
from qnas.trainer import TrainConfig, train_architecture
from quantize.types import LAYER_TYPES

REFERENCE = {"conv": "32 {t} 64 {t} 64 {t} 64 {t}", "mlp": "256 {t} 256 {t}"}
TARGETS = ("lce", "tflite_int8")
PASSES = 3  # latency part: timing passes over all files


def _within(predicted: int, size: int) -> bool:
    return abs(predicted - size) <= max(0.05 * size, 2048)


def types_part(args, data, tables: dict[str, LatencyTable], raw: dict) -> str:
    rows = [("| space | type | target | runs as | bits (theoretical) | predicted bytes | file bytes | error "
             "| top-1 agreement | predicted ms | measured ms (batch of 32) | test acc. (Keras) |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    bits = get_target("bits")
    for space_name in ("conv", "mlp"):
        space = get_space(space_name)
        for t in LAYER_TYPES:
            arch = parse_arch(REFERENCE[space_name].format(t=t), space)
            out = ROOT / "runs" / "bench_targets" / f"{space_name}-{t}"
            shutil.rmtree(out, ignore_errors=True)  # replaced on every run of this script
            config = TrainConfig(arch=arch.to_string(), space=space_name, data_path=args.data, max_epochs=args.max_epochs,
                                 output_dir=str(out), tflite=False, target="bits", seed=args.seed)
            start = time.time()
            result = train_architecture(config, log=lambda text: None, progress=False)
            log(f"trained {space_name} {arch} in {time.time() - start:.0f} s: test {result.test_accuracy:.4f}")
            theoretical = bits.predict_bytes(arch, space, data.input_shape, data.num_classes)
            for name in TARGETS:
                target = get_target(name)
                path = target.export(result.model, space, arch, out / f"{name}.tflite", data.x_train)
                size = path.stat().st_size
                predicted = target.predict_bytes(arch, space, data.input_shape, data.num_classes)
                agreement = top1_agreement(result.model, target, path, data.x_test)
                latency = measure_latency(target, path, data.x_test, repeats=args.repeats)
                predicted_ms = tables[name].predict(arch, space, data.input_shape, data.num_classes, now=True)
                runs_as = "/".join(dict.fromkeys(target.precisions(arch, space)))
                raw.setdefault("types", []).append({
                    "space": space_name, "arch": arch.to_string(), "target": name, "bytes": size,
                    "predicted_bytes": predicted, "theoretical_bytes": theoretical, "top1_agreement": agreement,
                    "predicted_ms": predicted_ms, "latency": latency.as_dict(), "test_accuracy": result.test_accuracy})
                rows.append(
                    f"| {space_name} | {LAYER_TYPES[t].name} | {name} | {runs_as} | {theoretical:,} | {predicted:,} "
                    f"| {size:,} | {100 * (predicted - size) / size:+.1f}%{'' if _within(predicted, size) else ' (!)'} "
                    f"| {100 * agreement:.2f}% | {predicted_ms:.3f} | {latency.single_ms:.3f} ({latency.batch_ms:.1f}) "
                    f"| {result.test_accuracy:.4f} |")
                log(rows[-1])
    return "\n".join(rows)


def random_arch(rng: np.random.Generator, space) -> Architecture:
    depth = int(rng.integers(1, space.num_layers + 1))
    return Architecture(tuple(Layer(int(rng.choice(space.widths)), int(rng.integers(0, 6))) for _ in range(depth)))


def latency_part(args, data, tables: dict[str, LatencyTable], raw: dict) -> str:
    rng = np.random.default_rng(args.seed)
    names = ["mlp" if i % 3 == 2 else "conv" for i in range(args.archs)]  # two conv for each mlp
    archs = [(name, random_arch(rng, get_space(name))) for name in names]
    rows = [("| target | architectures | latency R^2 | worst latency error | median abs. latency error "
             "| R^2 without load scaling | measured range (ms) | worst byte error | table entries |"),
            "|---|---|---|---|---|---|---|---|---|"]
    for name in TARGETS:
        target = get_target(name)
        points, paths = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (space_name, arch) in enumerate(archs):
                space = get_space(space_name)
                model = build_model(space, arch, data.input_shape, data.num_classes)
                randomise_batchnorm(model, rng)
                path = target.export(model, space, arch, Path(tmp) / f"m{i}.tflite", data.x_train)
                paths.append(path)
                predicted = tables[name].predict(arch, space, data.input_shape, data.num_classes)
                size = path.stat().st_size
                predicted_bytes = target.predict_bytes(arch, space, data.input_shape, data.num_classes)
                points.append({"space": space_name, "arch": arch.to_string(), "passes_ms": [],
                               "predicted_ms": predicted, "bytes": size, "predicted_bytes": predicted_bytes})
            # Other jobs load the CPU for minutes at a time: time every file in PASSES passes, and scale the
            # table's prediction (at its reference load) to the load of each timing (``predict(now=True)``).
            for _ in range(PASSES):
                for point, path in zip(points, paths):
                    speed = tables[name].speed() / tables[name].reference_ms
                    point["passes_ms"].append(measure_latency(target, path, data.x_test, repeats=args.repeats,
                                                              batch=1).single_ms)
                    point.setdefault("predicted_now_ms", []).append(point["predicted_ms"] * speed)
        for point in points:
            point["measured_ms"] = float(np.median(point["passes_ms"]))
            point["predicted_now_ms"] = float(np.median(point["predicted_now_ms"]))
            log(f"{name} {point['space']} {point['arch']:32s} measured {point['measured_ms']:.4f} ms predicted "
                f"{point['predicted_ms']:.4f} ms  bytes {point['bytes']} predicted {point['predicted_bytes']}")
        m = np.array([p["measured_ms"] for p in points])
        nominal = np.array([p["predicted_ms"] for p in points])
        p = np.array([p["predicted_now_ms"] for p in points])
        r2 = 1.0 - np.sum((m - p) ** 2) / np.sum((m - m.mean()) ** 2)
        r2_nominal = 1.0 - np.sum((m - nominal) ** 2) / np.sum((m - m.mean()) ** 2)
        rel = (p - m) / m
        worst = int(np.argmax(np.abs(rel)))
        byte_err = [(q["predicted_bytes"] - q["bytes"]) / q["bytes"] for q in points]
        wb = int(np.argmax(np.abs(byte_err)))
        raw.setdefault("latency", {})[name] = {"r2": r2, "r2_unscaled": r2_nominal, "points": points}
        rows.append(f"| {name} | {len(points)} ({sum(q['space'] == 'conv' for q in points)} conv) | {r2:.3f} "
                    f"| {100 * rel[worst]:+.0f}% ({p[worst]:.3f} vs {m[worst]:.3f} ms, {points[worst]['space']} "
                    f"`{points[worst]['arch']}`) | {1000 * np.median(np.abs(p - m)):.0f} us | {r2_nominal:.3f} "
                    f"| {m.min():.3f}-{m.max():.3f} | {100 * byte_err[wb]:+.1f}% "
                    f"({points[wb]['predicted_bytes'] - points[wb]['bytes']:+,} B) | {len(tables[name].entries)} |")
        log(rows[-1])
    return "\n".join(rows)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--parts", default="types,latency", help="types, latency, or none (re-render BENCHMARKS.md)")
    parser.add_argument("--max_epochs", type=int, default=2)
    parser.add_argument("--archs", type=int, default=21, help="random architectures per target (latency part)")
    parser.add_argument("--repeats", type=int, default=100, help="timed runs per latency (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default=str(ROOT / "cache"))
    parser.add_argument("--no_write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    data = load_dataset(data_path=args.data, seed=0)
    tables = {name: LatencyTable(get_target(name), Path(args.cache_dir), repeats=args.repeats) for name in TARGETS}
    raw: dict = {"machine": machine_id(), "cpu": platform.processor() or platform.machine(), "load": os.getloadavg()}
    parts = args.parts.split(",")
    out = ROOT / "runs" / "bench_targets.json"
    saved = json.loads(out.read_text()) if out.exists() else {}  # a part not run keeps its last tables
    started = time.time()
    if "types" in parts:
        raw["types_md"] = types_part(args, data, tables, raw)
        raw["types_header"] = {"max_epochs": args.max_epochs, "load": raw["load"], "repeats": args.repeats}
    if "latency" in parts:
        raw["latency_md"] = latency_part(args, data, tables, raw)
        raw["latency_header"] = {"archs": args.archs, "load": raw["load"], "repeats": args.repeats}
    raw["seconds"] = time.time() - started
    merged = {**saved, **raw}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1, default=float))
    log(f"done in {raw['seconds'] / 60:.1f} min; raw numbers in {out}")
    if not args.no_write:
        write_section("targets", render(merged))
    return 0


def render(raw: dict) -> str:
    cmd = shlex.join(["nice", "python", "bench/bench_targets.py", "--data", "../shared/data/mnist-10k.npz"])
    text = [SECTION_HEAD.format(cmd=cmd)]
    if raw.get("types_md"):
        head = raw["types_header"]
        text += [TYPES_HEAD.format(cmd=f"{cmd} --parts types --max_epochs {head['max_epochs']}",
                                   load=", ".join(f"{v:.1f}" for v in head["load"]), repeats=head["repeats"],
                                   epochs=head["max_epochs"]), raw["types_md"], TYPES_NOTES]
    if raw.get("latency_md"):
        head = raw["latency_header"]
        text += [LATENCY_HEAD.format(cmd=f"{cmd} --parts latency --archs {head['archs']}",
                                     load=", ".join(f"{v:.1f}" for v in head["load"]), repeats=head["repeats"]),
                 raw["latency_md"], LATENCY_NOTES]
    return "\n\n".join(text)


SECTION_HEAD = """## Deployment targets: real bytes, agreement with Keras, latency

`{cmd}` (both parts; raw numbers in `runs/bench_targets.json`, the per-layer latency table cached in
`cache/latency/`). Latencies are medians of single-image runs with one thread (the LCE interpreter for
`lce`, TFLite's built-in kernels without XNNPACK for `tflite_int8`) on this project's 2-core CPU,
shared with other jobs: compare them within one table only."""

TYPES_HEAD = """### Every type on every target

`{cmd}` (load average {load} at the start; {repeats} timed runs a latency)

Each reference architecture (conv `32 T 64 T 64 T 64 T`, mlp `256 T 256 T`) trained for {epochs}
epochs by `train_arc`'s trainer (no export), then exported from the same Keras model with each target.
Agreement is top-1 on all 2000 test images; predicted latencies are scaled to the load of the moment
(see the next table). "(!)" marks a file outside 5% or 2 KiB of its prediction."""

TYPES_NOTES = """* `lce` bit-packs binary layers after the first (the first layer's inputs are pixels, not signs: it
  runs int8); ternary, int2, int4 and int8 run as int8 and float32 as float32.
* `tflite_int8` runs everything as int8 (float32 layers and the classifier quantized after training from
  ranges on 512 training images), so every type costs the same bytes there.
* The bits column is the old theoretical count, which no file reaches except float32 (and, on `lce`,
  binary convolutions)."""

LATENCY_HEAD = """### The per-layer latency table against measurements

`{cmd}` (load average {load} at the start; {repeats} timed runs a latency)

Random architectures of both spaces and every type (untrained weights), exported with each target;
the prediction is the sum of the table's per-layer entries (one layer plus the classifier, minus the
classifier alone on that layer's output) and the classifier's entry. Other jobs change this CPU's speed
by tens of percent from minute to minute: every table entry is scaled to the table's reference load by
a fixed reference network timed just before it, and every prediction back to the load of the moment by
the same network timed just before each measurement (`LatencyTable.predict(..., now=True)`); measured
values are medians of three passes over all files. The unscaled R^2 compares the table's predictions at
its reference load with these measurements as they are."""

LATENCY_NOTES = """* The worst byte error is the byte model's on the same files. Its constants were fitted on other
  random architectures by `nice python bench/fit_target_bytes.py --n 150 --seed 0 --targets lce` (and
  `--n 40 --targets tflite_int8`); `nice python bench/fit_target_bytes.py --n 40 --seed 1 --check` found
  worst errors of +618 B (+1.4%) for `lce` and -170 B (worst relative -2.5%) for `tflite_int8` over 40
  more architectures each.
* Single images take 0.004-0.8 ms here, so a few microseconds of timer and interpreter overhead are
  tens of percent of the smallest networks: the worst relative errors are on them."""


if __name__ == "__main__":
    raise SystemExit(main())
