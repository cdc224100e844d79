"""Controller knobs against a reward model fitted to a trained supernet: which settings make the policy learn?

    python bench/bench_controller.py [--supernet runs/bench/fidelity/supernets/distill-seed0] [--pool 400] \
        [--seeds 0,1,2,3,4]

A full search per knob setting costs 15-20 minutes here, so the knobs are compared on a model of the
search's reward instead, then the chosen ones are checked in real searches (``bench_strategies.py``):

1. ``--pool`` uniform architectures are scored with the trained shared weights of a ``bench_fidelity.py``
   supernet, as the search scores them (own BatchNorm statistics, a 256-image validation minibatch that
   changes every 10 architectures, the similarity term on the probe batch).
2. Accuracy and similarity are fitted by ridge regression on one-hot decisions plus each layer's
   width x type pair (R^2 on a held-out quarter is reported); the size term is exact.
3. A simulated search draws rewards from that model plus Gaussian noise of the residual's spread. Each knob
   setting runs the controller for the default budget of updates, on ``--seeds`` seeds, next to random search
   and regularized evolution on the same model: entropy fall, mean reward of the last quarter of the samples,
   and evaluations to reach random search's final best.

Writes the ``controller-knobs`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

import argparse
import json
import math
from pathlib import Path

import numpy as np
from bench_fidelity import VARIANTS
from common import DEFAULT_DATA, ROOT, log, write_section

from enas.search import Search, SearchConfig
from enas.strategies import make_strategy
from qnas.data import load_dataset
from qnas.objective import ObjectiveWeights
from qnas.parent import get_parent
from qnas.space import SearchSpace
from qnas.spaces import get_space

# (name, controller options, controller_steps, controller_batch); the first is ENAS's (the old default)
SETTINGS: list[tuple[str, dict, int, int]] = [
    ("ENAS defaults", {}, 5, 10),
    ("lr 1e-2", {"lr": 1e-2}, 5, 10),
    ("lr 3e-2", {"lr": 3e-2}, 5, 10),
    ("tanh 2.5", {"tanh_constant": 2.5}, 5, 10),
    ("tanh 5", {"tanh_constant": 5.0}, 5, 10),
    ("temperature 5, tanh 2.5", {"temperature": 5.0, "tanh_constant": 2.5}, 5, 10),
    ("10 x 5 per epoch", {}, 10, 5),
    ("25 x 2 per epoch", {}, 25, 2),
    ("baseline decay 0.9", {"baseline_decay": 0.9}, 5, 10),
    ("entropy 1e-3", {"entropy_weight": 1e-3}, 5, 10),
    ("lr 1e-2, tanh 2.5", {"lr": 1e-2, "tanh_constant": 2.5}, 5, 10),
    ("lr 1e-2, tanh 2.5, 10 x 5", {"lr": 1e-2, "tanh_constant": 2.5}, 10, 5),
    ("lr 3e-2, tanh 2.5, 10 x 5", {"lr": 3e-2, "tanh_constant": 2.5}, 10, 5),
    ("lr 1e-2, tanh 2.5, 10 x 5, decay 0.9", {"lr": 1e-2, "tanh_constant": 2.5, "baseline_decay": 0.9}, 10, 5),
    ("lr 1e-2, tanh 5, 10 x 5", {"lr": 1e-2, "tanh_constant": 5.0}, 10, 5),
    ("lr 1e-2, tanh 5, 5 x 10", {"lr": 1e-2, "tanh_constant": 5.0}, 5, 10),
    ("lr 3e-2, tanh 5, 10 x 5", {"lr": 3e-2, "tanh_constant": 5.0}, 10, 5),
    ("lr 3e-2, tanh 2.5, 25 x 2", {"lr": 3e-2, "tanh_constant": 2.5}, 25, 2),
    ("lr 1e-2, tanh 5, 25 x 2", {"lr": 1e-2, "tanh_constant": 5.0}, 25, 2),
]


def features(decisions: np.ndarray, sizes: list[int]) -> np.ndarray:
    """One-hot of every decision, plus one-hot of each layer's (width, type) pair."""
    cols = [np.eye(k)[decisions[:, i]] for i, k in enumerate(sizes)]
    for i in range(0, len(sizes), 2):
        pair = decisions[:, i] * sizes[i + 1] + decisions[:, i + 1]
        cols.append(np.eye(sizes[i] * sizes[i + 1])[pair])
    return np.concatenate([np.ones((len(decisions), 1)), *cols], axis=1)


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


