"""tf.distribute: 2 replicas with global batch B take the step of one device with batch B.

The CPU is split into 2 logical devices, which TensorFlow allows only before it initialises its
devices, so every comparison runs in a fresh process (this file run as a script) and prints its
measured maximum differences as one JSON line; the tests assert them (``pytest -s`` shows them).

The networks run in float64. In float32 this one step is not reproducible even on one device: the
backward pass through the chain of small-batch BatchNorms amplifies rounding ~1e6-fold, so merely
permuting the 4 samples of the batch on one device moves gradients of the group branches by up to
5% of their tensor's largest entry (and a float32 gradient differs from the float64 one by as
much). Two replicas sum in another order, so in float32 they differ by that same 5% whatever the
distribution code does; in float64 the same rounding is ~1e-6 (the heads' readout and the loss
stay float32), and a real fault (a missed all-reduce, a wrong loss scale, per-replica statistics)
shows as a difference of order 1.

Tolerances (float64 network): optimizer slots within 1e-5 of the largest slot of their kind (Adam's
m or v) in their optimizer group and every Adam first moment (0.1 x the gradient at step 1) within
1e-5 of its own tensor's largest entry; BatchNorm moving statistics within 1e-5 of their tensor's
largest entry; weights within 1e-6 x the group's learning rate (|step| <= lr at step 1). Adam's
first step is lr * g / (|g| + eps): an entry whose gradient is at the level of rounding (a
convolution bias ahead of a BatchNorm has only rounding noise for a gradient) can legitimately flip
sign, so weight entries are compared where the one-device gradient exceeds 1e-3 of its group's
largest (those are counted; every slot entry is compared).
"""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, distribute_tests

SLOT_RTOL = 1e-5
WEIGHT_TOL_IN_LR = 1e-6
GRADIENT_FLOOR = 1e-3


# The tiny configuration's hourglass is one level deep and K = 2 (fusion on): every kind of layer,
# fewer of them, so the four traced replica graphs build in minutes on a busy CPU.
NETWORK = dict(hourglass_depth=1, num_groups=2)
DTYPE = "float64"  # see the module docstring: float32 rounding alone moves this step's gradients by 5%



