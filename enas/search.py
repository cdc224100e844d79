"""The search loop: train the shared weights, then let the strategy learn from rewards, epoch after epoch.

Each epoch:

1. **child phase**: ``child_steps`` minibatches (72 by default, or one pass over a smaller training split)
   each train the supernet through a new child (drawn uniformly by default, or by the strategy with
   ``child_sampling="strategy"`` as in ENAS). With ``sandwich`` the largest and the smallest child are
   trained on the same minibatch too; with ``distill`` the children learn from the float parent's soft
   targets as well as from the labels, and with ``feature_distill`` from its block outputs (the similarity
   term as a loss). Minibatches walk through seeded shuffles of the training split, one pass after another
   across epochs, so the run covers the data whatever its size while an epoch costs the same on 7,200
   images as on 54,000;
2. **controller phase** (after ``warmup_epochs``, by default the first half of the epochs): ``controller_steps`` times, each strategy
   samples ``controller_batch`` architectures, all of them are scored on the same validation minibatch
   (inference mode, own BatchNorm statistics; every strategy sees the same minibatches) and the strategy
   updates on the rewards;
3. "Here are 10 architectures": ten fresh samples scored on (up to ``show_size`` images of) the validation split,
   with their predicted KiB on the target (and predicted ms, when the objective uses latency);
4. a checkpoint of everything that the next epoch depends on.

Every evaluation is appended to ``evaluations.jsonl``; the run ends by scoring each strategy's best
candidates on the whole validation split, each after ``finalist_steps`` minibatches of training alone from the
shared weights (``enas.fine_tune``), and printing the ``train_arc.py`` command for the winner.
TensorBoard gets, per strategy (``tensorboard/<strategy>/``), the best reward found against the
number of evaluations, and the controller's loss, entropy, baseline and reward terms per update.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from enas.evaluator import SharedWeightEvaluator
from enas.fine_tune import finalist_minibatches, trained_alone
from enas.strategies import Strategy, make_strategy
from enas.supernets import make_supernet
from qnas.checkpoints import restore_newest_readable
from qnas.data import Dataset
from qnas.distill import distill_perplexity, feature_affinities, teacher_logits
from qnas.errors import UserInputError
from qnas.objective import Objective, ObjectiveWeights
from qnas.parent import Parent, as_model_input, probe_batch
from qnas.records import run_record, write_json_atomic
from qnas.space import AnyArchitecture, Space
from qnas.targets import get_target
from qnas.targets.pricing import LatencyPricer, SizePricer

Log = Callable[[str], None]


@dataclass
class SearchConfig:
    """Everything that defines a search run (written to ``config.json``)."""

    strategy: str = "controller"
    epochs: int = 20
    batch_size: int = 100
    child_steps: int = 72  # shared-weight minibatches per epoch; 0: one pass over the training split
    show_size: int = 1000  # validation images that score "Here are 10 architectures"
    target: str = "bits"  # deployment target whose predicted bytes are the size (qnas.targets)
    supernet_step: str = "auto"  # one compiled trace for every child (auto), or eager slicing
    learning_rate: float = 2e-3
    child_sampling: str = "uniform"
    sandwich: bool = False  # each minibatch also trains the largest and the smallest child (gradients summed)
    distill: float = 0.0  # weight alpha of the float parent's soft targets in the children's loss (0: labels only)
    distill_temperature: float = 1.0
    feature_distill: float = 0.0  # weight of the similarity term on block outputs as a training loss
    # the controller's knobs: measured on a model of the reward (BENCHMARKS.md, "controller knobs"), where ENAS's
    # (5 x 10 a epoch, lr 3.5e-3, tanh 1.5) left the policy's entropy within 3% of uniform
    controller_steps: int = 15
    controller_batch: int = 5
    # epochs of shared weights only before the strategies start; None: epochs // 2, so that the strategies compare
    # children on shared weights that have mostly settled (BENCHMARKS.md, "strategies")
    warmup_epochs: int | None = None
    controller_lr: float = 1e-2
    tanh_constant: float = 5.0
    controller_temperature: float | None = None
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    population_size: int = 50  # evolution: members alive
    sample_size: int = 10  # evolution: tournament size
    eval_batch: int = 256
    calib_size: int = 256
    probe_size: int = 300
    num_shown: int = 10
    final_candidates: int = 10
    # minibatches each finalist trains alone from the shared weights before the last ranking (enas.fine_tune; at
    # most 3 passes over the training split): tau against standalone training 0.750 -> 0.857 (BENCHMARKS.md, "fidelity")
    finalist_steps: int = 200
    finalist_lr: float = 1e-3
    reward: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    max_kib: float | None = None
    max_ms: float | None = None  # latency budget: the target's predicted single-image ms (qnas.targets.latency)
    max_minutes: float | None = None
    seed: int = 0

    @property
    def warmup(self) -> int:
        """Epochs that train the shared weights only: ``warmup_epochs``, or half the epochs."""
        return self.epochs // 2 if self.warmup_epochs is None else self.warmup_epochs

    @property
    def objective(self) -> Objective:
        return Objective(self.reward, self.max_kib, self.max_ms)

    def strategy_options(self, name: str) -> dict:
        """The settings of strategy ``name`` (the others take none)."""
        if name == "controller":
            return {"lr": self.controller_lr, "tanh_constant": self.tanh_constant, "entropy_weight": self.entropy_weight,
                    "temperature": self.controller_temperature, "baseline_decay": self.baseline_decay}
        if name == "evolution":
            return {"population_size": self.population_size, "sample_size": self.sample_size}
        return {}

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reward"] = str(self.reward)
        return out


@dataclass
class SearchResult:
    best: AnyArchitecture
    best_terms: dict[str, float]
    candidates: list[tuple[AnyArchitecture, dict[str, float]]]
    minutes: float
    strategy: str = "controller"
    by_strategy: dict[str, SearchResult] = field(default_factory=dict)


class Strategies(tf.Module):
    """The strategies of one run, by name: each takes its turn on the same shared weights."""

    def __init__(self, names: list[str], space: Space, seed: int, options: Callable[[str], dict] = lambda n: {}):
        super().__init__(name="strategies")
        self.by_name = {name: make_strategy(name, space.decisions(), seed=seed, **options(name)) for name in names}


class Search:
    """One search run, resumable from its output folder."""

    def __init__(self, space: Space, data: Dataset, parent: Parent, config: SearchConfig,
                 output_dir: str | Path, log: Log = print, progress: Log | None = None,
                 distribution: tf.distribute.Strategy | None = None, latency: LatencyPricer | None = None):
        """``latency`` predicts each architecture's latency when the objective uses it (by default the target's
        table cached in ``cache/``)."""
        self.space, self.data, self.parent, self.config, self.log = space, data, parent, config, log
        self.progress = progress or (lambda text: None)
        self.output_dir = Path(output_dir)
        self.steps_per_pass = len(data.x_train) // config.batch_size
        if self.steps_per_pass < 1:
            raise UserInputError(f"--batch_size {config.batch_size} is larger than the {len(data.x_train)} training "
                                 f"images; use at most {len(data.x_train)}")
        steps_per_epoch = self.steps_per_epoch = min(self.steps_per_pass, config.child_steps or self.steps_per_pass)
        with distribution.scope() if distribution else contextlib.nullcontext():  # shared weights: data-parallel
            self.supernet = make_supernet(space, data.input_shape, data.num_classes, seed=config.seed,
                                          learning_rate=config.learning_rate,
                                          decay_steps=config.epochs * steps_per_epoch, step=config.supernet_step,
                                          distill_alpha=config.distill, distill_temperature=config.distill_temperature,
                                          feature_weight=config.feature_distill)
        names = [n.strip() for n in config.strategy.split(",") if n.strip()]
        self.strategies = Strategies(names, space, config.seed, config.strategy_options)
        self.strategy: Strategy = self.strategies.by_name[names[0]]
        x_probe = probe_batch(data, config.probe_size, seed=config.seed)
        calib = np.random.default_rng([config.seed, 1]).choice(len(data.x_train), min(config.calib_size,
                                                                                       len(data.x_train)), replace=False)
        self.size = SizePricer(get_target(config.target, require=False), space, data.input_shape, data.num_classes,
                               parent)
        if latency is None and config.objective.uses_latency:
            latency = LatencyPricer(get_target(config.target), space, data.input_shape, data.num_classes, parent)
        self.latency = latency if config.objective.uses_latency else None
        self.evaluator = SharedWeightEvaluator(self.supernet, data, parent.embeddings(x_probe), self.size, x_probe,
                                               data.x_train[np.sort(calib)], config.objective, self.latency)
        # distillation targets: the parent's logits on the training split once; its block outputs per minibatch
        self.teacher = teacher_logits(parent.model, as_model_input(parent.model, data.x_train)) if config.distill else None
        self.parent_features = parent.embedding_model() if config.feature_distill else None
        self.feature_perplexity = distill_perplexity(config.batch_size)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.ctrl_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="ctrl_step")
        self.checkpoint = tf.train.Checkpoint(supernet=self.supernet, optimizer=self.supernet.optimizer,
                                              strategies=self.strategies, epoch=self.epoch, ctrl_step=self.ctrl_step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.output_dir / "checkpoints", max_to_keep=2)
        self.writer = tf.summary.create_file_writer(str(self.output_dir / "tensorboard"))
        # one writer per strategy, so TensorBoard overlays their best-reward curves in one chart
        self.strategy_writers = {name: tf.summary.create_file_writer(str(self.output_dir / "tensorboard" / name))
                                 for name in names}
        self.found = {name: (0, -math.inf) for name in names}  # (evaluations so far, best reward so far)
        # the last ranking: every finalist's own minibatches (the same for all), and its terms once scored
        self.final_batches = finalist_minibatches(config.seed, len(data.x_train), config.batch_size,
                                                  config.finalist_steps)
        self._final_terms: dict[str, dict[str, float]] = {}  # an architecture two strategies share is scored once
        self.history_path = self.output_dir / "evaluations.jsonl"
        self.start_time = time.time()
        self.minutes_before = 0.0

    # ------------------------------------------------------------------ state
    def restore(self) -> bool:
        """Continue from the newest readable checkpoint (an unreadable newest one is skipped); False when there is none."""
        latest = restore_newest_readable(self.checkpoint, self.output_dir / "checkpoints", self.log)
        if latest is None:
            return False
        done = int(self.epoch.numpy())
        state_path = self.output_dir / "state.json"
        if state_path.exists():
            self.minutes_before = json.loads(state_path.read_text()).get("minutes", 0.0)
        if self.history_path.exists():  # drop evaluations of an epoch that did not finish (and a torn last line)
            rows = [row for row in read_rows(self.history_path) if row["epoch"] <= done]
            self.history_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            for row in rows:
                if row["phase"] == "controller" and row.get("strategy") in self.found:
                    count, best = self.found[row["strategy"]]
                    self.found[row["strategy"]] = (count + 1, max(best, row["reward"]))
        self.log(f"resumed from {latest}: {done} epochs done, continuing at epoch {done + 1}")
        return True

    def minutes(self) -> float:
        return self.minutes_before + (time.time() - self.start_time) / 60

    def _record(self, epoch: int, phase: str, arch: AnyArchitecture, terms: dict[str, float], strategy: str) -> None:
        with self.history_path.open("a") as f:
            f.write(json.dumps({"epoch": epoch, "phase": phase, "strategy": strategy, "arch": arch.to_string(),
                                **{k: round(v, 6) for k, v in terms.items()}}) + "\n")

    # ------------------------------------------------------------------ phases
    def child_phase(self, epoch: int) -> None:
        """Train the shared weights for one epoch's ``child_steps`` minibatches."""
        cfg, data = self.config, self.data
        minibatches = epoch_minibatches(cfg.seed, len(data.x_train), cfg.batch_size, self.steps_per_epoch, epoch)
        steps = len(minibatches)
        _, rng = shuffle(cfg.seed, epoch, len(data.x_train))  # generator ``epoch`` draws the children after its shuffle
        if cfg.child_sampling == "strategy":
            children = self.strategy.ask(steps)
        else:
            sizes = self.space.decision_sizes()
            children = [[int(rng.integers(k)) for k in sizes] for _ in range(steps)]
        bounds = [self.supernet.extreme_child(True), self.supernet.extreme_child(False)] if cfg.sandwich else []
        loss_sum, correct = 0.0, 0
        for step, idx in enumerate(minibatches):
            features = None
            if self.parent_features is not None:
                outputs = self.parent_features(as_model_input(self.parent.model, data.x_train[idx]), training=False)
                outputs = outputs if isinstance(outputs, list) else [outputs]
                joint = feature_affinities([o.numpy() for o in outputs], self.feature_perplexity)
                features = list(zip(self.evaluator.depths, joint))
            out = self.supernet.train_step(data.x_train[idx], data.y_train[idx],
                                           [self.space.decode(children[step]), *bounds],
                                           None if self.teacher is None else tf.gather(self.teacher, idx), features)
            loss_sum += out["loss"]
            correct += out["correct"]
            if step % 5 == 0:
                self.progress(f"epoch {epoch}: shared weights, step {step + 1}/{steps}, loss {loss_sum / (step + 1):.3f}")
        self.evaluator.weights_changed()
        global_step = int(self.supernet.step.numpy())
        lr = self.supernet.current_lr()
        self.log(f"epoch={epoch:<3d} ch_step={global_step:<6d} loss={loss_sum / steps:.4f} lr={lr:.4g} "
                 f"|g|={out['grad_norm']:.3f} tr_acc={correct}/{steps * cfg.batch_size} mins={self.minutes():.2f}")
        with self.writer.as_default(step=global_step):
            tf.summary.scalar("child/loss", loss_sum / steps)
            tf.summary.scalar("child/train_accuracy", correct / (steps * cfg.batch_size))
            tf.summary.scalar("child/lr", lr)

    def _controller_phase(self, epoch: int, name: str, strategy: Strategy) -> None:
        """``controller_steps`` updates; every strategy of the run sees the same validation minibatches."""
        cfg, data = self.config, self.data
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        prefix = "" if len(self.strategies.by_name) == 1 else f"[{name}] "
        tag = "controller" if not prefix else f"controller_{name}"
        for step in range(cfg.controller_steps):
            idx = rng.choice(len(data.x_val), min(cfg.eval_batch, len(data.x_val)), replace=False)
            self.progress(f"epoch {epoch}: {name}, update {step + 1}/{cfg.controller_steps}")
            proposals = strategy.ask(cfg.controller_batch)
            archs = [self.space.decode(d) for d in proposals]
            terms = self.evaluator.evaluate(archs, data.x_val[idx], data.y_val[idx])
            for arch, t in zip(archs, terms):
                self._record(epoch, "controller", arch, t, name)
            self._log_found(name, [t["reward"] for t in terms])
            stats = strategy.tell(proposals, [t["reward"] for t in terms])
            ctrl_step = (epoch - 1 - cfg.warmup) * cfg.controller_steps + step + 1
            keys = ("reward", "acc", "sim", "size_ratio", *(("lat_ratio",) if self.latency else ()))
            mean = {k: float(np.mean([t[k] for t in terms])) for k in keys}
            lat = f" lat={mean['lat_ratio']:.4f}" if self.latency else ""
            self.log(f"{prefix}ctrl_step={ctrl_step:<5d} loss={stats.get('loss', 0.0):.4f} "
                     f"ent={stats.get('entropy', 0.0):.3f} reward={mean['reward']:.4f} acc={mean['acc']:.4f} "
                     f"sim={mean['sim']:.4f} size={mean['size_ratio']:.4f}{lat} bl={stats.get('baseline', 0.0):.4f} "
                     f"mins={self.minutes():.2f}")
            with self.writer.as_default(step=ctrl_step):
                for key, value in stats.items():
                    tf.summary.scalar(f"{tag}/{key}", value)
                for key, value in mean.items():
                    tf.summary.scalar(f"{tag}/reward_terms/{key}", value)
        self.ctrl_step.assign((epoch - cfg.warmup) * cfg.controller_steps)
        self._log_probabilities(name, strategy)

    def _log_found(self, name: str, rewards: list[float]) -> None:
        """TensorBoard ``search/best_reward`` and ``search/reward`` against the strategy's evaluations so far."""
        count, best = self.found[name]
        with self.strategy_writers[name].as_default():
            for reward in rewards:
                count, best = count + 1, max(best, reward)
                tf.summary.scalar("search/best_reward", best, step=count)
            tf.summary.scalar("search/reward", float(np.mean(rewards)), step=count)
        self.found[name] = (count, best)

    def _log_probabilities(self, name: str, strategy: Strategy) -> None:
        probs = strategy.probabilities()
        if probs is None:
            return
        with self.writer.as_default(step=int(self.ctrl_step.numpy())):
            for p, (decision, labels) in zip(probs, self.space.decision_labels()):
                for label, value in zip(labels, p):
                    tf.summary.scalar(f"policy_{name}/{decision}/{label}", float(value))

    def _show_architectures(self, epoch: int, name: str, strategy: Strategy) -> None:
        prefix = "" if len(self.strategies.by_name) == 1 else f"[{name}] "
        self.log(f"{prefix}Here are {self.config.num_shown} architectures")
        shown = []
        for decisions in strategy.ask(self.config.num_shown):
            arch = self.space.decode(decisions)
            terms = self.evaluator.evaluate_one(arch, self.data.x_val[:self.config.show_size],
                                                self.data.y_val[:self.config.show_size])
            self._record(epoch, "shown", arch, terms, name)
            shown.append((arch, terms))
            for line in arch.display_lines():
                self.log(line)
            self.log(f"val_acc={terms['acc']:.4f} {size_text(terms)} ratio={terms['size_ratio']:.4f} "
                     f"sim={terms['sim']:.4f} reward={terms['reward']:.4f}")
            self.log("-" * 51)
        with self.writer.as_default(step=epoch):
            ms = self.latency is not None
            table = "\n".join(f"| `{a.to_string()}` | {a.readable()} | {t['acc']:.4f} | {t['kib']:.2f} | "
                              + (f"{t['ms']:.4f} | " if ms else "") + f"{t['sim']:.4f} | {t['reward']:.4f} |"
                              for a, t in shown)
            tf.summary.text(f"architectures_{name}", f"| arch | readable | val_acc | KiB | {'ms | ' if ms else ''}"
                                                     f"sim | reward |\n|---|---|---|---|{'---|' if ms else ''}---|---|\n"
                            + table)

    # ------------------------------------------------------------------ run
    def run(self, stop_after: int | None = None) -> SearchResult | None:
        """Run the remaining epochs and pick the winner; ``stop_after`` ends early (returns None), as a kill would."""
        cfg = self.config
        start = int(self.epoch.numpy())
        if start and start < cfg.epochs and self._budget_spent():
            self.log(f"time budget of {cfg.max_minutes:g} minutes already used after epoch {start}: picking the winner")
            return self.finish()  # a search its budget stopped, resumed (say, to rank its finalists again)
        for epoch in range(start + 1, cfg.epochs + 1):
            if stop_after is not None and epoch > stop_after:
                return None
            self.log(f"Epoch {epoch}: training shared weights")
            self.child_phase(epoch)
            for name, strategy in self.strategies.by_name.items():
                if epoch > cfg.warmup:
                    self.log(f"Epoch {epoch}: training controller ({name})")
                    self._controller_phase(epoch, name, strategy)
                else:
                    self.log(f"Epoch {epoch}: warm-up {epoch}/{cfg.warmup}, shared weights only ({name} waits)")
                self._show_architectures(epoch, name, strategy)
            self.epoch.assign(epoch)
            self.manager.save(checkpoint_number=epoch)
            write_json_atomic(self.output_dir / "state.json", {"epochs_done": epoch, "minutes": self.minutes()})
            self.writer.flush()
            for writer in self.strategy_writers.values():
                writer.flush()
            if self._budget_spent() and epoch < cfg.epochs:
                self.log(f"time budget of {cfg.max_minutes:g} minutes reached after epoch {epoch}: picking the winner")
                break
        return self.finish()

    def _budget_spent(self) -> bool:
        return self.config.max_minutes is not None and self.minutes() >= self.config.max_minutes

    def finish(self) -> SearchResult:
        """Score each strategy's most promising architectures on the whole validation split; pick the best.

        The result is the first strategy's; ``by_strategy`` holds every strategy's.
        """
        if self.final_batches:
            self.log(f"Final ranking: each finalist trains {len(self.final_batches)} minibatches alone from the "
                     f"shared weights, then is scored on the whole validation split")
        results = {name: self._finish_strategy(name, strategy) for name, strategy in self.strategies.by_name.items()}
        first = next(iter(results.values()))
        first.by_strategy = results
        return first

    def _finish_strategy(self, name: str, strategy: Strategy) -> SearchResult:
        epoch = int(self.epoch.numpy())
        seen: dict[str, float] = {}
        if self.history_path.exists():
            for row in read_rows(self.history_path):
                if row.get("strategy", name) == name:
                    seen[row["arch"]] = max(seen.get(row["arch"], -math.inf), row["reward"])
        ranked = sorted(seen, key=seen.get, reverse=True)[: self.config.final_candidates]
        guess = strategy.best_guess()
        if guess is not None:
            ranked.append(self.space.decode(guess).to_string())
        candidates = []
        texts = list(dict.fromkeys(ranked))
        for k, text in enumerate(texts):
            arch = self.space.parse(text)
            self.progress(f"final ranking ({name}): finalist {k + 1}/{len(texts)}")
            terms = self.final_terms(arch)
            self._record(epoch + 1, "final", arch, terms, name)
            candidates.append((arch, terms))
        fitting = [c for c in candidates if self.config.objective.fits(c[1]["kib"], c[1].get("ms"))]
        if not fitting:
            budgets = " and ".join(f"--{flag} {value:g}" for flag, value in (("max_kib", self.config.max_kib),
                                                                            ("max_ms", self.config.max_ms))
                                   if value is not None)
            self.log(f"warning: no {name} candidate fits {budgets}; the winner is over budget")
        candidates = sorted(fitting or candidates, key=lambda item: item[1]["reward"], reverse=True)
        best, best_terms = candidates[0]
        return SearchResult(best, best_terms, candidates, self.minutes(), strategy=name)

    def final_terms(self, arch: AnyArchitecture) -> dict[str, float]:
        """A finalist's reward terms on the whole validation split, after its own training from the shared weights."""
        key = arch.to_string()
        if key not in self._final_terms:
            self._final_terms[key] = self.scored_alone(arch, [(self.data.x_val, self.data.y_val)])[0]
        return self._final_terms[key]

    def scored_alone(self, arch: AnyArchitecture, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                     minibatches: Sequence[np.ndarray] | None = None) -> list[dict[str, float]]:
        """``arch``'s reward terms on each ``(x, y)`` of ``splits`` after training alone on ``minibatches`` (by
        default the finalists'; none: the shared weights as they are), which are restored afterwards."""
        batches = self.final_batches if minibatches is None else minibatches
        if not batches:
            return [self.evaluator.evaluate_one(arch, x, y) for x, y in splits]
        with trained_alone(self.supernet, arch, self.data.x_train, self.data.y_train, batches, self.config.finalist_lr):
            self.evaluator.weights_changed()
            scored = [self.evaluator.evaluate_one(arch, x, y) for x, y in splits]
        self.evaluator.weights_changed()
        # marked: not comparable with shared-weight scores (enas.report keeps them off the front)
        return [{**terms, "alone_steps": float(len(batches))} for terms in scored]


