"""Controller vs random search on the same supernet, the same minibatches and the same number of evaluations.

    python bench/bench_strategies.py [--seeds 0,1,2] [--epochs 10] [--retrain_epochs 15]

Each seed runs one search with ``--strategy controller,random``: the shared weights are trained once
and both strategies score the same number of children on the same validation minibatches. Reported
per seed and strategy: the best reward any evaluated child reached, and the test accuracy and size
of each strategy's pick after ``train_arc``. Writes the ``strategies`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, ROOT, log, write_section

import search_arc_mnist
import train_arc

STRATEGIES = ("controller", "random")


def best_reward(run_dir: Path, strategy: str) -> float:
    rows = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    return max(r["reward"] for r in rows if r["strategy"] == strategy and r["phase"] == "controller")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--retrain_epochs", type=int, default=15)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "strategies"))
    args = p.parse_args()
    out, cache = Path(args.out), str(Path(args.out) / "cache")
    rows, summary = [], {s: {"reward": [], "test": [], "kib": []} for s in STRATEGIES}
    for seed in (int(s) for s in args.seeds.split(",")):
        run = out / f"seed{seed}"
        argv = ["--data", args.data, "--seed", str(seed), "--epochs", str(args.epochs), "--strategy",
                ",".join(STRATEGIES), "--output_dir", str(run), "--cache_dir", cache]
        if not (run / "result.json").exists():
            rc = search_arc_mnist.main(argv + (["--resume"] if (run / "config.json").exists() else []))
            if rc:
                return rc
        result = json.loads((run / "result.json").read_text())
        for strategy in STRATEGIES:
            arch = result["strategies"][strategy]["best_arch"]
            train_dir = out / f"seed{seed}-{strategy}-train"
            if not (train_dir / "result.json").exists():
                rc = train_arc.main(["-fixed_arc", arch, "--space", "conv", "--data", args.data, "--seed", str(seed),
                                     "--max_epochs", str(args.retrain_epochs), "--output_dir", str(train_dir),
                                     "--cache_dir", cache, "--no_tflite",
                                     *(["--resume"] if (train_dir / "run_config.json").exists() else [])])
                if rc:
                    return rc
            trained = json.loads((train_dir / "result.json").read_text())
            reward = best_reward(run, strategy)
            test, kib = trained["metrics"]["test_accuracy"], trained["size"]["kib"]
            for key, value in (("reward", reward), ("test", test), ("kib", kib)):
                summary[strategy][key].append(value)
            rows.append(f"| {seed} | {strategy} | {reward:.4f} | `{arch}` | {test:.4f} | {kib:.2f} |")
            log(rows[-1])
    means = [f"| mean | {s} | {np.mean(v['reward']):.4f} ± {np.std(v['reward']):.4f} | | "
             f"{np.mean(v['test']):.4f} ± {np.std(v['test']):.4f} | {np.mean(v['kib']):.2f} |"
             for s, v in summary.items()]
    write_section("strategies", f"""## Controller vs random search (same supernet, same evaluations)

`python bench/bench_strategies.py --seeds {args.seeds} --epochs {args.epochs} --retrain_epochs {args.retrain_epochs}`:
conv space, default reward, {args.epochs} search epochs, each strategy scoring 5 x 10 children per epoch on the
same validation minibatches of the same supernet (`--strategy controller,random`). "best reward" is the highest
reward among the children each strategy scored; its pick (after the final full-validation round) is then
retrained with `train_arc.py --max_epochs {args.retrain_epochs}` and tested once. mnist-10k.

| seed | strategy | best reward found | pick | test acc after train_arc | KiB |
|---|---|---|---|---|---|
{chr(10).join(rows)}
{chr(10).join(means)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
