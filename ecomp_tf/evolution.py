"""The EComp loop: one generation per training batch, then the final pick, in faithful or improved mode.

Per generation (after the first, which scores the initial population): select parents from the last
fitnesses, recombine them in pairs, mutate the children, and score everyone on the new batch
(``fitness.score_population``). The improved mode adds elites (carried over unchanged and, if asked,
fine-tuned for a few steps), width and type mutations, and fine-tunes the final candidates. The final
pick is the candidate with the best mean fitness over the final batches; only it becomes a Keras
model, whose test accuracy is reported.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from ecomp_tf import operators as ops
from ecomp_tf.config import Configs
from ecomp_tf.finetune import finetune
from ecomp_tf.fitness import OBJECTIVES, BatchScorer, Scores, SizeMeter, score_population
from ecomp_tf.genome import Individual, forward, from_parent, to_keras
from ecomp_tf.population import initial_population
from qnas.data import Dataset
from qnas.errors import DataError, UserInputError
from qnas.parent import Parent
from qnas.seeding import seed_everything
from qnas.spaces import SPACES
from qnas.targets.base import Target

Progress = Callable[[int, int, dict[str, dict[str, float]]], None]
Batch = tuple[np.ndarray, np.ndarray]


@dataclass
class RunResult:
    """Everything one EComp run produced."""

    configs: Configs
    seed: int
    history: dict[str, dict[str, list[float]]]
    best: Individual
    model: tf.keras.Model
    best_fitness: float
    test_accuracy: float
    bits: int
    bits_ratio: float
    width_ratio: float
    target: str  # the deployment target whose predicted bytes are ``bytes``
    bytes: int
    size_ratio: float
    parent: dict[str, Any]
    population: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Context:
    """What the operators of one run share: its settings, random stream, data and parent."""

    cfg: Configs
    rng: np.random.Generator
    parent: Individual
    x_train: np.ndarray
    y_train: np.ndarray
    calib_x: np.ndarray
    sizes: SizeMeter
    recombination_layers: list[int]

    def batches(self, count: int) -> Iterator[Batch]:
        """``count`` batches in epochs over the training subset, each epoch in a fresh random order."""
        size, n = self.cfg.BATCH_SIZE, len(self.x_train)
        per_epoch = n // size
        done = 0
        while done < count:
            order = self.rng.permutation(n)
            for b in range(min(per_epoch, count - done)):
                idx = order[b * size:(b + 1) * size]
                yield self.x_train[idx], self.y_train[idx]
            done += per_epoch

    def scorer(self, batch: Batch) -> BatchScorer:
        return BatchScorer(self.parent, batch[0], batch[1], self.cfg.EMB_LAYERS, self.cfg.EMBEDDING,
                           self.cfg.PERPLEXITY)


def run_ecomp(parent: Parent, data: Dataset, configs: Configs, seed: int = 0,
              progress: Progress | None = None, target: Target | str | None = None) -> RunResult:
    """One EComp run on ``data`` compressing ``parent``; repeats exactly for the same seed.

    ``target`` prices every size in its predicted bytes (None: the best installed; ``qnas.targets``).
    """
    cfg = configs
    cfg.validate()
    start = time.time()
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    parent_ind = from_parent(parent)
    cfg = cfg.for_depth(parent_ind.num_hidden)  # the reference's layer names assume two hidden layers
    n_train = min(cfg.TRAIN_SUBSET, len(data.x_train))
    if n_train < cfg.BATCH_SIZE:
        raise DataError(f"EComp needs at least BATCH_SIZE={cfg.BATCH_SIZE} training images, got {n_train}")
    subset = np.sort(rng.permutation(len(data.x_train))[:n_train])
    x_train, y_train = data.x_train[subset], data.y_train[subset]
    try:
        recombination = [ops.layer_index(name, parent_ind.num_hidden) for name in cfg.RECOMBINATION_LAYERS]
    except ValueError as err:
        raise UserInputError(f"RECOMBINATION_LAYERS: {err}") from None
    ctx = Context(cfg, rng, parent_ind, x_train, y_train,
                  x_train[rng.choice(n_train, size=min(cfg.CALIB_SIZE, n_train), replace=False)],
                  SizeMeter(parent_ind, data.input_shape, data.num_classes, cfg.COMPRESSION, target=target),
                  recombination)
    _check_layers(cfg, parent_ind)
    generations = cfg.GENERATIONS or max(1, round(cfg.EPOCHS * (n_train // cfg.BATCH_SIZE)))

    population = initial_population(parent_ind, cfg.POP_SIZE, *cfg.PRUNE_RATES)
    if cfg.INIT_TYPES == "random":
        population = [_random_types(ind, ctx) for ind in population]
    history: dict[str, dict[str, list[float]]] = {k: {"avg": [], "best": [], "worst": []} for k in OBJECTIVES}
    scores: Scores | None = None
    for g, batch in enumerate(ctx.batches(generations)):
        if scores is not None:
            population = next_generation(population, scores.fitness, ctx)
        scores = score_population(population, ctx.scorer(batch), ctx.sizes, cfg.LOSS_WEIGHTS)
        summary = scores.summary()
        for name, stats in summary.items():
            for key, value in stats.items():
                history[name][key].append(value)
        if cfg.FINETUNE_STEPS and cfg.ELITES:
            population = _finetune_elites(population, scores.fitness, ctx)
        if progress:
            progress(g + 1, generations, summary)
    evolved = time.time()

    best, best_fitness, candidates = final_pick(population, scores.fitness, ctx, data)
    model = to_keras(best, data.input_shape, data.num_classes, ctx.calib_x, name="ecomp_best")
    test_acc = keras_accuracy(model, data.x_test, data.y_test)
    points = _population_points(population, scores.fitness, candidates, best, ctx, data)
    return RunResult(
        configs=cfg, seed=seed, history=history, best=best, model=model, best_fitness=best_fitness,
        test_accuracy=float(test_acc), bits=ctx.sizes.bits(best), bits_ratio=ctx.sizes.bits_ratio(best),
        width_ratio=ctx.sizes.width_ratio(best), target=ctx.sizes.target.name, bytes=ctx.sizes.bytes(best),
        size_ratio=ctx.sizes.size_ratio(best),
        parent={"test_accuracy": parent.test_accuracy, "bits": ctx.sizes.parent_bits, "bytes": ctx.sizes.parent_bytes,
                "arch": parent_ind.arch.to_string(), "source": getattr(parent, "source", "")},
        population=points,
        seconds={"evolution": round(evolved - start, 2), "final_pick": round(time.time() - evolved, 2),
                 "total": round(time.time() - start, 2)},
    )


def keras_accuracy(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Accuracy of the Keras model itself (called directly: ``evaluate`` would trace a new graph per model)."""
    hits = sum(int(np.sum(np.argmax(model(x[i:i + batch_size], training=False).numpy(), axis=1) == y[i:i + batch_size]))
               for i in range(0, len(x), batch_size))
    return hits / len(x)


