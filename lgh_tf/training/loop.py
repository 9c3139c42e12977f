"""Running a training job: strategy, checkpoints that resume exactly, TensorBoard, progress.

Keras ``fit`` drives the task's custom ``train_step``; one Keras "epoch" is one checkpoint interval
(``checkpoint_every`` steps), so a resumed run restarts at the last checkpoint's step with the input
stream positioned at the same sample (the pipeline is a pure function of (seed, sample index)).
A ``tf.train.CheckpointManager`` keeps the last few checkpoints: weights, every optimizer slot, the
step, tau and the selector's sampling state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lgh_tf import files, visualize
from lgh_tf.config import ModelConfig, OptimConfig, TrainConfig  # TrainConfig: also importable from here
from lgh_tf.model.io import first_line, latest_checkpoint, restore_checkpoint
from lgh_tf.model.network import LearnableGroupsNet
from lgh_tf.training import selector_log
from lgh_tf.training.distribute import (  # noqa: F401  (names importable from here as before)
    HEARTBEAT_TIMEOUT_S,
    distributed_train_dataset,
    make_strategy,
    worker_of,
)
from lgh_tf.training.error_affinity import INITIAL_THETA_MARGIN
from lgh_tf.training.task import HandPoseTask


def make_checkpoint(task: HandPoseTask) -> tf.train.Checkpoint:
    """Everything a resumed run needs, by stable names."""
    objects = {"network": task.network.checkpoint_variables(), "step": task.step}
    if task.affinity is not None:  # the selector's warm-up statistics (--selector_init=error_affinity)
        objects["selector_init"] = {v.name: v for v in task.affinity.variables}
    for group, optimizer in task.optimizers.items():
        objects[f"optimizer_{group}"] = {f"{i:04d}": v for i, v in enumerate(optimizer.variables)}
    return tf.train.Checkpoint(**objects)


def restore_network_weights(network: LearnableGroupsNet, path: str, backbone_only: bool = False) -> str:
    """Loads only the network's weights from a training checkpoint (e.g. stage 1 into stage 2).

    ``path`` is a checkpoint prefix, a directory holding checkpoints (the latest is taken), or a
    training ``model_dir`` (its ``checkpoints/`` directory). ``backbone_only``: only the hourglass
    (all that stage 1 trains), so a stage-1 run of another configuration (K, fusion) can be used.
    """
    if os.path.isdir(os.path.join(path, "checkpoints")):
        path = os.path.join(path, "checkpoints")
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in directory {path!r}")
        path = latest
    restore_checkpoint(network, path, only="backbone/" if backbone_only else "")
    return path


class TrainingDivergedError(RuntimeError):
    """The loss or a weight became NaN or infinite; nothing non-finite was saved."""


def non_finite_variables(variables: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point variables in ``{name: variable}`` holding NaN or inf."""
    bad = []
    for name, variable in variables.items():
        value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad.append(name)
    return bad


