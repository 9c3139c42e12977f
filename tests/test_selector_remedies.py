"""Remedies for the selector (docs/selector.md): theta's warm-up and the per-branch expected loss."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import selector_training, small_config
from test_task import make_batch

from lgh_tf.model.network import LearnableGroupsNet
from lgh_tf.training import losses
from lgh_tf.training.loop import config_differences
from lgh_tf.training.task import HandPoseTask, OptimConfig, SelectorWarmup


def _task(**optim):
    network = LearnableGroupsNet(small_config()).build_for_input()
    task = HandPoseTask(network, OptimConfig(**optim))
    task.compile()
    return task


def test_warmup_freezes_theta_then_releases_it_while_the_branches_train():
    task = _task(selector_warmup_steps=2)
    theta = task.network.selector.theta
    start = theta.numpy().copy()
    rest = task.trainable_groups()["rest"][0]
    rest_start = rest.numpy().copy()
    for _ in range(2):
        task.train_step(make_batch())
    np.testing.assert_array_equal(theta.numpy(), start)  # frozen for two steps
    assert np.abs(rest.numpy() - rest_start).max() > 0  # the branches learned meanwhile
    task.train_step(make_batch())
    assert np.abs(theta.numpy() - start).max() > 1e-3  # step 3: theta moves


def test_warmup_schedule_values_and_config_round_trip():
    import keras

    cosine = keras.optimizers.schedules.CosineDecay(0.1, 10)
    schedule = SelectorWarmup(cosine, 4)
    values = [float(schedule(tf.constant(s, tf.int64))) for s in (0, 3, 4, 5)]
    assert values[:2] == [0.0, 0.0]
    assert values[2] == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 4 / 10)), rel=1e-5)
    again = SelectorWarmup.from_config(schedule.get_config())
    assert float(again(tf.constant(5, tf.int64))) == pytest.approx(values[3], rel=1e-6)
    assert float(SelectorWarmup(0.01, 3)(3)) == pytest.approx(0.01)


def test_expected_loss_by_hand():
    """Two branches, two joints, one sample: sum_k S_jk (|dx| + |dy| + beta |dz|), mean over joints."""
    batch = make_batch(batch_size=1)
    K, scale, root = batch["K"].numpy()[0], float(batch["scale"][0]), float(batch["root_depth"][0])
    xyz_true = batch["xyz"].numpy()[:, :2] * 1000.0  # two joints, mm

    def project(xyz_mm):  # the uv and relative depth that Eq. 3 lifts back to xyz_mm
        xyz = xyz_mm / 1000.0
        uv = (K @ xyz.T).T
        return uv[:, :2] / uv[:, 2:], (xyz[:, 2] - root) / scale

    offsets = [np.array([[1.0, 0, 0], [0, 0, 2.0]]), np.array([[0, -3.0, 0], [4.0, 0, 0]])]  # mm, per branch
    uvs, depths = zip(*(project(xyz_true[0] + o) for o in offsets))
    group_uv = tf.constant(np.stack(uvs)[None], tf.float32)  # (1, K, J, 2)
    group_depth = tf.constant(np.stack(depths)[None], tf.float32)
    selector = tf.constant([[0.25, 0.75], [1.0, 0.0]], tf.float32)
    beta = 20.0
    sub = {k: v for k, v in batch.items()}
    got = losses.expected_group_loss_per_sample(selector, losses.group_xyz_mm(group_uv, group_depth, sub),
                                                xyz_true, beta)
    # joint 0: 0.25 * 1 + 0.75 * 3; joint 1: 1.0 * (beta * 2)
    assert float(got[0]) == pytest.approx((0.25 * 1 + 0.75 * 3 + beta * 2) / 2, abs=2e-3)


def test_expected_loss_equals_the_blended_one_for_a_hard_selector():
    """With one-hot S every joint is its own branch's: the two objectives coincide."""
    network = LearnableGroupsNet(small_config()).build_for_input()
    batch = make_batch(batch_size=2)
    hard = np.eye(3, dtype=np.float32)[np.arange(21) % 3]
    out = network(batch["image"], selector=hard)
    xyz_true = batch["xyz"] * 1000.0
    blended, _, _ = losses.pose_loss_3d_per_sample(losses.recover_xyz_mm(out["uv"], out["depth"], batch),
                                                   xyz_true, 0.25)
    expected = losses.expected_group_loss_per_sample(
        hard, losses.group_xyz_mm(out["group_uv"], out["group_depth"], batch), xyz_true, 0.25)
    np.testing.assert_allclose(expected.numpy(), blended.numpy(), rtol=1e-4)


def test_expected_loss_trains_and_its_theta_gradient_favours_the_better_branch():
    task = _task(selector_loss="expected")
    logs = task.train_step(make_batch())
    assert np.isfinite(float(logs["loss"]))
    with pytest.raises(ValueError, match="selector_loss"):
        OptimConfig(selector_loss="blend").validate()


