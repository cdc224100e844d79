"""Retrain several architectures as independent local jobs, then compare them in one table.

``train_arc.py`` hands over here when it gets several ``-fixed_arc`` values or a search's
``result.json`` (``--from_search PATH --top_k K``: the search's K best candidates, in its order).
Each architecture becomes one job: the usual ``train_arc`` run (``qnas.trainer``) with its own output
folder ``<root>/<rank>-<arch>-seed<S>`` and its own seed (the base seed plus its rank minus one), in
its own fresh Python process, ``--jobs`` of them at a time. A process per job keeps TensorFlow's
state apart and lets the jobs use the cores side by side; each job's log goes to
``<root>/<rank>-<arch>-seed<S>.log``, its results to its folder.

Everything that can be checked is checked before the first job starts: the flags of every job, each
architecture against the space, and every job folder (a finished job is reused with ``--resume``,
otherwise refused like any finished run). At the end the table (rank, architecture, seed, test
accuracy, size, file bytes, latency, wall time) is printed and written to ``<root>/finalists.json``.
File bytes and latency come from the run's ``deploy`` block when it has one (``bytes``,
``latency_ms``); otherwise the bytes are those of ``model.tflite`` when it was exported, and the
latency is left blank.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing
import os
import shlex
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tensorflow as tf

from qnas.arch import parse_arch
from qnas.checkpoints import folder_write_problem
from qnas.distribute_flags import check_distribute_flags
from qnas.errors import UserInputError
from qnas.records import run_record, write_json_atomic
from qnas.run_folder import RunFolder
from qnas.spaces import get_space
from qnas.trainer import TrainConfig, TrainingInterrupted, default_init, train_architecture
from qnas.validation import check_seed

Log = Callable[[str], None]


@dataclass(frozen=True)
class SearchFinalists:
    """The best candidates of a search and the settings it ran with (from its ``result.json``)."""

    archs: list[str]
    space: str | None
    data_path: str | None
    dataset: str | None
    seed: int | None
    name: str  # the search's folder name, for the default output folder


def read_search_finalists(path: str | Path, top_k: int) -> SearchFinalists:
    """The ``top_k`` best candidates of the search whose ``result.json`` is ``path``, best first."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    if top_k < 1:
        raise UserInputError(f"--top_k must be at least 1, got {top_k}")
    try:
        result = json.loads(path.read_text())
    except OSError as err:
        raise UserInputError(f"--from_search: cannot read {path} ({err.strerror or err}); give a search's "
                             f"result.json or its output folder") from None
    except ValueError as err:
        raise UserInputError(f"--from_search: {path} is not valid JSON ({err}); is the search finished?") from None
    candidates = result.get("candidates") if isinstance(result, dict) else None
    if not isinstance(candidates, list) or not all(isinstance(c, dict) and isinstance(c.get("arch"), str)
                                                   for c in candidates):
        raise UserInputError(f"--from_search: {path} has no list of \"candidates\" with an \"arch\" each; "
                             f"expected the result.json written by search_arc_mnist.py")
    archs = list(dict.fromkeys(c["arch"] for c in candidates))
    if top_k > len(archs):
        raise UserInputError(f"--top_k {top_k}: {path} holds {len(archs)} candidate(s); use --top_k {len(archs)} "
                             f"or less")
    flags = _flag_values(result.get("retrain_command") or "")
    seed = result.get("seed")
    return SearchFinalists(archs=archs[:top_k], space=result.get("space") or flags.get("--space"),
                           data_path=flags.get("--data"), dataset=flags.get("--dataset"),
                           seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                           name=path.resolve().parent.name)


