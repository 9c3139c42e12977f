"""The training step's fused kernels compute what Keras computes: FusedBatchNormalization against
keras.layers.BatchNormalization (outputs, gradients, moving statistics), FusedAdam against
keras.optimizers.Adam (weights and every slot after several steps of a schedule)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lgh_tf.model.layers import FusedBatchNormalization, batch_norm
from lgh_tf.training.task import FusedAdam


def _bn_step(layer, x, training=True):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.sin(x))  # a non-trivial upstream gradient
    dx, dgamma, dbeta = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [np.asarray(t, np.float32) for t in (y, dx, dgamma, dbeta, layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("dtype", [None, "mixed_bfloat16", "float64"])
def test_fused_batch_norm_matches_keras(dtype):
    """float64: no FusedBatchNormV3 kernel, so Keras' own path, in float64 (issue 33)."""
    x = tf.random.stateless_normal((3, 5, 7, 6), seed=(1, 2)) * 3.0 + 1.0
    rng = np.random.default_rng(0)
    gamma, beta = rng.normal(size=6).astype("float32"), rng.normal(size=6).astype("float32")
    moving_mean, moving_variance = rng.normal(size=6).astype("float32"), rng.uniform(0.5, 2, 6).astype("float32")
    results = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(epsilon=1e-5, momentum=0.9, dtype=dtype)
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        layer.moving_mean.assign(moving_mean)  # not the initial 0 / 1: the update's both terms count
        layer.moving_variance.assign(moving_variance)
        results.append(_bn_step(layer, x) + [np.asarray(layer(x, training=False), np.float32)])
    # bfloat16 outputs differ by at most one bfloat16 step (2^-8 relative) where rounding falls apart.
    output_tol = {None: 1e-5, "float64": 1e-12, "mixed_bfloat16": 2.0**-7}[dtype]
    if dtype == "float64":
        assert layer(x, training=True).dtype == tf.float64
    names = ("y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance", "inference y")
    for name, keras_value, fused_value in zip(names, *results):
        tol = output_tol if name in ("y", "dx", "inference y") else 1e-5
        np.testing.assert_allclose(fused_value, keras_value, rtol=tol, atol=tol * np.abs(keras_value).max(),
                                   err_msg=name)
    # The moving variance takes the biased batch variance (Keras' update, not the kernel's Bessel one)
    # of the input as the layer sees it (rounded to its compute dtype).
    seen = np.asarray(tf.cast(tf.cast(x, layer.compute_dtype), tf.float32))
    expected = 0.9 * moving_variance + 0.1 * np.var(seen, axis=(0, 1, 2))
    np.testing.assert_allclose(results[1][5], expected, rtol=1e-5)


def test_batch_norm_factory_keeps_keras_paths_where_the_kernel_does_not_apply():
    layer = batch_norm("bn", synchronized=True)
    assert isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized
    config = batch_norm("bn").get_config()
    assert config["epsilon"] == 1e-5 and config["momentum"] == 0.9
    restored = FusedBatchNormalization.from_config(config)
    assert restored.epsilon == 1e-5


def test_fused_adam_matches_keras_adam_over_a_schedule():
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 5), (5,), ()]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(4)]
    final = []
    for cls in (keras.optimizers.Adam, FusedAdam):
        variables = [keras.Variable(v) for v in init]
        optimizer = cls(keras.optimizers.schedules.CosineDecay(1e-2, 10))
        optimizer.build(variables)

        @tf.function
        def step(gs):
            optimizer.apply_gradients(zip(gs, variables))  # noqa: B023 (called in this iteration only)

        for g in grads:
            step([tf.constant(x) for x in g])
        final.append([v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables])
    assert len(final[0]) == len(final[1])  # the same slots: checkpoints keep their format
    for keras_value, fused_value in zip(*final):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-7)
    assert not np.allclose(final[1][0], init[0])  # it moved


@pytest.mark.parametrize("dtype", [None, "mixed_bfloat16"])
@pytest.mark.parametrize("kwargs", [{"kernel_size": 3, "padding": "same"}, {"kernel_size": 1},
                                    {"kernel_size": 3, "strides": 2, "activation": "relu"}])
def test_conv2d_with_one_bias_add_matches_keras(dtype, kwargs):
    from lgh_tf.model.layers import Conv2D

    x = tf.random.stateless_normal((2, 9, 9, 4), seed=(3, 4))
    results = []
    for cls in (keras.layers.Conv2D, Conv2D):
        layer = cls(5, dtype=dtype, **kwargs)
        layer.build(x.shape)
        layer.kernel.assign(tf.random.stateless_normal(layer.kernel.shape, seed=(5, 6)))
        layer.bias.assign(tf.random.stateless_normal((5,), seed=(7, 8)))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        results.append([np.asarray(t, np.float32) for t in [y, *tape.gradient(loss, [x, layer.kernel, layer.bias])]])
        assert y.dtype == layer.compute_dtype
    for name, keras_value, ours in zip(("y", "dx", "dkernel", "dbias"), *results):
        np.testing.assert_array_equal(ours, keras_value, err_msg=name)  # the same ops: bit for bit