def test_remedies_cannot_change_on_resume_but_the_warmup_length_can():
    train = {"batch_size": 32, "checkpoint_every": 100, "seed": 0}
    stored = {"optim": {"stage": "full", "lr_decay_steps": 0}, "train": train}  # a run from before the options
    same = {"optim": {"stage": "full", "lr_decay_steps": 0, "selector_warmup_steps": 0, "selector_loss": "blended",
                      "selector_init": "uniform"},
            "train": train}
    assert config_differences(stored, same) == []
    on = {"optim": {**same["optim"], "selector_warmup_steps": 300, "selector_loss": "expected"}, "train": train}
    problems = config_differences(stored, on)
    assert any("--selector_warmup" in p for p in problems) and any("--selector_loss" in p for p in problems)
    longer = {"optim": {**on["optim"], "selector_warmup_steps": 600}, "train": train}
    assert config_differences(on, longer) == []


def test_error_affinity_finds_joints_that_err_together():
    """Residuals built from two hidden causes: joints 0-3 share one, 4-6 the other (random signs and
    scales); the |correlation| clustering recovers the two groups, and each group goes to the
    branch with the lower error on it."""
    from lgh_tf.evaluation.grouping import adjusted_rand_index, match_groups_to_branches, partition_from_affinity
    from lgh_tf.training.error_affinity import ErrorAffinity

    rng = np.random.default_rng(0)
    truth = np.array([0, 0, 0, 0, 1, 1, 1])
    accumulator = ErrorAffinity(7, 2, channels=3)
    weights = rng.uniform(0.5, 2.0, 7) * rng.choice([-1, 1], 7)
    for _ in range(5):
        causes = rng.normal(size=(64, 2, 3))
        residual = causes[:, truth] * weights[None, :, None] + 0.3 * rng.normal(size=(64, 7, 3))
        branch_errors = np.stack([np.where(truth == 1, 1.0, 5.0), np.where(truth == 0, 1.0, 5.0)])  # (K, J)
        accumulator.update(tf.constant(residual), tf.constant(np.repeat(branch_errors[None], 64, 0)))
        accumulator.update(tf.constant(rng.normal(size=(64, 7, 3)) * 100), tf.zeros((64, 2, 7)), 0.0)  # outside
    affinity = accumulator.affinity()
    assert np.allclose(np.diag(affinity), 1.0)
    assert affinity[0, 1] > 0.5 and affinity[0, 5] < 0.2
    labels = partition_from_affinity(affinity, 2)
    assert adjusted_rand_index(labels, truth) == 1.0
    # Branch 0 fits joints 4-6, branch 1 joints 0-3.
    np.testing.assert_array_equal(match_groups_to_branches(labels, branch_errors), 1 - truth)


def test_consensus_of_runs_by_hand():
    from lgh_tf.evaluation.grouping import co_assignment, consensus_partition

    runs = [[0, 0, 1, 1, 2], [1, 1, 0, 0, 2], [0, 0, 0, 1, 2]]  # the third run differs in item 2
    np.testing.assert_allclose(co_assignment(runs)[2], [1 / 3, 1 / 3, 1, 2 / 3, 0])
    labels = consensus_partition(runs, 3)
    assert labels[0] == labels[1] and labels[2] == labels[3] and len({labels[0], labels[2], labels[4]}) == 3


def test_error_affinity_sets_theta_once_at_its_step_and_keeps_it_frozen_until_the_warmup_ends():
    from lgh_tf.training.error_affinity import INITIAL_THETA_MARGIN

    task = _task(selector_warmup_steps=4, selector_init="error_affinity", selector_init_step=2,
                 selector_loss="expected")
    theta = task.network.selector.theta
    start = theta.numpy().copy()
    task.train_step(make_batch(seed=1))
    assert task.initialise_selector() is None  # one step taken, of 2
    assert float(task.affinity.count.numpy()) == 0.0  # statistics over the second of the 2 steps only
    task.train_step(make_batch(seed=2))
    assert float(task.affinity.count.numpy()) == 2.0  # one batch of two
    labels = task.initialise_selector()
    assert labels is not None and len(labels) == 21
    expected = np.eye(3)[labels] * INITIAL_THETA_MARGIN
    np.testing.assert_allclose(theta.numpy(), expected)
    assert task.initialise_selector() is None  # once
    task.train_step(make_batch(seed=3))
    task.train_step(make_batch(seed=4))
    np.testing.assert_allclose(theta.numpy(), expected)  # still frozen at step 4
    assert float(task.affinity.count.numpy()) == 2.0  # nothing accumulated after the window
    task.train_step(make_batch(seed=5))
    assert np.abs(theta.numpy() - expected).max() > 1e-3
    assert not np.allclose(start, expected)


def test_error_affinity_needs_theta_frozen_until_it_is_set():
    with pytest.raises(ValueError, match="selector_warmup_steps"):
        OptimConfig(selector_init="error_affinity", selector_init_step=10, selector_warmup_steps=5).validate()
    with pytest.raises(ValueError, match="selector_init"):
        OptimConfig(selector_init="affinity").validate()


