"""The search's last ranking: finalists trained alone before scoring (the default) against the shared weights as they are.

    python bench/bench_last_ranking.py [--seeds 0,1,2,3,4] [--data PATH]

Per seed: the default search (``search_arc_mnist.py --data PATH --seed S``, finalists trained 200 minibatches
alone), then the same finished search copied and resumed with ``--finalist_steps 0``, which ranks the same
finalists on the same shared weights as they are (nothing before the last ranking differs). Each pick is retrained
with the command the search printed (an architecture both pick is trained once). Reports each pick's retrained test
accuracy and file bytes, means with 95% intervals and the paired difference. Writes the ``last-ranking`` section.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import shlex
import shutil
from pathlib import Path

from common import DEFAULT_DATA, ROOT, interval, log, project_relative, write_section

import search_arc_mnist
import train_arc


def search(seed: int, folder: Path, args: argparse.Namespace, *extra: str) -> dict:
    """A finished search's result.json (run, or resumed, only when missing)."""
    if not (folder / "result.json").exists():
        resume = ["--resume"] if (folder / "config.json").exists() else []
        rc = search_arc_mnist.main(["--data", args.data, "--seed", str(seed), "--output_dir", str(folder),
                                    "--cache_dir", str(Path(args.out) / "cache"), *resume, *extra])
        if rc:
            raise SystemExit(rc)
    return json.loads((folder / "result.json").read_text())


def retrain(found: dict, args: argparse.Namespace) -> dict:
    """The printed command's result.json, one folder per (architecture, seed) shared by both rankings."""
    printed = shlex.split(found["retrain_command"])
    folder = Path(args.out) / "retrain" / f"{found['best_arch'].replace(' ', '_')}-seed{found['seed']}"
    if not (folder / "result.json").exists():
        resume = ["--resume"] if (folder / "run_config.json").exists() else []
        rc = train_arc.main([*printed[2:], "--output_dir", str(folder), "--cache_dir", str(Path(args.out) / "cache"),
                             *resume])
        if rc:
            raise SystemExit(rc)
    return json.loads((folder / "result.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "last_ranking"))
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, acc, size = [], {"alone": [], "plain": []}, {"alone": [], "plain": []}
    for seed in seeds:
        alone_dir, plain_dir = Path(args.out) / f"seed{seed}" / "alone", Path(args.out) / f"seed{seed}" / "plain"
        found = {"alone": search(seed, alone_dir, args)}
        if not (plain_dir / "config.json").exists():  # the same finished search, ranked again
            shutil.copytree(alone_dir, plain_dir, ignore=shutil.ignore_patterns("result.json", "summary.*"))
        found["plain"] = search(seed, plain_dir, args, "--resume", "--finalist_steps", "0")
        for way in ("alone", "plain"):
            trained = retrain(found[way], args)
            acc[way].append(trained["metrics"]["test_accuracy"])
            size[way].append(trained["deploy"]["bytes"] or trained["deploy"]["predicted_bytes"])
            rows.append(f"| {seed} | {way} | `{found[way]['best_arch']}` | {found[way]['best']['acc']:.4f} | "
                        f"{acc[way][-1]:.4f} | {size[way][-1]:,} |")
            log(rows[-1])
    diff = [a - b for a, b in zip(acc["alone"], acc["plain"])]
    ratio = [a / b for a, b in zip(size["alone"], size["plain"])]
    same = sum(r.split("`")[1] == q.split("`")[1] for r, q in zip(rows[::2], rows[1::2]))
    write_section("last-ranking", f"""## The search's last ranking: finalists trained alone, or scored as they are

`python bench/bench_last_ranking.py --seeds {args.seeds}`

Per seed, the default search (`python search_arc_mnist.py --data {project_relative(args.data)} --seed S`, lce target;
"alone": its finalists each train 200 minibatches alone from the shared weights before the last ranking), and the
same finished search resumed with `--finalist_steps 0` ("plain": the same finalists scored on the shared weights as
they are, the ranking before 2026-11-22). Each pick retrained with the printed `train_arc.py` command; bytes are its
model.tflite's. "Ranked val acc" is what the last ranking scored the pick with.

| seed | last ranking | pick | ranked val acc | test acc | file bytes |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Means over {len(seeds)} seeds, 95% intervals: alone {interval(acc['alone'])} test at {interval(size['alone'], ',.0f')}
bytes; plain {interval(acc['plain'])} at {interval(size['plain'], ',.0f')} bytes. Paired, alone - plain:
{interval([100 * d for d in diff], '+.2f')} points at {interval(ratio, '.2f')}x the bytes; the two rankings pick the
same architecture in {same} of {len(seeds)} seeds.
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
