"""The training task: per-module learning rates, the temperature schedule, gradients to theta."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_config

from lgh_tf.model.network import LearnableGroupsNet
from lgh_tf.training.schedules import TemperatureSchedule
from lgh_tf.training.task import HandPoseTask, OptimConfig, group_variables


def make_batch(batch_size=2, size=64, seed=0):
    """A hand-made batch in the pipeline's format: a pinhole camera and a random hand at ~0.5 m."""
    rng = np.random.default_rng(seed)
    xyz = rng.normal(scale=0.03, size=(batch_size, 21, 3)) + [0.0, 0.0, 0.5]
    K = np.array([[100.0, 0, size / 2], [0, 110.0, size / 2], [0, 0, 1]])
    K = np.repeat(K[None], batch_size, 0)
    proj = np.einsum("bij,bkj->bki", K, xyz)
    uv = proj[..., :2] / proj[..., 2:]
    scale = np.linalg.norm(xyz[:, 12] - xyz[:, 11], axis=-1)
    root = xyz[:, 12, 2]
    batch = {
        "image": rng.uniform(size=(batch_size, size, size, 3)),
        "uv": uv,
        "depth": (xyz[..., 2] - root[:, None]) / scale[:, None],
        "xyz": xyz,
        "K": K,
        "scale": scale,
        "root_depth": root,
        "visible": np.ones((batch_size, 21)),
    }
    return {k: tf.constant(v, tf.float32) for k, v in batch.items()}


def test_temperature_schedule_values():
    schedule = TemperatureSchedule()
    values = {step: float(schedule(step)) for step in (0, 999, 1000, 2500, 10_000, 48_999, 49_000, 10**6)}
    assert values[0] == pytest.approx(5.0)
    assert values[999] == pytest.approx(5.0)
    assert values[1000] == pytest.approx(4.9)
    assert values[2500] == pytest.approx(4.8)
    assert values[10_000] == pytest.approx(4.0)
    assert values[48_999] == pytest.approx(0.2)
    assert values[49_000] == pytest.approx(0.1)
    assert values[10**6] == pytest.approx(0.1)  # the floor
    fast = TemperatureSchedule(initial=2.0, decrement=0.5, every=10, floor=0.5)
    assert [float(fast(s)) for s in (0, 10, 25, 100)] == pytest.approx([2.0, 1.5, 1.0, 0.5])


def test_variable_groups_by_path():
    network = LearnableGroupsNet(small_config()).build_for_input()
    groups = group_variables(network.trainable_variables)
    assert [v.path for v in groups["selector"]] == [network.selector.theta.path]
    assert network.selector.theta.path.endswith("selector/theta")
    assert groups["fusion"] and all("/fusion/" in v.path for v in groups["fusion"])
    assert not any("fusion" in v.path or "theta" in v.path for v in groups["rest"])
    total = sum(len(v) for v in groups.values())
    assert total == len(network.trainable_variables)


def test_one_step_moves_each_group_by_its_own_learning_rate():
    """Adam's first step moves every parameter with a non-negligible gradient by lr * sign(g)."""
    network = LearnableGroupsNet(small_config()).build_for_input()
    task = HandPoseTask(network, OptimConfig())
    task.compile()
    batch = make_batch()
    groups = task.trainable_groups()
    before = {g: [v.numpy().copy() for v in vs] for g, vs in groups.items()}
    task.train_step(batch)
    rates = {"selector": 1e-1, "fusion": 1e-2, "rest": 1e-4}
    for group, variables in groups.items():
        deltas = np.concatenate([np.abs(v.numpy() - b).ravel() for v, b in zip(variables, before[group])])
        moved = deltas[deltas > 0]
        assert moved.size > 0, group
        # Largest move equals the group's rate (|m / sqrt(v)| = 1 at step 1); none exceeds it.
        assert moved.max() == pytest.approx(rates[group], rel=1e-3), group
        assert np.median(moved) == pytest.approx(rates[group], rel=0.05), group
    assert int(task.step.numpy()) == 1


def test_k1_baseline_trains_without_the_selector():
    """K = 1 (the paper's baseline): theta has no effect, so it is not trained (no gradient)."""
    network = LearnableGroupsNet(small_config(num_groups=1, fusion=False)).build_for_input()
    task = HandPoseTask(network, OptimConfig())
    task.compile()
    assert set(task.trainable_groups()) == {"rest"}
    assert np.isfinite(float(task.train_step(make_batch())["loss"]))


