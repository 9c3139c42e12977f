"""Paper module 2, grouped feature learning: trunk, one branch per joint group, the learnable joint
group selector (Eqs. 5-8) and the cross-group feature fusion (Eq. 9).

Block structure follows the authors' release (shared/reference/README.md, "Grouped feature learning").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from lgh_tf.model.layers import Conv2D, PaddedConv2D, batch_norm, channels_to, wide_dtype

SELECTOR_MODES = ("sample", "soft", "hard")


@keras.saving.register_keras_serializable(package="lgh_tf")
class ConvBNReLU(keras.layers.Layer):
    """k x k convolution (symmetric padding), BatchNorm, ReLU ("Basic" in the reference)."""

    def __init__(self, filters: int, kernel_size: int = 1, sync_batch_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.sync_batch_norm = sync_batch_norm
        self.conv = PaddedConv2D(filters, kernel_size, name="conv", dtype=self.dtype_policy)
        self.bn = batch_norm("bn", sync_batch_norm, self.dtype_policy)

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return keras.ops.relu(self.bn(self.conv(x), training=training))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return self.conv.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      sync_batch_norm=self.sync_batch_norm)
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class ResidualBlock2D(keras.layers.Layer):
    """Post-activation residual block: ReLU(BN(3x3(ReLU(BN(3x3 x)))) + skip), skip = x or 1x1-BN.

    With ``strides=2`` and ``activate_main=True`` this is the reference's "Down" block: the first
    3x3 convolution and the 1x1 skip halve the resolution, and the main path ends in a ReLU too.
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        activate_main: bool = False,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.activate_main = activate_main
        self.sync_batch_norm = sync_batch_norm
        dtype = self.dtype_policy
        self.conv1 = PaddedConv2D(filters, 3, strides=strides, name="conv1", dtype=dtype)
        self.bn1 = batch_norm("bn1", sync_batch_norm, dtype)
        self.conv2 = PaddedConv2D(filters, 3, name="conv2", dtype=dtype)
        self.bn2 = batch_norm("bn2", sync_batch_norm, dtype)
        self.skip_conv = None
        self.skip_bn = None

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.conv1.build(input_shape)
        shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(shape)
        self.conv2.build(shape)
        self.bn2.build(shape)
        # Whether the skip needs a projection depends on the input's channels, known only here.
        if input_shape[-1] != self.filters or self.strides != 1:
            self.skip_conv = Conv2D(
                self.filters, 1, strides=self.strides, name="skip_conv", dtype=self.dtype_policy
            )
            self.skip_bn = batch_norm("skip_bn", self.sync_batch_norm, self.dtype_policy)
            self.skip_conv.build(input_shape)
            self.skip_bn.build(shape)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        y = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        if self.activate_main:
            y = keras.ops.relu(y)
        skip = x if self.skip_conv is None else self.skip_bn(self.skip_conv(x), training=training)
        return keras.ops.relu(y + skip)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters, strides=self.strides, activate_main=self.activate_main,
            sync_batch_norm=self.sync_batch_norm,
        )
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class UpBlock(keras.layers.Layer):
    """4x4 transposed convolution with stride 2 (exactly doubles H and W), BatchNorm, ReLU.

    Keras' ``padding="same"`` crops one pixel on each side here, as PyTorch's padding=1 does.
    """

    def __init__(self, filters: int, sync_batch_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.sync_batch_norm = sync_batch_norm
        self.deconv = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", name="deconv", dtype=self.dtype_policy
        )
        self.bn = batch_norm("bn", sync_batch_norm, self.dtype_policy)

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.deconv.build(input_shape)
        self.bn.build(self.deconv.compute_output_shape(input_shape))

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return keras.ops.relu(self.bn(self.deconv(x), training=training))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return self.deconv.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, sync_batch_norm=self.sync_batch_norm)
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class GroupTrunk(keras.layers.Layer):
    """Into the groups: concat[backbone heatmaps, shared features] -> Res2D(128) -> Res2D(channels)."""

    def __init__(self, channels: int = 32, hidden: int = 128, sync_batch_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.hidden = hidden
        self.sync_batch_norm = sync_batch_norm
        dtype = self.dtype_policy
        self.block1 = ResidualBlock2D(hidden, sync_batch_norm=sync_batch_norm, name="block1", dtype=dtype)
        self.block2 = ResidualBlock2D(channels, sync_batch_norm=sync_batch_norm, name="block2", dtype=dtype)

    def build(self, heatmaps_shape: Sequence[int | None], features_shape: Sequence[int | None]) -> None:
        shape = channels_to(heatmaps_shape, heatmaps_shape[-1] + features_shape[-1])
        self.block1.build(shape)
        self.block2.build(self.block1.compute_output_shape(shape))

    def compute_output_shape(
        self, heatmaps_shape: Sequence[int | None], features_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return channels_to(heatmaps_shape, self.channels)

    def call(self, heatmaps: tf.Tensor, features: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = keras.ops.concatenate([heatmaps, features], axis=-1)
        return self.block2(self.block1(x, training=training), training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(channels=self.channels, hidden=self.hidden, sync_batch_norm=self.sync_batch_norm)
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class GroupBranch(keras.layers.Layer):
    """One group's own feature extractor: a small two-level encoder-decoder at ``channels`` width.

    b0 = Basic1x1(t); b1 = Res2D(b0); b2 = Down(b1); b3 = Down(b2); b31 = Up(b3);
    b21 = Up(Basic1x1(concat[b31, b2])); f = Res2D(Basic1x1(concat[b21, b1, b0])).
    """

    def __init__(self, channels: int = 32, sync_batch_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.sync_batch_norm = sync_batch_norm
        c, sync, dtype = channels, sync_batch_norm, self.dtype_policy
        self.entry = ConvBNReLU(c, 1, sync_batch_norm=sync, name="entry", dtype=dtype)
        self.res = ResidualBlock2D(c, sync_batch_norm=sync, name="res", dtype=dtype)
        self.down1 = ResidualBlock2D(c, strides=2, activate_main=True, sync_batch_norm=sync, name="down1", dtype=dtype)
        self.down2 = ResidualBlock2D(c, strides=2, activate_main=True, sync_batch_norm=sync, name="down2", dtype=dtype)
        self.up2 = UpBlock(c, sync_batch_norm=sync, name="up2", dtype=dtype)
        self.merge1 = ConvBNReLU(c, 1, sync_batch_norm=sync, name="merge1", dtype=dtype)
        self.up1 = UpBlock(c, sync_batch_norm=sync, name="up1", dtype=dtype)
        self.merge0 = ConvBNReLU(2 * c, 1, sync_batch_norm=sync, name="merge0", dtype=dtype)
        self.exit = ResidualBlock2D(c, sync_batch_norm=sync, name="exit", dtype=dtype)

    def build(self, input_shape: Sequence[int | None]) -> None:
        # In the order call() runs them (projection skips draw their initial seeds as they are made).
        c = self.channels
        self.entry.build(input_shape)
        s0 = self.entry.compute_output_shape(input_shape)
        self.res.build(s0)
        self.down1.build(s0)
        s2 = self.down1.compute_output_shape(s0)
        self.down2.build(s2)
        self.up2.build(self.down2.compute_output_shape(s2))
        self.merge1.build(channels_to(s2, 2 * c))
        self.up1.build(channels_to(s2, c))
        self.merge0.build(channels_to(s0, 3 * c))
        self.exit.build(channels_to(s0, 2 * c))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return channels_to(input_shape, self.channels)

    def call(self, t: tf.Tensor, training: bool = False) -> tf.Tensor:
        b0 = self.entry(t, training=training)
        b1 = self.res(b0, training=training)
        b2 = self.down1(b1, training=training)
        b3 = self.down2(b2, training=training)
        b31 = self.up2(b3, training=training)
        b21 = self.up1(self.merge1(keras.ops.concatenate([b31, b2], -1), training=training),
                       training=training)
        merged = self.merge0(keras.ops.concatenate([b21, b1, b0], -1), training=training)
        return self.exit(merged, training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(channels=self.channels, sync_batch_norm=self.sync_batch_norm)
        return config


def fusion_kernel_init(num_groups: int, channels: int, group: int, own_weight: float = 0.9) -> np.ndarray:
    """The 1x1 kernel of Eq. 9 at initialisation: alpha_k^k I on the group's own channels and
    (1 - alpha_k^k) / (K - 1) I on every other group's; shape (1, 1, K * C, C)."""
    kernel = np.zeros((num_groups * channels, channels), np.float32)
    other = (1.0 - own_weight) / max(num_groups - 1, 1)
    for source in range(num_groups):
        weight = own_weight if source == group else other
        kernel[source * channels:(source + 1) * channels] = weight * np.eye(channels)
    return kernel[None, None]


@keras.saving.register_keras_serializable(package="lgh_tf")
class GroupFeatureFusion(keras.layers.Layer):
    """Cross-group fusion (NDDR, Gao et al. 2019): for each group k, ReLU(BN(1x1 conv([F^1..F^K])))
    with the 1x1 kernel initialised to [alpha_1^k I, ..., alpha_K^k I] (Eq. 9)."""

    def __init__(
        self,
        num_groups: int,
        channels: int = 32,
        own_weight: float = 0.9,
        sync_batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_groups = num_groups
        self.channels = channels
        self.own_weight = own_weight
        self.sync_batch_norm = sync_batch_norm
        self.convs = [
            Conv2D(
                channels,
                1,
                kernel_initializer=keras.initializers.Constant(
                    fusion_kernel_init(num_groups, channels, k, own_weight)
                ),
                bias_initializer="zeros",
                name=f"conv_{k}",
                dtype=self.dtype_policy,
            )
            for k in range(num_groups)
        ]
        self.bns = [batch_norm(f"bn_{k}", sync_batch_norm, self.dtype_policy) for k in range(num_groups)]

    def build(self, group_features_shape: Sequence[Sequence[int | None]]) -> None:
        stacked = channels_to(group_features_shape[0], self.num_groups * group_features_shape[0][-1])
        for conv, bn in zip(self.convs, self.bns):
            conv.build(stacked)
            bn.build(channels_to(stacked, self.channels))

    def compute_output_shape(
        self, group_features_shape: Sequence[Sequence[int | None]]
    ) -> list[tuple[int | None, ...]]:
        return [channels_to(group_features_shape[0], self.channels)] * self.num_groups

    def call(self, group_features: Sequence[tf.Tensor], training: bool = False) -> list[tf.Tensor]:
        # [F^1 .. F^K] on the channel axis, as stack + reshape (the same memory layout as a concat):
        # Grappler hoists the branches' final ReLUs out of a ConcatV2 and then its remapper, fusing
        # the BN-folded exit convolutions, fails on the whole graph (TF 2.21: "Mutation::Apply error:
        # fanout .../fusion/concat exist for missing node .../exit/add"), losing every conv fusion.
        features = list(group_features)
        shape = keras.ops.shape(features[0])
        stacked = keras.ops.reshape(
            keras.ops.stack(features, axis=-2), (shape[0], shape[1], shape[2], len(features) * shape[3])
        )
        return [
            keras.ops.relu(bn(conv(stacked), training=training))
            for conv, bn in zip(self.convs, self.bns)
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_groups=self.num_groups, channels=self.channels, own_weight=self.own_weight,
            sync_batch_norm=self.sync_batch_norm,
        )
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class JointGroupSelector(keras.layers.Layer):
    """The binary joint selector S (N joints x K groups) of Eqs. 5-8.

    Holds the logits theta (N, K), initialised to 1/K (no prior on the grouping). Modes:
      "sample": a relaxed one-hot draw from Concrete(theta, tau) per forward pass (Eq. 8; training);
      "soft":   softmax(theta / tau), the same without Gumbel noise (deterministic);
      "hard":   one_hot(argmax theta): every joint in exactly one group (Eqs. 6-7; inference default).
    With ``fixed_groups`` (a tuple of joint-index tuples) the selector is that constant partition
    and holds no logits (the paper's "Manual" grouping).

    Options of the "sample" mode that the paper does not use (docs/selector.md; defaults = paper):
      ``sample_per_image``: one Concrete draw per image, (B, N, K) with ``batch_size=B``, instead of
        one draw shared by the whole batch: the gradient on theta averages B draws' noise.
      ``straight_through``: the forward pass uses the draw's one-hot argmax (each joint read from
        exactly one group, as at inference), the backward pass the relaxed draw's gradient
        (straight-through Gumbel-softmax, Jang et al. 2017).
    """

    def __init__(
        self,
        num_joints: int = 21,
        num_groups: int = 3,
        fixed_groups: Sequence[Sequence[int]] | None = None,
        seed: int | None = None,
        sample_per_image: bool = False,
        straight_through: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_joints = num_joints
        self.num_groups = num_groups
        self.sample_per_image = bool(sample_per_image)
        self.straight_through = bool(straight_through)
        self.fixed_groups = None if fixed_groups is None else tuple(tuple(g) for g in fixed_groups)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        if self.fixed_groups is not None:
            if len(self.fixed_groups) != num_groups:
                raise ValueError(
                    f"fixed_groups has {len(self.fixed_groups)} groups, expected {num_groups}"
                )
            joints = sorted(j for g in self.fixed_groups for j in g)
            if joints != list(range(num_joints)):
                raise ValueError(
                    f"fixed_groups must hold every joint 0..{num_joints - 1} exactly once, got {joints}"
                )

    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        if self.fixed_groups is None:
            self.theta = self.add_weight(
                shape=(self.num_joints, self.num_groups),
                initializer=keras.initializers.Constant(1.0 / self.num_groups),
                name="theta",
            )
        else:
            matrix = np.zeros((self.num_joints, self.num_groups), np.float32)
            for group, joints in enumerate(self.fixed_groups):
                matrix[list(joints), group] = 1.0
            self._fixed_matrix = matrix

    def call(
        self, temperature: tf.Tensor | float, mode: str = "hard", batch_size: tf.Tensor | int | None = None
    ) -> tf.Tensor:
        """S: (N, K), or (B, N, K) for a "sample" with ``sample_per_image`` (needs ``batch_size``)."""
        if mode not in SELECTOR_MODES:
            raise ValueError(f"selector mode must be one of {SELECTOR_MODES}, got {mode!r}")
        if self.fixed_groups is not None:
            return tf.constant(self._fixed_matrix)
        if self.num_groups == 1:
            return tf.ones((self.num_joints, 1), self.compute_dtype)
        theta = tf.cast(self.theta, wide_dtype(self.compute_dtype))
        if mode == "hard":
            return tf.one_hot(tf.argmax(theta, axis=-1), self.num_groups, dtype=theta.dtype)
        temperature = tf.cast(temperature, theta.dtype)
        if mode == "soft":
            return tf.nn.softmax(theta / temperature, axis=-1)
        # Eq. 8: S ~ softmax((theta + Gumbel) / tau), one draw per forward pass (or per image).
        seed = tf.cast(self.seed_generator.next(), "int32")
        concrete = tfp.distributions.RelaxedOneHotCategorical(temperature, logits=theta)
        if self.sample_per_image:
            if batch_size is None:
                raise ValueError("sample_per_image needs the batch_size of the forward pass")
            draw = concrete.sample(tf.reshape(tf.cast(batch_size, "int32"), [1]), seed=seed)
        else:
            draw = concrete.sample(seed=seed)
        if self.straight_through:
            # Forward: one_hot(argmax draw); backward: d draw / d theta (the hard part is constant).
            hard = tf.one_hot(tf.argmax(draw, axis=-1), self.num_groups, dtype=draw.dtype)
            draw = draw + tf.stop_gradient(hard - draw)
        return draw

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_joints=self.num_joints,
            num_groups=self.num_groups,
            fixed_groups=self.fixed_groups,
            seed=self.seed,
            sample_per_image=self.sample_per_image,
            straight_through=self.straight_through,
        )
        return config
