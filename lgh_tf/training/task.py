"""The training task: a keras.Model around LearnableGroupsNet with a custom train_step/test_step.

Two stages (paper, "Optimization"):
  "pretrain2d": the hourglass alone predicts 2D joints, l1 loss, Adam 1e-3 (batch 64);
  "full":       Eq. 10 on the 3D joints recovered with Eq. 3, Adam with one optimizer per variable
                group — selector logits theta 1e-1, fusion 1e-2, everything else 1e-4 (batch 32).
tau of Eq. 8 follows ``TemperatureSchedule`` of the task's own step counter and is written into the
network's ``temperature`` variable before every step, so it is saved with the weights.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import tensorflow as tf

# OptimConfig (and TemperatureSchedule) are also importable from here, as before the move to lgh_tf.config.
from lgh_tf.config import OptimConfig, TemperatureSchedule
from lgh_tf.evaluation import grouping
from lgh_tf.model.network import HEATMAP_STRIDE, LearnableGroupsNet
from lgh_tf.training import losses
from lgh_tf.training.error_affinity import INITIAL_THETA_MARGIN, ErrorAffinity, initial_theta

STAGES = ("pretrain2d", "full")

# Variable groups of stage "full", by regex fully matched against ``variable.path``; first match wins.
VARIABLE_GROUPS = (
    ("selector", r"(.*/)?selector/theta"),
    ("fusion", r"(.*/)?fusion/.*"),
    ("rest", r".*"),
)


def group_variables(variables: Iterable[keras.Variable]) -> dict[str, list[keras.Variable]]:
    """Splits trainable variables into the VARIABLE_GROUPS: {name: [variables]}."""
    groups = {name: [] for name, _ in VARIABLE_GROUPS}
    for variable in variables:
        for name, pattern in VARIABLE_GROUPS:
            if re.fullmatch(pattern, variable.path):
                groups[name].append(variable)
                break
    return groups


@keras.saving.register_keras_serializable(package="lgh_tf")
class SelectorWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """theta's learning rate: 0 for the first ``warmup_steps`` steps of its optimizer (the selector
    held back while the branches learn, as BMTAS, AdaShare and PC-DARTS do), then ``rate`` (a
    number or a schedule of the same step). Adam's moments still accumulate during the warm-up."""

    def __init__(self, rate, warmup_steps: int) -> None:
        self.rate = rate
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        rate = self.rate(step) if callable(self.rate) else self.rate
        rate = tf.cast(rate, tf.float32)
        return tf.where(tf.cast(step, tf.int64) < self.warmup_steps, tf.zeros_like(rate), rate)

    def get_config(self):
        rate = self.rate
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            rate = keras.saving.serialize_keras_object(rate)
        return {"rate": rate, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["rate"], dict):
            config["rate"] = keras.saving.deserialize_keras_object(config["rate"])
        return cls(**config)


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam with each variable's update as one ``ResourceApplyAdam`` kernel.

    Keras 3 builds about fifteen small ops per variable and step (moments, bias correction, the
    update); with the paper's 642 variables that graph dominates the first step's tracing and
    optimisation. The kernel computes the same update (m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)) on the same slot variables, so the
    checkpoint format and the trajectory are Keras'. Under a tf.distribute strategy (mirrored
    variables) and with amsgrad, Keras' own update runs.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy() or any(v.dtype != "float32" for v in trainable_variables):
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1_power = tf.pow(tf.constant(self.beta_1, tf.float32), step)
        beta_2_power = tf.pow(tf.constant(self.beta_2, tf.float32), step)
        lr = tf.cast(learning_rate, tf.float32)
        # One set of scalars for all variables: fewer graph nodes to build and optimise.
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        epsilon = tf.constant(self.epsilon, tf.float32)
        handle = lambda v: (v.value if isinstance(v, keras.Variable) else v).handle  # noqa: E731
        for grad, variable in zip(grads, trainable_variables):
            index = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=handle(variable), m=handle(self._momentums[index]), v=handle(self._velocities[index]),
                beta1_power=beta_1_power, beta2_power=beta_2_power, lr=lr, beta1=beta_1, beta2=beta_2,
                epsilon=epsilon, grad=tf.convert_to_tensor(grad, tf.float32),
            )
        return None