def test_cosine_decay_lowers_every_rate_over_the_stage():
    """lr_decay_steps=4: after 2 of 4 steps every group's rate is half its value (cosine)."""
    network = LearnableGroupsNet(small_config()).build_for_input()
    task = HandPoseTask(network, OptimConfig(lr_decay_steps=4))
    task.compile()
    for _ in range(2):
        task.train_step(make_batch())
    rates = {"selector": 1e-1, "fusion": 1e-2, "rest": 1e-4}
    for group, rate in rates.items():
        assert float(task.optimizers[group].learning_rate) == pytest.approx(
            rate * 0.5 * (1 + np.cos(np.pi * 2 / 4)), rel=1e-5), group


def test_pretrain2d_trains_only_the_hourglass():
    network = LearnableGroupsNet(small_config()).build_for_input()
    task = HandPoseTask(network, OptimConfig(stage="pretrain2d"))
    task.compile()
    theta = network.selector.theta.numpy().copy()
    head = network.heatmap_heads[0].conv1.kernel.numpy().copy()
    stem = network.backbone.stem_conv.conv.kernel.numpy().copy()
    logs = task.train_step(make_batch())
    assert "error_2d_px" in logs and "loss_z" not in logs
    np.testing.assert_array_equal(network.selector.theta.numpy(), theta)
    np.testing.assert_array_equal(network.heatmap_heads[0].conv1.kernel.numpy(), head)
    delta = np.abs(network.backbone.stem_conv.conv.kernel.numpy() - stem)
    assert delta.max() == pytest.approx(1e-3, rel=1e-3)


def test_train_step_sets_tau_from_the_step_and_fit_runs():
    network = LearnableGroupsNet(small_config()).build_for_input()
    schedule = TemperatureSchedule(initial=3.0, decrement=1.0, every=2, floor=0.5)
    task = HandPoseTask(network, OptimConfig(temperature=schedule))
    task.compile(run_eagerly=True)  # the traced step is the shared trained_run's (conftest)
    batch = make_batch()
    dataset = tf.data.Dataset.from_tensors(batch).repeat(5)
    history = task.fit(dataset, epochs=1, verbose=0)
    assert int(task.step.numpy()) == 5
    # step 4 was the last one run: tau(4) = 3 - 2 = 1.
    assert float(network.temperature.numpy()) == pytest.approx(1.0)
    for key in ("loss", "loss_xy", "loss_z", "error_2d_px", "error_3d_mm", "temperature"):
        assert np.isfinite(history.history[key][-1]), key
    results = task.evaluate(dataset.take(1), verbose=0, return_dict=True)
    assert results["error_3d_mm"] > 0


def test_loss_matches_hand_computation_eq10():
    from lgh_tf.training.losses import pose_loss_3d

    pred = np.zeros((1, 2, 3), np.float32)
    true = np.array([[[1.0, -2.0, 3.0], [0.0, 4.0, -1.0]]], np.float32)
    loss, xy, z = pose_loss_3d(pred, true, beta=20.0)
    assert float(xy) == pytest.approx((1 + 2 + 0 + 4) / 2)
    assert float(z) == pytest.approx((3 + 1) / 2)
    assert float(loss) == pytest.approx(3.5 + 20 * 2.0)


def test_stage2_starts_from_a_stage1_checkpoint(tmp_path):
    """A pretrain2d checkpoint initialises the network of stage "full" (paper: hourglass first)."""
    import keras

    from lgh_tf.training.loop import make_checkpoint, restore_network_weights

    keras.utils.set_random_seed(1)
    stage1 = HandPoseTask(LearnableGroupsNet(small_config()).build_for_input(), OptimConfig(stage="pretrain2d"))
    stage1.compile()
    stage1.train_step(make_batch())
    manager = tf.train.CheckpointManager(make_checkpoint(stage1), str(tmp_path / "checkpoints"), 1)
    manager.save()
    keras.utils.set_random_seed(2)
    fresh = LearnableGroupsNet(small_config()).build_for_input()
    kernel = fresh.backbone.stem_conv.conv.kernel
    assert not np.allclose(kernel.numpy(), stage1.network.backbone.stem_conv.conv.kernel.numpy())
    used = restore_network_weights(fresh, str(tmp_path / "checkpoints"))
    assert restore_network_weights(fresh, str(tmp_path)) == used  # a model_dir: its checkpoints/
    trained = stage1.network.checkpoint_variables()
    restored = fresh.checkpoint_variables()
    assert restored.keys() == trained.keys() and len(restored) > 300
    for name, variable in restored.items():  # every variable, inside lists of layers too
        np.testing.assert_array_equal(variable.numpy(), trained[name].numpy(), err_msg=name)
    images = make_batch()["image"]
    np.testing.assert_array_equal(fresh(images)["uv"].numpy(), stage1.network(images)["uv"].numpy())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        restore_network_weights(fresh, str(tmp_path / "empty"))


