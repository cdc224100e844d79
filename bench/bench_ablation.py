"""Reward-weight ablations: what do the similarity and size terms buy in retrained test accuracy and size?

    python bench/bench_ablation.py [--runs runs/bench/strategies] [--seeds 0,1,2,3,4] [--retrain_epochs 30]

Random search proposes the same architectures whatever the reward, so one search per seed serves every
weight setting exactly: the random strategy's evaluated children of a ``bench_strategies.py`` run are
ranked by the reward under each setting (from the terms recorded in ``evaluations.jsonl``), the ten best
are re-scored on the whole validation split with the run's trained shared weights, the best of those is
the pick (the search's own final step), and the pick is retrained with ``train_arc`` and tested once.
The default weights' picks are also retrained without ``--distill`` (distillation on/off at equal size).
With ``--runs_other DIR`` (runs made with other supernet settings, e.g. ``-- --distill 0``) the default
weights' picks of both sets are compared as well.

Writes the ``ablation`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import math
import shlex
from pathlib import Path

from common import DEFAULT_DATA, ROOT, interval, log, write_section
from picks import retrain_pick, without

from enas.search import Search, SearchConfig, read_rows
from qnas.arch import parse_arch
from qnas.checkpoints import restore_newest_readable
from qnas.data import load_dataset
from qnas.objective import Objective, ObjectiveWeights
from qnas.parent import get_parent
from qnas.spaces import get_space

SETTINGS = ("1,0,0.5", "1,0.05,0.5", "1,0.2,0.5", "1,1,0.5", "1,0.05,0.25", "1,0.05,1")
DEFAULT = "1,0.05,0.5"  # the search's reward weights, which the other settings are compared with


def restore(run: Path, data_path: str) -> Search:
    """The Search of a finished run (its trained supernet), from its last checkpoint."""
    saved = json.loads((run / "config.json").read_text())
    spec = saved.pop("run")
    config = SearchConfig(**{**saved, "reward": ObjectiveWeights.parse(saved["reward"])})
    space = get_space(spec["space"]).with_options(num_layers=spec["num_layers"], widths=tuple(spec["widths"]),
                                                  types=tuple(spec["types"]))
    data = load_dataset(data_path=data_path, seed=config.seed)
    parent = get_parent(space, data, seed=config.seed, cache_dir=str(run.parent / "cache"), log=log)
    search = Search(space, data, parent, config, run, log=log)
    if restore_newest_readable(search.checkpoint, run / "checkpoints", log) is None:  # weights only: the run's files
        raise SystemExit(f"no checkpoint in {run}")                                      # stay as they are
    return search


def pick(search: Search, rows: list[dict], weights: ObjectiveWeights, candidates: int = 10) -> str:
    """The search's final step under ``weights``: the best ``candidates`` by recorded reward, re-scored on all of val
    as the search scores its finalists (``Search.final_terms``: trained alone first, unless ``finalist_steps`` is 0)."""
    best: dict[str, float] = {}
    for r in rows:
        best[r["arch"]] = max(best.get(r["arch"], -math.inf), float(weights.score(r["acc"], r["sim"], r["size_ratio"])))
    ranked = sorted(best, key=best.get, reverse=True)[:candidates]
    objective = Objective(weights)
    scored = []
    for text in ranked:
        t = search.final_terms(parse_arch(text))
        scored.append((objective.terms(t["acc"], t["sim"], t["size_ratio"], t["kib"])["reward"], text))
    return max(scored)[1]


def against_default(runs: list[dict], default: list[dict] | None) -> str:
    """Mean test accuracy (points) and bytes (ratio) against the default weights' picks of the same seeds."""
    if not default:
        return ""
    points = 100 * (sum(r["test"] for r in runs) / len(runs) - sum(r["test"] for r in default) / len(default))
    ratio = sum(r["bytes"] for r in runs) / len(runs) / (sum(r["bytes"] for r in default) / len(default))
    return f"{points:+.2f} points, {ratio:.2f}x bytes"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench" / "strategies"))
    p.add_argument("--runs_other", help="runs with other supernet settings, for their default-weight picks")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--retrain_epochs", type=int, default=30)
    p.add_argument("--settings", default=";".join(SETTINGS))
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(";")
    results: dict[str, list[dict]] = {s: [] for s in settings}
    other: list[dict] = []
    undistilled: list[dict] = []  # the default weights' picks retrained without --distill
    per_seed = []
    for seed in seeds:
        for folder, is_other in ((Path(args.runs), False), *(((Path(args.runs_other), True),) if args.runs_other else ())):
            run = folder / f"seed{seed}"
            cache = run / "ablation.json"
            picks = json.loads(cache.read_text()) if cache.exists() else {}
            wanted = [DEFAULT] if is_other else settings
            missing = [s for s in wanted if s not in picks]
            if missing:
                search = restore(run, args.data)
                rows = [r for r in read_rows(run / "evaluations.jsonl")
                        if r["strategy"] == "random" and r["phase"] == "controller"]
                for s in missing:
                    picks[s] = pick(search, rows, ObjectiveWeights.parse(s))
                cache.write_text(json.dumps(picks))
            command = shlex.split(json.loads((run / "result.json").read_text())["retrain_command"])[2:]
            for s in wanted:
                arch = picks[s]
                r = retrain_pick(command, arch, seed, folder / "retrain", args.retrain_epochs)
                (other if is_other else results[s]).append(r)
                per_seed.append(f"| {seed} | {'other supernet: ' if is_other else ''}{s} | `{arch}` | "
                                f"{r['test']:.4f} | {r['bytes']:,} |")
                log(per_seed[-1])
                if s == DEFAULT and not is_other:
                    plain = retrain_pick(without(command, "--distill"), arch, seed, folder / "retrain-no-distill",
                                         args.retrain_epochs)
                    undistilled.append(plain)
                    per_seed.append(f"| {seed} | {s}, retrained without `--distill` | `{arch}` | "
                                    f"{plain['test']:.4f} | {plain['bytes']:,} |")
    means = [f"| {s} | {interval([r['test'] for r in v])} | {interval([r['bytes'] for r in v], ',.0f')} | "
             f"{against_default(v, results.get(DEFAULT))} |" for s, v in results.items()]
    if undistilled:
        gain = [100 * (d["test"] - u["test"]) for d, u in zip(results[DEFAULT], undistilled)]
        means.append(f"| {DEFAULT}, retrained without `--distill` | {interval([r['test'] for r in undistilled])} | "
                     f"{interval([r['bytes'] for r in undistilled], ',.0f')} | "
                     f"{against_default(undistilled, results[DEFAULT])} (paired: `--distill` adds "
                     f"{interval(gain, '+.2f')} points) |")
    if other:
        means.append(f"| {DEFAULT} on the `--runs_other` supernets | {interval([r['test'] for r in other])} | "
                     f"{interval([r['bytes'] for r in other], ',.0f')} | {against_default(other, results.get(DEFAULT))} |")
    write_section("ablation", f"""## Reward-weight ablation: what the similarity and size terms buy

`python bench/bench_ablation.py --runs {Path(args.runs).relative_to(ROOT) if Path(args.runs).is_relative_to(ROOT)
                                        else args.runs} --seeds {args.seeds} --retrain_epochs {args.retrain_epochs}\
{' --settings "' + args.settings + '"' if args.settings != ";".join(SETTINGS) else ''}\
{' --runs_other ' + args.runs_other if args.runs_other else ''}`

For each seed, the random strategy's children of that seed's `bench_strategies.py` search (whose proposals do not
depend on the reward) are ranked under each weight setting `w_acc,w_sim,w_size`; the ten best are re-scored on the
whole validation split with the run's shared weights and the best is retrained with the run's printed `train_arc.py`
command (`--max_epochs {args.retrain_epochs}`, digits shifted: `--augment`, the default). Means over {len(seeds)}
seeds with 95% intervals. "Bytes": the deployment target's predicted model.tflite. The last column compares
the means with those of the default weights `{DEFAULT}`. Distillation on/off: the default weights' picks are also
retrained with the printed command less `--distill` (labels only, no soft targets from the float parent), and the
paired difference is the gain of `--distill` at equal size (same architecture, same seed).

| weights w_acc,w_sim,w_size | test acc after train_arc | bytes | against the default |
|---|---|---|---|
{chr(10).join(means)}

| seed | weights | pick | test acc | bytes |
|---|---|---|---|---|
{chr(10).join(per_seed)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
