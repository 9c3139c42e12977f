"""Every training run draws its learning curves (learning_curves.png/.json) and its grouping."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf
from conftest import small_config
from test_task import make_batch

from lgh_tf.training import loop, selector_log
from lgh_tf.training.schedules import TemperatureSchedule
from lgh_tf.training.task import OptimConfig


def _train(model_dir, steps, stage="full"):
    batches = [make_batch(seed=s) for s in range(3)]
    stream = tf.data.Dataset.from_tensor_slices(tf.range(3)).repeat()

    def make_train_dataset(start_sample):
        return stream.skip(start_sample).map(lambda i: tf.nest.map_structure(
            lambda *xs: tf.stack(xs)[i], *batches))

    held_out = tf.data.Dataset.from_tensors(make_batch(seed=7)).repeat(2)
    # With a cosine decay of the rates, which a resumed run continues.
    optim = OptimConfig(stage=stage, temperature=TemperatureSchedule(5.0, 1.0, 1, 0.1), lr_decay_steps=6)
    train = loop.TrainConfig(model_dir=str(model_dir), steps=steps, batch_size=2,
                             checkpoint_every=2, eval_batches=2, verbose=0, run_eagerly=True)
    return loop.train(small_config(), optim, train, make_train_dataset, held_out)


def _picture(path):
    picture = cv2.imread(str(path))
    assert picture is not None, path
    return picture


def test_short_run_writes_learning_curves_and_groups_and_resumes_them(tmp_path):
    task, results = _train(tmp_path, steps=4)
    history = json.loads((tmp_path / "learning_curves.json").read_text())
    train, held_out = history["train"], history["eval"]
    assert train["step"] == [1, 2, 3, 4]
    # tau of step s was set from the step counter before it (s - 1): 5, 4, 3, 2.
    np.testing.assert_allclose(train["temperature"], [5.0, 4.0, 3.0, 2.0])
    for name in ("loss", "loss_xy", "loss_z", "error_2d_px", "error_3d_mm"):
        assert len(train[name]) == 4 and np.all(np.isfinite(train[name])), name
    assert held_out["step"] == [0, 2, 4]
    assert held_out["error_3d_mm"][0] == pytest.approx(results["before"]["error_3d_mm"])
    assert held_out["error_3d_mm"][-1] == pytest.approx(results["after"]["error_3d_mm"], rel=1e-5)
    curves = _picture(tmp_path / "learning_curves.png")
    assert curves.shape[1] >= 4 * 300 and curves.std() > 10  # four panels, not blank
    assert results["learning_curves"] == str(tmp_path / "learning_curves.png")
    groups = _picture(tmp_path / "groups.png")
    assert groups.shape[0] > 200 and groups.std() > 10
    assert not list(tmp_path.glob("*.tmp*"))
    # The selector's log: softmax(theta) at step 0 (1/K everywhere) and at every checkpoint.
    log = selector_log.read_log(str(tmp_path / "selector_log.npz"))
    assert log["step"].tolist() == [0, 2, 4] and log["probabilities"].shape == (3, 21, 3)
    np.testing.assert_allclose(log["probabilities"][0], 1.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(log["tau"], [5.0, 4.0, 2.0])  # tau of the last step before each record
    theta = task.network.selector.theta.numpy()
    np.testing.assert_allclose(log["probabilities"][-1], selector_log.softmax(theta), rtol=1e-5)
    assert np.abs(log["probabilities"][-1] - 1.0 / 3.0).max() > 1e-3  # theta moved
    assert _picture(tmp_path / "selector_trajectories.png").std() > 10

    _train(tmp_path, steps=6)  # resumes at step 4: the curves continue, nothing twice
    history = json.loads((tmp_path / "learning_curves.json").read_text())
    assert history["train"]["step"] == [1, 2, 3, 4, 5, 6]
    assert history["eval"]["step"] == [0, 2, 4, 6]
    assert selector_log.read_log(str(tmp_path / "selector_log.npz"))["step"].tolist() == [0, 2, 4, 6]


def test_pretraining_run_draws_2d_curves_without_groups(tmp_path):
    _train(tmp_path, steps=2, stage="pretrain2d")
    history = json.loads((tmp_path / "learning_curves.json").read_text())
    assert set(history["eval"]) == {"step", "loss", "error_2d_px"}
    assert "error_2d_px" in history["train"] and "error_3d_mm" not in history["train"]
    assert "temperature" not in history["train"]  # no selector is trained in stage 1
    _picture(tmp_path / "learning_curves.png")
    assert not (tmp_path / "groups.png").exists()  # stage 1 trains no grouping


def test_per_step_values_are_recovered_from_running_means(tmp_path):
    """Keras logs running means over the epoch: 3, 4, 6 are the means of steps worth 3, 5, 10."""

    class FakeTask:
        step = tf.Variable(0, dtype=tf.int64)
        optim = OptimConfig()

    history = {"train": {}, "eval": {}}
    callback = loop.LearningCurvesCallback(FakeTask(), str(tmp_path), history)
    callback.on_epoch_begin(0)
    for batch, mean in enumerate([3.0, 4.0, 6.0]):
        FakeTask.step.assign_add(1)
        callback.on_train_batch_end(batch, {"loss": mean, "temperature": 2.5})
    assert history["train"] == {"step": [1, 2, 3], "loss": [3.0, 5.0, 10.0],
                                "temperature": [2.5, 2.5, 2.5]}
    callback.on_epoch_end(0, {"loss": 6.0, "val_error_2d_px": 1.5})
    assert history["eval"] == {"step": [3], "error_2d_px": [1.5]}
    assert (tmp_path / "learning_curves.png").exists()


def test_read_history_cuts_at_the_resume_step(tmp_path):
    history = {"train": {"step": [1, 2, 3], "loss": [9.0, 8.0, 7.0]},
               "eval": {"step": [0, 2], "error_2d_px": [20.0, 10.0]}}
    (tmp_path / "learning_curves.json").write_text(json.dumps(history))
    assert loop.read_history(str(tmp_path), 2) == {
        "train": {"step": [1, 2], "loss": [9.0, 8.0]},
        "eval": {"step": [0, 2], "error_2d_px": [20.0, 10.0]},
    }
    assert loop.read_history(str(tmp_path), 0) == {"train": {}, "eval": {}}  # a fresh run


def test_group_colours_start_with_the_papers_and_never_repeat():
    from lgh_tf import visualize

    assert visualize.GROUP_COLOURS[:3] == ("#d62728", "#2ca02c", "#1f77b4")  # Fig. 4: red, green, blue
    assert len(set(visualize.GROUP_COLOURS)) == len(visualize.GROUP_COLOURS) >= 10