def next_generation(population: list[Individual], fitness: np.ndarray, ctx: Context) -> list[Individual]:
    """Elites, then children of selected pairs by block swap, mutated."""
    cfg, rng = ctx.cfg, ctx.rng
    order = np.argsort(-fitness, kind="stable")
    elites = [population[i] for i in order[:cfg.ELITES]]
    n_children = cfg.POP_SIZE - cfg.ELITES
    n_parents = n_children + n_children % 2
    if cfg.SELECTION == "tournament":
        picked = ops.tournament_selection(fitness, n_parents, rng, cfg.TOURNAMENT_SIZE)
    else:
        picked = ops.softmax_selection(fitness, n_parents, rng)
    children: list[Individual] = []
    for a, b in zip(picked[0::2], picked[1::2]):
        children.extend(ops.block_swap(population[a], population[b], ctx.recombination_layers, rng))
    return elites + [mutate(child, ctx) for child in children[:n_children]]


def mutate(ind: Individual, ctx: Context) -> Individual:
    """Weight scaling (the reference's mutation), then the width and type genes of each hidden layer."""
    cfg, rng = ctx.cfg, ctx.rng
    if rng.random() < cfg.MUTATION_RATE:
        ind = ops.scale_weights(ind, ctx.recombination_layers, rng)
    space = SPACES["mlp"]
    for layer in range(ind.num_hidden):
        if cfg.WIDTH_MUTATION_RATE and rng.random() < cfg.WIDTH_MUTATION_RATE:
            ind = ops.mutate_width(ind, layer, rng, cfg.WIDTH_STEP, space.min_width, space.max_width, ctx.calib_x)
        if cfg.TYPE_MUTATION_RATE and rng.random() < cfg.TYPE_MUTATION_RATE:
            ind = ops.mutate_type(ind, layer, rng, cfg.TYPES, ctx.calib_x)
    return ind


