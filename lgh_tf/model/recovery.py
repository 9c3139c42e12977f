"""Paper module 3, 3D joint recovery: per-group heatmap and depth heads, learnable-sharpness
soft-argmax, the selector-weighted sum over groups (Eq. 5) and the lift to camera space (Eq. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from lgh_tf import geometry
from lgh_tf.model.layers import Conv2D, wide_dtype

if TYPE_CHECKING:
    import numpy as np


@keras.saving.register_keras_serializable(package="lgh_tf")
class PoseMapHead(keras.layers.Layer):
    """3x3 conv (hidden), ReLU, 3x3 conv (one map per joint). Used for heatmaps and depth maps."""

    def __init__(self, num_joints: int = 21, hidden: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_joints = num_joints
        self.hidden = hidden
        self.conv1 = Conv2D(hidden, 3, padding="same", name="conv1", dtype=self.dtype_policy)
        self.conv2 = Conv2D(num_joints, 3, padding="same", name="conv2", dtype=self.dtype_policy)

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.conv1.build(input_shape)
        self.conv2.build(self.conv1.compute_output_shape(input_shape))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.conv2(keras.ops.relu(self.conv1(x)))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return tuple(input_shape[:-1]) + (self.num_joints,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_joints=self.num_joints, hidden=self.hidden)
        return config


@keras.saving.register_keras_serializable(package="lgh_tf")
class SoftArgmax2D(keras.layers.Layer):
    """Integral (soft-argmax) readout of 2D joints and their relative depth.

    Each heatmap channel c is scaled by its own sharpness beta_c (learnable unless
    ``learnable_beta=False``), softmax over all H*W positions gives p; u = sum p * column,
    v = sum p * row (heatmap indices 0..W-1, 0..H-1), depth = sum p * depth map.
    """

    def __init__(
        self, num_joints: int = 21, learnable_beta: bool = True, beta_init: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_joints = num_joints
        self.learnable_beta = learnable_beta
        self.beta_init = beta_init

    def build(self, heatmaps_shape: Sequence[int | None], depth_maps_shape: Sequence[int | None] | None = None) -> None:
        self.beta = None
        if self.learnable_beta:
            self.beta = self.add_weight(
                shape=(self.num_joints,),
                initializer=keras.initializers.Constant(self.beta_init),
                name="beta",
            )

    def call(self, heatmaps: tf.Tensor, depth_maps: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor | None]:
        shape = tf.shape(heatmaps)
        height, width = shape[1], shape[2]
        wide = wide_dtype(heatmaps.dtype)
        logits = tf.cast(heatmaps, wide)
        if self.beta is not None:
            logits = logits * tf.cast(self.beta, wide)
        logits = tf.reshape(logits, [shape[0], height * width, self.num_joints])
        p = tf.nn.softmax(logits, axis=1)  # (B, H*W, J), row-major positions
        columns = tf.tile(tf.range(width, dtype=wide), [height])
        rows = tf.repeat(tf.range(height, dtype=wide), width)
        u = tf.einsum("bpj,p->bj", p, columns)
        v = tf.einsum("bpj,p->bj", p, rows)
        uv = tf.stack([u, v], axis=-1)
        if depth_maps is None:
            return uv, None
        depth_maps = tf.reshape(tf.cast(depth_maps, wide), [shape[0], height * width, self.num_joints])
        depth = tf.reduce_sum(p * depth_maps, axis=1)
        return uv, depth

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_joints=self.num_joints,
            learnable_beta=self.learnable_beta,
            beta_init=self.beta_init,
        )
        return config


def combine_groups(selector: tf.Tensor, group_uv: tf.Tensor, group_depth: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 5: J = sum_k S^k (.) J^k. selector (J, K), or (B, J, K) for one draw per image;
    group_uv (B, K, J, 2); group_depth (B, K, J)."""
    selector = tf.cast(selector, group_uv.dtype)
    if selector.shape.rank == 3:
        return tf.einsum("bjk,bkjc->bjc", selector, group_uv), tf.einsum("bjk,bkj->bj", selector, group_depth)
    uv = tf.einsum("jk,bkjc->bjc", selector, group_uv)
    depth = tf.einsum("jk,bkj->bj", selector, group_depth)
    return uv, depth


def lift_to_camera(
    uv: tf.Tensor | np.ndarray,
    depth: tf.Tensor | np.ndarray,
    intrinsics: tf.Tensor | np.ndarray,
    scale: tf.Tensor | np.ndarray,
    root_depth: tf.Tensor | np.ndarray,
) -> tf.Tensor:
    """Eq. 3: [x, y, z]^T = (s0 * z_rel + z_root) * M^-1 [u, v, 1]^T, float32 tensors (float64 for
    a float64 network's ``uv``).

    uv (B, J, 2) pixels of the image that ``intrinsics`` (B, 3, 3) describe (any invertible matrix
    with last row (0, 0, 1), e.g. a rotated crop's); depth (B, J) relative depth; scale and root_depth
    (B,) in the output unit. Returns (B, J, 3). The formula is ``lgh_tf.geometry.lift``.
    """
    dtype = tf.float64 if isinstance(uv, tf.Tensor) and uv.dtype == tf.float64 else tf.float32  # a float64 network's
    uv, depth, intrinsics, scale, root_depth = (tf.cast(x, dtype) for x in (uv, depth, intrinsics, scale, root_depth))
    return geometry.lift(uv, depth, intrinsics, scale, root_depth)
