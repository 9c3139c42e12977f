"""Nothing lost, nothing silently wrong: divergence, resume settings, exact weight loading,
damaged files, and the command line's `error: ...` answers (issue 12)."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import EAGER, REPO, TINY_TRAIN, run_main, small_config
from test_task import make_batch

from lgh_tf.files import atomic_path, remove_stale, write_json
from lgh_tf.model.io import load_model
from lgh_tf.training import loop
from lgh_tf.training.task import OptimConfig

INF = math.inf


def train(model_dir, steps, model_config=None, keep=1, every=2, batch_size=2, **optim):
    """loop.train on one hand-made batch repeated (no pipeline: cheap and deterministic)."""
    batch = make_batch(batch_size=batch_size)
    config = loop.TrainConfig(model_dir=str(model_dir), steps=steps, batch_size=batch_size,
                              checkpoint_every=every, keep_checkpoints=keep, verbose=0, run_eagerly=True)
    return loop.train(model_config or small_config(), OptimConfig(**optim), config,
                      lambda start: tf.data.Dataset.from_tensors(batch).repeat())


def checkpoint_arrays(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A model_dir with one good checkpoint (step 2) and its train_results.json."""
    model_dir = tmp_path_factory.mktemp("good") / "run"
    train(model_dir, steps=2)
    return model_dir


def _copy(run, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# ---------------------------------------------------------------------------------------------
# 1. Divergence
# ---------------------------------------------------------------------------------------------


def test_divergence_stops_and_keeps_the_last_good_checkpoint(good_run, tmp_path):
    """Infinite learning rates: weights turn non-finite at step 3, the loss at step 4. The run
    stops naming the step; no non-finite checkpoint is written, so keep_checkpoints=1 keeps
    step 2, and train_results.json stays the good run's."""
    model_dir = _copy(good_run, tmp_path)
    results_before = (model_dir / "train_results.json").read_text()
    with pytest.raises(loop.TrainingDivergedError, match="step 4: the loss is nan.*ckpt-2"):
        train(model_dir, steps=8, lr_rest=INF, lr_selector=INF, lr_fusion=INF)
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-2")
    for name, value in checkpoint_arrays(str(model_dir / "checkpoints" / "ckpt-2")).items():
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name
    assert (model_dir / "train_results.json").read_text() == results_before
    json.loads(results_before)


def test_checkpoint_with_a_non_finite_weight_is_never_written(tmp_path):
    """The weight check before each save (the loss of the step that broke a weight is finite)."""
    task = loop.build_task(small_config(), OptimConfig(), loop.TrainConfig())
    manager = tf.train.CheckpointManager(loop.make_checkpoint(task), str(tmp_path), max_to_keep=1)
    callback = loop.CheckpointCallback(manager, task)
    task.step.assign(2)
    callback.on_epoch_end(0)
    theta = task.network.selector.theta
    theta.assign(tf.fill(theta.shape, np.nan))
    task.step.assign(4)
    with pytest.raises(loop.TrainingDivergedError, match=r"by step 4: 1 variable\(s\) .*selector/theta.*ckpt-2"):
        callback.on_epoch_end(1)
    assert manager.latest_checkpoint.endswith("ckpt-2") and not list(tmp_path.glob("ckpt-4*"))


def test_train_results_are_strict_json(good_run):
    text = (good_run / "train_results.json").read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in train_results.json"))
    assert json.loads(text)["step"] == 2
    with pytest.raises(ValueError):
        write_json(good_run / "bad.json", {"x": float("nan")})
    assert not (good_run / "bad.json").exists()


def test_main_exits_non_zero_on_divergence(tmp_path):
    result = run_main("--mode=train", f"--model_dir={tmp_path / 'run'}", f"--cache_dir={tmp_path / 'cache'}",
                      "--input_size=64", "--backbone_filters=16", "--hourglass_depth=1", "--group_channels=4",
                      "--trunk_hidden=8", EAGER, "--batch_size=2", "--steps=4", "--checkpoint_every=2",
                      "--synthetic_train=8", "--synthetic_test=4", "--eval_batches=1", "--pretrain_steps=0",
                      "--lr_rest=1e30", "--lr_selector=1e30", "--lr_fusion=1e30", check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "error: training diverged at step" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "train_results.json").exists()
    assert not list((tmp_path / "run" / "checkpoints").glob("ckpt-*"))


# ---------------------------------------------------------------------------------------------
# 8. Resume with other settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    (dict(model_config=small_config(input_size=128)), ["--input_size: 64 -> 128"]),
    (dict(model_config=small_config(num_groups=2, fusion=False)),
     ["--fusion: True -> False", "--num_groups: 3 -> 2"]),
    (dict(batch_size=4), ["--batch_size: 2 -> 4"]),
])
def test_resume_with_other_settings_is_refused(good_run, tmp_path, change, expected):
    model_dir = _copy(good_run, tmp_path)
    config_before = (model_dir / "config.json").read_text()
    with pytest.raises(ValueError, match="other settings") as error:
        train(model_dir, steps=4, **change)
    for text in expected:
        assert text in str(error.value)
    assert (model_dir / "config.json").read_text() == config_before
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-2")


def test_resume_with_other_learning_rates_is_allowed_and_uses_them(good_run, tmp_path):
    model_dir = _copy(good_run, tmp_path)
    task, results = train(model_dir, steps=2, lr_rest=2e-4)  # at its last step: start-up only
    assert results["start_step"] == 2 and results["step"] == 2
    assert float(np.asarray(task.optimizers["rest"].learning_rate)) == pytest.approx(2e-4)  # not ckpt's
    assert json.loads((model_dir / "config.json").read_text())["optim"]["lr_rest"] == 2e-4