@keras.saving.register_keras_serializable(package="lgh_tf")
class HandPoseTask(keras.Model):
    """Trains ``network`` in one of STAGES. ``fit``/``evaluate`` take batches from
    ``lgh_tf.data.pipeline`` (dicts with image, uv, depth, xyz, K, scale, root_depth)."""

    def __init__(self, network: LearnableGroupsNet, optim: OptimConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.optim = optim or OptimConfig()
        if self.optim.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.optim.stage!r}")
        self.step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="step"
        )
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "loss_xy", "loss_z", "error_2d_px", "error_3d_mm")
        }
        self.optimizers = {}
        self.affinity = None
        c = network.config
        if (self.optim.stage == "full" and self.optim.selector_init == "error_affinity" and c.num_groups > 1
                and c.grouping == "learned"):
            self.affinity = ErrorAffinity(c.num_joints, c.num_groups, channels=3)

    def initialise_selector(self) -> list[int] | None:
        """At ``selector_init_step``: theta from the error-affinity partition (once); the labels, or None."""
        if self.affinity is None or bool(self.affinity.done.numpy()):
            return None
        if int(self.step.numpy()) < self.optim.selector_init_step:
            return None
        num_groups = self.network.config.num_groups
        labels = grouping.partition_from_affinity(self.affinity.affinity(), num_groups)
        labels = grouping.match_groups_to_branches(labels, self.affinity.branch_errors())
        self.network.selector.theta.assign(initial_theta(labels, num_groups, INITIAL_THETA_MARGIN))
        self.affinity.done.assign(1.0)
        return [int(label) for label in labels]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(
        self, images: tf.Tensor | Mapping[str, tf.Tensor], training: bool = False, **kwargs: Any
    ) -> dict[str, tf.Tensor]:
        if isinstance(images, dict):  # a pipeline batch (Keras builds distributed models this way)
            images = images["image"]
        return self.network(images, training=training, **kwargs)

    # ------------------------------------------------------------------------------------------
    def trainable_groups(self) -> dict[str, list[keras.Variable]]:
        """{group name: variables} trained in this stage."""
        if self.optim.stage == "pretrain2d":
            return {"backbone": list(self.network.backbone.trainable_variables)}
        groups = group_variables(self.network.trainable_variables)
        if self.network.config.num_groups == 1:
            groups.pop("selector")  # K = 1: S is all ones, theta gets no gradient (Keras refuses it)
        return {name: variables for name, variables in groups.items() if variables}

    def _learning_rate(self, group):
        o = self.optim
        return {"backbone": o.lr_pretrain, "selector": o.lr_selector, "fusion": o.lr_fusion}.get(
            group, o.lr_rest
        )

    def scheduled_rate(self, group: str) -> float | keras.optimizers.schedules.LearningRateSchedule:
        """The group's learning rate, or its cosine decay over ``lr_decay_steps`` (a Keras schedule
        of the optimizer's own step, so a resumed run continues it)."""
        rate = self._learning_rate(group)
        if self.optim.lr_decay_steps > 0:
            rate = keras.optimizers.schedules.CosineDecay(rate, self.optim.lr_decay_steps)
        if group == "selector" and self.optim.selector_warmup_steps > 0:
            rate = SelectorWarmup(rate, self.optim.selector_warmup_steps)
        return rate

    def compile(self, **kwargs: Any) -> None:
        """Creates one Adam per variable group (built now, so every slot exists before tracing)."""
        if not self.network.built:
            self.network.build_for_input()
        self.optimizers = {}
        for group, variables in self.trainable_groups().items():
            optimizer = FusedAdam(self.scheduled_rate(group), name=f"adam_{group}")
            optimizer.build(variables)
            self.optimizers[group] = optimizer
        main = self.optimizers.get("rest") or next(iter(self.optimizers.values()))
        super().compile(optimizer=main, **kwargs)

    # ------------------------------------------------------------------------------------------
    def compute_terms(self, batch: Mapping[str, tf.Tensor], training: bool) -> dict[str, tf.Tensor]:
        """Forward pass and per-sample loss terms for the current stage: {metric: (B,) values},
        "loss" the objective (Eq. 10, or l1 on 2D joints in stage pretrain2d)."""
        images = batch["image"]
        if self.optim.stage == "pretrain2d":
            heatmaps, _ = self.network.backbone(images, training=training)
            uv, _ = self.network.backbone_readout(heatmaps)
            uv = uv * HEATMAP_STRIDE
            return {
                "loss": losses.pose_loss_2d_per_sample(uv, batch["uv"]),
                "error_2d_px": losses.joint_error_per_sample(uv, batch["uv"]),
            }
        temperature = tf.convert_to_tensor(self.network.temperature)
        out = self.network(images, training=training, temperature=temperature)
        xyz_pred = losses.recover_xyz_mm(out["uv"], out["depth"], batch)  # Eq. 3
        xyz_true = tf.cast(batch["xyz"], xyz_pred.dtype) * losses.MM_PER_METRE
        loss, loss_xy, loss_z = losses.pose_loss_3d_per_sample(xyz_pred, xyz_true, self.optim.beta)  # Eq. 10
        group_xyz = None
        if training and (self.optim.selector_loss == "expected" or self.affinity is not None):
            group_xyz = losses.group_xyz_mm(out["group_uv"], out["group_depth"], batch)
        if self.optim.selector_loss == "expected" and training:
            expected = losses.expected_group_loss_per_sample(out["selector"], group_xyz, xyz_true, self.optim.beta)
            if self.affinity is not None:
                # Until theta is set the branches learn as one ensemble (Eq. 5's loss): its residuals
                # carry the joints' affinity; each branch's own joints come after.
                expected = tf.where(self.step < self.optim.selector_init_step, loss, expected)
            loss = expected
        if self.affinity is not None and training:
            # The selector's warm-up: which joints err together (lgh_tf/training/error_affinity.py).
            step = self.step
            inside = (step >= self.optim.selector_init_step // 2) & (step < self.optim.selector_init_step)
            residual = tf.reduce_mean(group_xyz, axis=1) - xyz_true  # theta is uniform: the branches' mean
            self.affinity.update(residual, losses.group_joint_losses(group_xyz, xyz_true, self.optim.beta), inside)
        return {
            "loss": loss,
            "loss_xy": loss_xy,
            "loss_z": loss_z,
            "error_2d_px": losses.joint_error_per_sample(out["uv"], batch["uv"]),
            "error_3d_mm": losses.joint_error_per_sample(xyz_pred, xyz_true),
        }

    def _update_trackers(self, terms):
        # Per-sample values: each Mean adds this replica's sum and count, and Keras sums the
        # replicas' metric variables when it reads them, so epoch logs are global-batch means.
        for name, values in terms.items():
            self.trackers[name].update_state(values)
        logs = {name: self.trackers[name].result() for name in terms}
        logs["temperature"] = tf.convert_to_tensor(self.network.temperature)
        strategy = tf.distribute.get_strategy()
        if getattr(strategy.extended, "_num_workers", 1) > 1:
            # Keras 3.15 averages the workers' step logs with strategy.reduce(MEAN, axis=0), which
            # a scalar lacks: a length-1 axis, reduced away there.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        batch = data[0] if isinstance(data, tuple) else data
        self.network.temperature.assign(self.optim.temperature(self.step))  # tau(step), Eq. 8
        groups = self.trainable_groups()
        variables = [v for vs in groups.values() for v in vs]
        with tf.GradientTape() as tape:
            terms = self.compute_terms(batch, training=True)
            # This replica's sum over its samples / the global batch size: the optimizers sum the
            # replicas' gradients, so N replicas with global batch B take one replica's step on B.
            loss = tf.nn.compute_average_loss(terms["loss"])
        # Mixed precision is bfloat16 (float32's exponent range): no loss scaling is needed.
        gradients = tape.gradient(loss, variables)
        start = 0
        for group, group_vars in groups.items():  # one optimizer per group, same step
            grads = gradients[start:start + len(group_vars)]
            start += len(group_vars)
            self.optimizers[group].apply_gradients(zip(grads, group_vars))
        self.step.assign_add(1)
        return self._update_trackers(terms)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        batch = data[0] if isinstance(data, tuple) else data
        return self._update_trackers(self.compute_terms(batch, training=False))

    # ------------------------------------------------------------------------------------------
    def make_train_function(self, force: bool = False):
        if self.train_function is not None and not force:
            return self.train_function
        self.train_function = self._one_level_function(self.train_step)
        if self.train_function is None:
            super().make_train_function(force)  # sets self.train_function
        return self.train_function

    def make_test_function(self, force: bool = False):
        if self.test_function is not None and not force:
            return self.test_function
        self.test_function = self._one_level_function(self.test_step)
        if self.test_function is None:
            super().make_test_function(force)  # sets self.test_function
        return self.test_function

    def _one_level_function(self, step_function):
        """Keras' step function with one tf.function level, or None where Keras' own is needed.

        Keras traces the step in a tf.function nested in the iterator's tf.function, so the first
        call traces, converts and optimises two graphs (issue 26: ~25% of the first step). On one
        device with one step per call the two levels do nothing for us: the step is traced once,
        inside the function that reads the iterator. A strategy, steps_per_execution > 1, XLA and
        eager mode keep Keras' path.
        """
        if (self.run_eagerly or self.jit_compile or self.steps_per_execution != 1
                or tf.distribute.has_strategy() or self.distribute_strategy.num_replicas_in_sync != 1):
            return None
        step = tf.autograph.experimental.do_not_convert(step_function)

        @tf.autograph.experimental.do_not_convert
        def step_on_iterator(iterator):
            return tf.experimental.Optional.from_value(step(iterator.get_next()))

        step_on_iterator = tf.function(step_on_iterator, reduce_retracing=True)
        step_on_data = tf.function(step, reduce_retracing=True)

        def function(iterator):
            if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
                outputs = step_on_iterator(iterator)
                if not outputs.has_value():
                    raise StopIteration
                return outputs.get_value()
            for data in iterator:  # a Python iterable of batches: one step, as Keras takes
                return step_on_data(data)
            raise StopIteration

        return function

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 (TF backend, model made in a strategy scope) first averages the first input
        # batch with strategy.reduce, which fails on a dict of per-replica tensors with 2+
        # replicas (keras-team/keras#21069). Nothing here needs that symbolic build: compile()
        # builds the network and every optimizer slot, as on one device, where Keras skips it too.
        return

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            network=keras.saving.serialize_keras_object(self.network), optim=dataclasses.asdict(self.optim)
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HandPoseTask:
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        optim = dict(config.pop("optim"))
        optim["temperature"] = TemperatureSchedule(**optim["temperature"])
        return cls(network, OptimConfig(**optim), **config)
