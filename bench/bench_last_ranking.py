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
import shlex
import shutil
from pathlib import Path

from common import DEFAULT_DATA, ROOT, interval, log, project_relative, write_section
from picks import search_once, train_once


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "last_ranking"))
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = str(Path(args.out) / "cache")
    rows, acc, size = [], {"alone": [], "plain": []}, {"alone": [], "plain": []}
    same = 0
    for seed in seeds:
        alone_dir, plain_dir = Path(args.out) / f"seed{seed}" / "alone", Path(args.out) / f"seed{seed}" / "plain"
        argv = ["--data", args.data, "--seed", str(seed), "--cache_dir", cache]
        found = {"alone": search_once(argv, alone_dir)}
        if not (plain_dir / "config.json").exists():  # the same finished search, ranked again
            shutil.copytree(alone_dir, plain_dir, ignore=shutil.ignore_patterns("result.json", "summary.*"))
        found["plain"] = search_once([*argv, "--finalist_steps", "0"], plain_dir)  # resumed: config.json is there
        same += found["alone"]["best_arch"] == found["plain"]["best_arch"]
        for way in ("alone", "plain"):
            pick = found[way]["best_arch"]
            # one folder per (architecture, seed): an architecture both rankings pick is trained once
            trained = train_once([*shlex.split(found[way]["retrain_command"])[2:], "--cache_dir", cache],
                                 Path(args.out) / "retrain" / f"{pick.replace(' ', '_')}-seed{seed}")
            acc[way].append(trained["metrics"]["test_accuracy"])
            size[way].append(trained["deploy"]["bytes"] or trained["deploy"]["predicted_bytes"])
            rows.append(f"| {seed} | {way} | `{pick}` | {found[way]['best']['acc']:.4f} | "
                        f"{acc[way][-1]:.4f} | {size[way][-1]:,} |")
            log(rows[-1])
    diff = [a - b for a, b in zip(acc["alone"], acc["plain"])]
    ratio = [a / b for a, b in zip(size["alone"], size["plain"])]
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
