"""The selector's training options (one Concrete draw per image, straight-through hard draw), its
log (softmax(theta) over the steps, resumable), when a joint's group settled, and how firm each
assignment is: hand-made cases."""

import types

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_config

from lgh_tf import visualize
from lgh_tf.config import TemperatureSchedule
from lgh_tf.model.grouped_features import JointGroupSelector
from lgh_tf.model.network import LearnableGroupsNet
from lgh_tf.model.recovery import combine_groups
from lgh_tf.training import selector_log


def test_settle_steps_hand_made_trajectory():
    steps = np.array([0, 10, 20, 30, 40])
    p0 = np.array([
        [0.5, 0.95, 0.60, 0.95, 0.97],  # firm at 10, dips at 20, firm again from 30
        [0.5, 0.95, 0.92, 0.05, 0.02],  # group 0 until 20, then group 1 (0.95, 0.98) from 30
        [0.5, 0.40, 0.30, 0.20, 0.15],  # group 1 at the end but only 0.85: not settled
        [0.95, 0.95, 0.99, 0.91, 0.95],  # firm from the first record
    ]).T  # (T, N)
    probabilities = np.stack([p0, 1.0 - p0], axis=-1)  # (T, N, 2)
    np.testing.assert_array_equal(selector_log.settle_steps(steps, probabilities), [30, 30, -1, 0])
    # A lower threshold settles joint 2 from step 20 (0.7 for group 1, and group 1 from then on).
    assert selector_log.settle_steps(steps, probabilities, threshold=0.6)[2] == 20
    assert selector_log.settle_steps(steps[:0], probabilities[:0]).tolist() == [-1] * 4
    with pytest.raises(ValueError, match="probabilities"):
        selector_log.settle_steps(steps, p0)


def test_firmness_and_its_text():
    theta = np.log(np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]] + [[0.6, 0.3, 0.1]] * 19))
    firm = selector_log.firmness(theta)
    np.testing.assert_array_equal(firm["group"][:2], [0, 2])
    np.testing.assert_allclose(firm["probability"][:2], [0.7, 0.5])
    np.testing.assert_allclose(firm["margin"][:2], [0.5, 0.25])
    lines = visualize.grouping_firmness_text(firm["probabilities"]).splitlines()
    assert len(lines) == 22  # a header and one line per joint
    assert lines[1].split() == ["wrist", "1", "0.700", "0.500"]
    assert lines[2].split()[1:] == ["3", "0.500", "0.250"]


def test_per_image_draws_and_straight_through():
    per_image = JointGroupSelector(21, 3, seed=5, sample_per_image=True)
    draw = per_image(tf.constant(0.5), mode="sample", batch_size=4).numpy()
    assert draw.shape == (4, 21, 3)
    np.testing.assert_allclose(draw.sum(-1), 1.0, atol=1e-5)
    assert not np.allclose(draw[0], draw[1])  # each image its own draw
    assert per_image(tf.constant(0.5), mode="hard").shape == (21, 3)  # inference unchanged
    with pytest.raises(ValueError, match="batch_size"):
        per_image(tf.constant(0.5), mode="sample")

    # Straight-through: the forward pass is the one-hot argmax of the same relaxed draw (same
    # seed), the gradient with respect to theta that of the relaxed draw.
    theta = np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(21, 3)), tf.float32)
    outputs, gradients = [], []
    for straight in (False, True):
        selector = JointGroupSelector(21, 3, seed=9, straight_through=straight)
        selector(tf.constant(1.0), mode="hard")
        selector.theta.assign(theta)
        with tf.GradientTape() as tape:
            s = selector(tf.constant(0.7), mode="sample")
            loss = tf.reduce_sum(s * weights)
        outputs.append(s.numpy())
        gradients.append(tape.gradient(loss, selector.theta).numpy())
    relaxed, hard = outputs
    np.testing.assert_array_equal(hard, np.eye(3)[relaxed.argmax(-1)])
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-5, atol=1e-6)
    assert np.abs(gradients[0]).sum() > 0

    config = JointGroupSelector(21, 3, seed=2, sample_per_image=True, straight_through=True).get_config()
    clone = JointGroupSelector.from_config(config)
    assert clone.sample_per_image and clone.straight_through and clone.get_config() == config
    assert JointGroupSelector(21, 3).get_config()["sample_per_image"] is False  # the paper's default