def final_pick(population: list[Individual], fitness: np.ndarray, ctx: Context,
               data: Dataset) -> tuple[Individual, float, list[tuple[Individual, float]]]:
    """The candidate with the best mean fitness over the final batches, its fitness, and all candidates.

    Candidates are the whole last population (the reference) or its ``FINAL_CANDIDATES`` fittest
    distinct members, fine-tuned first when ``FINAL_FINETUNE_EPOCHS`` is set.
    """
    cfg = ctx.cfg
    order = np.argsort(-fitness, kind="stable")
    seen: set[int] = set()
    candidates = []
    for i in order:
        if id(population[i]) not in seen:
            seen.add(id(population[i]))
            candidates.append(population[i])
    if cfg.FINAL_CANDIDATES:
        candidates = candidates[:cfg.FINAL_CANDIDATES]
    if cfg.FINAL_FINETUNE_EPOCHS:
        steps = max(1, round(cfg.FINAL_FINETUNE_EPOCHS * (len(ctx.x_train) // cfg.BATCH_SIZE)))
        candidates = [finetune(c, ctx.batches(steps), cfg.FINETUNE_LR) for c in candidates]
    if cfg.FINAL_SPLIT == "val":
        x, y = data.x_val, data.y_val
        batches = [(x[i:i + cfg.BATCH_SIZE], y[i:i + cfg.BATCH_SIZE])
                   for i in range(0, len(x) - cfg.BATCH_SIZE + 1, cfg.BATCH_SIZE)]
    else:
        batches = list(ctx.batches(len(ctx.x_train) // cfg.BATCH_SIZE))
    batches = batches[:cfg.FINAL_BATCHES] if cfg.FINAL_BATCHES else batches
    if not batches:
        raise DataError(f"the {cfg.FINAL_SPLIT} split has fewer than BATCH_SIZE={cfg.BATCH_SIZE} images")
    total = np.zeros(len(candidates))
    for batch in batches:
        total += score_population(candidates, ctx.scorer(batch), ctx.sizes, cfg.LOSS_WEIGHTS).fitness
    mean = total / len(batches)
    best = int(np.argmax(mean))
    return candidates[best], float(mean[best]), list(zip(candidates, mean.tolist()))


def _check_layers(cfg: Configs, parent: Individual) -> None:
    bad = [i for i in cfg.EMB_LAYERS if not 0 <= i < parent.num_hidden]
    if bad or not cfg.EMB_LAYERS:
        raise UserInputError(f"EMB_LAYERS {list(cfg.EMB_LAYERS)} must name hidden layers 0..{parent.num_hidden - 1}")


def _random_types(ind: Individual, ctx: Context) -> Individual:
    """The improved mode's initial precision genes: a uniformly drawn type for each hidden layer."""
    for layer in range(ind.num_hidden):
        code = int(ctx.rng.choice(ctx.cfg.TYPES))
        if code != ind.arch.type_codes[layer]:
            ind = ops.retype(ind, layer, code, ctx.calib_x)
    return ind


def _finetune_elites(population: list[Individual], fitness: np.ndarray, ctx: Context) -> list[Individual]:
    """A few Adam steps for each elite, on random training batches (it keeps its place in the list)."""
    out = list(population)
    for i in np.argsort(-fitness, kind="stable")[:ctx.cfg.ELITES]:
        out[i] = finetune(out[i], ctx.batches(ctx.cfg.FINETUNE_STEPS), ctx.cfg.FINETUNE_LR)
    return out


def _population_points(population: list[Individual], fitness: np.ndarray,
                       candidates: list[tuple[Individual, float]], best: Individual,
                       ctx: Context, data: Dataset) -> list[dict[str, Any]]:
    """Validation accuracy and size of the last population and of the final candidates (for the plot)."""
    points = []
    for group, members in (("population", [(ind, float(f)) for ind, f in zip(population, fitness)]),
                           ("candidate", candidates)):
        for ind, fit in members:
            points.append({"group": group, "arch": ind.arch.to_string(), "fitness": round(fit, 5),
                           "val_accuracy": forward(ind, data.x_val).accuracy(data.y_val),
                           "bits_ratio": round(ctx.sizes.bits_ratio(ind), 6),
                           "size_ratio": round(ctx.sizes.size_ratio(ind), 6),
                           "picked": group == "candidate" and ind is best})
    return points