class RewardModel:
    """Accuracy and similarity fitted to scored architectures; size exact; noise as measured."""

    def __init__(self, pool: list[dict], space: SearchSpace, data, weights: ObjectiveWeights):
        self.space, self.data, self.weights, self.sizes = space, data, weights, space.decision_sizes()
        d = np.array([r["decisions"] for r in pool])
        x = features(d, self.sizes)
        split = len(pool) * 3 // 4
        self.r2 = {}
        for key in ("acc", "sim"):
            y = np.array([r[key] for r in pool])
            coef = ridge(x[:split], y[:split])
            resid = y[split:] - x[split:] @ coef
            self.r2[key] = 1 - resid.var() / y[split:].var()
            setattr(self, f"{key}_coef", ridge(x, y))
            setattr(self, f"{key}_noise", float(np.std(y - x @ getattr(self, f"{key}_coef"))))
        self.parent_bits = pool[0]["bits"] / pool[0]["size_ratio"]
        self._bits: dict[tuple, int] = {}

    def size_ratio(self, decisions: list[int]) -> float:
        key = tuple(decisions)
        if key not in self._bits:
            self._bits[key] = self.space.bits(self.space.decode(decisions), self.data.input_shape,
                                              self.data.num_classes)
        return self._bits[key] / self.parent_bits

    def mean_reward(self, decisions: list[int]) -> float:
        x = features(np.array([decisions]), self.sizes)
        acc, sim = float((x @ self.acc_coef)[0]), float((x @ self.sim_coef)[0])
        return float(self.weights.score(acc, sim, self.size_ratio(decisions)))

    def rewards(self, proposals: list[list[int]], rng: np.random.Generator) -> list[float]:
        return [self.mean_reward(p) + self.weights.acc * rng.normal(0, self.acc_noise) for p in proposals]