def test_combine_groups_with_one_selector_per_image():
    rng = np.random.default_rng(3)
    selector = rng.dirichlet(np.ones(3), size=(2, 21)).astype(np.float32)  # (B, J, K)
    group_uv = rng.normal(size=(2, 3, 21, 2)).astype(np.float32)
    group_depth = rng.normal(size=(2, 3, 21)).astype(np.float32)
    uv, depth = combine_groups(selector, group_uv, group_depth)
    for b in range(2):
        one_uv, one_depth = combine_groups(selector[b], group_uv[b:b + 1], group_depth[b:b + 1])
        np.testing.assert_allclose(uv.numpy()[b], one_uv.numpy()[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(depth.numpy()[b], one_depth.numpy()[0], rtol=1e-5, atol=1e-6)
    # Joint 4 of image 1 by hand (Eq. 5).
    expected = sum(selector[1, 4, k] * group_depth[1, k, 4] for k in range(3))
    assert depth.numpy()[1, 4] == pytest.approx(expected, rel=1e-5)


def test_network_trains_theta_with_per_image_straight_through_draws():
    model = LearnableGroupsNet(small_config(selector_sample="image", selector_straight_through=True))
    images = tf.random.uniform((2, 64, 64, 3), seed=0)
    with tf.GradientTape() as tape:
        out = model(images, training=True, temperature=1.0)
        loss = tf.reduce_sum(tf.abs(out["uv"])) + tf.reduce_sum(tf.abs(out["depth"]))
    assert out["selector"].shape == (2, 21, 3) and out["uv"].shape == (2, 21, 2)
    assert set(np.unique(out["selector"].numpy())) <= {0.0, 1.0}
    assert np.abs(tape.gradient(loss, model.selector.theta).numpy()).sum() > 0
    assert model(images)["selector"].shape == (21, 3)  # inference: the hard partition
    assert LearnableGroupsNet.from_config(model.get_config()).selector.straight_through
    with pytest.raises(ValueError, match="selector_sample"):
        small_config(selector_sample="joint").validate()


def _fake_task(theta, step):
    network = types.SimpleNamespace(selector=types.SimpleNamespace(theta=tf.Variable(theta, dtype=tf.float32)))
    optim = types.SimpleNamespace(temperature=TemperatureSchedule(5.0, 1.0, 1, 0.5))
    return types.SimpleNamespace(network=network, optim=optim, step=tf.Variable(step, dtype=tf.int64))


def test_selector_log_records_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    task = _fake_task(np.zeros((21, 3)), 0)
    callback = selector_log.SelectorLogCallback(task, str(tmp_path), every=2)
    callback.on_train_begin()
    thetas = {}
    for step in range(1, 7):
        thetas[step] = rng.normal(size=(21, 3))
        task.network.selector.theta.assign(thetas[step])
        task.step.assign(step)
        callback.on_train_batch_end(step - 1)
        if step % 4 == 0:
            callback.on_epoch_end(0)
    callback.on_train_end()
    log = selector_log.read_log(str(tmp_path / selector_log.LOG_NAME))
    assert log["step"].tolist() == [0, 2, 4, 6]
    np.testing.assert_allclose(log["tau"], [5.0, 4.0, 2.0, 0.5])  # tau of the step before each record
    np.testing.assert_allclose(log["probabilities"][0], 1.0 / 3.0, rtol=1e-6)
    e = np.exp(thetas[4])
    np.testing.assert_allclose(log["probabilities"][2], e / e.sum(-1, keepdims=True), rtol=1e-5)
    assert (tmp_path / selector_log.PICTURE_NAME).stat().st_size > 1000
    assert not list(tmp_path.glob(".*tmp*"))

    # Resumed from the checkpoint at step 4: the records after it are dropped, then continued.
    task.step.assign(4)
    again = selector_log.SelectorLogCallback(task, str(tmp_path), every=2)
    again.on_train_begin()
    assert again.steps == [0, 2, 4]
    task.step.assign(6)
    again.on_train_batch_end(1)
    again.on_train_end()
    assert selector_log.read_log(str(tmp_path / selector_log.LOG_NAME))["step"].tolist() == [0, 2, 4, 6]
    assert selector_log.read_log(str(tmp_path / selector_log.LOG_NAME), up_to_step=3)["step"].tolist() == [0, 2]

    # A damaged log neither stops a resumed run nor reads as a log.
    (tmp_path / selector_log.LOG_NAME).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable selector log"):
        selector_log.read_log(str(tmp_path / selector_log.LOG_NAME))
    task.step.assign(4)
    fresh = selector_log.SelectorLogCallback(task, str(tmp_path), every=2)
    fresh.on_train_begin()
    assert fresh.steps == [4]
