"""Micro and conv searches on MNIST and CIFAR subsets, each followed by the retrain it prints, against float baselines.

    python bench/bench_micro.py search --space micro --data ../shared/data/mnist-10k.npz
    python bench/bench_micro.py search --space micro --data ../shared/data/cifar10-12k.npz
    python bench/bench_micro.py baseline --space conv --arch "32 0 64 0 128 0" --data ../shared/data/cifar10-12k.npz

``search`` runs ``search_arc_mnist.py`` with the given flags (default settings otherwise), then the
``train_arc.py`` command it printed, unchanged but for the output folder; ``baseline`` runs
``train_arc.py`` on one architecture. Every row records wall minutes, test accuracy, theoretical KiB
and the real bytes of the TFLite file Larq Compute Engine writes. Rows accumulate in
``runs/bench/micro/rows.json`` (one run per call, so the long runs can be spread out) and the
``micro`` section of BENCHMARKS.md is rewritten from all of them.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import shlex
import time
from pathlib import Path

from common import ROOT, log, write_section

import search_arc_mnist
import train_arc

OUT = ROOT / "runs" / "bench" / "micro"


def _retrain(argv: list[str], out: Path) -> dict:
    if (out / "result.json").exists():
        return json.loads((out / "result.json").read_text())
    rc = train_arc.main([*argv, "--output_dir", str(out), *(["--resume"] if (out / "run_config.json").exists() else [])])
    if rc:
        raise SystemExit(rc)
    return json.loads((out / "result.json").read_text())


def run_search(args: argparse.Namespace, extra: list[str]) -> dict:
    name = f"{args.space}-{Path(args.data).stem}-seed{args.seed}{args.tag}"
    search_dir = OUT / name / "search"
    flags = ["--space", args.space, "--data", args.data, "--seed", str(args.seed), *extra]
    start = time.time()
    if not (search_dir / "result.json").exists():
        rc = search_arc_mnist.main([*flags, "--output_dir", str(search_dir), "--cache_dir", str(OUT / "cache"),
                                    *(["--resume"] if (search_dir / "config.json").exists() else [])])
        if rc:
            raise SystemExit(rc)
    search_minutes = (time.time() - start) / 60
    found = json.loads((search_dir / "result.json").read_text())
    printed = shlex.split(found["retrain_command"])
    t0 = time.time()
    trained = _retrain([*printed[2:], "--cache_dir", str(OUT / "cache")], OUT / name / "train_arc")
    return {"kind": "search", "space": args.space, "data": Path(args.data).name, "seed": args.seed,
            "command": shlex.join(["python", "search_arc_mnist.py", *flags]),
            "retrain_command": found["retrain_command"], "arch": found["best_arch"],
            "shared_val_acc": found["best"]["acc"], "search_minutes": round(search_minutes, 1),
            "search_loop_minutes": found["minutes"], "train_minutes": round((time.time() - t0) / 60, 1),
            **_metrics(trained)}


def run_baseline(args: argparse.Namespace, extra: list[str]) -> dict:
    argv = ["-fixed_arc", args.arch, "--space", args.space, "--data", args.data, "--seed", str(args.seed), *extra]
    name = f"baseline-{args.space}-{'_'.join(args.arch.split())[:60]}-{Path(args.data).stem}{args.tag}"
    t0 = time.time()
    trained = _retrain(argv, OUT / name)
    return {"kind": "baseline", "space": args.space, "data": Path(args.data).name, "seed": args.seed,
            "command": shlex.join(["python", "train_arc.py", *argv]), "arch": args.arch,
            "train_minutes": round((time.time() - t0) / 60, 1), **_metrics(trained)}


def _metrics(trained: dict) -> dict:
    return {"test_acc": trained["metrics"]["test_accuracy"], "epochs": trained["metrics"]["epochs_run"],
            "kib": trained["size"]["kib"], "tflite_bytes": trained["tflite"].get("bytes"),
            "readable": trained["readable"]}


def write_table(rows: list[dict]) -> None:
    header = ("| data | kind | space | architecture | search min | shared-weight val acc | retrain min (epochs) "
              "| test acc | theoretical KiB | real TFLite bytes | command |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data"], r["kind"] != "baseline", r["space"])):
        search = f"{r['search_minutes']:.1f}" if r["kind"] == "search" else "-"
        val = f"{r['shared_val_acc']:.4f}" if r["kind"] == "search" else "-"
        command = r["command"] + (f"; then `{r['retrain_command']}`" if r["kind"] == "search" else "")
        lines.append(f"| {r['data']} | {r['kind']} | {r['space']} | `{r['arch']}` | {search} | {val} | "
                     f"{r['train_minutes']:.1f} ({r['epochs']}) | {r['test_acc']:.4f} | {r['kib']:.1f} | "
                     f"{r['tflite_bytes'] if r['tflite_bytes'] is not None else 'n/a'} | `{command}` |")
    notes = [f"* `{r['arch']}` ({r['data']}): {r['note']}" for r in rows if r.get("note")]
    write_section("micro", "## Micro cells and colour images: searches against float baselines\n\n"
                  "`python bench/bench_micro.py {search,baseline} ...` (one row per call; rows in "
                  "`runs/bench/micro/rows.json`). Wall minutes on the 2 shared CPU cores; \"search min\" includes "
                  "training the float parent when it was not cached. Real bytes: the `model.tflite` that Larq "
                  "Compute Engine 0.16 writes.\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("search", "baseline", "table"))
    p.add_argument("--space", default="micro")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k.npz"))
    p.add_argument("--arch", help="the architecture of a baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the output folder, to keep variants apart")
    args, extra = p.parse_known_args()
    rows_path = OUT / "rows.json"
    if args.what != "table":
        row = run_search(args, extra) if args.what == "search" else run_baseline(args, extra)
        log(json.dumps(row))
        rows = json.loads(rows_path.read_text()) if rows_path.exists() else []  # read now: runs take long
        rows = [r for r in rows if r["command"] != row["command"]] + [row]
        OUT.mkdir(parents=True, exist_ok=True)
        rows_path.write_text(json.dumps(rows, indent=2) + "\n")
    write_table(json.loads(rows_path.read_text()) if rows_path.exists() else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