def _flag_values(command: str) -> dict[str, str]:
    """``--flag value`` pairs of a command line (the search's printed retrain command)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return {}
    return {word: value for word, value in itertools.pairwise(words) if word.startswith("--")}


@dataclass(frozen=True)
class Job:
    """One architecture to retrain: its rank, its full configuration, and its log file."""

    rank: int
    config: TrainConfig
    log_path: Path
    reuse: bool  # finished already (with --resume): read its result.json, do not train again

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def folder(self) -> Path:
        return Path(self.config.output_dir)


def plan_jobs(base: TrainConfig, archs: Sequence[str], root: str | Path) -> list[Job]:
    """One job per architecture, every flag, architecture and folder checked before anything runs."""
    check_distribute_flags(base.distribute, base.replicas)
    if base.distribute != "none":
        raise UserInputError("--distribute trains one architecture across devices; several architectures run as "
                             "independent jobs instead (--jobs N)")
    if not archs:
        raise UserInputError("no architecture to train: give -fixed_arc or --from_search")
    root = Path(root)
    problem = folder_write_problem(root)
    if problem:
        raise UserInputError(f"cannot write to --output_dir {str(root)!r} ({problem}); choose a writable --output_dir")
    space = get_space(base.space)
    jobs, seen = [], {}
    for rank, text in enumerate(archs, start=1):
        arch = parse_arch(text, space)
        canonical = arch.to_string()
        if canonical in seen:
            raise UserInputError(f"architecture {canonical!r} is listed twice (#{seen[canonical]} and #{rank})")
        seen[canonical] = rank
        seed = base.seed + rank - 1
        check_seed(seed)
        name = f"{rank}-{'_'.join(canonical.split())}-seed{seed}"
        config = replace(base, arch=canonical, seed=seed, output_dir=str(root / name))
        config.validate()
        folder = RunFolder(config.output_dir, "run_config.json", subfolders=("checkpoints", "best", "tensorboard"),
                           finished_is_final=not base.resume)
        folder.check(base.resume, {"identity": config.identity(arch)})
        jobs.append(Job(rank, config, root / f"{name}.log", reuse=base.resume and folder.finished()))
    return jobs


@dataclass
class Outcome:
    """What became of one job."""

    job: Job
    seconds: float
    error: str | None = None
    record: dict[str, Any] | None = None


def run_jobs(jobs: Sequence[Job], processes: int, log: Log = print) -> list[Outcome]:
    """Train the jobs in ``processes`` fresh Python processes at a time; outcomes in rank order."""
    outcomes: dict[int, Outcome] = {}
    todo = []
    for job in jobs:
        if job.reuse:
            outcomes[job.rank] = _read_outcome(job, None, None)
            log(f"#{job.rank} {job.arch}: finished before, reusing {job.folder / 'result.json'}")
        else:
            todo.append(job)
    if todo:
        processes = max(1, min(processes, len(todo)))
        threads = max(1, (os.cpu_count() or 1) // processes)
        log(f"retraining {len(todo)} architecture(s), {processes} at a time ({threads} thread(s) each); logs in "
            f"{todo[0].log_path.parent}")
        todo[0].log_path.parent.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter per job: TensorFlow is not fork-safe
        by_rank = {job.rank: job for job in todo}
        with context.Pool(processes, maxtasksperchild=1) as pool:
            finished = pool.imap_unordered(functools.partial(train_job, threads=threads), todo)
            for done, (rank, seconds, error) in enumerate(finished, start=1):
                job = by_rank[rank]
                outcome = outcomes[rank] = _read_outcome(job, seconds, error)
                status = (f"error: {error}" if error else
                          f"test accuracy {outcome.record['metrics']['test_accuracy']:.4f}")
                log(f"[{done}/{len(todo)}] #{job.rank} {job.arch}: {status} ({seconds:.0f} s)")
    return [outcomes[job.rank] for job in jobs]


def train_job(job: Job, threads: int) -> tuple[int, float, str | None]:
    """One job, in its own process: (rank, wall seconds, why it failed or None). Its log goes to its file."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    started = time.time()
    with open(job.log_path, "a") as out:
        def write(text: str) -> None:
            out.write(text + "\n")
            out.flush()

        try:
            train_architecture(job.config, log=write, progress=False, command=job_command(job.config))
        except (UserInputError, TrainingInterrupted) as err:
            write(f"error: {err}")
            return job.rank, time.time() - started, str(err)
        except Exception as err:  # noqa: BLE001  (one job's crash must not take the others down)
            write(traceback.format_exc())
            return job.rank, time.time() - started, f"{type(err).__name__}: {err} (traceback in {job.log_path})"
    return job.rank, time.time() - started, None


def _read_outcome(job: Job, seconds: float | None, error: str | None) -> Outcome:
    record = None
    if error is None:
        try:
            record = json.loads((job.folder / "result.json").read_text())
        except (OSError, ValueError) as err:
            error = f"no readable result.json in {job.folder} ({err})"
    if seconds is None and record is not None:
        seconds = float(record.get("wall_seconds_this_process", record.get("train_seconds", 0.0)))
    return Outcome(job, seconds or 0.0, error, record)


def job_command(config: TrainConfig) -> str:
    """The ``train_arc.py`` command that trains this one job alone (recorded in its result.json)."""
    words = ["python", "train_arc.py", "-fixed_arc", config.arch, "--space", config.space]
    words += ["--data", config.data_path] if config.data_path else ["--dataset", config.dataset]
    for flag, value, default in (("--num_classes", config.num_classes, None), ("--max_epochs", config.max_epochs, 30),
                                 ("--patience", config.patience, 10), ("--batch_size", config.batch_size, 100),
                                 ("--lr", config.lr, 3e-3), ("--init", config.init, default_init(config.parent)),
                                 ("--parent", config.parent, None), ("--parent_layout", config.parent_layout, "in_out"),
                                 ("--cache_dir", config.cache_dir, "cache"), ("--target", config.target, None),
                                 ("--keep", config.keep, "best")):
        if value != default:
            words += [flag, str(value)]
    if config.distill is not None:
        d = config.distill
        words += ["--distill", f"{d.alpha:g}", "--distill_temperature", f"{d.temperature:g}"]
        words += ["--distill_features", f"{d.features:g}"] if d.features else []
    words += [] if config.augment is None else ["--augment" if config.augment else "--no-augment"]
    words += ["--seed", str(config.seed), "--output_dir", str(config.output_dir)]
    words += [] if config.tflite else ["--no_tflite"]
    return shlex.join(words)


