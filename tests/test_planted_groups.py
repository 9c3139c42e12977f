"""The controlled test of the selector (tools/planted_groups.py): the planted problem needs grouping,
and the partition is recovered on the seed where docs/benchmarks/planted_groups.md shows it is."""

import argparse
import importlib.util
import sys

import numpy as np
import pytest
from conftest import REPO

from lgh_tf.evaluation.grouping import adjusted_rand_index


@pytest.fixture(scope="module")
def planted():
    # Registered in sys.modules before it runs: its dataclasses look their module up there.
    spec = importlib.util.spec_from_file_location("planted_groups", REPO / "tools" / "planted_groups.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["planted_groups"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("planted_groups", None)


def _args(**overrides):
    values = dict(steps=5000, batch_size=32, width=8, lr_rest=3e-3, tau_every=50, affinity_steps=500,
                  log_every=250, jit=0)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_world_is_a_planted_partition(planted):
    world = planted.make_world(3)
    assert sorted(len(g) for g in world.groups()) == [7, 7, 7]
    assert sorted(j for g in world.groups() for j in g) == list(range(21))
    y = world.clean(np.random.default_rng(0).normal(size=(4000, 8)).astype(np.float32)).numpy()
    np.testing.assert_allclose(y.std(0), 1.0, atol=0.05)  # normalised outputs
    # Outputs of one task share a 4-d latent: 7 outputs of one task have rank 4, of three 7.
    task0 = world.groups()[0]
    mixed = [world.groups()[t][i] for t in range(3) for i in range(3)][:7]
    singular = lambda columns: np.linalg.svd(y[:, columns], compute_uv=False)  # noqa: E731
    assert singular(task0)[4] < 1e-3 * singular(task0)[0]
    assert singular(mixed)[4] > 0.05 * singular(mixed)[0]


def test_the_planted_partition_beats_one_branch(planted):
    """The problem needs grouping: with the same budget, three branches on the planted partition fit
    clearly better than K = 1 (the table: 0.19 against 0.33 at 5000 steps)."""
    args = _args(steps=1000)
    planted_run = planted.run_setting(planted.SETTINGS["planted"], 0, args)
    one_branch = planted.run_setting(planted.SETTINGS["k1"], 0, args)
    assert planted_run["ari"] == 1.0 and one_branch["ari"] == 0.0
    assert planted_run["rmse"] < 0.85 * one_branch["rmse"]


def test_affinity_grouping_recovers_seed_1(planted):
    """Seed 1: the task-affinity grouping (500 measured steps) recovers the planted partition."""
    args = _args()
    world = planted.make_world(1)
    labels = planted.affinity_groups(planted.affinity_matrix(world, args, 1, args.affinity_steps))
    assert adjusted_rand_index(labels, world.task_of_output) == pytest.approx(1.0)


def test_recommended_recovers_the_planted_partition_on_four_of_five_seeds(planted):
    """Issue 34: the recommended selector (theta frozen for 45% of the steps, set from the outputs'
    error affinity at 30%, the per-branch expected loss after) recovers the planted partition at
    ARI >= 0.9 on at least 4 of seeds 0-4, where the paper's default recovers none (ARI 0.26 +- 0.19)."""
    args = _args()
    aris = [planted.run_setting(planted.SETTINGS["recommended"], seed, args)["ari"] for seed in range(5)]
    assert sum(ari >= 0.9 for ari in aris) >= 4, aris
    default = planted.run_setting(planted.SETTINGS["default"], 0, args)
    assert default["ari"] < 0.5  # the same world, budget and seed: the paper's selector does not find it
