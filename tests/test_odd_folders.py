"""Odd folders lose nothing, and a run knows the synthetic data it trained on (issue 33): a lock
file that is a link, a missing or damaged checkpoint index, a report cut short by a full disk, a
resume or an evaluation on another synthetic world."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import EAGER, TINY_TRAIN, run_main, small_config
from test_task import make_batch

from lgh_tf import files
from lgh_tf.evaluation import evaluate
from lgh_tf.model.io import latest_checkpoint
from lgh_tf.training import loop

# ---------------------------------------------------------------------------------------------
# The lock file is never followed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, dangling):
    run, target = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    if not dangling:
        target.write_text("keep me\n")
    os.symlink(target, run / files.LOCK_NAME)
    with pytest.raises(files.OutputError, match=r"--model_dir: the lock file .*\.lock is a symbolic link"):
        with files.run_lock(str(run)):
            pytest.fail("locked through a link")
    assert target.exists() != dangling
    if not dangling:
        assert target.read_text() == "keep me\n"


def test_main_refuses_a_linked_lock_in_one_line(tmp_path):
    run, target = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    target.write_text("keep me\n")
    os.symlink(target, run / ".lock")
    result = run_main("--mode=train", f"--model_dir={run}", f"--cache_dir={tmp_path / 'cache'}", check=False)
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "is a symbolic link" in error[0] and "Traceback" not in result.stderr
    assert target.read_text() == "keep me\n"


# ---------------------------------------------------------------------------------------------
# A missing, damaged or stale checkpoint index
# ---------------------------------------------------------------------------------------------


CODED = {"dataset": "synthetic", "synthetic_world": "coded", "synthetic_seed": 0, "synthetic_train": 24,
         "synthetic_test": 8}


def _train_on(model_dir, steps, data=CODED):
    """loop.train of the tiny network on one hand-made batch, recording ``data`` as its training data."""
    batch = make_batch(batch_size=2)
    config = loop.TrainConfig(model_dir=str(model_dir), steps=steps, batch_size=2, checkpoint_every=2,
                              keep_checkpoints=5, verbose=0, run_eagerly=True)
    return loop.train(small_config(), loop.OptimConfig(), config,
                      lambda start: tf.data.Dataset.from_tensors(batch).repeat(), data=data)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A run folder with ckpt-2 and ckpt-4 (and the index naming both), trained on CODED."""
    model_dir = tmp_path_factory.mktemp("two") / "run"
    _train_on(model_dir, 4)
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("ckpt-*.index")) == ["ckpt-2.index",
                                                                                        "ckpt-4.index"]
    return model_dir


def _copy(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", tmp_path / "run" / "checkpoints"


def _snapshot(checkpoints):
    return {p.name: p.read_bytes() for p in checkpoints.glob("ckpt-*")}


def _spoil_index(checkpoints, index):
    if index == "missing":
        (checkpoints / "checkpoint").unlink()
    elif index == "garbage":
        (checkpoints / "checkpoint").write_bytes(b"\x00garbage {{{ not a proto\n")
    else:  # "stale": names ckpt-2 only, as an older copy of the folder would
        (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n'
                                                'all_model_checkpoint_paths: "ckpt-2"\n')


@pytest.mark.parametrize("index", ["missing", "garbage", "stale"])
def test_a_bad_index_points_to_the_newest_checkpoint(two_checkpoints, tmp_path, index):
    _, checkpoints = _copy(two_checkpoints, tmp_path)
    _spoil_index(checkpoints, index)
    if index == "stale":
        assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-2")
    else:
        assert tf.train.latest_checkpoint(str(checkpoints)) is None  # what the run resumed from before: nothing
    for resume in (True, False):
        assert latest_checkpoint(str(checkpoints), resume=resume) == str(checkpoints / "ckpt-4")


def test_a_missing_index_resumes_from_the_newest_checkpoint_and_overwrites_none(two_checkpoints, tmp_path):
    """Before: the run restarted at step 0 and wrote ckpt-2 and ckpt-4 over the old ones."""
    model_dir, checkpoints = _copy(two_checkpoints, tmp_path)
    before = _snapshot(checkpoints)
    _spoil_index(checkpoints, "missing")
    _, results = _train_on(model_dir, 6)
    assert results["start_step"] == 4 and results["step"] == 6
    after = _snapshot(checkpoints)
    assert {name: after[name] for name in before} == before  # not one byte of ckpt-2, ckpt-4 changed
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-6")


def test_a_bad_index_and_an_unreadable_newest_checkpoint_is_refused(two_checkpoints, tmp_path):
    model_dir, checkpoints = _copy(two_checkpoints, tmp_path)
    (checkpoints / "checkpoint").unlink()
    (checkpoints / "ckpt-4.index").write_bytes(b"\x01" * 10)
    before = _snapshot(checkpoints)
    with pytest.raises(ValueError, match=r"ckpt-4 cannot be read .* index .*checkpoint is missing or damaged: "
                                         r"training on would overwrite it"):
        _train_on(model_dir, 6)
    result = run_main("--mode=train", f"--model_dir={model_dir}", f"--cache_dir={tmp_path / 'cache'}", *TINY_TRAIN,
                      EAGER, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "ckpt-4 cannot be read" in errors[0] and "move it away or use another --model_dir" in errors[0]
    assert _snapshot(checkpoints) == before and not (checkpoints / "checkpoint").exists()


def test_loading_a_folder_without_index_takes_the_newest_checkpoint(two_checkpoints, tmp_path):
    from lgh_tf.model.io import load_model

    model_dir = tmp_path / "run"
    shutil.copytree(two_checkpoints, model_dir)
    (model_dir / "checkpoints" / "checkpoint").unlink()
    model = load_model(str(model_dir))
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "ckpt-4"))
    name = next(n for n in reader.get_variable_to_shape_map() if "selector" in n and "theta" in n)
    np.testing.assert_array_equal(model.selector.theta.numpy(), reader.get_tensor(name))


