"""--distribute (qnas.distribute): TF_CONFIG checks, chief-only writes, the data-parallel supernet step, two workers."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

import search_arc_mnist
import train_arc
from qnas.distribute import ClusterTask, Distribution, local_cluster, make_distribution, parse_tf_config, worker_env
from qnas.errors import UserInputError

TWO_WORKERS = {"cluster": {"worker": ["localhost:2222", "localhost:2223"]}, "task": {"type": "worker", "index": 1}}



def _run(script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_tf_config_gives_the_cluster_and_the_chief():
    task = parse_tf_config(json.dumps(TWO_WORKERS))
    assert (task.task_type, task.task_index, task.num_workers, task.is_chief) == ("worker", 1, 2, False)
    assert parse_tf_config(json.dumps({**TWO_WORKERS, "task": {"type": "worker", "index": 0}})).is_chief
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    assert not parse_tf_config(json.dumps(with_chief)).is_chief  # a named chief, not worker 0, writes
    assert parse_tf_config(json.dumps({**with_chief, "task": {"type": "chief", "index": 0}})).is_chief


@pytest.mark.parametrize("value,message", [
    (None, "TF_CONFIG environment variable is not set"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "must be a JSON object with a \"cluster\""),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker"}}', "role(s) ['ps']"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "lists no \"worker\""),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "expected \"host:port\""),
    ('{"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}}', "port 1..65535"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "lists a:1 twice"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}', "task.type is 'chief'"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "must be 0..1"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": "1"}}', "task.index is '1'"),
    ('{"cluster": {"chief": ["a:1", "c:1"], "worker": ["b:1"]}, "task": {"type": "chief"}}', "exactly one address"),
])
def test_a_missing_or_malformed_tf_config_is_refused_with_an_example(value, message):
    with pytest.raises(UserInputError, match="multi_worker") as err:
        make_distribution("multi_worker", environ={} if value is None else {"TF_CONFIG": value})
    assert message in str(err.value) and "TF_CONFIG='{\"cluster\"" in str(err.value)


@pytest.mark.parametrize("mode,replicas,message", [
    ("none", 2, "--replicas applies to --distribute mirrored only"),
    ("multi_worker", 2, "--replicas applies to --distribute mirrored only"),
    ("mirrored", 0, "--replicas must be at least 1"),
    ("mirrored", None, "no GPU is visible; pass --replicas N"),  # this machine has no GPU
    ("ring", None, "unknown --distribute 'ring'"),
])
def test_distribute_flags_are_checked(mode, replicas, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(")):
        make_distribution(mode, replicas)


def test_bad_distribute_flags_stop_both_clis_with_a_message(data_file, tmp_path, capsys, monkeypatch):
    common = ["--data", str(data_file), "--output_dir", str(tmp_path / "o"), "--cache_dir", str(tmp_path / "c")]
    assert train_arc.main(["-fixed_arc", "8 1", *common, "--replicas", "2"]) == 2
    assert "--replicas applies to --distribute mirrored only" in capsys.readouterr().err
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert search_arc_mnist.main([*common, "--space", "mlp", "--distribute", "multi_worker"]) == 2
    assert "TF_CONFIG environment variable is not set" in capsys.readouterr().err
    assert search_arc_mnist.main([*common, "--distribute", "mirrored", "--replicas", "2", "--supernet_step",
                                  "eager"]) == 2
    assert "drop --supernet_step eager" in capsys.readouterr().err
    assert search_arc_mnist.main([*common, "--distribute", "multi_worker", "--max_minutes", "5"]) == 2
    assert "bound the run with --epochs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_non_chief_writes_into_a_private_folder_only(tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-1.index").write_text("chief's")
    cache.mkdir()
    (cache / "parent.keras").write_text("cached")
    chief = Distribution(task=ClusterTask({"worker": ["a:1", "b:1"]}, "worker", 0))
    assert chief.worker_folder(run, resume=True) == run and chief.worker_cache(cache) == str(cache)
    worker = Distribution(task=ClusterTask({"worker": ["a:1", "b:1"]}, "worker", 1))
    fresh = worker.worker_folder(run, resume=False)
    assert tmp_path not in fresh.parents and not any(fresh.iterdir())
    resumed = worker.worker_folder(run, resume=True)  # a resumed worker restores the chief's checkpoint
    assert (resumed / "checkpoints" / "ckpt-1.index").read_text() == "chief's"
    assert (Path(worker.worker_cache(cache)) / "parent.keras").read_text() == "cached"
    said = []
    worker.quiet(said.append)("epoch 1")
    chief.quiet(said.append)("epoch 1")
    assert said == ["epoch 1"] and Path(worker.worker_cache(cache)).parent.name.startswith("qnas-worker1-")


def test_two_replica_step_gives_the_one_replica_weights_and_mirrored_train_arc_runs(data_file, tmp_path):
    """In a fresh process (the CPU must be split into two devices before TensorFlow starts): the data-parallel
    supernet step equals the one-device compiled step on the same global batch (uneven 13/12 split included),
    then train_arc trains under the same two-replica strategy and writes its usual result."""
    done = _run(f"""
        import numpy as np
        from qnas.distribute import make_distribution
        dist = make_distribution("mirrored", 2)
        from enas.supernet import Supernet
        from qnas.arch import parse_arch
        from qnas.spaces import get_space
        from qnas.trainer import TrainConfig, train_architecture
        space = get_space("conv").with_options(num_layers=2, widths=(4, 8), types=(0, 1, 4))
        one = Supernet(space, (8, 8, 1), 4, seed=2, step="compiled")
        with dist.scope():
            two = Supernet(space, (8, 8, 1), 4, seed=2)
        assert two.compiled and two.strategy.num_replicas_in_sync == 2
        rng = np.random.default_rng(1)
        for text in ["8 1 4 4", "4 0 8 1", "8 4 8 0", "4 1 4 1"]:  # the same trace for every child
            x = rng.random((25, 8, 8, 1), dtype=np.float32)
            y = rng.integers(0, 4, 25).astype(np.int32)
            a, b = one.train_step(x, y, parse_arch(text)), two.train_step(x, y, parse_arch(text))
            assert abs(a["loss"] - b["loss"]) < 1e-5 and a["correct"] == b["correct"], (a, b)
        for v, w in zip(one.trainable_variables, two.trainable_variables):  # Adam (lr 2e-3) turns float noise
            for copy in dist.strategy.experimental_local_results(w):   # in near-zero gradients into ~1e-5
                np.testing.assert_allclose(v.numpy(), copy.numpy(), atol=1e-4)
        assert int(two.optimizer.iterations.numpy()) == 4
        result = train_architecture(TrainConfig(arch="12 1 8 2", data_path={str(data_file)!r}, max_epochs=1,
                                                batch_size=32, seed=3, output_dir={str(tmp_path / "mirrored")!r},
                                                tflite=False, distribute="mirrored", replicas=2), log=print)
        assert result.record["config"]["distribute"] == "mirrored"
        print("ALL OK", result.test_accuracy)
    """)
    assert done.returncode == 0 and "ALL OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert "mirrored over 2 replica(s)" in done.stdout
    record = json.loads((tmp_path / "mirrored" / "result.json").read_text())
    assert record["metrics"]["epochs_run"] == 1 and (tmp_path / "mirrored" / "model.keras").exists()


def test_two_worker_train_arc_run_finishes_and_only_the_chief_writes(data_file, tmp_path):
    """Two processes on loopback ports, as on two machines: the chief writes the run, worker 1 nothing outside
    its private temporary folder, which is gone when it exits."""
    cluster = local_cluster(2)
    out = tmp_path / "two"
    argv = [sys.executable, "train_arc.py", "-fixed_arc", "12 1 8 2", "--data", str(data_file), "--max_epochs", "1",
            "--batch_size", "32", "--seed", "3", "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
            "--no_tflite", "--distribute", "multi_worker"]
    temps = [tmp_path / f"tmp{i}" for i in range(2)]
    procs = []
    for index, temp in enumerate(temps):
        temp.mkdir()
        env = worker_env(cluster, "worker", index, {**os.environ, "TMPDIR": str(temp)})
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    try:
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "== result ==" in outputs[0] and "multi-worker: 2 workers" in outputs[0]
    assert "the chief wrote the result" in outputs[1] and "val_acc" not in outputs[1]
    record = json.loads((out / "result.json").read_text())
    assert record["metrics"]["epochs_run"] == 1 and 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert record["config"]["distribute"] == "multi_worker"
    assert not any(temps[1].iterdir())  # worker 1's checkpoints lived in a temporary folder, now removed
