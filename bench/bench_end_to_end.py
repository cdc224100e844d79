"""End to end: the default search, then ``train_arc`` on its winner, exactly as the search prints it.

    python bench/bench_end_to_end.py [--data PATH] [--seed 0]

Reports search minutes (the 20-minute budget of the default search), the winner, its test accuracy
after retraining, its size and bits ratio to the float parent, and total minutes. Writes the
``end_to_end`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import shlex
import time
from pathlib import Path

from common import DEFAULT_DATA, ROOT, log, write_section

import search_arc_mnist
import train_arc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "end_to_end"))
    args = p.parse_args()
    out = Path(args.out) / f"seed{args.seed}"
    search_dir = out / "search"
    start = time.time()
    rc = search_arc_mnist.main(["--data", args.data, "--seed", str(args.seed), "--output_dir", str(search_dir),
                                "--cache_dir", str(Path(args.out) / "cache"), "--plot",
                                *(["--resume"] if (search_dir / "config.json").exists() else [])])
    if rc:
        return rc
    search_minutes = (time.time() - start) / 60
    found = json.loads((search_dir / "result.json").read_text())
    printed = shlex.split(found["retrain_command"])
    assert printed[:2] == ["python", "train_arc.py"], printed
    train_dir = out / "train_arc"
    retrain = [*printed[2:], "--output_dir", str(train_dir), "--cache_dir", str(Path(args.out) / "cache")]
    t0 = time.time()
    rc = train_arc.main(retrain + (["--resume"] if (train_dir / "run_config.json").exists() else []))
    if rc:
        return rc
    train_minutes = (time.time() - t0) / 60
    trained = json.loads((train_dir / "result.json").read_text())
    size = trained["size"]
    row = (f"| {args.seed} | `{found['best_arch']}` ({found['best_readable']}) | {found['best']['acc']:.4f} | "
           f"{trained['metrics']['test_accuracy']:.4f} | {size['kib']:.2f} | {size['bits_ratio']:.4f} | "
           f"{search_minutes:.1f} | {train_minutes:.1f} | {search_minutes + train_minutes:.1f} |")
    log(row)
    write_section("end_to_end", f"""## End to end: default search, then train_arc on the winner

`python bench/bench_end_to_end.py --seed {args.seed}` runs `python search_arc_mnist.py --data {args.data}`
with every other setting at its default (conv space, 4 layers, 20 epochs, controller strategy), then the
`train_arc.py` command the search printed, unchanged. Data: mnist-10k (7200 train / 800 val / 2000 test).
Times are wall-clock minutes on this 2-core machine; "search min" includes training and caching the float
parent once (a fresh cache), as a first run does. The float parent's size is
{size['parent_bits'] / 8192:.1f} KiB (`{size.get('parent_arch', '')}`).

| seed | winner | shared-weight val acc | test acc after train_arc | KiB | bits ratio to parent | search min | train_arc min | total min |
|---|---|---|---|---|---|---|---|---|
{row}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