# ---------------------------------------------------------------------- the table
def deployed_size(record: dict[str, Any], folder: Path) -> tuple[int | None, float | None]:
    """(file bytes, latency in ms) of a finished run: its ``deploy`` block where present, else model.tflite's size."""
    deploy = record.get("deploy") if isinstance(record.get("deploy"), dict) else {}
    size, latency = deploy.get("bytes"), deploy.get("latency_ms")
    if isinstance(latency, dict):  # qnas.targets' measurement: single-image median, batch median, ...
        latency = latency.get("single_ms")
    if not isinstance(size, (int, float)):
        size = (record.get("tflite") or {}).get("bytes")
        tflite = (record.get("files") or {}).get("tflite")
        if size is None and tflite and (folder / tflite).is_file():
            size = (folder / tflite).stat().st_size
    return (int(size) if isinstance(size, (int, float)) else None,
            float(latency) if isinstance(latency, (int, float)) else None)


def table_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One plain row per job (also what finalists.json holds)."""
    rows = []
    for outcome in outcomes:
        job, record = outcome.job, outcome.record or {}
        size, latency = deployed_size(record, job.folder) if record else (None, None)
        rows.append({
            "rank": job.rank, "arch": job.arch, "seed": job.config.seed,
            "test_accuracy": record.get("metrics", {}).get("test_accuracy"),
            "kib": record.get("size", {}).get("kib"), "file_bytes": size, "latency_ms": latency,
            "wall_seconds": round(outcome.seconds, 1), "folder": str(job.folder), "error": outcome.error,
        })
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison table: rank, architecture, seed, test accuracy, KiB, file bytes, latency, wall time."""
    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    header = ["#", "architecture", "seed", "test acc", "KiB", "file bytes", "latency ms", "wall s", "folder"]
    body = [[str(r["rank"]), r["arch"], str(r["seed"]), cell(r["test_accuracy"], ".4f"), cell(r["kib"], ".2f"),
             cell(r["file_bytes"], ","), cell(r["latency_ms"], ".3f"), cell(r["wall_seconds"], ".1f"),
             r["folder"] if not r["error"] else f"error: {r['error']}"] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in [header, *body]]
    return "\n".join(["== finalists ==", *lines])


def retrain_finalists(base: TrainConfig, archs: Sequence[str], root: str | Path, processes: int = 1,
                      log: Log = print, command: str | None = None) -> list[dict[str, Any]]:
    """Plan, run and tabulate: the table's rows, also written to ``<root>/finalists.json``."""
    if processes < 1:
        raise UserInputError(f"--jobs must be at least 1, got {processes}")
    jobs = plan_jobs(base, archs, root)
    rows = table_rows(run_jobs(jobs, processes, log))
    extra = {"command": command} if command else {}
    write_json_atomic(Path(root) / "finalists.json", {"rows": rows, **run_record(base.seed, **extra)})
    return rows


def run_from_args(args: argparse.Namespace, command: str,
                  make_config: Callable[[argparse.Namespace, str], TrainConfig], log: Log = print) -> int:
    """What ``train_arc.py`` does with several architectures: resolve them, retrain them, print the table.

    ``make_config(args, arch)`` turns the flags into a ``TrainConfig``; with ``--from_search`` the space, data
    and seed not given on the command line are the search's. Exit status 0 when every job succeeded, else 1.
    """
    if args.top_k is not None and args.from_search is None:
        raise UserInputError("--top_k picks candidates of a search: give --from_search RESULT too")
    archs, name = list(args.fixed_arc or []), None
    if args.from_search is not None:
        found = read_search_finalists(args.from_search, 3 if args.top_k is None else args.top_k)
        archs, name = found.archs, found.name
        args.space = args.space or found.space
        if args.data is None and args.dataset is None:
            args.data, args.dataset = found.data_path, found.dataset
        args.seed = found.seed if args.seed is None else args.seed
    base = make_config(args, archs[0])
    name = name or f"{base.space}-{Path(base.data_path or base.dataset).stem}-seed{base.seed}"
    root = Path(args.output_dir) if args.output_dir else Path("runs") / "finalists" / name
    try:
        rows = retrain_finalists(replace(base, output_dir=None), archs, root, args.jobs, log, command)
    except KeyboardInterrupt:  # the pool has stopped every job; each one's last epoch is checkpointed
        again = command if " --resume" in command else f"{command} --resume"
        log(f"\ninterrupted: finished jobs are kept, the others continue from their last epoch with:\n  {again}")
        return 130
    log(format_table(rows))
    log(f"table saved to {root / 'finalists.json'}")
    return 1 if any(row["error"] for row in rows) else 0
