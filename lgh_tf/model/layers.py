"""Small building blocks shared by the three modules of the paper.

Conventions follow the authors' PyTorch release (see shared/reference/README.md): every convolution
has a bias, padding is symmetric ((k - 1) / 2 on each side), BatchNorm uses eps 1e-5 and momentum 0.1
in PyTorch terms (0.9 in Keras terms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# The input dtypes of FusedBatchNormV3 (its statistics and scale are float32).
FUSED_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


def wide_dtype(dtype: tf.DType | str) -> tf.DType:
    """Where a reduction or loss is computed: float32 for bfloat16 / float16 / float32 maps,
    float64 for float64 ones (never cast down)."""
    return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def batch_norm(
    name: str, synchronized: bool = False, dtype: str | keras.DTypePolicy | None = None
) -> keras.layers.BatchNormalization:
    """A BatchNorm with the reference's epsilon and momentum; ``synchronized``: statistics over the
    global batch under tf.distribute (Keras all-reduces them per layer and step); ``dtype``: the
    owning layer's dtype policy."""
    return FusedBatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, synchronized=synchronized, name=name, dtype=dtype
    )


@keras.saving.register_keras_serializable(package="lgh_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, whose training step on NHWC maps is one fused kernel.

    Keras 3 normalises with separate moment, subtract, scale ops and differentiates each: about 20
    ops per layer and step, forward and backward. ``FusedBatchNormV3`` does the same arithmetic
    (batch statistics, biased variance in the normalisation) in one op with a one-op gradient. The
    moving statistics follow Keras' update exactly (biased batch variance); inference, synchronized
    statistics and other ranks use Keras' own path, so weights, variables and outputs are the same.
    """

    def call(self, inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
        if not (training and self.trainable) or mask is not None or self.synchronized or self.renorm \
                or len(inputs.shape) != 4 or self.axis not in (-1, 3) or keras.backend.backend() != "tensorflow" \
                or inputs.dtype not in FUSED_DTYPES or self.variable_dtype != "float32":
            # Keras' path, also where the kernel lacks the dtype (float64: no double FusedBatchNormV3),
            # so that a map is never cast down.
            return super().call(inputs, training=training, mask=mask)
        # The kernel keeps its statistics and arithmetic in float32 and rounds only its output, as
        # Keras does around its float32 computation: bfloat16 / float16 maps go in uncast.
        x = inputs
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([x.shape[-1]], tf.float32)
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([x.shape[-1]], tf.float32)
        static = x.shape[:-1]
        count = float(static.num_elements()) if static.is_fully_defined() else 0.0
        if count > 1.0:
            # The kernel also updates the moving statistics (exponential_avg_factor = 1 - momentum),
            # with the Bessel-corrected variance; fed variance / c and scaled back by c = (n - 1) / n,
            # its update is Keras' one with the biased variance. Fewer graph nodes: a shorter first step.
            c = (count - 1.0) / count
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance) * (1.0 / c), epsilon=self.epsilon,
                exponential_avg_factor=1.0 - self.momentum, data_format="NHWC", is_training=True)
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance * c)
            return tf.cast(y, self.compute_dtype)
        empty = tf.constant([], tf.float32)
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The kernel returns the Bessel-corrected variance; Keras' moving average takes the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = variance * ((count - 1.0) / tf.maximum(count, 1.0))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="lgh_tf")
class Conv2D(keras.layers.Conv2D):
    """Keras' Conv2D whose bias is one ``BiasAdd`` on the TensorFlow backend, and whose 1x1 kernels
    train as a matrix product.

    Keras reshapes the bias to rank 4, then squeezes it back for ``tf.nn.bias_add``: two ops and
    their two gradients per convolution (~800 graph nodes in the train step), the same arithmetic.
    """

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not self.use_bias or self.data_format != "channels_last" or keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        if training and self._pointwise():
            outputs = self._pointwise_matmul(inputs)
        else:
            outputs = tf.nn.bias_add(self.convolution_op(inputs, self.kernel), self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def _pointwise(self) -> bool:
        return self.kernel_size == (1, 1) and self.strides == (1, 1) and self.dilation_rate == (1, 1) \
            and self.groups == 1

    def _pointwise_matmul(self, inputs: tf.Tensor) -> tf.Tensor:
        """A 1x1 convolution as one matrix product over all pixels: the same sums, but oneDNN's
        matmul and its two gradients train faster than its convolution kernels on CPUs
        (docs/training-speed.md). Training only: exported and evaluated graphs keep the convolution."""
        channels = self.kernel.shape[-2]
        pixels = tf.reshape(inputs, [-1, channels])
        outputs = tf.nn.bias_add(tf.matmul(pixels, tf.reshape(self.kernel, [channels, self.filters])), self.bias)
        if inputs.shape.is_fully_defined():  # static shapes: no shape ops in the graph (a shorter first step)
            return tf.reshape(outputs, channels_to(inputs.shape, self.filters))
        return tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [self.filters]], 0))


def channels_to(shape: Sequence[int | None], channels: int) -> tuple[int | None, ...]:
    """``shape`` (a tuple, channels last) with its last axis set to ``channels``."""
    return tuple(shape[:-1]) + (channels,)


@keras.saving.register_keras_serializable(package="lgh_tf")
class PaddedConv2D(keras.layers.Layer):
    """A convolution with PyTorch's symmetric zero padding of (k - 1) / 2 on every side.

    Keras' ``padding="same"`` pads asymmetrically when the stride is 2 and the size even, which shifts
    the sampling grid by one pixel against the reference; here stride-2 convolutions pad explicitly.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_bias = use_bias
        pad = (kernel_size - 1) // 2
        self.pad = None
        if strides > 1 and pad > 0:
            self.pad = keras.layers.ZeroPadding2D(pad, name="pad", dtype=self.dtype_policy)
        self.conv = Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same" if self.pad is None else "valid",
            use_bias=use_bias,
            name="conv",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape: Sequence[int | None]) -> None:
        if self.pad is not None:
            self.pad.build(input_shape)
            input_shape = self.pad.compute_output_shape(input_shape)
        self.conv.build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        if self.pad is not None:
            x = self.pad(x)
        return self.conv(x)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        if self.pad is not None:
            input_shape = self.pad.compute_output_shape(input_shape)
        return self.conv.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            use_bias=self.use_bias,
        )
        return config