def _child(stage, modes):
    """One step on one device and on 2 mirrored replicas (``modes``: sync BN, per-replica BN)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from conftest import small_config
    from test_task import make_batch

    from lgh_tf.model.network import LearnableGroupsNet
    from lgh_tf.training.loop import make_strategy
    from lgh_tf.training.task import HandPoseTask, OptimConfig

    batch = make_batch(batch_size=4, seed=3)

    def build(sync):
        keras.utils.set_random_seed(0)  # the same initial weights in every build
        config = small_config(sync_batch_norm=sync, **NETWORK)
        network = LearnableGroupsNet(config, dtype=DTYPE).build_for_input()
        task = HandPoseTask(network, OptimConfig(stage=stage))
        task.compile()
        return task

    slot_names = {}

    def state(task):
        """{name: per-replica numpy values} of the network, the step and every optimizer slot."""
        named = dict(task.network.checkpoint_variables())
        for group, optimizer in task.optimizers.items():
            for index, variable in enumerate(optimizer.variables):  # names hold the model's name
                kind = "m" if "momentum" in variable.name else "v" if "velocity" in variable.name else "x"
                named[f"optimizer_{group}/{kind}/{index:04d}"] = variable
                slot_names[f"optimizer_{group}/{kind}/{index:04d}"] = variable.name
        return {
            name: [np.asarray(v) for v in tf.distribute.get_strategy().experimental_local_results(
                getattr(variable, "value", variable))]
            for name, variable in named.items()
        }

    def build_for_affinity(on):
        """A task inside the error-affinity window (steps [2, 4)), on one device or on ``on``."""
        optim = OptimConfig(stage=stage, selector_init="error_affinity", selector_init_step=4,
                            selector_warmup_steps=4)
        with on.scope() if on else contextlib.nullcontext():
            keras.utils.set_random_seed(0)
            network = LearnableGroupsNet(small_config(sync_batch_norm=True, **NETWORK), dtype=DTYPE)
            task = HandPoseTask(network.build_for_input(), optim)
            task.compile()
            task.step.assign(2)
        return task

    probe = build(sync=False)  # the one-device gradients, on a copy (the pass moves BN statistics)
    with tf.GradientTape() as tape:
        # The mean inside the tape: an op after the tape closes is not recorded (every gradient None).
        loss = tf.reduce_mean(probe.compute_terms(batch, training=True)["loss"])
    variables = [v for vs in probe.trainable_groups().values() for v in vs]
    gradients = tape.gradient(loss, variables)
    assert all(g is not None for g in gradients), "a trained variable has no gradient"
    single = build(sync=False)
    groups = single.trainable_groups()
    grads = dict(zip([v.path for vs in groups.values() for v in vs], gradients))
    before = state(single)
    single.train_step(batch)
    reference = state(single)
    reference_logs = {name: float(t.result()) for name, t in single.trackers.items() if t.count > 0}
    rates = {v.path: single._learning_rate(g) for g, vs in groups.items() for v in vs}
    weight_names = {name: v.path for name, v in single.network.checkpoint_variables().items()
                    if v.path in grads}
    # Scales per optimizer group (and slot kind): a convolution bias ahead of a BatchNorm has a
    # gradient of pure rounding noise, so a per-tensor scale would compare noise with noise.
    group_of = {v.path: g for g, vs in groups.items() for v in vs}
    gradient_scale = {}
    for path, g in grads.items():
        if g is not None:
            gradient_scale[group_of[path]] = max(gradient_scale.get(group_of[path], 0.0), float(np.max(np.abs(g))))
    slot_scale = {}
    for name, ref in reference.items():
        if name.startswith("optimizer_"):
            key = name.rsplit("/", 1)[0]
            slot_scale[key] = max(slot_scale.get(key, 0.0), float(np.max(np.abs(ref[0]), initial=0)))

    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    results = {"replicas": strategy.num_replicas_in_sync}
    for mode in modes:
        with strategy.scope():
            task = build(sync=mode == "sync")
        dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))
        step = tf.function(lambda data, task=task: strategy.run(task.train_step, args=(data,)))
        step(next(iter(dataset)))
        with strategy.scope():
            after = {name: values for name, values in state(task).items()}
        slot_diff, weight_diff, stat_diff, compared, worst = 0.0, 0.0, 0.0, 0, {}
        replica_spread = 0.0
        per_tensor = {}
        for name, ref in reference.items():
            ref = ref[0]
            if name.startswith("optimizer_") and "/m/" in name and np.max(np.abs(ref), initial=0) > 0 \
                    and "bias" not in slot_names.get(name, ""):
                per_tensor[slot_names.get(name, name)] = float(
                    np.max(np.abs(after[name][0] - ref)) / np.max(np.abs(ref)))
            for value in after[name]:
                diff = np.abs(value.astype(np.float64) - ref)
                replica_spread = max(replica_spread, float(np.max(np.abs(value - after[name][0]), initial=0)))
                if name.startswith("optimizer_"):
                    scale = slot_scale[name.rsplit("/", 1)[0]]
                    value_diff = float(np.max(diff, initial=0)) / max(scale, 1e-30)
                    if value_diff > slot_diff:
                        slot_diff, worst["slot"] = value_diff, slot_names.get(name, name)
                elif "moving_" in name:
                    scale = float(np.max(np.abs(ref), initial=0))
                    stat_diff = max(stat_diff, float(np.max(diff, initial=0)) / max(scale, 1e-30))
                elif name in weight_names:
                    path = weight_names[name]
                    g = grads[path]
                    g = np.full(ref.shape, np.inf) if g is None else np.abs(g.numpy())  # None: not moved
                    keep = g > GRADIENT_FLOOR * gradient_scale[group_of[path]]
                    compared += int(keep.sum()) if value is after[name][0] else 0
                    if keep.any() and float(np.max(diff[keep])) / rates[path] > weight_diff:
                        weight_diff, worst["weight"] = float(np.max(diff[keep])) / rates[path], path
                else:  # step, tau, the selector's sampling state
                    slot_diff = max(slot_diff, float(np.max(diff, initial=0)))
        # The first BatchNorm sees the same convolution outputs on one device and on 2 replicas.
        first = "backbone/stem_bn/moving_mean"
        stem = [v for v in after[first]]
        results[mode] = {
            "max_slot_diff_rel": slot_diff,
            "max_weight_diff_in_lr": weight_diff,
            "weights_compared": compared,
            "weights_total": int(sum(np.size(reference[n][0]) for n in weight_names)),
            "max_bn_stat_diff_rel": stat_diff,
            "max_replica_spread": replica_spread,
            "stem_bn_replica_mean_diff": float(np.max(np.abs(np.mean(stem, axis=0) - reference[first][0]))),
            "stem_bn_replica_gap": float(np.max(np.abs(stem[0] - stem[1]))),
            "worst": worst,
            "worst_m_per_tensor": sorted(per_tensor.items(), key=lambda kv: -kv[1])[:4],
            "max_m_diff_per_tensor": max(per_tensor.values()),
            "logs_diff_rel": max(abs(float(task.trackers[k].result()) - v) / max(abs(v), 1.0)
                                 for k, v in reference_logs.items()),
        }
    if stage == "full":  # --selector_init=error_affinity: its statistics are the global batch's
        results["affinity"] = _affinity_sums(build_for_affinity(None), build_for_affinity(strategy), batch,
                                             strategy)
    # Not changed by the step: guards against comparing two untouched models.
    results["single_step_moved"] = float(max(
        np.max(np.abs(reference[n][0] - before[n][0]), initial=0) for n in weight_names))
    print("RESULT " + json.dumps(results), flush=True)


def _affinity_sums(one, two, batch, strategy):
    """Two steps of each task (a sum's second add shows what the first hides); the largest difference
    of each accumulator, over its largest entry."""
    import tensorflow as tf

    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat(2))
    step = tf.function(lambda data: strategy.run(two.train_step, args=(data,)))
    for data in dataset:
        one.train_step(batch)
        step(data)
    out = {}
    for a, b in zip(one.affinity.variables[:4], two.affinity.variables[:4]):
        ref = a.numpy()
        out[a.name] = {"diff_rel": float(np.max(np.abs(b.numpy() - ref)) / max(float(np.max(np.abs(ref))), 1e-30)),
                       "largest": float(np.max(np.abs(ref)))}
    return out


def run_child(stage, modes):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, stage, ",".join(modes)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=2400)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-4000:]
    results = json.loads(lines[-1][len("RESULT "):])
    print(f"\n{stage}: {json.dumps(results, indent=1)}")
    return results


# One child per stage (each builds the one-device reference once); pretrain2d also runs per-replica BN.
MODES = {"full": ["sync"], "pretrain2d": ["sync", "per_replica"]}


@pytest.fixture(scope="module")
def children():
    cache = {}

    def results(stage):
        if stage not in cache:
            cache[stage] = run_child(stage, MODES[stage])
        return cache[stage]

    return results


@distribute_tests
@pytest.mark.parametrize("stage", ["full", "pretrain2d"])
def test_two_replicas_with_sync_batch_norm_take_the_single_device_step(stage, children):
    results = children(stage)
    assert results["replicas"] == 2
    assert results["single_step_moved"] > 0
    sync = results["sync"]
    # Synchronised BatchNorm: the 2-replica step is the one-device step on the same global batch.
    assert sync["max_slot_diff_rel"] < SLOT_RTOL, sync
    assert sync["max_m_diff_per_tensor"] < SLOT_RTOL, sync  # each tensor's gradient, small ones too
    assert sync["max_bn_stat_diff_rel"] < SLOT_RTOL, sync
    assert sync["max_weight_diff_in_lr"] < WEIGHT_TOL_IN_LR, sync
    assert sync["weights_compared"] > 0.5 * sync["weights_total"], sync
    assert sync["max_replica_spread"] == 0.0, sync  # both replicas hold identical copies
    assert sync["logs_diff_rel"] < 1e-5, sync  # the logged terms are global-batch means


@distribute_tests
def test_error_affinity_statistics_of_two_replicas_are_the_global_batchs(children):
    affinity = children("full")["affinity"]
    # 2 steps of 2 + 2 samples, summed (Keras' assign_add, assign(v + d), would give 4 + 4 + 2 + 2 here).
    assert affinity["affinity_count"] == {"diff_rel": 0.0, "largest": 8.0}, affinity
    for name in ("affinity_sum", "affinity_products", "affinity_branch_error"):
        assert affinity[name]["largest"] > 0 and affinity[name]["diff_rel"] < 1e-4, affinity


@distribute_tests
def test_per_replica_batch_norm_keeps_each_replicas_statistics(children):
    results = children("pretrain2d")
    # Per-replica BatchNorm (the default): each replica normalises with its own half-batch
    # statistics and keeps its own moving statistics; for the first BN, whose input does not
    # depend on the others, their average is the one-device statistic.
    per_replica = results["per_replica"]
    assert per_replica["stem_bn_replica_gap"] > 1e-4, per_replica
    assert per_replica["stem_bn_replica_mean_diff"] < 1e-5, per_replica
    assert per_replica["max_bn_stat_diff_rel"] > 1e-3, per_replica


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2].split(","))