# ---------------------------------------------------------------------------------------------
# The evaluation report is written whole or not at all
# ---------------------------------------------------------------------------------------------


def _results(mean):
    return {"dataset": "stb", "protocol": "rhd_stb_3d", "2d": None, "units": {"2d": "px"}, "notes": [],
            "3d": {"thresholds_mm": [20.0, 50.0], "pck": [0.5, 1.0], "auc_0_50": 0.7, "mean_epe_mm": mean,
                   "per_joint_mean_epe_mm": {"wrist": mean}}}


def test_a_full_disk_midway_through_the_report_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    """Before: results.json and the pictures were replaced, predictions.npz stayed the old run's."""
    out = tmp_path / "eval"
    evaluate.write_report(_results(10.0), str(out), predictions={"xyz_mm": np.zeros((1, 21, 3))})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"results.json", "pck_curves.png", "per_joint_errors.png", "predictions.npz"}

    def full_disk(path, **arrays):
        raise files.output_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(files, "save_npz", full_disk)
    with pytest.raises(files.OutputError, match=r"cannot write .*eval/predictions.npz: No space left") as error:
        evaluate.write_report(_results(99.0), str(out), predictions={"xyz_mm": np.ones((1, 21, 3))})
    assert ".staging" not in str(error.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either


def test_a_report_replaces_the_previous_one_entirely(tmp_path):
    out = tmp_path / "eval"
    evaluate.write_report(_results(10.0), str(out), predictions={"xyz_mm": np.zeros((1, 21, 3))})
    (out / "notes.txt").write_text("the user's own file\n")
    paths = evaluate.write_report(_results(20.0), str(out))  # no predictions this time
    assert json.loads((out / "results.json").read_text())["3d"]["mean_epe_mm"] == 20.0
    assert not (out / "predictions.npz").exists()  # the previous run's would mix two runs
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "pck_curves.png", "per_joint_errors.png",
                                                     "results.json"]
    assert paths["results"] == os.path.join(str(out), "results.json")


# ---------------------------------------------------------------------------------------------
# The synthetic data a run trained on
# ---------------------------------------------------------------------------------------------

def test_the_synthetic_world_is_stored_and_fixed_on_resume(two_checkpoints, tmp_path):
    """Before: a coded-world run resumed with --synthetic_world=realistic trained on with exit 0."""
    model_dir, checkpoints = _copy(two_checkpoints, tmp_path)
    stored = json.loads((model_dir / "config.json").read_text())
    assert stored["data"] == CODED
    before = (_snapshot(checkpoints), (model_dir / "config.json").read_text())
    for change, text in ((dict(synthetic_world="realistic"), "--synthetic_world: 'coded' -> 'realistic'"),
                         (dict(synthetic_seed=3), "--synthetic_seed: 0 -> 3"),
                         (dict(synthetic_train=4000), "--synthetic_train: 24 -> 4000"),
                         (dict(synthetic_test=500), "--synthetic_test: 8 -> 500"),
                         (dict(dataset="stb"), "--dataset: 'synthetic' -> 'stb'")):
        with pytest.raises(ValueError, match="other settings that cannot change on resume") as error:
            _train_on(model_dir, 6, {**CODED, **change})
        assert text in str(error.value) and str(error.value).count("->") == 1
    assert (_snapshot(checkpoints), (model_dir / "config.json").read_text()) == before
    current = {"model": stored["model"], "optim": stored["optim"], "train": stored["train"], "data": CODED}
    assert loop.config_differences(stored, current) == []  # the same data resumes
    # A run made before the data were recorded resumes as before.
    assert loop.config_differences({k: v for k, v in stored.items() if k != "data"}, current) == []


def test_eval_on_another_world_says_so(tmp_path):
    """A run trained on the coded world, evaluated on the realistic one (before: not a word)."""
    coded = tmp_path / "coded"
    coded.mkdir()
    (coded / "config.json").write_text(json.dumps({"data": CODED}))
    assert evaluate.training_data_notes([str(coded)], "synthetic", "coded") == []
    assert evaluate.training_data_notes([str(coded / "checkpoints" / "ckpt-2")], "synthetic", "realistic") == [
        f"{coded / 'checkpoints' / 'ckpt-2'} was trained on the coded synthetic world, evaluated here on the "
        "realistic synthetic world"]
    # main.py --mode=eval prints it and stores it in results.json: tests/test_evaluate.py