def test_backbone_only_restores_a_stage1_checkpoint_of_another_configuration(tmp_path):
    """tools/ablation.py shares stage 1 between K = 1 and K = 3: only the hourglass is taken."""
    from lgh_tf.training.loop import make_checkpoint, restore_network_weights

    stage1 = HandPoseTask(LearnableGroupsNet(small_config()).build_for_input(), OptimConfig(stage="pretrain2d"))
    stage1.compile()
    tf.train.CheckpointManager(make_checkpoint(stage1), str(tmp_path / "checkpoints"), 1).save()
    k1 = LearnableGroupsNet(small_config(num_groups=1, fusion=False)).build_for_input()
    with pytest.raises(ValueError, match="theta"):  # the K = 3 selector does not fit K = 1
        restore_network_weights(k1, str(tmp_path))
    restore_network_weights(k1, str(tmp_path), backbone_only=True)
    trained = stage1.network.checkpoint_variables()
    restored = {n: v for n, v in k1.checkpoint_variables().items() if n.startswith("backbone/")}
    assert len(restored) > 100
    for name, variable in restored.items():
        np.testing.assert_array_equal(variable.numpy(), trained[name].numpy(), err_msg=name)


def test_mixed_bfloat16_train_step_keeps_float32_outputs_and_variables():
    import keras

    network = LearnableGroupsNet(small_config(), dtype="mixed_bfloat16").build_for_input()
    task = HandPoseTask(network, OptimConfig())
    task.compile()
    logs = task.train_step(make_batch())
    assert np.isfinite(float(logs["loss"]))
    assert network.backbone.stem_conv.conv.kernel.dtype == "float32"
    assert network.backbone.stem_conv.conv.compute_dtype == "bfloat16"
    out = network(make_batch()["image"])
    assert out["uv"].dtype == tf.float32 and out["depth"].dtype == tf.float32
    assert keras.config.dtype_policy().name == "float32"  # the network's own policy, nothing global


def test_task_config_round_trip():
    """HandPoseTask.from_config(get_config()): the same network config and dtype policy, the same
    optimisation settings (nested temperature schedule included), JSON-serialisable."""
    import json

    import keras


    optim = OptimConfig(stage="pretrain2d", beta=7.0, lr_rest=3e-4, lr_decay_steps=50,
                        temperature=TemperatureSchedule(initial=2.0, decrement=0.5, every=10, floor=0.5))
    network = LearnableGroupsNet(small_config(num_groups=2), dtype="mixed_bfloat16").build_for_input()
    task = HandPoseTask(network, optim, name="task")
    config = task.get_config()
    json.dumps(keras.saving.serialize_keras_object(task))
    clone = HandPoseTask.from_config(config)
    assert clone.get_config() == config
    assert clone.optim == optim and clone.name == "task"
    assert clone.network.config == network.config
    assert clone.network.dtype_policy.name == "mixed_bfloat16"
    assert clone.network.built
    clone.network.set_weights(network.get_weights())
    images = make_batch()["image"]
    np.testing.assert_array_equal(clone(images)["uv"].numpy(), task(images)["uv"].numpy())



def test_config_classes_live_in_lgh_tf_config_and_old_import_paths_still_work():
    from lgh_tf import config
    from lgh_tf.data import pipeline
    from lgh_tf.training import loop, schedules, task

    assert task.OptimConfig is config.OptimConfig and loop.TrainConfig is config.TrainConfig
    assert schedules.TemperatureSchedule is config.TemperatureSchedule
    assert pipeline.AugmentConfig is config.AugmentConfig and pipeline.DataConfig is config.DataConfig


