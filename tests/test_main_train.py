"""main.py --mode=train end to end: exact resume after SIGKILL (real processes, the point of the test), a
missing data set stops at once, training on the STB layout, and --mode=groups (in process)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_main

TINY = [
    "--input_size=64", "--backbone_filters=16", "--hourglass_depth=1", "--group_channels=4", "--trunk_hidden=8",
    "--batch_size=2", "--steps=6", "--checkpoint_every=2", "--synthetic_train=24",
    "--synthetic_test=8", "--eval_batches=1", "--temperature_every=2", "--temperature_decrement=1",
    "--deterministic", "--pretrain_steps=0", "--run_eagerly",
]


def main_command(model_dir, cache_dir, *extra):
    return [sys.executable, str(REPO / "main.py"), "--mode=train", f"--model_dir={model_dir}",
            f"--cache_dir={cache_dir}", *TINY, *extra]


def run(command, timeout=600):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def checkpoint_values(model_dir, number):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{number}"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not name.startswith(("save_counter", "_CHECKPOINTABLE"))
    }


def _kill_after_first_checkpoint(model_dir, cache):
    """Starts a training run and SIGKILLs it once its first checkpoint is complete."""
    process = subprocess.Popen(main_command(model_dir, cache), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state = model_dir / "checkpoints" / "checkpoint"  # CheckpointManager writes it after the data

    def saved():
        return state.exists() and "ckpt-" in state.read_text()

    deadline = time.time() + 500
    while not saved() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert saved(), "the run never wrote its first checkpoint"
    assert not (model_dir / "train_results.json").exists(), "killed too late to test a resume"


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # The uninterrupted run goes on beside the one to be killed (their start-up overlaps); each has
    # its own synthetic cache (the data are the same: deterministic per seed, split and index).
    uninterrupted = subprocess.Popen(main_command(straight, tmp_path / "cache_a"), cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _kill_after_first_checkpoint(resumed, tmp_path / "cache_b")
        out, err = uninterrupted.communicate(timeout=600)
    finally:
        if uninterrupted.poll() is None:  # a failed assertion above: do not leave it running
            uninterrupted.kill()
            uninterrupted.communicate()
    assert uninterrupted.returncode == 0, err[-3000:]
    assert "Trained to step 6" in out

    result = run(main_command(resumed, tmp_path / "cache_b"))
    assert "resumed from" in result.stderr
    a, b = checkpoint_values(straight, 6), checkpoint_values(resumed, 6)
    assert a.keys() == b.keys() and len(a) > 100
    # Same ops in the same order on the same data: bitwise equal is expected; allow float noise.
    worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0 for k in a)
    assert worst <= 1e-6
    assert sum(k.startswith("network/") for k in a) > 500  # every layer, also inside lists
    step = [k for k in a if k.startswith("step/")][0]
    tau = [k for k in a if k.startswith("network/temperature/")][0]
    assert int(a[step]) == int(b[step]) == 6
    assert float(a[tau]) == float(b[tau]) == pytest.approx(3.0)  # tau(5) = 5 - 1 * (5 // 2)
    assert any(k.startswith("optimizer_selector/") for k in a)  # optimizer slots are saved


def test_missing_real_dataset_stops_at_once(tmp_path):
    result = run_main("--mode=train", "--dataset=stb", f"--data_dir={tmp_path / 'nowhere'}",
                      f"--model_dir={tmp_path / 'run'}", check=False)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "STB" in result.stderr
    assert not (tmp_path / "run").exists()  # stopped before building or writing anything


def test_train_runs_real_steps_on_an_stb_fixture(trained_run, tmp_path):
    """--dataset=stb reads the published STB layout (tiny fixture) and trains for real (the session's
    shared run, conftest.trained_run); --mode=groups shows its grouping."""
    stdout = trained_run.result.stdout
    assert "Trained to step 2" in stdout
    assert "held-out error_3d_mm" in stdout  # B1 is the evaluation split
    assert (trained_run.model_dir / "checkpoints" / "checkpoint").exists()

    # --mode=groups on the trained checkpoint: the grouping as text and as a picture.
    result = run_main("--mode=groups", f"--checkpoint={trained_run.model_dir}", f"--model_dir={tmp_path / 'groups'}")
    assert result.stdout.count("group ") >= 3 and "wrist" in result.stdout
    import cv2

    picture = cv2.imread(str(tmp_path / "groups" / "groups.png"))
    assert picture is not None and picture.shape[0] > 200 and picture.std() > 10
    # How firm each assignment is: per joint its group, softmax(theta) and the margin, as loaded.
    from lgh_tf.model.io import load_model
    from lgh_tf.training import selector_log

    firm = selector_log.firmness(load_model(str(trained_run.model_dir)).selector.theta.numpy())
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:4] == ["joint", "group", "p(group)", "margin"])
    for joint, line in enumerate(lines[header + 1:header + 22]):
        _, group, probability, margin = line.split()
        assert int(group) == firm["group"][joint] + 1
        assert float(probability) == pytest.approx(firm["probability"][joint], abs=6e-4)
        assert float(margin) == pytest.approx(firm["margin"][joint], abs=6e-4)
    # The run's selector log (selector_log.npz) drawn as trajectories.
    trajectories = cv2.imread(str(tmp_path / "groups" / "selector_trajectories.png"))
    assert trajectories is not None and trajectories.std() > 10


def test_dataset_flagfile_is_prepended_unless_a_flagfile_is_given():
    import main

    assert main.with_dataset_flagfile(["main.py", "--dataset=stb", "--steps=2"])[1].endswith("stb.cfg")
    assert main.with_dataset_flagfile(["main.py"])[1].endswith("synthetic.cfg")
    argv = ["main.py", "--flagfile=flags/ablations/k2.cfg"]
    assert main.with_dataset_flagfile(argv) == argv


def test_flags_become_one_experiment_config_and_one_export_config():
    from absl import flags

    import main
    from lgh_tf.config import ExperimentConfig, ExportConfig

    flags.FLAGS.unparse_flags()
    flags.FLAGS(main.with_dataset_flagfile([
        "main.py", "--input_size=64", "--batch_size=4", "--seed=3", "--lr_decay=cosine", "--steps=10",
        "--pretrain_steps=2", "--temperature_every=7", "--noaugment", "--tflite=float32,int8", "--export_version=5",
    ]))
    try:
        experiment = main.configs_from_flags().validate()
        export = main.export_config_from_flags().validate()
    finally:
        flags.FLAGS.unparse_flags()
    assert isinstance(experiment, ExperimentConfig) and isinstance(export, ExportConfig)
    # One flag, every config that needs it, the same value.
    assert experiment.model.input_size == experiment.data.output_size == 64
    assert experiment.train.batch_size == experiment.data.batch_size == 4
    assert experiment.train.seed == experiment.data.seed == experiment.model.selector_seed == 3
    assert experiment.optim.lr_decay_steps == 10 and experiment.optim.temperature.every == 7
    assert experiment.pretrain_steps == 2 and experiment.data.augment is False
    assert export.tflite == ("float32", "int8") and export.version == 5 and export.precision == "float32"