def test_main_trains_with_the_remedies_and_resumes_without_setting_theta_again(tmp_path):
    """End to end (main.py in this process): --selector_init=error_affinity sets theta at step 2 of
    6 (selector_init.json), the statistics and the done flag are in the checkpoint, and a longer
    resume does not set theta again; without theta frozen until then it is one line, exit 2."""
    import json

    from conftest import run_main
    from test_main_train import TINY, checkpoint_values

    model_dir, cache = tmp_path / "run", tmp_path / "cache"
    tiny = list(TINY)
    common = [f"--model_dir={model_dir}", f"--cache_dir={cache}", *tiny, "--selector_warmup=0.5",
              "--selector_init=error_affinity", "--selector_init_at=0.34", "--selector_loss=expected"]
    run_main("--mode=train", *common)
    record = json.loads((model_dir / "selector_init.json").read_text())
    assert record["step"] == 2 and sorted(j for g in record["groups"] for j in g) == list(range(21))
    values = checkpoint_values(model_dir, 6)
    done = [v for k, v in values.items() if k.startswith("selector_init/") and "affinity_done" in k]
    assert done and float(done[0]) == 1.0
    run_main("--mode=train", *common, "--steps=8")
    assert json.loads((model_dir / "selector_init.json").read_text())["step"] == 2
    refused = run_main("--mode=train", f"--model_dir={tmp_path / 'other'}", f"--cache_dir={cache}", *tiny,
                       "--selector_recipe=paper", "--selector_init=error_affinity", check=False)  # no warm-up
    assert refused.returncode == 2 and "selector_warmup" in refused.stderr


def test_groups_mode_gives_the_consensus_of_several_runs(tmp_path, monkeypatch):
    """--mode=groups --checkpoint=A,B,C: each run's groups, their ARIs and the majority grouping."""
    from conftest import run_main

    import lgh_tf.model.io

    base = [list(range(0, 7)), list(range(7, 14)), list(range(14, 21))]
    moved = [list(range(0, 6)), [6] + list(range(7, 14)), list(range(14, 21))]  # joint 6 in group 2
    renamed = [base[2], base[0], base[1]]  # the same partition, numbered otherwise

    class Run:
        def __init__(self, groups):
            self._groups = groups

        def groups(self):
            return self._groups

    runs = {"a": Run(base), "b": Run(moved), "c": Run(renamed), "k2": Run([list(range(10)), list(range(10, 21))])}
    monkeypatch.setattr(lgh_tf.model.io, "load_model", lambda path: runs[path])
    result = run_main("--mode=groups", "--checkpoint=a,b,c", f"--model_dir={tmp_path}")
    from lgh_tf import visualize

    def partition(text):
        return {frozenset(line.split(": ", 1)[1].split(", ")) for line in text.splitlines() if line.startswith("group")}

    consensus = result.stdout.split("consensus of 3 runs:")[1].split("wrote")[0]
    assert partition(consensus) == partition(visualize.grouping_text(base))  # two of three runs: joint 6 with 0-5
    lines = [line for line in result.stdout.splitlines() if line.endswith("run 3")]
    assert lines and lines[0].split()[0] == "1.00"  # run 3 is run 1 renumbered
    assert (tmp_path / "groups.png").exists()
    refused = run_main("--mode=groups", "--checkpoint=a,k2", f"--model_dir={tmp_path}", check=False)
    assert refused.returncode == 2 and "different numbers of groups" in refused.stderr


@pytest.mark.parametrize("argv, expected", [
    ([], ("expected", "error_affinity", 45, 30)),  # the default recipe (the synthetic preset)
    (["--dataset=rhd"], ("blended", "uniform", 0, 30)),  # the paper's data-set presets: the paper's
    (["--selector_recipe=error_affinity"], ("expected", "error_affinity", 45, 30)),
    (["--selector_recipe=error_affinity", "--selector_loss=blended", "--selector_warmup=0.5"],
     ("blended", "error_affinity", 50, 30)),  # an explicit flag wins over the recipe
    (["--selector_recipe=paper", "--selector_init=error_affinity", "--selector_warmup=0.4"],
     ("blended", "error_affinity", 40, 30)),
])
def test_selector_recipe_sets_the_four_flags_unless_given(argv, expected):
    assert selector_training(*argv) == expected


def test_selector_recipe_on_a_run_too_short_for_statistics_starts_theta_uniform():
    from absl import flags

    import main
    from flags import lgh_flags

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["main.py", "--steps=4", "--selector_recipe=error_affinity"])  # 0.3 x 4 -> step 1: too early
    try:
        settings, note = lgh_flags.selector_settings(flags.FLAGS)
        optim = main.configs_from_flags().validate().optim
    finally:
        flags.FLAGS.unparse_flags()
    assert settings["selector_init"] == "uniform" and "too few" in note
    assert (optim.selector_init, optim.selector_loss, optim.selector_warmup_steps) == ("uniform", "expected", 2)
    flags.FLAGS(["main.py", "--steps=7", "--selector_recipe=error_affinity"])  # step 2: enough
    try:
        settings, note = lgh_flags.selector_settings(flags.FLAGS)
    finally:
        flags.FLAGS.unparse_flags()
    assert settings["selector_init"] == "error_affinity" and note is None
