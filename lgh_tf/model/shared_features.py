"""Paper module 1, shared feature extraction: a one-stack hourglass (Newell et al. 2016).

256x256 RGB in [0, 1] -> 256 shared features and 21 backbone heatmaps at 64x64, exactly as the
authors' release builds it (shared/reference/README.md, "Shared feature extraction").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from lgh_tf.model.layers import Conv2D, PaddedConv2D, batch_norm, channels_to

if TYPE_CHECKING:
    import tensorflow as tf


@keras.saving.register_keras_serializable(package="lgh_tf")
class BottleneckResidual(keras.layers.Layer):
    """Pre-activation bottleneck: BN-ReLU-1x1 (out/2), BN-ReLU-3x3 (out/2), BN-ReLU-1x1 (out), + skip.

    The skip is the raw input when the channel count is unchanged, else a 1x1 convolution of it.
    No activation follows the sum.
    """

    def __init__(self, filters: int, sync_batch_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.sync_batch_norm = sync_batch_norm
        half = filters // 2
        dtype = self.dtype_policy
        self.bn = batch_norm("bn", sync_batch_norm, dtype)
        self.conv1 = Conv2D(half, 1, name="conv1", dtype=dtype)
        self.bn1 = batch_norm("bn1", sync_batch_norm, dtype)
        self.conv2 = Conv2D(half, 3, padding="same", name="conv2", dtype=dtype)
        self.bn2 = batch_norm("bn2", sync_batch_norm, dtype)
        self.conv3 = Conv2D(filters, 1, name="conv3", dtype=dtype)
        self.skip = None

    def build(self, input_shape: Sequence[int | None]) -> None:
        half_shape = channels_to(input_shape, self.filters // 2)
        self.bn.build(input_shape)
        self.conv1.build(input_shape)
        self.bn1.build(half_shape)
        self.conv2.build(half_shape)
        self.bn2.build(half_shape)
        self.conv3.build(half_shape)
        # Whether the skip needs a projection depends on the input's channels, known only here.
        if input_shape[-1] != self.filters:
            self.skip = Conv2D(self.filters, 1, name="skip", dtype=self.dtype_policy)
            self.skip.build(input_shape)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        y = keras.ops.relu(self.bn(x, training=training))
        y = keras.ops.relu(self.bn1(self.conv1(y), training=training))
        y = keras.ops.relu(self.bn2(self.conv2(y), training=training))
        y = self.conv3(y)
        skip = x if self.skip is None else self.skip(x)
        return y + skip

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, sync_batch_norm=self.sync_batch_norm)
        return config

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return channels_to(input_shape, self.filters)


@keras.saving.register_keras_serializable(package="lgh_tf")
class Hourglass(keras.layers.Layer):
    """Recursive hourglass of ``depth`` levels, ``num_modules`` residuals per stage.

    upper = residuals(x); lower = upsample2x(residuals(inner(residuals(maxpool2x2(x))))), where inner
    is the hourglass one level shallower, or residuals at the bottom. Output = upper + lower.
    """

    def __init__(
        self, depth: int = 4, filters: int = 256, num_modules: int = 2, sync_batch_norm: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.depth = depth
        self.filters = filters
        self.num_modules = num_modules
        self.sync_batch_norm = sync_batch_norm
        dtype = self.dtype_policy

        def stage(name: str) -> list[BottleneckResidual]:
            return [
                BottleneckResidual(filters, sync_batch_norm, name=f"{name}_{i}", dtype=dtype)
                for i in range(num_modules)
            ]

        self.upper = stage("upper")
        self.pool = keras.layers.MaxPooling2D(2, name="pool", dtype=dtype)
        self.lower_in = stage("lower_in")
        if depth > 1:
            self.inner = Hourglass(
                depth - 1, filters, num_modules, sync_batch_norm, name=f"hourglass_{depth - 1}", dtype=dtype
            )
        else:
            self.inner = stage("bottom")
        self.lower_out = stage("lower_out")
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest", name="upsample", dtype=dtype)

    @staticmethod
    def _build_stage(blocks, shape):
        for block in blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        return shape

    def build(self, input_shape: Sequence[int | None]) -> None:
        # In the order call() runs them (projection skips draw their initial seeds as they are made).
        self._build_stage(self.upper, input_shape)
        self.pool.build(input_shape)
        shape = self._build_stage(self.lower_in, self.pool.compute_output_shape(input_shape))
        if isinstance(self.inner, Hourglass):
            self.inner.build(shape)
            shape = self.inner.compute_output_shape(shape)
        else:
            shape = self._build_stage(self.inner, shape)
        shape = self._build_stage(self.lower_out, shape)
        self.upsample.build(shape)

    @staticmethod
    def _run(blocks, x, training):
        for block in blocks:
            x = block(x, training=training)
        return x

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        upper = self._run(self.upper, x, training)
        lower = self._run(self.lower_in, self.pool(x), training)
        if isinstance(self.inner, Hourglass):
            lower = self.inner(lower, training=training)
        else:
            lower = self._run(self.inner, lower, training)
        lower = self._run(self.lower_out, lower, training)
        return upper + self.upsample(lower)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(depth=self.depth, filters=self.filters, num_modules=self.num_modules,
                      sync_batch_norm=self.sync_batch_norm)
        return config

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return channels_to(input_shape, self.filters)


@keras.saving.register_keras_serializable(package="lgh_tf")
class HourglassBackbone(keras.layers.Layer):
    """Stem, one hourglass, two residuals, 1x1 conv-BN-ReLU (the shared features), 1x1 conv (heatmaps).

    Input (B, H, W, 3) with H, W multiples of 64 -> ``(heatmaps (B, H/4, W/4, J),
    features (B, H/4, W/4, filters))``.
    """

    def __init__(
        self, num_joints: int = 21, filters: int = 256, depth: int = 4, sync_batch_norm: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_joints = num_joints
        self.filters = filters
        self.depth = depth
        self.sync_batch_norm = sync = sync_batch_norm
        half = filters // 2
        dtype = self.dtype_policy
        self.stem_conv = PaddedConv2D(64, 7, strides=2, name="stem_conv", dtype=dtype)
        self.stem_bn = batch_norm("stem_bn", sync, dtype)
        self.res1 = BottleneckResidual(half, sync, name="res1", dtype=dtype)
        self.pool = keras.layers.MaxPooling2D(2, name="pool", dtype=dtype)
        self.res2 = BottleneckResidual(half, sync, name="res2", dtype=dtype)
        self.res3 = BottleneckResidual(filters, sync, name="res3", dtype=dtype)
        self.hourglass = Hourglass(depth, filters, sync_batch_norm=sync, name=f"hourglass_{depth}", dtype=dtype)
        self.post = [BottleneckResidual(filters, sync, name=f"post_{i}", dtype=dtype) for i in range(2)]
        self.feature_conv = Conv2D(filters, 1, name="feature_conv", dtype=dtype)
        self.feature_bn = batch_norm("feature_bn", sync, dtype)
        self.heatmap_conv = Conv2D(num_joints, 1, name="heatmap_conv", dtype=dtype)

    def build(self, input_shape: Sequence[int | None]) -> None:
        # In the order call() runs them (projection skips draw their initial seeds as they are made).
        self.stem_conv.build(input_shape)
        shape = self.stem_conv.compute_output_shape(input_shape)
        self.stem_bn.build(shape)
        for block in (self.res1, self.pool, self.res2, self.res3, self.hourglass, *self.post):
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.feature_conv.build(shape)
        shape = channels_to(shape, self.filters)
        self.feature_bn.build(shape)
        self.heatmap_conv.build(shape)

    def call(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        x = keras.ops.relu(self.stem_bn(self.stem_conv(images), training=training))
        x = self.res1(x, training=training)
        x = self.pool(x)
        x = self.res2(x, training=training)
        x = self.res3(x, training=training)
        x = self.hourglass(x, training=training)
        for block in self.post:
            x = block(x, training=training)
        features = keras.ops.relu(self.feature_bn(self.feature_conv(x), training=training))
        heatmaps = self.heatmap_conv(features)
        return heatmaps, features

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_joints=self.num_joints, filters=self.filters, depth=self.depth,
                      sync_batch_norm=self.sync_batch_norm)
        return config

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
        shape = self.stem_conv.compute_output_shape(input_shape)
        shape = self.pool.compute_output_shape(shape)
        return channels_to(shape, self.num_joints), channels_to(shape, self.filters)
