"""The temperature tau of the Concrete selector (Eq. 8), annealed with the training step."""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass
class TemperatureSchedule:
    """tau(step) = max(floor, initial - decrement * floor(step / every)).

    The paper: "tau is initialized to be 5 and decrease 0.1 for every 1,000 steps until it reaches
    around 0". The floor defaults to 0.1: the Concrete at tau = 0.1 is already nearly one-hot (mean
    largest entry > 0.9 for K = 3, see tests), while tau -> 0 makes the gradient with respect to theta
    blow up as 1 / tau. With the paper's rate the floor is reached after 49,000 steps.
    """

    initial: float = 5.0
    decrement: float = 0.1
    every: int = 1000
    floor: float = 0.1

    def __call__(self, step):
        """tau at ``step`` (a Python int or a tensor); float32."""
        step = tf.cast(step, tf.int64)
        drops = tf.cast(step // self.every, tf.float64)
        tau = tf.cast(self.initial, tf.float64) - tf.cast(self.decrement, tf.float64) * drops
        return tf.cast(tf.maximum(tau, tf.cast(self.floor, tf.float64)), tf.float32)
