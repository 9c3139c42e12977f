"""Training losses: Eq. 10 for the full network, l1 on 2D joints for pre-training the hourglass."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from lgh_tf.model.layers import wide_dtype
from lgh_tf.model.recovery import lift_to_camera

MM_PER_METRE = 1000.0


def recover_xyz_mm(uv: tf.Tensor, depth: tf.Tensor, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Eq. 3 with the ground-truth crop intrinsics, hand scale and root depth; millimetres."""
    xyz = lift_to_camera(uv, depth, batch["K"], batch["scale"], batch["root_depth"])
    return xyz * MM_PER_METRE


def pose_loss_3d_per_sample(
    xyz_pred_mm: tf.Tensor, xyz_true_mm: tf.Tensor, beta: float = 20.0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 10 for each sample: L = ||[X, Y] - [X^, Y^]||_1 + beta ||Z - Z^||_1, as means over
    joints (millimetres). Returns (loss, xy term, z term), each (B,); z before the beta weight."""
    wide = wide_dtype(xyz_pred_mm.dtype)
    diff = tf.abs(tf.cast(xyz_pred_mm, wide) - tf.cast(xyz_true_mm, wide))
    loss_xy = tf.reduce_mean(tf.reduce_sum(diff[..., :2], axis=-1), axis=-1)
    loss_z = tf.reduce_mean(diff[..., 2], axis=-1)
    return loss_xy + beta * loss_z, loss_xy, loss_z


def group_xyz_mm(group_uv: tf.Tensor, group_depth: tf.Tensor, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Eq. 3 for every branch's prediction of every joint: (B, K, J, 3) millimetres, from group_uv
    (B, K, J, 2) and group_depth (B, K, J)."""
    return tf.stack([recover_xyz_mm(group_uv[:, k], group_depth[:, k], batch) for k in range(group_uv.shape[1])],
                    axis=1)


def group_joint_losses(group_xyz: tf.Tensor, xyz_true_mm: tf.Tensor, beta: float = 20.0) -> tf.Tensor:
    """Eq. 10 of each branch's prediction of each joint, |dx| + |dy| + beta |dz|: (B, K, J)."""
    diff = tf.abs(tf.cast(group_xyz, tf.float32) - tf.cast(xyz_true_mm, tf.float32)[:, None])
    return tf.reduce_sum(diff[..., :2], axis=-1) + beta * diff[..., 2]


def expected_group_loss_per_sample(
    selector: tf.Tensor, group_xyz: tf.Tensor, xyz_true_mm: tf.Tensor, beta: float = 20.0
) -> tf.Tensor:
    """The per-branch expected loss (DMTG, Gao et al. 2024): Eq. 10 of each branch's own joints,
    weighted by the selector, sum_k S_jk L(J^k_j), as a mean over joints: (B,).

    selector (J, K) or (B, J, K); group_xyz (B, K, J, 3) in mm (``group_xyz_mm``). Each branch is
    then trained on the joints S gives it, and theta's gradient favours the branch with the lower
    loss, where Eq. 5's blended loss lets the branches co-adapt.
    """
    per_group = group_joint_losses(group_xyz, xyz_true_mm, beta)  # (B, K, J)
    selector = tf.cast(selector, tf.float32)
    if selector.shape.rank == 3:
        weighted = tf.einsum("bjk,bkj->bj", selector, per_group)
    else:
        weighted = tf.einsum("jk,bkj->bj", selector, per_group)
    return tf.reduce_mean(weighted, axis=-1)


def pose_loss_3d(xyz_pred_mm: tf.Tensor, xyz_true_mm: tf.Tensor, beta: float = 20.0) -> tuple[tf.Tensor, ...]:
    """Eq. 10 as the mean over the batch: (loss, xy term, z term), scalars."""
    return tuple(tf.reduce_mean(t) for t in pose_loss_3d_per_sample(xyz_pred_mm, xyz_true_mm, beta))


def pose_loss_2d_per_sample(uv_pred: tf.Tensor, uv_true: tf.Tensor) -> tf.Tensor:
    """l1 on 2D joints in crop pixels (summed over u and v, mean over joints): (B,)."""
    wide = wide_dtype(uv_pred.dtype)
    diff = tf.abs(tf.cast(uv_pred, wide) - tf.cast(uv_true, wide))
    return tf.reduce_mean(tf.reduce_sum(diff, axis=-1), axis=-1)


def pose_loss_2d(uv_pred: tf.Tensor, uv_true: tf.Tensor) -> tf.Tensor:
    """l1 on 2D joints in crop pixels, mean over the batch."""
    return tf.reduce_mean(pose_loss_2d_per_sample(uv_pred, uv_true))


def joint_error_per_sample(pred: tf.Tensor, true: tf.Tensor) -> tf.Tensor:
    """Mean Euclidean distance over joints (px for uv, mm for xyz in mm): (B,)."""
    return tf.reduce_mean(tf.norm(tf.cast(pred, tf.float32) - tf.cast(true, tf.float32), axis=-1), axis=-1)


def mean_joint_error(pred: tf.Tensor, true: tf.Tensor) -> tf.Tensor:
    """Mean Euclidean distance over joints and batch (px for uv, mm for xyz in mm)."""
    return tf.reduce_mean(joint_error_per_sample(pred, true))
