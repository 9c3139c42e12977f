"""Small building blocks shared by the three modules of the paper.

Conventions follow the authors' PyTorch release (see shared/reference/README.md): every convolution
has a bias, padding is symmetric ((k - 1) / 2 on each side), BatchNorm uses eps 1e-5 and momentum 0.1
in PyTorch terms (0.9 in Keras terms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    import tensorflow as tf

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(
    name: str, synchronized: bool = False, dtype: str | keras.DTypePolicy | None = None
) -> keras.layers.BatchNormalization:
    """A BatchNorm with the reference's epsilon and momentum; ``synchronized``: statistics over the
    global batch under tf.distribute (Keras all-reduces them per layer and step); ``dtype``: the
    owning layer's dtype policy."""
    return keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, synchronized=synchronized, name=name, dtype=dtype
    )


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
        self.conv = keras.layers.Conv2D(
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
