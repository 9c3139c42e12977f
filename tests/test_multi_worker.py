"""--strategy=multi_worker for real: two worker processes on this host (loopback only) train, the
chief writes the checkpoint, and both resume from it; the input pipeline is sharded by data."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from conftest import REPO, distribute_tests
from test_main_train import TINY

# Per two-worker run: ~50 s on the 2-core development machine; a hung collective must not hang
# the suite.
RUN_TIMEOUT_S = 600
# The traced train step (the collectives' real path), not the eager one the other tiny runs use.
# A constant rate: the resume runs to more steps, which a cosine decay (fixed length) refuses.
GRAPH_TINY = [flag for flag in TINY if flag != "--run_eagerly"] + ["--lr_decay=none"]


def free_loopback_ports(count):
    """Ports the kernel just handed out on 127.0.0.1 (closed again, so the workers can bind them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(model_dir, cache, steps, logs_dir):
    """Runs both workers of a 2-worker cluster to ``steps``; returns their logs. Kills whatever
    is still running when it returns or fails."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_loopback_ports(2)]}
    processes, logs = [], []
    try:
        for index in range(2):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            log = open(logs_dir / f"steps{steps}_worker{index}.log", "w+")
            logs.append(log)
            command = [sys.executable, str(REPO / "main.py"), "--mode=train", f"--model_dir={model_dir}",
                       f"--cache_dir={cache}", *GRAPH_TINY, "--batch_size=4", f"--steps={steps}",
                       "--strategy=multi_worker", "--eval_batches=2", "--logtostderr"]
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + RUN_TIMEOUT_S
        while time.time() < deadline and any(p.poll() is None for p in processes):
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read())
        log.close()
    for index, (process, text) in enumerate(zip(processes, texts)):
        assert process.returncode == 0, f"worker {index} exited {process.returncode}:\n{text[-4000:]}"
    return texts


def log_lines(text, *needles):
    return [line for line in text.splitlines() if any(n in line for n in needles)]


@distribute_tests
def test_two_workers_train_checkpoint_on_the_chief_and_resume(tmp_path):
    from lgh_tf.data.synthetic import load_synthetic

    cache, model_dir = tmp_path / "cache", tmp_path / "run"
    # Generated once here, so the two workers do not race to write the same cache.
    load_synthetic(str(cache), "train", num_samples=24)
    load_synthetic(str(cache), "test", num_samples=8)

    first = run_workers(model_dir, cache, steps=2, logs_dir=tmp_path)
    checkpoints = model_dir / "checkpoints"
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-2")
    # The chief's outputs only (and the chief's lock file): no worker scratch directory or temporary
    # file is left behind.
    assert sorted(os.listdir(model_dir)) == [".lock", "checkpoints", "config.json", "groups.png",
                                             "learning_curves.json", "learning_curves.png", "tensorboard",
                                             "train_results.json"]
    second = run_workers(model_dir, cache, steps=4, logs_dir=tmp_path)
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-4")

    needles = ("replicas in sync", "checkpoint", "resumed from", "trained to step")
    for run, texts in (("steps 0-2", first), ("steps 2-4", second)):
        for index, text in enumerate(texts):
            print(f"\n--- {run}, worker {index}:\n" + "\n".join(log_lines(text, *needles)))
    chief, other = first
    assert "2 replicas in sync, worker 0 of 2 (chief)" in chief
    assert "2 replicas in sync, worker 1 of 2" in other and "(chief)" not in other
    assert f"step 2: checkpoint {checkpoints}/ckpt-2" in chief
    assert "step 2: non-chief checkpoint written to scratch and removed" in other
    for text in second:  # both workers restore the chief's checkpoint
        assert f"resumed from {checkpoints}/ckpt-2 at step 2" in text
        assert "trained to step 4" in text
    results = json.loads((model_dir / "train_results.json").read_text())
    assert results["start_step"] == 2 and results["step"] == 4
    reader = tf.train.load_checkpoint(str(checkpoints / "ckpt-4"))
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 4


def test_workers_read_disjoint_shares_of_each_epoch(tmp_path):
    """distributed_train_dataset's per-worker pipelines: over one epoch of the global stream no
    worker sees a sample twice and no two workers share one; together they see every sample."""
    from lgh_tf.data.pipeline import make_dataset
    from lgh_tf.data.synthetic import load_synthetic
    from lgh_tf.training.loop import distributed_train_dataset

    records = load_synthetic(str(tmp_path / "cache"), "test", num_samples=16, image_size=64)
    roots = {float(np.float32(z)): i for i, z in enumerate(records.xyz[:, 12, 2])}
    assert len(roots) == len(records)  # root depth identifies a sample

    def make_train_dataset(start_sample, batch_size=8, shard=(1, 0)):
        return make_dataset(records, output_size=64, batch_size=batch_size, training=True, seed=5,
                            start_sample=start_sample, shard=shard)

    class TwoWorkers:  # what distributed_train_dataset uses of a 2-worker, 2-replica strategy
        num_replicas_in_sync = 2

        def distribute_datasets_from_function(self, fn):
            return fn

    _, dataset_fn = distributed_train_dataset(TwoWorkers(), make_train_dataset, 0, global_batch_size=4)
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=2)
        dataset = dataset_fn(context)
        assert dataset.element_spec["image"].shape[0] == 2  # per-replica batch 4 / 2
        batches = dataset.take(len(records) // 2 // 2)  # one epoch: 16 samples over 2 workers
        seen.append([roots[float(z)] for b in batches for z in b["root_depth"].numpy()])
    for worker, samples in enumerate(seen):
        assert len(samples) == len(set(samples)) == len(records) // 2, (worker, samples)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(records)))
    # One step: the workers' batches together are one device's global batch of 4.
    single = next(iter(make_train_dataset(0, batch_size=4)))
    step0 = sorted(seen[0][:2] + seen[1][:2])
    assert step0 == sorted(roots[float(z)] for z in single["root_depth"].numpy())