# ---------------------------------------------------------------------------------------------
# 3. Stale partial checkpoints, atomic files
# ---------------------------------------------------------------------------------------------


def test_partial_checkpoint_of_a_killed_save_is_removed(good_run, tmp_path):
    model_dir = _copy(good_run, tmp_path)
    partial = model_dir / "checkpoints" / "ckpt-4_temp"
    partial.mkdir()
    (partial / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"cut")
    train(model_dir, steps=2)  # nothing to train: only the start-up runs
    assert not partial.exists()


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]
    (tmp_path / ".tmp-3-999999999").mkdir()
    assert remove_stale(tmp_path, r"\.tmp-(?P<version>\d+)-(?P<pid>\d+)") == [str(tmp_path / ".tmp-3-999999999")]


# ---------------------------------------------------------------------------------------------
# 4. Weights that do not fit the configuration
# ---------------------------------------------------------------------------------------------


def _weights(tmp_path, name, config):
    from lgh_tf.model.network import LearnableGroupsNet

    model = LearnableGroupsNet(config).build_for_input()
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(str(path))
    return model, path


def _config_file(path, config):
    path.write_text(json.dumps({"model": dataclasses.asdict(config)}))


def test_weights_h5_must_fit_the_config(tmp_path):
    """K = 3 with fusion beside a config without fusion (the issue's case), and the reverse."""
    _, path = _weights(tmp_path, "k3", small_config())
    _config_file(tmp_path / "k3.config.json", small_config(fusion=False))
    with pytest.raises(ValueError, match=r"k3.weights.h5 does not fit .* stored weight\(s\) the model does "
                                         r"not have \(fusion/"):
        load_model(str(path))
    _, path = _weights(tmp_path, "nofusion", small_config(fusion=False))
    _config_file(tmp_path / "nofusion.config.json", small_config())
    with pytest.raises(ValueError, match=r"model weight\(s\) the file does not have \(fusion/"):
        load_model(str(path))


def test_training_checkpoint_must_fit_the_config(good_run, tmp_path):
    model_dir = _copy(good_run, tmp_path)
    config = json.loads((model_dir / "config.json").read_text())
    config["model"]["fusion"] = False
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"stored weight\(s\) the model does not have \(fusion/"):
        load_model(str(model_dir))


# ---------------------------------------------------------------------------------------------
# 9. Damaged files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["index", "data", "config"])
def test_damaged_checkpoint_files_are_named(good_run, tmp_path, damage):
    model_dir = _copy(good_run, tmp_path)
    prefix = model_dir / "checkpoints" / "ckpt-2"
    if damage == "config":
        (model_dir / "config.json").write_text("")
        target = "config.json"
    else:
        [path] = [p for p in prefix.parent.iterdir() if p.name.startswith("ckpt-2." + damage)]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        target = "ckpt-2"
    with pytest.raises(ValueError, match=target) as error:
        load_model(str(model_dir))
    assert "\n" not in str(error.value)
    if damage == "data":  # resuming from it names it too
        with pytest.raises(ValueError, match="ckpt-2"):
            train(model_dir, steps=4)


def _main(*args):
    return run_main(*args, check=False)  # an uncaught exception (a traceback) fails the test here


def test_command_line_errors_name_the_file_or_flag(good_run, tmp_path):
    """Each case: one `error: ...` line naming the file or flag, exit status 2, no traceback."""
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    empty_config = _copy(good_run, tmp_path / "empty")
    (empty_config / "config.json").write_text("")
    cases = [
        (["--mode=groups", f"--checkpoint={untrained}"], str(untrained)),
        (["--mode=export", f"--checkpoint={untrained}", f"--export_dir={tmp_path / 'lgh'}"], str(untrained)),
        (["--mode=export", f"--checkpoint={good_run}", "--export_version=-1"], "--export_version"),
        (["--mode=export", f"--checkpoint={empty_config}"], "config.json"),
        (["--mode=groups", f"--checkpoint={good_run}", f"--model_dir={a_file}"], str(a_file)),
        (["--mode=eval", f"--checkpoint={good_run}", f"--output_dir={a_file}"], str(a_file)),
        (["--mode=predict", f"--checkpoint={good_run}", f"--output_dir={a_file}",
          f"--image={REPO / 'tests' / 'conftest.py'}"], str(a_file)),
        (["--mode=train", f"--model_dir={a_file}"], str(a_file)),
    ]
    for args, named in cases:
        result = _main(*args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and named in lines[0], (args, result.stderr[-2000:])


# ---------------------------------------------------------------------------------------------
# 11. FreiHAND as released: evaluation images without evaluation_xyz.json
# ---------------------------------------------------------------------------------------------


def test_freihand_as_released_trains_without_held_out_figures(tmp_path):
    from fixtures_datasets import write_freihand

    write_freihand(tmp_path / "FreiHAND_pub_v2", n_train=2, n_eval=2, eval_labels=False)
    result = run_main("--mode=train", "--dataset=freihand", f"--data_dir={tmp_path / 'FreiHAND_pub_v2'}",
                      f"--model_dir={tmp_path / 'run'}", f"--cache_dir={tmp_path / 'cache'}", *TINY_TRAIN, EAGER)
    assert "freihand/eval has no labelled sample: training without held-out figures" in result.stdout
    assert "Trained to step 2" in result.stdout and "held-out" not in result.stdout.split("Trained")[1]
    assert "before" not in json.loads((tmp_path / "run" / "train_results.json").read_text())
