"""Watching the selector learn: softmax(theta) of every joint over the steps of a stage-2 run.

``SelectorLogCallback`` records the selector's probabilities softmax(theta) (N joints x K groups,
without tau: the grouping theta prefers, which inference's argmax reads) and tau every ``every``
steps, and writes them to ``selector_log.npz`` in the run folder at every checkpoint (atomically),
with ``selector_trajectories.png`` at the end. A resumed run keeps the records up to the step it
resumes from. ``settle_steps`` says when each joint's group settled; ``firmness`` how firm each
assignment is now (docs/selector.md).
"""

from __future__ import annotations

import logging
import os
import zipfile
from typing import Any

import keras
import numpy as np

from lgh_tf import files, visualize

LOG_NAME = "selector_log.npz"
PICTURE_NAME = "selector_trajectories.png"
SETTLED_PROBABILITY = 0.9


def softmax(theta: np.ndarray) -> np.ndarray:
    """softmax over the last axis (the groups), float64."""
    theta = np.asarray(theta, np.float64)
    e = np.exp(theta - theta.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def settle_steps(steps: np.ndarray, probabilities: np.ndarray, threshold: float = SETTLED_PROBABILITY) -> np.ndarray:
    """(N,) the first recorded step from which a joint's group (argmax) never changes again and its
    probability stays above ``threshold``; -1 where that does not hold at the last record.

    ``steps`` (T,) increasing; ``probabilities`` (T, N, K)."""
    steps = np.asarray(steps)
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 3 or len(steps) != len(probabilities):
        raise ValueError(f"need steps (T,) and probabilities (T, N, K), got {steps.shape} and {probabilities.shape}")
    if len(steps) == 0:
        return np.zeros((probabilities.shape[1],), np.int64) - 1
    groups = probabilities.argmax(axis=-1)  # (T, N)
    firm = (groups == groups[-1]) & (probabilities.max(axis=-1) > threshold)
    # held[t, j]: firm at every record from t on.
    held = np.flip(np.cumprod(np.flip(firm, axis=0), axis=0), axis=0).astype(bool)
    first = held.argmax(axis=0)
    return np.where(held[-1], steps[first], -1).astype(np.int64)


def firmness(theta: np.ndarray) -> dict[str, np.ndarray]:
    """How firm each joint's group is: ``group`` (N,) argmax theta, ``probability`` (N,) its
    softmax(theta), ``margin`` (N,) that minus the runner-up's (0 for K = 1)."""
    probabilities = softmax(theta)
    ordered = np.sort(probabilities, axis=-1)
    runner_up = ordered[:, -2] if probabilities.shape[-1] > 1 else np.zeros(len(probabilities))
    return {
        "group": probabilities.argmax(axis=-1),
        "probability": ordered[:, -1],
        "margin": ordered[:, -1] - runner_up,
        "probabilities": probabilities,
    }


def read_log(path: str, up_to_step: int | None = None) -> dict[str, np.ndarray]:
    """``{"step": (T,), "tau": (T,), "probabilities": (T, N, K)}`` of a selector log, the records
    after ``up_to_step`` dropped (a resume continues from its checkpoint's step)."""
    try:
        with np.load(path) as data:
            log = {name: np.asarray(data[name]) for name in ("step", "tau", "probabilities")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable selector log ({type(error).__name__}: {error})") from None
    if log["probabilities"].ndim != 3 or not len(log["step"]) == len(log["tau"]) == len(log["probabilities"]):
        raise ValueError(f"{path} is not a selector log: arrays of shapes "
                         f"{[v.shape for v in log.values()]}")
    if up_to_step is not None:
        keep = log["step"] <= up_to_step
        log = {name: values[keep] for name, values in log.items()}
    return log


def write_picture(model_dir: str, log: dict[str, np.ndarray], title: str = "") -> str:
    """selector_trajectories.png in ``model_dir`` (atomically)."""
    picture = visualize.selector_trajectories_figure(
        log["step"], log["probabilities"], settle_steps(log["step"], log["probabilities"]), log.get("tau"), title)
    return files.write_png(os.path.join(model_dir, PICTURE_NAME), picture)


class SelectorLogCallback(keras.callbacks.Callback):
    """Records softmax(theta) of ``task.network.selector`` every ``every`` steps (and at step 0 of a
    fresh run) into ``<model_dir>/selector_log.npz``, rewritten at every checkpoint (Keras epoch)."""

    def __init__(self, task: Any, model_dir: str, every: int = 10) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.task = task
        self.path = os.path.join(model_dir, LOG_NAME)
        self.model_dir = model_dir
        self.every = every
        self.steps, self.taus, self.probabilities = [], [], []

    def _record(self) -> None:
        step = int(self.task.step.numpy())
        if self.steps and self.steps[-1] == step:
            return
        self.steps.append(step)
        # tau of the last step taken (the schedule's, so step 0 of a run started from a stage-1
        # checkpoint shows tau(0), not the restored variable).
        self.taus.append(float(self.task.optim.temperature(max(step - 1, 0))))
        self.probabilities.append(softmax(self.task.network.selector.theta.numpy()).astype(np.float32))

    def log(self) -> dict[str, np.ndarray]:
        num_joints, num_groups = self.task.network.selector.theta.shape
        return {
            "step": np.asarray(self.steps, np.int64),
            "tau": np.asarray(self.taus, np.float32),
            "probabilities": np.asarray(self.probabilities, np.float32).reshape(-1, num_joints, num_groups),
        }

    def save(self) -> str:
        return files.save_npz(self.path, **self.log())

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        start = int(self.task.step.numpy())
        self.steps, self.taus, self.probabilities = [], [], []
        if start and os.path.exists(self.path):
            try:
                log = read_log(self.path, up_to_step=start)
            except ValueError as error:  # the log is a picture aid: never stop a training run for it
                logging.warning("%s; starting a new selector log at step %d", error, start)
            else:
                self.steps = [int(s) for s in log["step"]]
                self.taus = [float(t) for t in log["tau"]]
                self.probabilities = list(log["probabilities"])
        self._record()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if int(self.task.step.numpy()) % self.every == 0:
            self._record()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._record()  # the checkpoint's step, so that a resume continues from a record
        self.save()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._record()
        self.save()
        write_picture(self.model_dir, self.log(), f"softmax(theta) per joint, {files.portable_path(self.model_dir)}")