def checkpoint_variables(task: HandPoseTask) -> dict[str, keras.Variable]:
    """{name: variable} of everything ``make_checkpoint`` saves (network and optimizer slots)."""
    names = {f"network/{k}": v for k, v in task.network.checkpoint_variables().items()}
    for group, optimizer in task.optimizers.items():
        names.update({f"optimizer_{group}/{v.path}": v for v in optimizer.variables})
    return names


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops the run at the first step whose loss is NaN or inf (the next checkpoint would hold
    the diverged weights): raises TrainingDivergedError naming the step."""

    def __init__(self, task: HandPoseTask, last_good: Callable[[], str]) -> None:
        super().__init__()
        self.task = task
        self.last_good = last_good

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(np.asarray(loss))):
            step = int(self.task.step.numpy())
            raise TrainingDivergedError(
                f"training diverged at step {step}: the loss is {float(np.asarray(loss))}; nothing was saved "
                f"after {self.last_good()} (lower the learning rates, then resume from it)")


class CheckpointCallback(keras.callbacks.Callback):
    """Saves at the end of every Keras epoch (= every ``checkpoint_every`` steps), numbered by step,
    after checking that every saved value is finite (a diverged state is never written, so
    ``max_to_keep`` rotation cannot push the last good checkpoint out).

    ``scratch``: a multi-worker non-chief, which takes part in the save (tf.distribute's rule) into
    its own temporary directory and deletes it at once; only the chief's checkpoint is kept.
    """

    def __init__(self, manager: tf.train.CheckpointManager, task: HandPoseTask, scratch: bool = False) -> None:
        super().__init__()
        self.manager = manager
        self.task = task
        self.scratch = scratch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        step = int(self.task.step.numpy())
        bad = non_finite_variables(checkpoint_variables(self.task))
        if bad:
            raise TrainingDivergedError(
                f"training diverged by step {step}: {len(bad)} variable(s) hold NaN or inf (first: {bad[0]}); "
                f"no checkpoint written, the last one is {self.manager.latest_checkpoint} (lower the "
                "learning rates, then resume from it)")
        try:
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as error:  # full disk, read-only folder: earlier ones stay
            raise files.output_error(os.path.join(self.manager.directory, f"ckpt-{step}"), error) from None
        if self.scratch:
            tf.io.gfile.rmtree(self.manager.directory)
            logging.info("step %d: non-chief checkpoint written to scratch and removed", step)
        else:
            logging.info("step %d: checkpoint %s", step, path)


# What a resumed run must share with the run that wrote its checkpoints (anything else, such as
# the number of steps or the learning rates, may change between runs). A cosine decay's horizon
# follows --steps (docs/training-resume.md); whether there is one is fixed, because it changes the
# optimizer's state (a schedule instead of a rate variable).
RESUME_FIXED = {
    "model": None, "optim": ("stage", "lr_decay", "selector_warmup_steps", "selector_loss", "selector_init"),
    "train": ("batch_size", "checkpoint_every", "seed"),
    "data": ("dataset", "synthetic_world", "synthetic_seed", "synthetic_train", "synthetic_test"),
}
# The command-line flag of a config field, where it is not --<field>.
FLAG_OF = {"model.initial_temperature": "--temperature_initial", "model.selector_seed": "--seed",
           "model.num_joints": "the number of joints", "optim.lr_decay": "--lr_decay",
           "optim.selector_warmup_steps": "--selector_warmup"}


def _fixed_value(section: Mapping[str, Any], name: str, key: str) -> Any:
    if name == "optim" and key == "lr_decay":  # stored as its horizon: only on / off is fixed
        steps = section.get("lr_decay_steps") or 0
        return "cosine" if steps > 0 else "none"
    if name == "optim" and key == "selector_warmup_steps":  # a schedule or a rate: only on / off is fixed
        return bool(section.get(key))
    return section.get(key)


_FIELD_DEFAULTS = {
    section: {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for section, cls in (("model", ModelConfig), ("optim", OptimConfig), ("train", TrainConfig))
}


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """["--flag: stored -> current", ...] for the RESUME_FIXED entries that differ."""
    current = json.loads(json.dumps(current))  # tuples -> lists, as stored
    differences = []
    for section, keys in RESUME_FIXED.items():
        if section == "data" and (section not in stored or section not in current):
            continue  # a run made before the data were recorded, or a caller that passes none
        old, new = stored.get(section, {}), current.get(section, {})
        defaults = _FIELD_DEFAULTS.get(section, {})
        for key in keys or sorted(set(old) | set(new)):
            # A setting added after the stored run was made: that run had its default.
            before = _fixed_value(old, section, key) if key in old or key not in defaults else defaults[key]
            after = _fixed_value(new, section, key)
            if before != after:
                flag = FLAG_OF.get(f"{section}.{key}", f"--{key}")
                differences.append(f"{flag}: {before!r} -> {after!r}")
    return differences


def read_run_config(model_dir: str) -> dict[str, Any]:
    """The ``config.json`` of a training directory (a ValueError naming it when unreadable)."""
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it is empty or damaged") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{path} is not a training config (no 'model' section)")
    return data


class SelectorInitCallback(keras.callbacks.Callback):
    """Sets theta from the error-affinity partition after step ``selector_init_step`` (once; the
    flag is saved with the checkpoint) and records it in ``<model_dir>/selector_init.json``."""

    def __init__(self, task: HandPoseTask, model_dir: str | None) -> None:
        super().__init__()
        self.task = task
        self.model_dir = model_dir

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.pending = not bool(self.task.affinity.done.numpy())  # a resume after it reads nothing per step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.pending:
            return
        labels = self.task.initialise_selector()
        if labels is None:
            return
        self.pending = False
        step = int(self.task.step.numpy())
        groups = [[j for j, label in enumerate(labels) if label == k] for k in range(max(labels) + 1)]
        logging.info("step %d: theta set from error affinity, groups %s", step, groups)
        if self.model_dir:
            files.write_json(os.path.join(self.model_dir, "selector_init.json"), {
                "step": step, "groups": groups, "margin": float(INITIAL_THETA_MARGIN),
                "affinity": np.round(self.task.affinity.affinity(), 4).tolist()})


class GroupingCallback(keras.callbacks.Callback):
    """TensorBoard: the current grouping as an image and text, and each joint's group as a scalar."""

    def __init__(self, task: HandPoseTask, log_dir: str) -> None:
        super().__init__()
        self.task = task
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "groups"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        network = self.task.network
        step = int(self.task.step.numpy())
        groups = network.groups()
        tau = float(network.temperature.numpy())
        image = grouping_picture(network, f"step {step}, tau {tau:.2f}")
        with self.writer.as_default(step=step):
            tf.summary.image("grouping", image[None])
            tf.summary.text("grouping", visualize.grouping_text(groups))
            assignment = visualize.groups_to_assignment(groups)
            for joint, group in enumerate(assignment):
                tf.summary.scalar(f"group_of_joint/{joint:02d}", int(group))
        self.writer.flush()
        logging.info("step %d groups: %s", step, groups)


class LearningCurvesCallback(keras.callbacks.Callback):
    """``learning_curves.json`` and ``learning_curves.png`` in the model directory: every step's
    training terms and tau, and the held-out figures (Keras' ``val_*`` logs) at every checkpoint.

    Keras logs the running mean of each term over the current epoch; the value of step n is
    recovered from two consecutive means (n m_n - (n - 1) m_(n-1)). Both files are rewritten
    (atomically) at every checkpoint, so a stopped run still shows its curves, and a resumed run
    continues the curves of the steps it kept.
    """

    def __init__(self, task: HandPoseTask, model_dir: str, history: dict[str, Any], title: str = "") -> None:
        super().__init__()
        self.task = task
        self.model_dir = model_dir
        self.history = history
        self.title = title
        self._means = {}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._means = {}

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        train = self.history["train"]
        n = batch + 1  # the Keras batch index restarts at 0 with every epoch
        train.setdefault("step", []).append(int(self.task.step.numpy()))
        for name, mean in (logs or {}).items():
            if name == "temperature" and self.task.optim.stage == "pretrain2d":
                continue  # stage 1 trains no selector: tau is irrelevant there
            mean = float(np.asarray(mean))
            value = mean if name == "temperature" else n * mean - (n - 1) * self._means.get(name, 0.0)
            self._means[name] = mean
            train.setdefault(name, []).append(value)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        held_out = {k[len("val_"):]: float(np.asarray(v)) for k, v in (logs or {}).items()
                    if k.startswith("val_")}
        if held_out:
            add_held_out(self.history, int(self.task.step.numpy()), held_out)
        write_learning_curves(self.model_dir, self.history, self.title)


def read_history(model_dir: str, start_step: int) -> dict[str, Any]:
    """The curves a previous run of ``model_dir`` wrote, cut at ``start_step`` (the resume point)."""
    path = os.path.join(model_dir, "learning_curves.json")
    history = {"train": {}, "eval": {}}
    if start_step and os.path.exists(path):
        with open(path) as f:
            history = json.load(f)
        for part in history.values():
            keep = [i for i, step in enumerate(part.get("step", [])) if step <= start_step]
            for name in part:
                part[name] = [part[name][i] for i in keep]
    return history


def add_held_out(history: dict[str, Any], step: int, figures: Mapping[str, float]) -> None:
    """Appends one held-out point (``{"error_2d_px": ..., ...}``) unless ``step`` has one already."""
    held_out = history["eval"]
    if step in held_out.get("step", []):
        return
    held_out.setdefault("step", []).append(step)
    for name, value in figures.items():
        if name not in ("step", "temperature"):  # tau is a training quantity
            held_out.setdefault(name, []).append(float(value))


def write_learning_curves(model_dir: str, history: dict[str, Any], title: str = "") -> str:
    """learning_curves.json and learning_curves.png, each written to a temporary name and renamed."""
    files.write_json(os.path.join(model_dir, "learning_curves.json"), files.to_jsonable(history), indent=None)
    picture = visualize.learning_curves_figure(history, title)
    return files.write_png(os.path.join(model_dir, "learning_curves.png"), picture)


def grouping_picture(network: LearnableGroupsNet, title: str) -> np.ndarray:
    """The network's hard grouping (paper Fig. 4 style), each joint labelled with its largest
    soft weight softmax(theta / tau) when the grouping is learned. RGB uint8."""
    probabilities = None
    if network.selector.fixed_groups is None and network.config.num_groups > 1:
        tau = tf.convert_to_tensor(network.temperature)
        probabilities = network.selector(tau, mode="soft").numpy()
    return visualize.grouping_figure(network.groups(), title, probabilities)


def write_grouping_picture(network: LearnableGroupsNet, model_dir: str, title: str) -> str:
    """groups.png in ``model_dir`` (written to a temporary name and renamed)."""
    return files.write_png(os.path.join(model_dir, "groups.png"), grouping_picture(network, title))


def build_task(model_config: ModelConfig, optim: OptimConfig, train: TrainConfig) -> HandPoseTask:
    keras.utils.set_random_seed(train.seed)  # reproducible initial weights
    # The network's own dtype policy, passed down to every layer: nothing global to switch back.
    policy = "mixed_bfloat16" if train.mixed_precision else None
    network = LearnableGroupsNet(model_config, dtype=policy).build_for_input()
    task = HandPoseTask(network, optim)
    task.compile(jit_compile=train.jit_compile, run_eagerly=train.run_eagerly)
    return task


def train(
    model_config: ModelConfig,
    optim: OptimConfig,
    train_config: TrainConfig,
    make_train_dataset: Callable[..., tf.data.Dataset],
    eval_dataset: tf.data.Dataset | None = None,
    strategy: tf.distribute.Strategy | None = None,
    data: Mapping[str, Any] | None = None,
) -> tuple[HandPoseTask, dict[str, Any]]:
    """Trains (or resumes) in ``train_config.model_dir`` holding its lock (``files.run_lock``: one
    writer per run folder; a second run stops with RunFolderBusyError). See ``_train``."""
    strategy = strategy or make_strategy(train_config.strategy)
    chief = worker_of(strategy)[2]
    with files.run_lock(train_config.model_dir) if chief else contextlib.nullcontext():
        return _train(model_config, optim, train_config, make_train_dataset, eval_dataset, strategy, data)


def _train(
    model_config: ModelConfig,
    optim: OptimConfig,
    train_config: TrainConfig,
    make_train_dataset: Callable[..., tf.data.Dataset],
    eval_dataset: tf.data.Dataset | None = None,
    strategy: tf.distribute.Strategy | None = None,
    data: Mapping[str, Any] | None = None,
) -> tuple[HandPoseTask, dict[str, Any]]:
    """Trains (or resumes) in ``train_config.model_dir``.

    ``make_train_dataset(start_sample)`` returns the infinite batched training stream starting at
    sample ``start_sample`` (with more than one replica it is called as ``make_train_dataset(
    start_sample, batch_size=per-replica batch, shard=(number of workers, worker))``, see
    ``distributed_train_dataset``); ``eval_dataset`` is a finite batched held-out set (optional).
    ``strategy``: default ``make_strategy(train_config.strategy)``; a multi-worker strategy must be
    made before TensorFlow initialises its runtime, i.e. first thing in the program.
    ``data``: what the stream is made of (main.py: the data set; for the synthetic hands their
    world, seed and counts), stored in config.json and fixed on resume.
    Returns a dict with the step reached and the held-out figures before and after.
    """
    c = train_config
    files.require_directory(c.model_dir, "--model_dir")
    checkpoint_dir = os.path.join(c.model_dir, "checkpoints")
    for path in files.remove_stale(checkpoint_dir, r"ckpt-\d+_temp"):  # a save cut short by a kill
        logging.info("removed the partial checkpoint %s", path)
    config = {
        "model": dataclasses.asdict(model_config),
        "optim": dataclasses.asdict(optim),
        "train": dataclasses.asdict(c),
    }
    if data is not None:
        config["data"] = dict(data)
    latest = latest_checkpoint(checkpoint_dir, resume=True)  # every worker resumes from the chief's
    if latest:  # a resume: refuse to mix two runs
        differences = config_differences(read_run_config(c.model_dir), config)
        if differences:
            raise ValueError(
                f"{c.model_dir} holds a run with other settings that cannot change on resume: "
                + "; ".join(differences) + ". Resume with the original flags or use another --model_dir")
    worker, num_workers, chief = worker_of(strategy)
    logging.info("strategy %s: %d replicas in sync, worker %d of %d%s", c.strategy,
                 strategy.num_replicas_in_sync, worker, num_workers, " (chief)" if chief else "")
    with strategy.scope():
        task = build_task(model_config, optim, c)
        checkpoint = make_checkpoint(task)
    if not chief:
        checkpoint_dir = tempfile.mkdtemp(prefix=f"worker{worker}_checkpoints_")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=c.keep_checkpoints)
    if latest:
        try:
            checkpoint.restore(latest).assert_consumed()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:  # IndexError: short .data
            raise ValueError(
                f"cannot resume from {latest} (.index / .data files truncated or "
                f"damaged?): {first_line(error)}") from None
        # The checkpoint holds the learning rates it was trained with; a resume uses this run's
        # (e.g. lower ones after a divergence).
        for group, optimizer in task.optimizers.items():
            optimizer.learning_rate = task.scheduled_rate(group)
        logging.info("resumed from %s at step %d", latest, int(task.step.numpy()))
    elif c.init_checkpoint:
        used = restore_network_weights(task.network, c.init_checkpoint, c.init_backbone_only)
        logging.info("initialised the network from %s", used)
    if chief:
        files.write_json(os.path.join(c.model_dir, "config.json"), files.to_jsonable(config))  # inf -> null

    start_step = int(task.step.numpy())
    if start_step % c.checkpoint_every:
        raise ValueError(
            f"checkpoint step {start_step} is not a multiple of checkpoint_every={c.checkpoint_every}; "
            "resume with the flags of the original run"
        )
    results = {"start_step": start_step}
    history = read_history(c.model_dir, start_step)
    title = f"{files.portable_path(c.model_dir)}: stage {optim.stage}, {c.steps} steps"
    held_out = None
    if eval_dataset is not None:
        held_out = held_out_batches(eval_dataset, c.eval_batches)
        results["before"] = _evaluate(task, held_out)
        add_held_out(history, start_step, results["before"])
    total_epochs = -(-c.steps // c.checkpoint_every)
    initial_epoch = start_step // c.checkpoint_every
    if initial_epoch < total_epochs:
        if strategy.num_replicas_in_sync > 1:
            dataset, _ = distributed_train_dataset(strategy, make_train_dataset, start_step * c.batch_size,
                                                   c.batch_size)
        else:
            dataset = make_train_dataset(start_step * c.batch_size)
        log_dir = os.path.join(c.model_dir, "tensorboard")
        callbacks = [
            NonFiniteGuard(task, lambda: manager.latest_checkpoint or "no checkpoint yet"),
        ]
        if task.affinity is not None:  # before the checkpoint of the same step
            callbacks.append(SelectorInitCallback(task, c.model_dir if chief else None))
        callbacks.append(CheckpointCallback(manager, task, scratch=not chief))
        if chief:
            callbacks += [
                keras.callbacks.TensorBoard(log_dir, update_freq=1, write_graph=False),
                GroupingCallback(task, log_dir),
                LearningCurvesCallback(task, c.model_dir, history, title),
            ]
            if optim.stage == "full" and task.network.selector.fixed_groups is None and model_config.num_groups > 1:
                callbacks.append(selector_log.SelectorLogCallback(task, c.model_dir))  # selector_log.npz
        with output_errors(c.model_dir):
            task.fit(
                dataset,
                epochs=total_epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=c.checkpoint_every,
                callbacks=callbacks,
                validation_data=held_out,  # held-out figures at every checkpoint (val_* logs)
                verbose=c.verbose,
                shuffle=False,  # the pipeline shuffles, reproducibly
            )
    results["step"] = int(task.step.numpy())
    results["temperature"] = float(task.network.temperature.numpy())
    results["groups"] = task.network.groups()
    if eval_dataset is not None:
        results["after"] = _evaluate(task, held_out)
        add_held_out(history, results["step"], results["after"])
    if chief:
        results["learning_curves"] = write_learning_curves(c.model_dir, history, title)
        if optim.stage == "full":
            results["groups_picture"] = write_grouping_picture(
                task.network, c.model_dir, f"groups at step {results['step']}"
            )
        files.write_json(os.path.join(c.model_dir, "train_results.json"), files.to_jsonable(results))
    elif tf.io.gfile.exists(checkpoint_dir):
        tf.io.gfile.rmtree(checkpoint_dir)
    logging.info("worker %d: trained to step %d", worker, results["step"])
    return task, results



@contextlib.contextmanager
def output_errors(model_dir: str):
    """A write into the run folder that fails inside Keras (TensorBoard's event files, the
    learning curves) becomes an OutputError naming the folder; checkpoints already written stay."""
    try:
        yield
    except (tf.errors.OpError, OSError) as error:
        if not files.is_write_failure(error):
            raise
        raise files.output_error(model_dir, error) from None


def held_out_batches(eval_dataset: tf.data.Dataset, num_batches: int) -> tf.data.Dataset:
    """The first ``num_batches`` held-out batches, decoded once and then read from memory by the
    before/after figures and every checkpoint's validation, with their count declared. Without a
    known length Keras runs each validation's iterator out and then tears it down, which took
    ~17 s at most checkpoints of the quickstart on 2 cores. The paper's setting (8 batches of 32
    at 256x256) holds ~200 MB."""
    # Every worker evaluates the same held-out batches (no auto-sharding): equal batch counts on
    # all workers (no collective waits for a worker that ran out) and the same figures on each.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    held_out = eval_dataset.take(num_batches).with_options(options).cache()
    count = sum(1 for _ in held_out)  # fills the cache
    # A known length lets Keras stop after the last batch instead of running the iterator out.
    return held_out.apply(tf.data.experimental.assert_cardinality(count))


def _evaluate(task, held_out):
    with warnings.catch_warnings():  # a held-out set may be smaller than eval_batches
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        logs = task.evaluate(held_out, verbose=0, return_dict=True)
    return {k: float(np.asarray(v)) for k, v in logs.items()}
