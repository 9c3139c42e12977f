"""A controlled test of the joint group selector: 21 outputs drawn from 3 unrelated latent tasks,
so the best partition of the outputs into 3 groups is known by construction (issue 25, item 2).

The world (per seed): x ~ N(0, I_8); task t is a random tanh network z_t = tanh(x A_t + a_t) B_t
(16 hidden units, a 4-d latent); output j reads one task linearly, y_j = z_{t(j)} c_j + noise
(0.1 of its standard deviation), 7 outputs per task in a random order. Each group k has its own
small branch (8 -> 8 tanh -> 8 tanh -> 21 outputs, like a group's heads predicting every joint)
that cannot fit all three tasks at once; the outputs are combined with Eq. 5,
y_j = sum_k S_jk y^k_j, with lgh_tf's own ``JointGroupSelector`` drawing S. Training is the
network's stage 2 in miniature: one Adam per variable group (``training.task.group_variables``:
theta at ``--lr_selector``, the branches at ``--lr_rest``), tau from ``config.TemperatureSchedule``
(5, -0.1 every ``--tau_every`` steps, floor 0.1), batch 32, ``--steps`` steps, fresh samples
every step. The learned partition is argmax theta; its error is the held-out RMSE (in output
standard deviations) with that hard partition, as at inference.

Settings (the same world, budget and seeds for all; ``--settings`` picks some):
  planted        the planted partition, fixed (the best a grouping can do)
  k1             one branch for all outputs (K = 1, the paper's baseline)
  random         a random partition into 3 groups of 7, fixed (what three branches give without
                 the right grouping)
  default        the paper's selector: one Concrete draw per batch, Adam lr_selector 0.1
  lr0.01         theta's Adam learning rate 0.01 (``--lr_selector``)
  slow_tau       tau falling 4x slower (``--temperature_every``)
  per_image      one Concrete draw per sample (``--selector_sample=image``)
  straight       straight-through hard draw (``--selector_straight_through``)
  per_image+lr0.01, straight+lr0.01, slow_tau+lr0.01   combinations
  sgd            theta trained by plain SGD (lr 1.0): a step proportional to the gradient
  affinity       no selector: the partition from measured inter-output gradient affinity
                 (lookahead, Fifty et al. 2021) over the first ``--affinity_steps`` of a K = 1
                 network, average-linkage clustering into 3 groups, then the planted-style fixed
                 network trained from scratch for the rest of the budget

    nice -n 10 python tools/planted_groups.py                 # all settings, 5 seeds
    python tools/planted_groups.py --settings default,planted --seeds 0,1 --steps 1000 --no_write

Writes docs/benchmarks/planted_groups.md (the table, command and machine), the figures
docs/images/planted_groups.png, planted_theta_trajectories.png and planted_theta_gradient.png,
and every run's logs (softmax(theta), |dL/dtheta|, |step of theta|, per-branch errors) as
planted_runs.npz under ``--runs_dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tools"))

import bench_report  # noqa: E402  (the machine block of every tool)

from lgh_tf.config import TemperatureSchedule  # noqa: E402
from lgh_tf.evaluation.grouping import adjusted_rand_index, partition_from_affinity  # noqa: E402
from lgh_tf.model.grouped_features import JointGroupSelector  # noqa: E402
from lgh_tf.training.selector_log import settle_steps, softmax  # noqa: E402
from lgh_tf.training.task import group_variables  # noqa: E402

NUM_OUTPUTS, NUM_TASKS, INPUT_DIM, TASK_HIDDEN, LATENT = 21, 3, 8, 16, 4


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    grouping: str = "learned"  # learned | planted | k1 | affinity
    lr_selector: float = 0.1
    tau_every: int | None = None  # None: --tau_every
    per_image: bool = False
    straight: bool = False
    selector_optimizer: str = "adam"
    warmup: float = 0.0  # fraction of the steps with theta frozen (its learning rate 0)
    loss: str = "blended"  # blended: loss of Eq. 5's prediction; expected: sum_k S_jk loss(branch k, j)
    holdout: bool = False  # theta's gradient on a second, independent batch
    balance: float = 0.0  # weight of the group-usage penalty K sum_k (mean_j softmax(theta)_jk - 1/K)^2
    error_init: float = 0.0  # > 0: theta starts from the error-affinity partition with this margin ...
    error_init_at: float = 0.0  # ... at this fraction of the steps (0: the warm-up end); statistics: its second half


SETTINGS = {s.name: s for s in (
    Setting("planted", grouping="planted"),
    Setting("k1", grouping="k1"),
    Setting("random", grouping="random"),
    Setting("default"),
    Setting("lr0.01", lr_selector=0.01),
    Setting("slow_tau", tau_every=-4),  # negative: that many times --tau_every
    Setting("per_image", per_image=True),
    Setting("straight", straight=True),
    Setting("per_image+lr0.01", per_image=True, lr_selector=0.01),
    Setting("straight+lr0.01", straight=True, lr_selector=0.01),
    Setting("slow_tau+lr0.01", tau_every=-4, lr_selector=0.01),
    Setting("sgd", lr_selector=1.0, selector_optimizer="sgd"),
    Setting("affinity", grouping="affinity"),
    # Issue 34: the remedies, alone and combined (docs/selector.md).
    Setting("warmup0.3", warmup=0.3),
    Setting("warmup0.3+lr0.01", warmup=0.3, lr_selector=0.01),
    Setting("expected", loss="expected"),
    Setting("expected+lr0.01", loss="expected", lr_selector=0.01),
    Setting("expected+warmup0.3", loss="expected", warmup=0.3),
    Setting("expected+holdout+warmup0.3", loss="expected", holdout=True, warmup=0.3),
    Setting("expected+warmup0.3+balance", loss="expected", warmup=0.3, balance=1.0),
    Setting("error_affinity", warmup=0.3, error_init=3.0),
    Setting("error_affinity+expected", warmup=0.3, error_init=3.0, loss="expected"),
    Setting("error_affinity+expected+frozen", warmup=0.3, error_init=3.0, loss="expected", lr_selector=0.0),
    Setting("recommended", warmup=0.45, error_init=3.0, error_init_at=0.3, loss="expected"),
)}


# ------------------------------------------------------------------------------------------------
# The world
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class World:
    task_of_output: np.ndarray  # (21,) the planted partition
    a: np.ndarray  # (T, 8, 16)
    a_bias: np.ndarray  # (T, 16)
    b: np.ndarray  # (T, 16, 4)
    c: np.ndarray  # (21, 4) each output's readout of its task's latent
    mean: np.ndarray  # (21,) output normalisation
    std: np.ndarray
    noise: float = 0.1

    def clean(self, x):
        """Noise-free normalised outputs of x (B, 8), a float32 tensor (B, 21)."""
        x = tf.convert_to_tensor(x, tf.float32)
        hidden = tf.tanh(tf.einsum("bi,tih->tbh", x, self.a) + self.a_bias[:, None])
        latent = tf.einsum("tbh,thl->tbl", hidden, self.b)  # (T, B, 4)
        per_output = tf.gather(latent, self.task_of_output)  # (21, B, 4)
        y = tf.einsum("jbl,jl->bj", per_output, self.c)
        return (y - self.mean) / self.std

    def groups(self):
        return [[int(j) for j in np.flatnonzero(self.task_of_output == t)] for t in range(NUM_TASKS)]


def make_world(seed: int) -> World:
    rng = np.random.default_rng(1000 + seed)
    task_of_output = rng.permutation(np.repeat(np.arange(NUM_TASKS), NUM_OUTPUTS // NUM_TASKS))
    f32 = np.float32
    world = World(
        task_of_output=task_of_output,
        a=(rng.normal(size=(NUM_TASKS, INPUT_DIM, TASK_HIDDEN)) * 1.5 / np.sqrt(INPUT_DIM)).astype(f32),
        a_bias=rng.normal(size=(NUM_TASKS, TASK_HIDDEN)).astype(f32) * 0.5,
        b=(rng.normal(size=(NUM_TASKS, TASK_HIDDEN, LATENT)) / np.sqrt(TASK_HIDDEN)).astype(f32),
        c=rng.normal(size=(NUM_OUTPUTS, LATENT)).astype(f32),
        mean=np.zeros(NUM_OUTPUTS, f32), std=np.ones(NUM_OUTPUTS, f32),
    )
    y = world.clean(rng.normal(size=(20000, INPUT_DIM)).astype(f32)).numpy()
    world.mean, world.std = y.mean(0).astype(f32), y.std(0).astype(f32)
    return world


# ------------------------------------------------------------------------------------------------
# The grouped model: K small branches, each predicting every output, combined by Eq. 5
# ------------------------------------------------------------------------------------------------

def make_branch(rng, k, width):
    sizes = [(INPUT_DIM, width), (width, width), (width, NUM_OUTPUTS)]
    params = []
    for i, (fan_in, fan_out) in enumerate(sizes):
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
        params.append(keras.Variable(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                                     name=f"w{i}", trainable=True))
        params.append(keras.Variable(np.zeros(fan_out, np.float32), name=f"b{i}", trainable=True))
    return params


def branch_forward(params, x):
    w0, b0, w1, b1, w2, b2 = params
    h = tf.tanh(x @ w0 + b0)
    h = tf.tanh(h @ w1 + b1)
    return h @ w2 + b2


class GroupedModel:
    """K branches and the selector (named "selector", so its theta is "selector/theta" for
    ``group_variables``)."""

    def __init__(self, num_groups, width, seed, fixed_groups=None, per_image=False, straight=False):
        rng = np.random.default_rng(seed)
        self.num_groups = num_groups
        self.branches = []
        for k in range(num_groups):
            with keras.name_scope(f"branch_{k}"):
                self.branches.append(make_branch(rng, k, width))
        self.selector = JointGroupSelector(NUM_OUTPUTS, num_groups, fixed_groups=fixed_groups, seed=seed,
                                           sample_per_image=per_image, straight_through=straight, name="selector")
        self.selector.build(())

    @property
    def learned(self):
        return self.selector.fixed_groups is None and self.num_groups > 1

    def group_outputs(self, x):
        return tf.stack([branch_forward(p, x) for p in self.branches], axis=1)  # (B, K, 21)

    def __call__(self, x, tau, mode):
        groups = self.group_outputs(x)
        s = self.selector(tau, mode=mode, batch_size=tf.shape(x)[0])
        if s.shape.rank == 3:
            return tf.einsum("bjk,bkj->bj", s, groups)  # Eq. 5, one S per sample
        return tf.einsum("jk,bkj->bj", s, groups)  # Eq. 5

    def loss(self, x, y, tau, kind, balance=0.0):
        """Training loss: of Eq. 5's blended prediction, or the per-branch expected loss
        sum_k S_jk (y_j - y^k_j)^2 (DMTG); plus ``balance`` times the group-usage penalty."""
        penalty = 0.0
        if balance and self.learned:
            usage = tf.reduce_mean(tf.nn.softmax(self.selector.theta, axis=-1), axis=0)  # (K,)
            penalty = balance * self.num_groups * tf.reduce_sum(tf.square(usage - 1.0 / self.num_groups))
        if isinstance(kind, tf.Tensor):  # 0: blended, 1: expected, chosen in the graph
            return tf.cond(kind == 0, lambda: self.loss(x, y, tau, "blended", balance),
                           lambda: self.loss(x, y, tau, "expected", balance))
        if kind == "blended":
            return tf.reduce_mean(tf.square(self(x, tau, "sample") - y)) + penalty
        groups = self.group_outputs(x)
        s = self.selector(tau, mode="sample", batch_size=tf.shape(x)[0])
        errors = tf.square(groups - y[:, None])  # (B, K, 21)
        if s.shape.rank == 3:
            return tf.reduce_mean(tf.einsum("bjk,bkj->bj", s, errors)) + penalty
        return tf.reduce_mean(tf.einsum("jk,bkj->bj", s, errors)) + penalty

    def variables_to_train(self):
        variables = [v for p in self.branches for v in p]
        if self.learned:
            variables.append(self.selector.theta)
        return variables


def train_model(model, world, setting, args, seed, steps, log=True):
    """Trains ``model`` for ``steps`` steps; returns per-record logs."""
    schedule = TemperatureSchedule(5.0, 0.1, tau_every(setting, args), 0.1)
    groups = {name: vs for name, vs in group_variables(model.variables_to_train()).items() if vs}
    optimizers = {}
    for name, variables in groups.items():
        if name == "selector" and setting.selector_optimizer == "sgd":
            optimizer = keras.optimizers.SGD(setting.lr_selector, name=f"sgd_{name}")
        else:
            rate = args.lr_rest
            if name == "selector":
                rate = selector_rate(setting.lr_selector, int(round(setting.warmup * steps)))
            optimizer = keras.optimizers.Adam(rate, name=f"adam_{name}")
        optimizer.build(variables)
        optimizers[name] = optimizer
    variables = [v for vs in groups.values() for v in vs]
    theta_index = next((i for i, v in enumerate(variables) if model.learned and v is model.selector.theta), None)
    step = tf.Variable(0, dtype=tf.int64)
    warm = int(round((setting.error_init_at or setting.warmup) * steps))  # when theta is set from affinity
    affinity = None
    if setting.error_init and model.learned and warm > 0:
        from lgh_tf.training.error_affinity import ErrorAffinity

        affinity = ErrorAffinity(NUM_OUTPUTS, model.num_groups)
    grad_sum = tf.Variable(0.0)  # sum over steps of mean |dL/dtheta|
    move_sum = tf.Variable(0.0)  # sum over steps of mean |theta step|
    noise = world.noise

    @tf.function(jit_compile=args.jit)
    def run(n):
        for _ in tf.range(n):
            tau = schedule(step)
            key = tf.stack([tf.cast(seed, tf.int64) * 7919 + 17, step])
            x = tf.random.stateless_normal([args.batch_size, INPUT_DIM], seed=key)
            y = world.clean(x) + noise * tf.random.stateless_normal([args.batch_size, NUM_OUTPUTS], seed=key + 1)
            if affinity is not None:  # the second half of the warm-up: which outputs err together
                inside = tf.cast((step >= warm // 2) & (step < warm), tf.float64)
                outs = model.group_outputs(x)
                blended = tf.einsum("jk,bkj->bj", model.selector(tau, mode="soft"), outs)
                affinity.update(blended - y, tf.square(outs - y[:, None]), inside)
            kind = setting.loss
            if affinity is not None and kind == "expected":  # the ensemble's blended loss until theta is set
                kind = tf.where(step < warm, 0, 1)
            with tf.GradientTape() as tape:
                loss = model.loss(x, y, tau, kind, setting.balance)
            gradients = tape.gradient(loss, variables)
            if setting.holdout and model.learned:  # theta from an independent batch
                key2 = key + 1_000_003
                x2 = tf.random.stateless_normal([args.batch_size, INPUT_DIM], seed=key2)
                y2 = world.clean(x2) + noise * tf.random.stateless_normal([args.batch_size, NUM_OUTPUTS],
                                                                          seed=key2 + 1)
                with tf.GradientTape() as tape:
                    loss2 = model.loss(x2, y2, tau, kind, setting.balance)
                gradients[theta_index] = tape.gradient(loss2, model.selector.theta)
            before = model.selector.theta + 0.0 if model.learned else tf.zeros(())
            start = 0
            for name, group_vars in groups.items():  # one optimizer per group, same step (task.py)
                optimizers[name].apply_gradients(zip(gradients[start:start + len(group_vars)], group_vars))
                start += len(group_vars)
            if model.learned:
                grad_sum.assign_add(tf.reduce_mean(tf.abs(gradients[theta_index])))
                move_sum.assign_add(tf.reduce_mean(tf.abs(model.selector.theta - before)))
            step.assign_add(1)

    probe = tf.random.stateless_normal([512, INPUT_DIM], seed=[seed, 999])
    probe_y = world.clean(probe)
    records = {"step": [], "tau": [], "probabilities": [], "grad": [], "move": [], "branch_error": []}

    def record():
        records["step"].append(int(step.numpy()))
        records["tau"].append(float(schedule(step).numpy()))
        if model.learned:
            records["probabilities"].append(softmax(model.selector.theta.numpy()))
        errors = tf.reduce_mean(tf.square(model.group_outputs(probe) - probe_y[:, None]), axis=0)
        records["branch_error"].append(errors.numpy())  # (K, 21)

    record()
    done = 0
    while done < steps:
        n = min(args.log_every, steps - done)
        if affinity is not None and done < warm:
            n = min(n, warm - done)
        if affinity is not None and done == warm:
            from lgh_tf.evaluation.grouping import match_groups_to_branches
            from lgh_tf.training.error_affinity import initial_theta

            labels = partition_from_affinity(affinity.affinity(), model.num_groups)
            labels = match_groups_to_branches(labels, affinity.branch_errors())
            model.selector.theta.assign(initial_theta(labels, model.num_groups, setting.error_init))
        grad_sum.assign(0.0)
        move_sum.assign(0.0)
        run(tf.constant(n))
        done += n
        if log:
            record()
            records["grad"].append(float(grad_sum.numpy()) / n)
            records["move"].append(float(move_sum.numpy()) / n)
    return {k: np.asarray(v) for k, v in records.items()}


def selector_rate(rate, warmup_steps):
    if warmup_steps <= 0:
        return rate
    from lgh_tf.training.task import SelectorWarmup

    return SelectorWarmup(rate, warmup_steps)


def tau_every(setting, args):
    if setting.tau_every is None:
        return args.tau_every
    return -setting.tau_every * args.tau_every if setting.tau_every < 0 else setting.tau_every


def evaluate(model, world, seed):
    """Held-out RMSE (output standard deviations) with the hard partition (inference)."""
    x = tf.random.stateless_normal([4096, INPUT_DIM], seed=[seed, 4242])
    prediction = model(x, tf.constant(1.0), "hard")
    return float(tf.sqrt(tf.reduce_mean(tf.square(prediction - world.clean(x)))).numpy())


# ------------------------------------------------------------------------------------------------
# Task-affinity grouping (Fifty et al. 2021): lookahead of one output's gradient step on the others
# ------------------------------------------------------------------------------------------------

def affinity_matrix(world, args, seed, steps):
    """Z[i, j] = 1 - L_j(shared - eta g_i) / L_j(shared), averaged over ``steps`` steps of a K = 1
    network (shared: the two hidden layers; each output's own head column is not shared)."""
    rng = np.random.default_rng(seed)
    params = make_branch(rng, 0, args.width)
    optimizer = keras.optimizers.Adam(args.lr_rest)
    optimizer.build(params)
    total = tf.Variable(tf.zeros((NUM_OUTPUTS, NUM_OUTPUTS)))
    step = tf.Variable(0, dtype=tf.int64)
    eta = args.lr_rest * 10.0

    def per_output_losses(shared, x, y):
        return tf.reduce_mean(tf.square(branch_forward(list(shared) + params[4:], x) - y), axis=0)

    @tf.function
    def run(n):
        for _ in tf.range(n):
            key = tf.stack([tf.cast(seed, tf.int64) * 7919 + 17, step])
            x = tf.random.stateless_normal([args.batch_size, INPUT_DIM], seed=key)
            y = world.clean(x) + world.noise * tf.random.stateless_normal([args.batch_size, NUM_OUTPUTS], seed=key + 1)
            shared = [tf.convert_to_tensor(p) for p in params[:4]]
            with tf.GradientTape() as tape:
                tape.watch(shared)
                losses = per_output_losses(shared, x, y)
            jac = tape.jacobian(losses, shared)  # each (21, *shape)
            rows = []
            for i in range(NUM_OUTPUTS):
                after = per_output_losses([p - eta * g[i] for p, g in zip(shared, jac)], x, y)
                rows.append(1.0 - after / losses)
            total.assign_add(tf.stack(rows))
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(per_output_losses(params[:4], x, y))
            optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
            step.assign_add(1)

    run(tf.constant(steps))
    return total.numpy() / steps


def affinity_groups(affinity, num_groups=NUM_TASKS):
    """Average-linkage clustering of the symmetrised affinity into ``num_groups`` groups: (21,) labels."""
    return partition_from_affinity(affinity, num_groups)


# ------------------------------------------------------------------------------------------------

def run_setting(setting, seed, args):
    keras.utils.set_random_seed(seed)
    world = make_world(seed)
    steps = args.steps
    result = {"setting": setting.name, "seed": seed}
    fixed, num_groups = None, NUM_TASKS
    if setting.grouping == "planted":
        fixed = world.groups()
    elif setting.grouping == "k1":
        num_groups = 1
    elif setting.grouping == "random":
        labels = np.random.default_rng(5000 + seed).permutation(np.repeat(np.arange(NUM_TASKS), 7))
        fixed = [[int(j) for j in np.flatnonzero(labels == k)] for k in range(NUM_TASKS)]
    elif setting.grouping == "affinity":
        affinity = affinity_matrix(world, args, seed, args.affinity_steps)
        labels = affinity_groups(affinity)
        fixed = [[int(j) for j in np.flatnonzero(labels == k)] for k in range(NUM_TASKS)]
        if any(not g for g in fixed):  # fewer clusters than groups: an empty branch is allowed
            fixed = [g for g in fixed if g] + [[] for g in fixed if not g]
        steps = args.steps - args.affinity_steps
        result["affinity"] = affinity
    model = GroupedModel(num_groups, args.width, seed, fixed_groups=fixed if fixed else None,
                         per_image=setting.per_image, straight=setting.straight)
    started = time.perf_counter()
    records = train_model(model, world, setting, args, seed, steps)
    result["seconds"] = time.perf_counter() - started
    result["rmse"] = evaluate(model, world, seed)
    result["records"] = records
    if setting.grouping == "k1":
        labels = np.zeros(NUM_OUTPUTS, int)
    elif fixed is not None:
        labels = np.zeros(NUM_OUTPUTS, int)
        for k, g in enumerate(fixed):
            labels[g] = k
    else:
        labels = model.selector.theta.numpy().argmax(-1)
        result["settled"] = settle_steps(records["step"], records["probabilities"])
    result["labels"] = labels
    result["ari"] = adjusted_rand_index(labels, world.task_of_output)
    return result


def machine():
    return (f"{bench_report.cpu_model_and_flags()[0]}, {os.cpu_count()} logical cores; Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"git {bench_report.git_commit()}")


def mean_std(values, digits=2):
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def table(results, settings, seeds, command, args):
    lines = [
        "# Planted partition: does the selector recover groups known by construction?",
        "",
        "Written by `tools/planted_groups.py` (docs/selector.md explains the problem and the settings).",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Budget (every setting): {args.steps} steps of batch {args.batch_size}, branches of width {args.width}, "
        f"branch Adam lr {args.lr_rest}, tau 5 -> 0.1 by 0.1 every {args.tau_every} steps unless stated; "
        f"seeds {','.join(map(str, seeds))} (each seed its own world and initialisation).",
        "",
        "ARI: adjusted Rand index of the partition (argmax theta) against the planted one (1 = recovered). "
        "RMSE: held-out error with that hard partition, in output standard deviations (noise floor 0). "
        "Mean ± std over seeds.",
        "",
        "| setting | ARI | recovered (ARI = 1) | ARI per seed | RMSE | RMSE per seed | settled joints | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in settings:
        rows = [results[(name, s)] for s in seeds]
        aris = [r["ari"] for r in rows]
        rmses = [r["rmse"] for r in rows]
        settled = "—"
        if "settled" in rows[0]:
            settled = f"{np.mean([np.mean(r['settled'] >= 0) for r in rows]) * 21:.1f} / 21"
        lines.append(
            f"| {name} | {mean_std(aris)} | {sum(a > 0.999 for a in aris)} / {len(aris)} | "
            f"{' '.join(f'{a:.2f}' for a in aris)} | {mean_std(rmses, 3)} | "
            f"{' '.join(f'{e:.3f}' for e in rmses)} | {settled} | {np.mean([r['seconds'] for r in rows]):.0f} |")
    lines += evidence_table(results, settings, seeds, args)
    return "\n".join(lines) + "\n"


def evidence_table(results, settings, seeds, args):
    """Why a learned setting ends where it does: the gradient theta receives against the step its
    optimizer takes, when outputs settle (and tau then), and whether the final partition agrees
    with the branches (each output in the branch that fits it best)."""
    learned = [n for n in settings if "settled" in results[(n, seeds[0])]]
    if not learned:
        return []
    lines = [
        "",
        "## Evidence: the gradient on theta, the step theta takes, and when outputs settle",
        "",
        "|dL/dθ|, |Δθ|: mean absolute gradient of the loss with respect to θ and mean absolute change of "
        f"θ per step, over the first {args.steps // 10} steps and over the whole run (mean over seeds). "
        "Settled: argmax θ never changes again and softmax(θ) > 0.9 (median step over settled outputs "
        "and seeds, τ at that step). Self-consistent: share of outputs whose group is the branch with "
        "the lowest error for them at the end (probe batch). ARI(best branch): the partition 'each "
        "output to its best branch' against the planted one.",
        "",
        "| setting | \\|dL/dθ\\| early | \\|Δθ\\| early | \\|Δθ\\| / \\|dL/dθ\\| early | \\|dL/dθ\\| all | "
        "\\|Δθ\\| all | median settle step (τ) | self-consistent | ARI(best branch) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in learned:
        rows = [results[(name, s)] for s in seeds]
        early = max(1, args.steps // 10 // args.log_every)
        grad_early = np.mean([r["records"]["grad"][:early].mean() for r in rows])
        move_early = np.mean([r["records"]["move"][:early].mean() for r in rows])
        grad_all = np.mean([r["records"]["grad"].mean() for r in rows])
        move_all = np.mean([r["records"]["move"].mean() for r in rows])
        settled = np.concatenate([r["settled"][r["settled"] >= 0] for r in rows])
        if len(settled):
            median = float(np.median(settled))
            tau = float(TemperatureSchedule(5.0, 0.1, tau_every(SETTINGS[name], args), 0.1)(int(median)).numpy())
            settle = f"{median:.0f} ({tau:.1f})"
        else:
            settle = "none"
        consistent, best_ari = [], []
        for r in rows:
            best = r["records"]["branch_error"][-1].argmin(0)  # (21,) best branch per output
            consistent.append(np.mean(best == r["labels"]))
            best_ari.append(adjusted_rand_index(best, make_world(r["seed"]).task_of_output))
        lines.append(
            f"| {name} | {grad_early:.2g} | {move_early:.2g} | {move_early / grad_early:.3g} | {grad_all:.2g} | "
            f"{move_all:.2g} | {settle} | {np.mean(consistent):.2f} | {mean_std(best_ari)} |")
    return lines


def figures(results, settings, seeds, image_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lgh_tf import files, visualize

    paths = []
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    for i, name in enumerate(settings):
        aris = [results[(name, s)]["ari"] for s in seeds]
        rmses = [results[(name, s)]["rmse"] for s in seeds]
        jitter = np.linspace(-0.15, 0.15, len(seeds))
        axes[0].scatter(i + jitter, aris, s=18, color="#1f77b4")
        axes[0].hlines(np.mean(aris), i - 0.3, i + 0.3, color="black")
        axes[1].scatter(i + jitter, rmses, s=18, color="#d62728")
        axes[1].hlines(np.mean(rmses), i - 0.3, i + 0.3, color="black")
    for axis, label in zip(axes, ("ARI vs planted partition", "held-out RMSE (output std)")):
        axis.set_xticks(range(len(settings)))
        axis.set_xticklabels(settings, rotation=40, ha="right", fontsize=8)
        axis.set_title(label, fontsize=10)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(files.write_png(os.path.join(image_dir, "planted_groups.png"), visualize.figure_to_array(figure)))

    seed = seeds[0]
    world = make_world(seed)
    # One row per planted task: a recovered partition shows one colour per row.
    order = [j for t in range(NUM_TASKS) for j in np.flatnonzero(world.task_of_output == t)]
    names = [f"output {j} (task {world.task_of_output[j] + 1})" for j in range(NUM_OUTPUTS)]
    for name in ("default", "lr0.01", "slow_tau", "sgd", "recommended"):
        if name not in settings:
            continue
        r = results[(name, seed)]
        rec = r["records"]
        picture = visualize.selector_trajectories_figure(
            rec["step"], rec["probabilities"], r["settled"], rec["tau"],
            f"planted problem, setting {name}, seed {seed} (ARI {r['ari']:.2f}): softmax(theta) per output, "
            "one row per planted task", names=names, order=order)
        paths.append(files.write_png(os.path.join(image_dir, f"planted_theta_{name.replace('.', '')}.png"), picture))

    # Why the default commits early: |dL/dtheta| against |theta step|, and when branches specialise.
    learned = [n for n in settings if "settled" in results[(n, seed)]]
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8), dpi=100)
    for name in learned:
        rec = results[(name, seed)]["records"]
        steps = rec["step"][1:]
        line, = axes[0].plot(steps, rec["move"], label=name)
        axes[0].plot(steps, rec["grad"], color=line.get_color(), linestyle=":")
        margin = np.sort(rec["probabilities"], -1)
        axes[1].plot(rec["step"], (margin[..., -1] - margin[..., -2]).mean(-1), label=name)
    axes[0].set_yscale("log")
    axes[0].set_title("mean |theta step| per step (solid), mean |dL/dtheta| (dotted)", fontsize=9)
    axes[1].set_title("mean margin of softmax(theta) (top - runner-up)", fontsize=9)
    # Specialisation: per output, error of its best branch vs the mean over branches (probe batch).
    for name in learned + [n for n in settings if n == "planted"]:
        rec = results[(name, seed)]["records"]
        err = rec["branch_error"]  # (T, K, 21)
        if err.shape[1] < 2:
            continue
        spread = (err.mean(1) - err.min(1)).mean(-1)
        axes[2].plot(rec["step"], spread, label=name)
    axes[2].set_title("branch specialisation: mean over outputs of\n(mean - best) branch MSE", fontsize=9)
    for axis in axes:
        axis.set_xlabel("step", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    paths.append(files.write_png(os.path.join(image_dir, "planted_theta_gradient.png"),
                                 visualize.figure_to_array(figure)))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, of: " + ", ".join(SETTINGS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--width", type=int, default=8, help="units per branch layer")
    parser.add_argument("--lr_rest", type=float, default=3e-3, help="Adam learning rate of the branches")
    parser.add_argument("--tau_every", type=int, default=50, help="tau falls 0.1 every this many steps")
    parser.add_argument("--affinity_steps", type=int, default=500, help="steps measuring affinity (of --steps)")
    parser.add_argument("--log_every", type=int, default=25)
    parser.add_argument("--jit", type=int, default=0, help="1: XLA-compile the training loops")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks", "planted_groups.md"))
    parser.add_argument("--image_dir", default=os.path.join(REPO, "docs", "images"))
    parser.add_argument("--runs_dir", default="", help="where planted_runs.npz goes (default: none)")
    parser.add_argument("--no_write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.affinity_steps >= args.steps and "affinity" in settings:
        parser.error("--affinity_steps must be below --steps")
    results = {}
    for name in settings:
        for seed in seeds:
            r = run_setting(SETTINGS[name], seed, args)
            results[(name, seed)] = r
            print(f"{name:>18} seed {seed}: ARI {r['ari']:.2f}  RMSE {r['rmse']:.3f}  ({r['seconds']:.0f} s)",
                  flush=True)
    command = "python tools/planted_groups.py " + " ".join(
        bench_report.portable_command(argv if argv is not None else sys.argv[1:]))
    text = table(results, settings, seeds, command.strip(), args)
    print(text)
    if args.runs_dir:
        from lgh_tf import files

        os.makedirs(args.runs_dir, exist_ok=True)
        arrays = {}
        for (name, seed), r in results.items():
            for key, value in r["records"].items():
                arrays[f"{name}/{seed}/{key}"] = value
            arrays[f"{name}/{seed}/labels"] = r["labels"]
            for key in ("ari", "rmse", "seconds"):
                arrays[f"{name}/{seed}/{key}"] = np.asarray(r[key])
            if "affinity" in r:
                arrays[f"{name}/{seed}/affinity"] = r["affinity"]
        print("wrote", files.save_npz(os.path.join(args.runs_dir, "planted_runs.npz"), **arrays))
    if not args.no_write:
        from lgh_tf import files

        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        os.makedirs(args.image_dir, exist_ok=True)
        files.write_bytes(args.out, text.encode())
        print("wrote", args.out)
        for path in figures(results, settings, seeds, args.image_dir):
            print("wrote", path)
    return results


if __name__ == "__main__":
    main()
