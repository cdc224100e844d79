"""train_arc.py with several architectures (qnas.finalists): a search's top K as parallel jobs, one table."""
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

import train_arc
from qnas.arch import parse_arch
from qnas.distill import DistillConfig
from qnas.finalists import Job, Outcome, deployed_size, format_table, job_command, read_search_finalists, table_rows
from qnas.trainer import TrainConfig

CANDIDATES = ["12 1 8 2", "8 4 8 1", "16 0 8 1"]


@pytest.fixture(scope="module")
def search_result(tmp_path_factory):
    """A finished search's result.json (as search_arc_mnist.py writes it) over tiny synthetic data."""
    folder = tmp_path_factory.mktemp("search") / "mlp-controller-seed4"
    folder.mkdir()
    rng = np.random.default_rng(0)

    def split(n):
        y = rng.integers(0, 3, n)
        x = rng.random((n, 8, 8)) * 0.4
        for c in range(3):
            x[y == c, 2 * c:2 * c + 3, :] += 0.6
        return (np.clip(x, 0, 1) * 255).astype(np.uint8), y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = split(240), split(60)
    data = folder.parent / "synthetic.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (folder / "result.json").write_text(json.dumps({
        "best_arch": CANDIDATES[0], "space": "mlp", "seed": 4,
        "retrain_command": f"python train_arc.py -fixed_arc '{CANDIDATES[0]}' --space mlp --data {data} --seed 4",
        "candidates": [{"arch": a, "reward": 1.0 - i / 10} for i, a in enumerate(CANDIDATES)],
    }))
    return folder


@pytest.fixture(scope="module")
def finalists_run(search_result, tmp_path_factory):
    """--top_k 2 --jobs 2: two processes side by side."""
    out = tmp_path_factory.mktemp("runs") / "finalists"
    argv = ["--from_search", str(search_result / "result.json"), "--top_k", "2", "--jobs", "2", "--max_epochs", "1",
            "--batch_size", "32", "--no_tflite", "--output_dir", str(out), "--cache_dir", str(out.parent / "cache")]
    return out, argv, train_arc.main(argv)


def test_top_k_retrains_the_search_finalists_as_parallel_jobs_and_prints_a_table(finalists_run, capsys):
    out, _, code = finalists_run
    assert code == 0
    rows = json.loads((out / "finalists.json").read_text())["rows"]
    assert [(r["rank"], r["arch"], r["seed"]) for r in rows] == [(1, CANDIDATES[0], 4), (2, CANDIDATES[1], 5)]
    for row in rows:  # each job: its own folder, seed, log and a complete train_arc result
        folder = Path(row["folder"])
        record = json.loads((folder / "result.json").read_text())
        assert record["arch"] == row["arch"] and record["seed"] == row["seed"] and record["space"] == "mlp"
        assert record["data"] == "synthetic.npz" and record["metrics"]["epochs_run"] == 1
        assert row["test_accuracy"] == record["metrics"]["test_accuracy"] and row["error"] is None
        assert record["command"].startswith(f"python train_arc.py -fixed_arc '{row['arch']}' --space mlp --data ")
        assert f"--seed {row['seed']} --output_dir {folder}" in record["command"]  # this job alone
        assert Path(f"{folder}.log").read_text().count("epoch   1/1") == 1


def test_finished_finalists_are_reused_with_resume_and_refused_without(finalists_run, capsys):
    _, argv, _ = finalists_run
    assert train_arc.main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert train_arc.main([*argv, "--resume"]) == 0  # nothing trains again: both are read back
    printed = capsys.readouterr().out
    assert printed.count("finished before, reusing") == 2 and "== finalists ==" in printed


@pytest.mark.parametrize("extra,message", [
    (["-fixed_arc", "8 1", "--top_k", "2"], "--top_k picks candidates of a search"),
    (["--from_search", "/nonexistent/result.json"], "cannot read /nonexistent/result.json"),
    (["--from_search", "BAD"], "is not valid JSON"),
    (["--from_search", "SEARCH", "--top_k", "4"], "holds 3 candidate(s); use --top_k 3 or less"),
    (["--from_search", "SEARCH", "--top_k", "0"], "--top_k must be at least 1"),
    (["--from_search", "SEARCH", "--jobs", "0"], "--jobs must be at least 1"),
    (["-fixed_arc", "8 1", "8:binary"], "listed twice"),
    (["-fixed_arc", "8 1", "8 9"], "unknown type code 9"),
    (["-fixed_arc", "8 1", "4 1", "--distribute", "mirrored", "--replicas", "2"], "--jobs N"),
    (["-fixed_arc", "8 1", "4 1", "--max_epochs", "0"], "--max_epochs must be at least 1"),
])
def test_bad_finalist_flags_are_refused_before_any_job_starts(extra, message, search_result, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    extra = [str(search_result) if e == "SEARCH" else str(bad) if e == "BAD" else e for e in extra]
    data = str(search_result.parent / "synthetic.npz")
    assert train_arc.main([*extra, "--data", data, "--output_dir", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_search_settings_are_the_defaults(search_result):
    found = read_search_finalists(search_result, 3)
    assert found.archs == CANDIDATES and found.space == "mlp" and found.seed == 4
    assert found.data_path.endswith("synthetic.npz") and found.name == "mlp-controller-seed4"


def test_table_shows_deployed_bytes_and_latency_when_the_result_has_them(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"x" * 1234)
    exported = {"files": {"tflite": "model.tflite"}, "tflite": {}}
    assert deployed_size(exported, tmp_path) == (1234, None)  # the file's bytes
    assert deployed_size({**exported, "deploy": {"bytes": 999, "latency_ms": 0.75}}, tmp_path) == (999, 0.75)
    assert deployed_size({"files": {"tflite": None}}, tmp_path) == (None, None)
    job = Job(1, TrainConfig(arch="8 1", output_dir=str(tmp_path)), tmp_path / "1.log", reuse=False)
    record = {"metrics": {"test_accuracy": 0.9812}, "size": {"kib": 1.5}, "deploy": {"bytes": 2048, "latency_ms": 0.4}}
    table = format_table(table_rows([Outcome(job, 12.34, record=record),
                                     Outcome(job, 3.0, error="error: --lr must be a positive number")]))
    lines = table.splitlines()
    assert lines[0] == "== finalists ==" and lines[1].split()[:4] == ["#", "architecture", "seed", "test"]
    assert "0.9812" in lines[2] and "1.50" in lines[2] and "2,048" in lines[2] and "0.400" in lines[2]
    assert "12.3" in lines[2] and "--lr must be a positive number" in lines[3]


def test_a_job_s_recorded_command_rebuilds_its_settings(tmp_path):
    config = TrainConfig(arch="8 1 4 0", space="mlp", data_path=str(tmp_path / "d.npz"), max_epochs=100, seed=2,
                         output_dir=str(tmp_path / "job"), parent=str(tmp_path / "p.keras"), init="random",
                         distill=DistillConfig(0.7, 2.0, 0.1), keep="last", augment=False, target="bits", tflite=False)
    words = shlex.split(job_command(config))
    args = train_arc.build_parser().parse_args(words[2:])
    again = train_arc.config_from_args(args, args.fixed_arc[0])
    arch = parse_arch(config.arch)
    assert again.identity(arch) == config.identity(arch)  # distillation, --keep and --no-augment included
    assert (again.target, again.tflite, again.output_dir) == ("bits", False, config.output_dir)
    config.augment = True  # given explicitly: recorded, as a resume compares it
    assert train_arc.config_from_args(train_arc.build_parser().parse_args(shlex.split(job_command(config))[2:]),
                                      config.arch).augment is True
