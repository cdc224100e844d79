"""End to end: the default search, then ``train_arc`` on its winner exactly as the search prints it, per target.

    python bench/bench_end_to_end.py [--data PATH] [--seed 0] [--targets lce,tflite_int8]

For each deployment target: ``search_arc_mnist.py --data PATH --target T`` with every other setting at its
default, then the printed ``train_arc.py`` command, unchanged. Reports the winner, the accuracy the search ranked it
with, the bytes the search predicted against those of the ``model.tflite`` train_arc wrote, the file's top-1
agreement with Keras and its own test accuracy, and the wall minutes of each step. Runs are cached in ``--out``
(a finished step is not run again). Writes the ``end_to_end`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from common import DEFAULT_DATA, ROOT, log, project_relative, write_section
from picks import search_once, train_once


def run_target(target: str, args: argparse.Namespace) -> dict:
    """Search with ``--target target``, then the printed retrain command; both cached in ``--out``, timed when run."""
    out = Path(args.out) / f"{target}-seed{args.seed}"
    cache = str(Path(args.out) / "cache")
    minutes_path = out / "minutes.json"
    minutes = json.loads(minutes_path.read_text()) if minutes_path.exists() else {}

    def timed(step: str, run: Callable[[], dict]) -> dict:
        start = time.time()
        record = run()
        if step not in minutes:  # the first (cached) run's wall time
            minutes[step] = (time.time() - start) / 60
            minutes_path.write_text(json.dumps(minutes))
        return record

    found = timed("search", lambda: search_once(["--data", args.data, "--seed", str(args.seed), "--target", target,
                                                  "--cache_dir", cache], out / "search"))
    printed = shlex.split(found["retrain_command"])
    assert printed[:2] == ["python", "train_arc.py"], printed
    trained = timed("train_arc", lambda: train_once([*printed[2:], "--cache_dir", cache], out / "train_arc"))
    return {"found": found, "trained": trained, "minutes": minutes, "command": found["retrain_command"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default="lce,tflite_int8")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "end_to_end"))
    args = p.parse_args()
    rows, commands = [], []
    for target in args.targets.split(","):
        r = run_target(target, args)
        found, deploy, metrics = r["found"], r["trained"]["deploy"], r["trained"]["metrics"]
        agreement = deploy.get("top1_agreement")
        file_acc = deploy.get("test_accuracy")
        rows.append(f"| {target} | `{found['best_arch']}` ({found['best_readable']}) | {found['best']['acc']:.4f} | "
                    f"{round(found['best']['kib'] * 1024):,} | {deploy.get('bytes') or 0:,} | "
                    f"{'-' if agreement is None else f'{100 * agreement:.2f}%'} | **{metrics['test_accuracy']:.4f}** | "
                    f"{'-' if file_acc is None else f'{file_acc:.4f}'} | {r['minutes'].get('search', 0):.1f} | "
                    f"{r['minutes'].get('train_arc', 0):.1f} |")
        log(rows[-1])
        data = project_relative(args.data)
        commands.append(f"`python search_arc_mnist.py --data {data} --target {target} --seed {args.seed}`, then\n"
                        f"`{r['command'].replace(args.data, data)}`")
    write_section("end_to_end", f"""## End to end: default search, then train_arc on the winner, per deployment target

`python bench/bench_end_to_end.py --seed {args.seed} --targets {args.targets}`

The search with every setting at its default but `--target` (conv space, 4 layers, 20 epochs, controller
strategy, its finalists each trained 200 minibatches alone before the last ranking), then the `train_arc.py`
command it printed, unchanged. Data: mnist-10k (7,200 train / 800 val / 2,000 test). "Ranked val acc" is the
winner's validation accuracy in the search's last ranking; "file bytes" is the `model.tflite` train_arc wrote,
"predicted" what the search priced it at; agreement is the file's top-1 against Keras on all 2,000 test images,
and "file acc" the file's own test accuracy. Wall minutes on the 2 shared cores; the search's minutes include
training the float parent the first time (cached in `--out` after that).

| target | winner | ranked val acc | predicted bytes | file bytes | agreement | test acc | file acc | search min | train_arc min |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Commands:
{(";" + chr(10)).join(commands)}.

Earlier defaults, the same commands: with the finalists scored on the shared weights as they were
(`--finalist_steps 0`), the lce search picked `32 5 32 5 16 5 32 5` (98.75% test, 26,888 bytes) and the
tflite_int8 one `16 0 16 0 16 5 16 5` (97.90%, 13,144 bytes). Before deployment targets the default run picked
`32 2 64 3 16 3 64 4` (ternary, int2, int2, int4): 98.20% test, printed as 15.23 KiB, but its LCE file was 157,052
bytes (every non-binary layer ships as float32).
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
