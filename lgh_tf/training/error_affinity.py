"""Error affinity: which joints' errors vary together while the selector is held back.

During the selector's warm-up every branch predicts every joint and theta is frozen; the residuals
of the combined prediction then show which joints fail together, i.e. depend on the same features.
``ErrorAffinity`` accumulates, over training batches, the first and second moments of the per-joint
residual vectors and each branch's mean error per joint; ``affinity()`` is |vector correlation|
between joints, which ``evaluation.grouping.partition_from_affinity`` clusters into K groups, and
``branch_errors()`` lets each group go to the branch that already fits it best. The selector's
logits then start from that partition (``initial_theta``) and keep learning (docs/selector.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class ErrorAffinity:
    """Running moments of residuals (B, J, C) and per-branch errors (B, K, J), in float64 variables
    (saved with the task's checkpoint, so an interrupted warm-up resumes its statistics). Under a
    tf.distribute strategy the sums are of every replica's samples: the global batch's statistics."""

    def __init__(self, num_joints: int, num_groups: int, channels: int = 1) -> None:
        zeros = keras.initializers.Zeros()

        def accumulator(shape, name):
            # aggregation "sum": an add in a replica adds every replica's part (all-reduced).
            return keras.Variable(zeros(shape), dtype="float64", trainable=False, aggregation="sum", name=name)

        self.count = accumulator((), "affinity_count")
        self.sum = accumulator((num_joints, channels), "affinity_sum")
        self.sum_products = accumulator((num_joints, num_joints), "affinity_products")
        self.branch_error = accumulator((num_groups, num_joints), "affinity_branch_error")
        self.done = keras.Variable(zeros(()), dtype="float32", trainable=False, name="affinity_done")  # theta set

    @property
    def variables(self) -> list[keras.Variable]:
        return [self.count, self.sum, self.sum_products, self.branch_error, self.done]

    def update(self, residuals: tf.Tensor, branch_errors: tf.Tensor, weight: tf.Tensor | float = 1.0) -> None:
        """residuals (B, J) or (B, J, C): prediction - truth; branch_errors (B, K, J) >= 0; ``weight``
        0 or 1 (a step outside the accumulation window adds nothing)."""
        r = tf.cast(residuals, tf.float64)
        if r.shape.rank == 2:
            r = r[..., None]
        weight = tf.cast(weight, tf.float64)
        # The tf.Variable's own assign_add: Keras' is assign(v + delta), which a "sum" aggregation
        # would add up over replicas as (v + delta_1) + (v + delta_2).
        self.count.value.assign_add(weight * tf.cast(tf.shape(r)[0], tf.float64))
        self.sum.value.assign_add(weight * tf.reduce_sum(r, axis=0))
        self.sum_products.value.assign_add(weight * tf.einsum("bic,bjc->ij", r, r))
        self.branch_error.value.assign_add(weight * tf.reduce_sum(tf.cast(branch_errors, tf.float64), axis=0))

    def affinity(self) -> np.ndarray:
        """(J, J) |correlation| of the joints' residual vectors (1 on the diagonal): the covariance
        summed over the C coordinates, over the product of the joints' total standard deviations."""
        count = max(float(self.count.numpy()), 1.0)
        mean = self.sum.numpy() / count  # (J, C)
        covariance = self.sum_products.numpy() / count - mean @ mean.T
        std = np.sqrt(np.clip(np.diag(covariance), 1e-12, None))
        return np.abs(covariance / np.outer(std, std))

    def branch_errors(self) -> np.ndarray:
        return self.branch_error.numpy()


# theta's logit of each joint's group where error affinity sets it (0 elsewhere): softmax 0.87 for K = 3.
INITIAL_THETA_MARGIN = 3.0


def initial_theta(labels: np.ndarray, num_groups: int, margin: float) -> np.ndarray:
    """Logits (J, K) with ``margin`` on each joint's group and 0 elsewhere."""
    return (np.eye(num_groups, dtype=np.float32)[np.asarray(labels)] * margin).astype(np.float32)