def score_pool(args: argparse.Namespace, space: SearchSpace, data) -> list[dict]:
    """Uniform architectures scored with the trained supernet, as the search scores them (cached)."""
    path = Path(args.supernet) / f"pool{args.pool}.json"
    pool = json.loads(path.read_text()) if path.exists() else []
    if len(pool) == args.pool:
        return pool
    saved = json.loads((Path(args.supernet) / "variant.json").read_text())
    config = SearchConfig(epochs=saved["epochs"], child_steps=saved["child_steps"], seed=saved["seed"],
                          **VARIANTS[saved["variant"]])
    parent = get_parent(space, data, seed=config.seed, cache_dir=saved["cache"], log=log)
    search = Search(space, data, parent, config, args.supernet, log=log)
    if not search.restore():
        raise SystemExit(f"no supernet checkpoint in {args.supernet}")
    rng = np.random.default_rng(7)
    drawn = make_strategy("random", space.decisions(), seed=11).ask(args.pool)
    batches = [rng.choice(len(data.x_val), 256, replace=False) for _ in range(0, args.pool, 10)]
    for start in range(len(pool), args.pool, 10):  # continues a pool that a killed run left unfinished
        idx = batches[start // 10]
        archs = [space.decode(d) for d in drawn[start:start + 10]]
        for d, arch, t in zip(drawn[start:start + 10], archs, search.evaluator.evaluate(archs, data.x_val[idx],
                                                                                         data.y_val[idx])):
            pool.append({"decisions": d, "acc": t["acc"], "sim": t["sim"], "size_ratio": t["size_ratio"],
                         "bits": search.evaluator.bits(arch)})
        path.write_text(json.dumps(pool))
        log(f"scored {len(pool)}/{args.pool}")
    return pool


def simulate(name: str, options: dict, model: RewardModel, updates: int, batch: int, seed: int) -> dict:
    """One simulated search of ``updates`` x ``batch`` evaluations: rewards seen and, for the controller, entropy."""
    strategy = make_strategy(name, model.space.decisions(), seed=seed, **options)
    rng = np.random.default_rng([seed, 99])
    rewards, entropy = [], []
    for _ in range(updates):
        proposals = strategy.ask(batch)
        r = model.rewards(proposals, rng)
        stats = strategy.tell(proposals, r)
        rewards += r
        if "entropy" in stats:
            entropy.append(stats["entropy"])
    return {"rewards": rewards, "entropy": entropy}


def evaluations_to_reach(rewards: list[float], target: float) -> float:
    best = np.maximum.accumulate(rewards)
    hit = np.flatnonzero(best >= target)
    return float(hit[0] + 1) if len(hit) else math.inf


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--supernet", default=str(ROOT / "runs" / "bench" / "fidelity" / "supernets" / "distill-seed0"))
    p.add_argument("--pool", type=int, default=400)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--evaluations", type=int, default=750, help="per strategy and search (15 epochs x 50)")
    args = p.parse_args()
    space = get_space("conv")
    data = load_dataset(data_path=args.data, seed=0)
    weights = ObjectiveWeights()
    model = RewardModel(score_pool(args, space, data), space, data, weights)
    log(f"reward model: R^2 acc {model.r2['acc']:.3f}, sim {model.r2['sim']:.3f}; noise sd acc {model.acc_noise:.4f}")
    seeds = [int(s) for s in args.seeds.split(",")]
    baseline = {name: [simulate(name, {}, model, args.evaluations // 10, 10, s) for s in seeds]
                for name in ("random", "evolution")}
    random_best = [max(r["rewards"]) for r in baseline["random"]]
    quarter = args.evaluations // 4

    def last_quarter(runs):
        return np.array([np.mean(r["rewards"][-quarter:]) for r in runs])

    rows = []
    for name in ("random", "evolution"):
        runs = baseline[name]
        reach = [evaluations_to_reach(r["rewards"], t) for r, t in zip(runs, random_best)]
        lq = last_quarter(runs)
        rows.append(f"| {name} | | | {lq.mean():.4f} ± {lq.std(ddof=1) / math.sqrt(len(lq)):.4f} | "
                    f"{np.mean([max(r['rewards']) for r in runs]):.4f} | {np.mean(reach):.0f} |")
        log(rows[-1])
    for label, options, steps, batch in SETTINGS:
        updates = args.evaluations // batch
        runs = [simulate("controller", options, model, updates, batch, s) for s in seeds]
        fall = np.array([1 - r["entropy"][-1] / r["entropy"][0] for r in runs])
        lq = last_quarter(runs)
        reach = [evaluations_to_reach(r["rewards"], t) for r, t in zip(runs, random_best)]
        rows.append(f"| controller: {label} | {steps} x {batch} | {100 * fall.mean():.0f}% | "
                    f"{lq.mean():.4f} ± {lq.std(ddof=1) / math.sqrt(len(lq)):.4f} | "
                    f"{np.mean([max(r['rewards']) for r in runs]):.4f} | "
                    f"{np.mean(reach):.0f} ({sum(math.isfinite(v) for v in reach)}/{len(reach)}) |")
        log(rows[-1])
    write_section("controller-knobs", f"""## Controller knobs on a model of the reward

`python bench/bench_controller.py --supernet {Path(args.supernet).resolve().relative_to(ROOT)} --pool {args.pool} \
--seeds {args.seeds} --evaluations {args.evaluations}`

{args.pool} uniform conv architectures were scored with the trained shared weights of `bench_fidelity.py`'s
`{json.loads((Path(args.supernet) / 'variant.json').read_text())['variant']}` supernet, as the search scores them.
Ridge regression on one-hot decisions and per-layer width x type pairs explains R^2 = {model.r2['acc']:.2f} of the
accuracy and {model.r2['sim']:.2f} of the similarity on a held-out quarter; the size term is exact; each simulated
reward adds Gaussian noise with the accuracy residual's spread ({model.acc_noise:.4f}). Every search gets
{args.evaluations} evaluations (15 epochs after a 5-epoch warm-up, 50 a epoch), reward weights {weights}, seeds
{args.seeds}. "Entropy fall" is 1 - last / first update's mean policy entropy; "last quarter" is the mean reward
of the last {quarter} samples (± standard error over seeds); "to reach random's best" is the mean number of
evaluations before the best reward so far reaches that seed's random search's final best (in how many seeds
it did).

| strategy | updates x batch per epoch | entropy fall | last-quarter mean reward | best reward | evaluations to reach random's best |
|---|---|---|---|---|---|
{chr(10).join(rows)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
