"""LearnableGroupsNet: the three modules of the paper composed into one Keras model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from lgh_tf.config import ModelConfig
from lgh_tf.data.schema import FIXED_GROUPINGS
from lgh_tf.model.grouped_features import (
    SELECTOR_MODES,
    GroupBranch,
    GroupFeatureFusion,
    GroupTrunk,
    JointGroupSelector,
)
from lgh_tf.model.layers import channels_to
from lgh_tf.model.recovery import PoseMapHead, SoftArgmax2D, combine_groups
from lgh_tf.model.shared_features import HourglassBackbone

if TYPE_CHECKING:
    import numpy as np

# Heatmaps are at 1/4 of the input resolution: heatmap index * 4 = input pixel (as the reference).
HEATMAP_STRIDE = 4.0


@keras.saving.register_keras_serializable(package="lgh_tf")
class LearnableGroupsNet(keras.Model):
    """3D hand pose from one RGB crop with learnable joint groups (Li, Gao, Sang, AAAI 2021).

    ``model(images, training=False, selector=None, temperature=None)``:
      images: float32 (B, H, W, 3) RGB in [0, 1], H = W = ``config.input_size``.
      selector: "hard" (default at inference), "soft", "sample" (default when training), or an
        explicit (J, K) matrix.
      temperature: tau of Eq. 8; defaults to the model's ``temperature`` variable (annealed by
        training and stored in checkpoints).
    Returns a dict: ``uv`` (B, J, 2) input pixels (u = column, v = row); ``depth`` (B, J) relative
    depth (z - z_root) / scale; ``group_uv`` (B, K, J, 2); ``group_depth`` (B, K, J); ``selector``
    (J, K); ``heatmaps`` (B, H/4, W/4, J) and ``backbone_uv`` (B, J, 2), the hourglass's own 2D
    readout (used by 2D pre-training).
    ``LearnableGroupsNet(config, dtype="mixed_bfloat16")``: bfloat16 compute, float32 variables, in
    every layer (the model passes its own dtype policy down; nothing global is switched).
    """

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        # kwargs as any Keras layer's: ``dtype="mixed_bfloat16"`` gives every sub-layer that policy.
        super().__init__(**kwargs)
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig(**config)
        self.config = config.validate()
        c = self.config
        k = c.num_groups
        self.use_fusion = c.fusion and k > 1
        dtype = self.dtype_policy
        self.backbone = HourglassBackbone(
            c.num_joints, c.backbone_filters, c.hourglass_depth, c.sync_batch_norm, name="backbone", dtype=dtype
        )
        self.backbone_readout = SoftArgmax2D(
            c.num_joints, learnable_beta=False, name="backbone_readout", dtype=dtype
        )
        sync = c.sync_batch_norm
        self.trunk = GroupTrunk(c.group_channels, c.trunk_hidden, sync, name="trunk", dtype=dtype)
        self.branches = [GroupBranch(c.group_channels, sync, name=f"branch_{j}", dtype=dtype) for j in range(k)]
        self.fusion = (
            GroupFeatureFusion(k, c.group_channels, sync_batch_norm=sync, name="fusion", dtype=dtype)
            if self.use_fusion else None
        )
        self.heatmap_heads = [
            PoseMapHead(c.num_joints, c.group_channels, name=f"heatmap_head_{j}", dtype=dtype) for j in range(k)
        ]
        self.depth_heads = [
            PoseMapHead(c.num_joints, c.group_channels, name=f"depth_head_{j}", dtype=dtype) for j in range(k)
        ]
        self.readouts = [SoftArgmax2D(c.num_joints, name=f"readout_{j}", dtype=dtype) for j in range(k)]
        self.selector = JointGroupSelector(
            c.num_joints,
            k,
            fixed_groups=FIXED_GROUPINGS.get(c.grouping),
            seed=c.selector_seed,
            sample_per_image=c.selector_sample == "image",
            straight_through=c.selector_straight_through,
            name="selector",
            dtype=dtype,
        )
        # tau of Eq. 8, annealed by training (training/schedules.py) and saved with the weights.
        self.temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(c.initial_temperature),
            trainable=False,
            name="temperature",
        )

    def build(self, input_shape: Sequence[int | None]) -> None:
        # In the order call() runs them (projection skips draw their initial seeds as they are made).
        heatmaps_shape, features_shape = self.backbone.compute_output_shape(input_shape)
        self.backbone.build(input_shape)
        self.backbone_readout.build(heatmaps_shape)
        self.trunk.build(heatmaps_shape, features_shape)
        group_shape = self.trunk.compute_output_shape(heatmaps_shape, features_shape)
        for branch in self.branches:
            branch.build(group_shape)
        if self.fusion is not None:
            self.fusion.build([group_shape] * len(self.branches))
        maps_shape = channels_to(group_shape, self.config.num_joints)
        for heat_head, depth_head, readout in zip(self.heatmap_heads, self.depth_heads, self.readouts):
            heat_head.build(group_shape)
            depth_head.build(group_shape)
            readout.build(maps_shape, maps_shape)
        self.selector.build(())

    def build_for_input(self) -> LearnableGroupsNet:
        """Creates every variable for ``config.input_size`` inputs; returns the model."""
        if not self.built:
            size = self.config.input_size
            self.build((None, size, size, 3))
        return self

    def call(
        self,
        images: tf.Tensor,
        training: bool = False,
        selector: str | tf.Tensor | np.ndarray | None = None,
        temperature: tf.Tensor | float | None = None,
    ) -> dict[str, tf.Tensor]:
        if isinstance(selector, str) and selector not in SELECTOR_MODES:
            raise ValueError(f"selector must be one of {SELECTOR_MODES} or a (J, K) matrix, got {selector!r}")
        if selector is None:
            selector = "sample" if training else "hard"
        if temperature is None:
            temperature = self.temperature
        temperature = tf.cast(tf.convert_to_tensor(temperature), tf.float32)

        heatmaps, features = self.backbone(images, training=training)
        backbone_uv, _ = self.backbone_readout(heatmaps)
        trunk = self.trunk(heatmaps, features, training=training)
        group_features = [branch(trunk, training=training) for branch in self.branches]
        if self.fusion is not None:
            group_features = self.fusion(group_features, training=training)

        group_uv, group_depth = [], []
        for feats, heat_head, depth_head, readout in zip(
            group_features, self.heatmap_heads, self.depth_heads, self.readouts
        ):
            uv, depth = readout(heat_head(feats), depth_head(feats))
            group_uv.append(uv * HEATMAP_STRIDE)
            group_depth.append(depth)
        group_uv = tf.stack(group_uv, axis=1)
        group_depth = tf.stack(group_depth, axis=1)

        if isinstance(selector, str):
            matrix = self.selector(temperature, mode=selector, batch_size=tf.shape(images)[0])
        else:
            self.selector(temperature, mode="hard")  # keeps the selector built
            matrix = tf.convert_to_tensor(selector, tf.float32)
        uv, depth = combine_groups(matrix, group_uv, group_depth)  # Eq. 5
        return {
            "uv": uv,
            "depth": depth,
            "group_uv": group_uv,
            "group_depth": group_depth,
            "selector": matrix,
            "heatmaps": heatmaps,
            "backbone_uv": backbone_uv * HEATMAP_STRIDE,
        }

    def checkpoint_variables(self) -> dict[str, keras.Variable]:
        """{stable name: variable} for every variable (weights, BN statistics, tau, the selector's
        sampling state), independent of the model's own name. tf.train.Checkpoint does not descend
        into Keras 3's tracked lists of layers (hourglass stages, branches, heads), so checkpoints
        store this flat dict instead of the object graph."""
        names = {}
        seed_state = self.selector.seed_generator.state
        for variable in self.variables:
            if variable is seed_state:
                name = "selector/seed_generator_state"
            else:
                name = variable.path.split("/", 1)[1] if "/" in variable.path else variable.path
            if name in names:
                raise ValueError(f"two variables share the checkpoint name {name!r}")
            names[name] = variable
        return names

    def groups(self) -> list[list[int]]:
        """The current hard grouping: a list of K lists of joint indices."""
        matrix = self.selector(tf.convert_to_tensor(self.temperature), mode="hard").numpy()
        return [[int(j) for j in range(matrix.shape[0]) if matrix[j, k] > 0.5] for k in range(matrix.shape[1])]

    def get_config(self) -> dict[str, Any]:
        import dataclasses

        config = super().get_config()
        config.update(config=dataclasses.asdict(self.config))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearnableGroupsNet:
        return cls(**config)