def test_held_out_batches_are_decoded_once_then_read_from_memory():
    from lgh_tf.training.loop import held_out_batches

    decoded = tf.Variable(0, dtype=tf.int64)

    def decode(index):  # counts the elements the pipeline produces
        decoded.assign_add(1)
        return index * 10

    pipeline = tf.data.Dataset.range(10).map(decode).batch(2)
    held_out = held_out_batches(pipeline, 3)
    made = int(decoded.numpy())  # the three batches (and what tf.data's prefetching ran ahead)
    assert made >= 6
    for _ in range(2):  # every checkpoint's validation: the same batches, nothing decoded again
        assert [b.numpy().tolist() for b in held_out] == [[0, 10], [20, 30], [40, 50]]
    assert int(decoded.numpy()) == made
    assert int(held_out.cardinality()) == 3  # a known length: Keras stops without running it out


def _fitted(one_level, steps=3):
    """A seeded task after ``steps`` fit steps and an evaluate on a 3-batch set, through the
    one-level step function or (``one_level`` False) Keras' own nested one."""
    import keras

    keras.utils.set_random_seed(3)
    task = HandPoseTask(LearnableGroupsNet(small_config()).build_for_input(),
                        OptimConfig(stage="full", temperature=TemperatureSchedule(every=1)))
    if not one_level:
        task._one_level_function = lambda step: None
    task.compile()
    data = tf.data.Dataset.from_tensor_slices(make_batch(batch_size=6, seed=4)).batch(2)
    history = task.fit(data, epochs=1, verbose=0)
    evaluation = task.evaluate(data, verbose=0, return_dict=True)
    return task, history.history, evaluation


def test_one_level_step_function_equals_keras_nested_one():
    # The first step's time (issue 26): fit/evaluate trace the step once, not inside a second
    # tf.function; the trajectory, the epoch's end on a finite set and the logs are Keras'.
    ours, history, evaluation = _fitted(one_level=True)
    keras_task, keras_history, keras_evaluation = _fitted(one_level=False)
    assert "_one_level_function" in ours.train_function.__qualname__
    assert "_one_level_function" in ours.test_function.__qualname__
    assert "_one_level_function" not in keras_task.train_function.__qualname__
    assert int(ours.step.numpy()) == int(keras_task.step.numpy()) == 3  # the 3-batch epoch ended by itself
    for name in ("loss", "error_3d_mm", "temperature"):
        np.testing.assert_allclose(history[name], keras_history[name], rtol=1e-5)
        if name in evaluation:
            np.testing.assert_allclose(evaluation[name], keras_evaluation[name], rtol=1e-5)
    for a, b in zip(ours.network.weights, keras_task.network.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


@pytest.mark.parametrize("dtype", ["float64", "mixed_bfloat16"])
def test_every_precision_trains(dtype):
    """A train step of the network in float64 (FusedBatchNormV3 has no double kernel: Keras' own
    path) and in mixed bfloat16 (the fused kernel): finite, every weight moves, and float64 stays
    float64 from the images to the loss (issue 33: before, float64 failed in the batch norm)."""
    network = LearnableGroupsNet(small_config(num_groups=2), dtype=dtype).build_for_input()
    task = HandPoseTask(network, OptimConfig())
    task.compile(run_eagerly=True)
    batch = make_batch()
    if dtype == "float64":
        batch = {k: tf.cast(v, tf.float64) for k, v in batch.items()}
        out = network(batch["image"], training=True)
        for name in ("heatmaps", "uv", "depth", "group_uv", "selector"):
            assert out[name].dtype == tf.float64, name
        terms = task.compute_terms(batch, training=True)
        assert terms["loss"].dtype == tf.float64
    before = {v.path: v.numpy().copy() for v in network.trainable_variables}
    logs = task.train_step(batch)
    assert np.isfinite(float(logs["loss"]))
    wanted = "float64" if dtype == "float64" else "float32"
    assert {v.dtype for v in network.trainable_variables} == {wanted}
    unchanged = [v.path for v in network.trainable_variables if np.array_equal(v.numpy(), before[v.path])]
    assert not unchanged, unchanged[:5]
