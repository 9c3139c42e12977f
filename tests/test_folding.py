"""BatchNorm folding (lgh_tf/export/folding.py): one conv against the hand-computed formula, both
kernel layouts, and the whole network against its unfolded self."""

import numpy as np
import pytest
from conftest import small_config


def _bn(channels, gamma, beta, mean, var):
    import keras

    from lgh_tf.model.layers import batch_norm

    bn = batch_norm("bn")
    bn.build((None, 4, 4, channels))
    for variable, value in ((bn.gamma, gamma), (bn.beta, beta), (bn.moving_mean, mean),
                            (bn.moving_variance, var)):
        variable.assign(np.asarray(value, np.float32))
    assert isinstance(bn, keras.layers.BatchNormalization)
    return bn


def test_fold_into_a_1x1_conv_by_hand():
    import keras

    from lgh_tf.export.folding import fold_into_conv

    conv = keras.layers.Conv2D(1, 1)
    conv.build((None, 1, 1, 1))
    conv.kernel.assign([[[[2.0]]]])
    conv.bias.assign([1.0])
    # s = 3 / sqrt(4 - 1e-5 + 1e-5) = 1.5; W' = 2 * 1.5 = 3; b' = (1 - 1) * 1.5 + 0.5 = 0.5
    fold_into_conv(conv, _bn(1, [3.0], [0.5], [1.0], [4.0 - 1e-5]))
    np.testing.assert_allclose(conv.kernel.numpy().ravel(), [3.0], rtol=1e-6)
    np.testing.assert_allclose(conv.bias.numpy(), [0.5], rtol=1e-6)
    # x = 2: bn(conv(2)) = 3 * (5 - 1) / 2 + 0.5 = 6.5 = 3 * 2 + 0.5
    assert float(conv(np.full((1, 1, 1, 1), 2.0, np.float32)).numpy().ravel()[0]) == pytest.approx(6.5)


@pytest.mark.parametrize("transpose", [False, True])
def test_folded_conv_equals_conv_then_bn(transpose):
    """3 input, 5 output channels: scaling the wrong kernel axis would not even broadcast."""
    import keras

    from lgh_tf.export.folding import fold_into_conv

    rng = np.random.default_rng(0)
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    conv = layer(5, 3, strides=2 if transpose else 1, padding="same")
    conv.build((None, 6, 6, 3))
    conv.bias.assign(rng.normal(size=5).astype(np.float32))
    bn = _bn(5, rng.uniform(0.5, 2, 5), rng.normal(size=5), rng.normal(size=5), rng.uniform(0.2, 3, 5))
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    expected = bn(conv(x), training=False).numpy()
    fold_into_conv(conv, bn)
    np.testing.assert_allclose(conv(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_copy_of_a_bfloat16_model_follows_the_policy_asked_for():
    """A mixed_bfloat16 model (e.g. the network of a --mixed_precision run) copies to a float32
    network: its config's own dtype policy must not survive into the copy's top level, which would
    cast the images to bfloat16."""
    import keras

    from lgh_tf.export.folding import copy_model
    from lgh_tf.model.network import LearnableGroupsNet

    model = LearnableGroupsNet(small_config(), dtype="mixed_bfloat16").build_for_input()
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.backbone.stem_conv.conv.compute_dtype == "bfloat16"
    copy = copy_model(model, "float32")
    policies = {layer.dtype_policy.name for layer in copy._flatten_layers(include_self=True, recursive=True)}
    assert policies == {"float32"}
    assert all(w.dtype == "float32" for w in copy.weights)
    # ... and the other way: a float32 model to a mixed_bfloat16 copy, with no global policy switched.
    mixed = copy_model(copy, "mixed_bfloat16")
    policies = {layer.dtype_policy.name for layer in mixed._flatten_layers(include_self=True, recursive=True)}
    assert policies == {"mixed_bfloat16"}
    assert keras.config.dtype_policy().name == "float32"
    for a, b in zip(mixed.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fold_without_a_fusion_layer():
    """Fusion off (manual groups): everything still folds."""
    import tensorflow as tf

    from lgh_tf.export.folding import fold_batch_norms, randomize_batch_norms
    from lgh_tf.model.network import LearnableGroupsNet

    model = LearnableGroupsNet(small_config(grouping="manual", fusion=False)).build_for_input()
    randomize_batch_norms(model, seed=2)
    x = tf.random.stateless_uniform((1, 64, 64, 3), seed=[3, 4])
    expected, out = model(x, training=False), fold_batch_norms(model)(x, training=False)
    np.testing.assert_allclose(out["uv"], expected["uv"], atol=1e-3)
    np.testing.assert_allclose(out["depth"], expected["depth"], atol=1e-5)


def test_fold_batch_norms_keeps_the_outputs_and_the_original():
    import keras
    import tensorflow as tf

    from lgh_tf.export.folding import (
        ChannelAffine,
        FoldedBatchNorm,
        copy_model,
        fold_batch_norms,
        randomize_batch_norms,
    )
    from lgh_tf.model.network import LearnableGroupsNet
    from lgh_tf.model.shared_features import BottleneckResidual

    model = LearnableGroupsNet(small_config(num_groups=3)).build_for_input()
    randomize_batch_norms(model, seed=1)
    before = [w.copy() for w in model.get_weights()]
    x = tf.random.stateless_uniform((2, 64, 64, 3), seed=[1, 2])
    expected = model(x, training=False)

    folded = fold_batch_norms(model)
    out = folded(x, training=False)
    np.testing.assert_allclose(out["uv"], expected["uv"], atol=1e-3)  # crop pixels
    np.testing.assert_allclose(out["depth"], expected["depth"], atol=1e-5)
    np.testing.assert_allclose(out["heatmaps"], expected["heatmaps"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["group_uv"], expected["group_uv"], atol=1e-3)
    # The perturbed statistics matter: the same weights with identity BatchNorms answer differently.
    plain = copy_model(model)
    for layer in plain._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable, value in ((layer.gamma, 1.0), (layer.beta, 0.0), (layer.moving_mean, 0.0),
                                    (layer.moving_variance, 1.0)):
                variable.assign(np.full(variable.shape, value, np.float32))
    assert np.abs(expected["heatmaps"] - plain(x, training=False)["heatmaps"]).max() > 1e-2

    layers = list(folded._flatten_layers(include_self=False, recursive=True))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)
    originals = list(model._flatten_layers(include_self=False, recursive=True))
    batch_norms = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in originals)
    bottlenecks = sum(isinstance(layer, BottleneckResidual) for layer in originals)
    assert folded.folded_batch_norms == batch_norms - bottlenecks
    assert sum(isinstance(layer, ChannelAffine) for layer in layers) == bottlenecks
    assert sum(isinstance(layer, FoldedBatchNorm) for layer in layers) == folded.folded_batch_norms
    assert not any("moving_" in v.path or "gamma" in v.path for v in folded.variables)
    deconv_biases = [v for v in model.variables if "deconv/bias" in v.path]
    assert deconv_biases and all(np.abs(v.numpy()).max() > 0 for v in deconv_biases)  # randomised too
    for w, b in zip(model.get_weights(), before):  # the model given is left as it was
        np.testing.assert_array_equal(w, b)