def shuffle(seed: int, index: int, n: int) -> tuple[np.ndarray, np.random.Generator]:
    """Generator ``index`` of a run (a function of the seed) and its first draw: the order of pass ``index - 1``."""
    gen = np.random.default_rng([seed, index, 0])
    return gen.permutation(n), gen


def epoch_minibatches(seed: int, n: int, batch: int, steps_per_epoch: int, epoch: int) -> list[np.ndarray]:
    """The training indices of each minibatch of ``epoch`` (1-based): its slice of the run's stream of passes.

    Pass ``p`` visits the ``n // batch`` minibatches of one shuffle; epochs take ``steps_per_epoch`` of them in
    turn, so every image is visited once per pass whatever the epoch's length.
    """
    per_pass = n // batch
    first = (epoch - 1) * steps_per_epoch
    orders: dict[int, np.ndarray] = {}
    out = []
    for g in range(first, first + steps_per_epoch):
        p, k = divmod(g, per_pass)
        if p not in orders:
            orders[p] = shuffle(seed, p + 1, n)[0]
        out.append(orders[p][k * batch:(k + 1) * batch])
    return out


def read_rows(path: Path) -> list[dict]:
    """The rows of ``evaluations.jsonl``, skipping a line a kill or a full disk left unfinished."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def size_text(terms: dict[str, float]) -> str:
    """``size=12.34KiB``, and ``ms=0.0521`` beside it when the terms hold a predicted latency."""
    return f"size={terms['kib']:.2f}KiB" + (f" ms={terms['ms']:.4f}" if "ms" in terms else "")


def write_summary(search: Search, result: SearchResult, retrain_command: str, extra: dict) -> None:
    """``result.json``: the winner, the candidates, the config and the provenance (and, with latency in use, the
    parent's predicted ms and the table's file)."""
    latency = search.latency
    write_json_atomic(search.output_dir / "result.json", {
        "best_arch": result.best.to_string(), "best_readable": result.best.readable(),
        "best": result.best_terms, "retrain_command": retrain_command, "minutes": round(result.minutes, 2),
        "candidates": [{"arch": a.to_string(), **t} for a, t in result.candidates],
        "strategies": {name: {"best_arch": r.best.to_string(), "best": r.best_terms}
                       for name, r in result.by_strategy.items()},
        "target": search.config.target, "parent_bytes": search.size.parent_bytes,
        **({"parent_ms": round(latency.parent_ms, 5), "latency_reference": latency.reference,
            "latency_table": str(latency.table.path)} if latency is not None else {}),
        "config": search.config.to_dict(), "space": search.space.name, **extra, **run_record(search.config.seed),
    })
