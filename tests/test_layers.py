"""Layer tests: shapes for every K and variant, the fusion initialisation (Eq. 9), the selector's
modes (Eqs. 6-8), the soft-argmax and the lift to camera space (Eq. 3), hand-computed."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_config
from layer_test import random_input, run_layer_test

from lgh_tf.data.schema import MANUAL_GROUPS
from lgh_tf.export.folding import ChannelAffine, FoldedBatchNorm
from lgh_tf.model.grouped_features import (
    ConvBNReLU,
    GroupBranch,
    GroupFeatureFusion,
    GroupTrunk,
    JointGroupSelector,
    ResidualBlock2D,
    UpBlock,
    fusion_kernel_init,
)
from lgh_tf.model.layers import Conv2D, PaddedConv2D
from lgh_tf.model.network import LearnableGroupsNet
from lgh_tf.model.recovery import PoseMapHead, SoftArgmax2D, combine_groups, lift_to_camera
from lgh_tf.model.shared_features import BottleneckResidual, Hourglass, HourglassBackbone


@pytest.mark.parametrize(
    "num_groups,fusion,grouping",
    [(1, True, "learned"), (2, True, "learned"), (3, True, "learned"), (3, False, "learned"),
     (5, True, "learned"), (21, False, "learned"), (3, True, "manual"), (3, False, "manual"),
     (5, False, "fingers")],
)
def test_network_shapes(num_groups, fusion, grouping):
    config = small_config(num_groups=num_groups, fusion=fusion, grouping=grouping)
    model = LearnableGroupsNet(config)
    out = model(tf.random.uniform((2, 64, 64, 3)), selector="soft" if grouping == "learned" else None)
    assert out["uv"].shape == (2, 21, 2)
    assert out["depth"].shape == (2, 21)
    assert out["group_uv"].shape == (2, num_groups, 21, 2)
    assert out["group_depth"].shape == (2, num_groups, 21)
    assert out["selector"].shape == (21, num_groups)
    assert out["heatmaps"].shape == (2, 16, 16, 21)
    assert (model.fusion is not None) == (fusion and num_groups > 1)
    # uv is in input pixels: soft-argmax positions are within the 64x64 input.
    assert np.all(out["uv"].numpy() >= 0) and np.all(out["uv"].numpy() <= 60 + 1e-3)
    np.testing.assert_allclose(out["selector"].numpy().sum(-1), 1.0, atol=1e-6)


def test_non_square_multiple_of_64_and_bad_sizes():
    model = LearnableGroupsNet(small_config(input_size=128, hourglass_depth=4))
    assert model(tf.zeros((1, 128, 128, 3)))["heatmaps"].shape == (1, 32, 32, 21)
    with pytest.raises(ValueError, match="multiple of 64"):
        small_config(input_size=96, hourglass_depth=4).validate()
    with pytest.raises(ValueError, match="num_groups"):
        small_config(num_groups=22).validate()
    with pytest.raises(ValueError, match="manual"):
        small_config(num_groups=2, grouping="manual").validate()
    with pytest.raises(ValueError, match="fingers grouping .* needs num_groups=5"):
        small_config(num_groups=3, grouping="fingers").validate()


def test_manual_grouping_is_thumb_index_others():
    model = LearnableGroupsNet(small_config(grouping="manual"))
    model.build_for_input()
    assert model.groups() == [[1, 2, 3, 4], [5, 6, 7, 8], [0] + list(range(9, 21))]
    assert not [v for v in model.trainable_variables if "theta" in v.path]


def test_fingers_grouping_is_one_group_per_finger_with_the_wrist_on_the_middle():
    model = LearnableGroupsNet(small_config(grouping="fingers", num_groups=5))
    model.build_for_input()
    assert model.groups() == [[1, 2, 3, 4], [5, 6, 7, 8], [0, 9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]
    assert not [v for v in model.trainable_variables if "theta" in v.path]


def test_fusion_initialisation_eq9():
    kernel = fusion_kernel_init(3, 4, group=1)[0, 0]
    expected = np.concatenate([0.05 * np.eye(4), 0.9 * np.eye(4), 0.05 * np.eye(4)])
    np.testing.assert_allclose(kernel, expected, atol=1e-7)
    # Columns sum to 1 for any K (sum_i alpha_i^k = 1).
    for k in (2, 5, 21):
        np.testing.assert_allclose(fusion_kernel_init(k, 3, 0)[0, 0].sum(0), 1.0, rtol=1e-6)

    fusion = GroupFeatureFusion(3, channels=4)
    features = [tf.random.uniform((2, 5, 5, 4), seed=i) for i in range(3)]
    fused = fusion(features, training=False)
    # Fresh BN in inference mode is x / sqrt(1 + eps); features are >= 0 so ReLU keeps them.
    for k in range(3):
        mix = sum((0.9 if i == k else 0.05) * features[i] for i in range(3))
        np.testing.assert_allclose(fused[k].numpy(), mix.numpy() / np.sqrt(1 + 1e-5), atol=1e-6)
    assert fusion.convs[0].bias.numpy().tolist() == [0.0] * 4


def test_selector_initial_logits_are_one_over_k():
    selector = JointGroupSelector(21, 4)
    selector(tf.constant(1.0), mode="soft")
    np.testing.assert_allclose(selector.theta.numpy(), 0.25)


def test_selector_hard_mode_is_a_partition():
    selector = JointGroupSelector(21, 3)
    selector(tf.constant(1.0), mode="hard")
    theta = np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32)
    selector.theta.assign(theta)
    hard = selector(tf.constant(1.0), mode="hard").numpy()
    assert set(np.unique(hard)) <= {0.0, 1.0}
    np.testing.assert_array_equal(hard.sum(1), np.ones(21))  # Eq. 6: each joint exactly once
    np.testing.assert_array_equal(hard.argmax(1), theta.argmax(1))
    soft = selector(tf.constant(0.5), mode="soft").numpy()
    e = np.exp(theta / 0.5)
    np.testing.assert_allclose(soft, e / e.sum(1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="selector mode"):
        selector(tf.constant(1.0), mode="gumbel")


def test_selector_samples_on_simplex_and_sharpen_as_tau_falls():
    selector = JointGroupSelector(21, 3, seed=7)
    selector(tf.constant(1.0), mode="hard")
    selector.theta.assign(np.random.default_rng(1).normal(size=(21, 3)).astype(np.float32))
    mean_max = {}
    for tau in (5.0, 1.0, 0.1):
        draws = np.stack([selector(tf.constant(tau), mode="sample").numpy() for _ in range(100)])
        assert np.all(draws >= 0)
        np.testing.assert_allclose(draws.sum(-1), 1.0, atol=1e-5)
        mean_max[tau] = draws.max(-1).mean()
    assert mean_max[5.0] < mean_max[1.0] < mean_max[0.1]
    assert mean_max[0.1] > 0.9  # nearly one-hot: the Concrete approaches the categorical (Eq. 8)
    assert mean_max[5.0] < 0.6


def test_selector_sampling_is_reproducible_by_seed():
    draws = []
    for _ in range(2):
        selector = JointGroupSelector(21, 3, seed=3)
        draws.append([selector(tf.constant(1.0), mode="sample").numpy() for _ in range(3)])
    np.testing.assert_array_equal(np.array(draws[0]), np.array(draws[1]))
    assert not np.array_equal(draws[0][0], draws[0][1])  # a new draw per forward pass


@pytest.mark.parametrize("mode", ["sample", "soft"])
def test_gradients_reach_theta(mode):
    model = LearnableGroupsNet(small_config())
    images = tf.random.uniform((2, 64, 64, 3), seed=0)
    model(images)
    with tf.GradientTape() as tape:
        out = model(images, training=True, selector=mode, temperature=1.0)
        loss = tf.reduce_sum(tf.abs(out["uv"])) + tf.reduce_sum(tf.abs(out["depth"]))
    theta = model.selector.theta
    grad = tape.gradient(loss, theta)
    assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_inference_is_deterministic_and_xla_compiles():
    model = LearnableGroupsNet(small_config())
    images = tf.random.uniform((2, 64, 64, 3), seed=0)
    eager = model(images)
    again = model(images)
    np.testing.assert_array_equal(eager["uv"].numpy(), again["uv"].numpy())

    @tf.function(jit_compile=True)
    def xla_infer(x):
        return model(x, training=False)

    @tf.function(jit_compile=True)
    def xla_train(x):
        return model(x, training=True, selector="sample", temperature=2.0)

    xla = xla_infer(images)
    np.testing.assert_allclose(xla["uv"].numpy(), eager["uv"].numpy(), atol=1e-3)
    sampled = xla_train(images)["selector"].numpy()
    np.testing.assert_allclose(sampled.sum(-1), 1.0, atol=1e-5)


def test_soft_argmax_hand_computed():
    layer = SoftArgmax2D(num_joints=2, learnable_beta=True)
    heatmaps = np.zeros((1, 6, 8, 2), np.float32)
    heatmaps[0, 3, 5, 0] = 100.0  # joint 0 peaked at row 3, column 5
    depth_maps = np.zeros((1, 6, 8, 2), np.float32)
    depth_maps[0, 3, 5, 0] = -0.7
    depth_maps[..., 1] = 0.25
    uv, depth = layer(heatmaps, depth_maps)
    np.testing.assert_allclose(uv.numpy()[0, 0], [5.0, 3.0], atol=1e-4)
    np.testing.assert_allclose(uv.numpy()[0, 1], [3.5, 2.5], atol=1e-5)  # flat map -> centre
    np.testing.assert_allclose(depth.numpy()[0], [-0.7, 0.25], atol=1e-4)
    # beta sharpens: a two-peak map with unequal heights; larger beta moves uv to the higher peak.
    two = np.zeros((1, 6, 8, 2), np.float32)
    two[0, 0, 0, :] = 1.0
    two[0, 0, 7, :] = 2.0
    layer.beta.assign([1.0, 10.0])
    uv, _ = layer(two)
    assert uv.numpy()[0, 1, 0] > uv.numpy()[0, 0, 0]
    assert uv.numpy()[0, 1, 0] == pytest.approx(7.0, abs=1e-2)


def test_combine_groups_eq5():
    selector = np.array([[1, 0], [0, 1], [0.25, 0.75]], np.float32)
    group_uv = np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2)
    group_depth = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    uv, depth = combine_groups(selector, group_uv, group_depth)
    expected = np.stack(
        [group_uv[:, 0, 0], group_uv[:, 1, 1], 0.25 * group_uv[:, 0, 2] + 0.75 * group_uv[:, 1, 2]], 1
    )
    np.testing.assert_allclose(uv.numpy(), expected)
    np.testing.assert_allclose(depth.numpy()[:, 2], 0.25 * group_depth[:, 0, 2] + 0.75 * group_depth[:, 1, 2])


def test_lift_to_camera_eq3_inverts_projection():
    rng = np.random.default_rng(0)
    xyz = rng.normal(scale=0.05, size=(2, 21, 3)) + [0.0, 0.0, 0.5]
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 10], [np.sin(angle), np.cos(angle), -4], [0, 0, 1]])
    intrinsics = np.stack([
        np.array([[300.0, 0, 128], [0, 320.0, 120], [0, 0, 1]]),
        rotation @ np.array([[280.0, 0, 100], [0, 290.0, 140], [0, 0, 1]]),
    ])
    projected = np.einsum("bij,bkj->bki", intrinsics, xyz)
    uv = projected[..., :2] / projected[..., 2:]
    scale = np.linalg.norm(xyz[:, 12] - xyz[:, 11], axis=-1)
    root = xyz[:, 12, 2]
    rel = (xyz[..., 2] - root[:, None]) / scale[:, None]
    lifted = lift_to_camera(uv, rel, intrinsics, scale, root).numpy()
    np.testing.assert_allclose(lifted, xyz, atol=1e-5)


def test_padded_conv_matches_symmetric_padding():
    conv = PaddedConv2D(1, 3, strides=2, use_bias=False)
    x = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    conv(x)
    conv.conv.kernel.assign(np.ones((3, 3, 1, 1), np.float32))
    y = conv(x).numpy()[0, ..., 0]
    padded = np.pad(x[0, ..., 0], 1)
    expected = np.array([[padded[r:r + 3, c:c + 3].sum() for c in range(0, 6, 2)] for r in range(0, 6, 2)])
    np.testing.assert_allclose(y, expected)


@pytest.mark.parametrize("static_batch", [True, False])
def test_pointwise_conv_trains_as_a_matmul_with_the_convolutions_numbers(static_batch):
    conv = Conv2D(5, 1)
    x = _x(2, 4, 3, 6, seed=3)
    conv(x)
    kernel, bias = conv.kernel.numpy()[0, 0], conv.bias.numpy()
    expected = np.einsum("bhwc,cf->bhwf", x, kernel) + bias
    spec = tf.TensorSpec([2, 4, 3, 6] if static_batch else [None, 4, 3, 6], tf.float32)

    def gradients(training):
        @tf.function(input_signature=[spec])
        def f(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                y = conv(inputs, training=training)
                loss = tf.reduce_sum(y * y)
            return (y, *tape.gradient(loss, [inputs, conv.kernel, conv.bias]))

        ops = {op.type for op in f.get_concrete_function().graph.get_operations()}
        return [t.numpy() for t in f(tf.constant(x))], ops

    trained, train_ops = gradients(True)
    inferred, infer_ops = gradients(False)
    np.testing.assert_allclose(trained[0], expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(trained, inferred):  # outputs and the three gradients
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert "MatMul" in train_ops and "Conv2D" not in train_ops
    assert "Conv2D" in infer_ops and "MatMul" not in infer_ops  # exported graphs keep the convolution
    strided = Conv2D(5, 1, strides=2)
    strided(x)
    graph = tf.function(lambda t: strided(t, training=True)).get_concrete_function(spec).graph
    assert "Conv2D" in {op.type for op in graph.get_operations()}


def test_network_trains_its_pointwise_convs_as_matmuls():
    # Keras passes training=True down to every nested Conv2D; inference keeps all convolutions.
    net = LearnableGroupsNet(small_config()).build_for_input()
    spec = tf.TensorSpec([2, 64, 64, 3], tf.float32)
    counts = {}
    for training in (True, False):
        graph = tf.function(lambda t, training=training: net(t, training=training),
                            autograph=False).get_concrete_function(spec).graph
        types = [op.type for op in graph.get_operations()]
        counts[training] = types.count("MatMul"), types.count("Conv2D")
    assert counts[False][0] == 0 and counts[True][0] > 0
    assert sum(counts[True]) == counts[False][1]


def _x(*shape, seed=0):
    return random_input(shape, seed)


_AFFINE = np.linspace(0.5, 1.5, 8).astype(np.float32), np.linspace(-0.2, 0.2, 8).astype(np.float32)
_FLOAT32 = "float32"

# (layer class, constructor arguments, inputs, call arguments, output dtypes under mixed_bfloat16 when
# not all bfloat16): every layer class of lgh_tf/model and lgh_tf/export/folding.py.
LAYER_CASES = {
    "padded_conv": (PaddedConv2D, dict(filters=4, kernel_size=3), _x(2, 8, 8, 3), {}, None),
    "padded_conv_stride2": (PaddedConv2D, dict(filters=4, kernel_size=3, strides=2), _x(2, 8, 8, 3), {}, None),
    "bottleneck": (BottleneckResidual, dict(filters=8), _x(2, 8, 8, 8), {}, None),
    "bottleneck_projected": (BottleneckResidual, dict(filters=8), _x(2, 8, 8, 4), {"training": True}, None),
    "hourglass": (Hourglass, dict(depth=2, filters=8), _x(2, 8, 8, 8), {}, None),
    "hourglass_backbone": (HourglassBackbone, dict(num_joints=21, filters=16, depth=2), _x(1, 64, 64, 3), {},
                           None),
    "conv_bn_relu": (ConvBNReLU, dict(filters=4, kernel_size=3), _x(2, 8, 8, 3), {}, None),
    "residual": (ResidualBlock2D, dict(filters=4), _x(2, 8, 8, 4), {}, None),
    "residual_down": (ResidualBlock2D, dict(filters=4, strides=2, activate_main=True), _x(2, 8, 8, 3), {}, None),
    "up_block": (UpBlock, dict(filters=4), _x(2, 4, 4, 3), {}, None),
    "group_trunk": (GroupTrunk, dict(channels=4, hidden=8), {"heatmaps": _x(2, 8, 8, 21), "features": _x(2, 8, 8, 6)},
                    {}, None),
    "group_branch": (GroupBranch, dict(channels=4), _x(2, 8, 8, 4), {}, None),
    "fusion": (GroupFeatureFusion, dict(num_groups=3, channels=4), [_x(2, 8, 8, 4, seed=i) for i in range(3)],
               {}, None),
    "selector": (JointGroupSelector, dict(num_joints=21, num_groups=3), tf.constant(2.0), {"mode": "soft"},
                 [_FLOAT32]),
    "selector_manual": (JointGroupSelector, dict(num_joints=21, num_groups=3, fixed_groups=MANUAL_GROUPS),
                        tf.constant(2.0), {}, [_FLOAT32]),
    "pose_map_head": (PoseMapHead, dict(num_joints=21, hidden=4), _x(2, 8, 8, 4), {}, None),
    "soft_argmax": (SoftArgmax2D, dict(num_joints=21, beta_init=2.0),
                    {"heatmaps": _x(2, 8, 8, 21), "depth_maps": _x(2, 8, 8, 21, seed=1)}, {}, [_FLOAT32] * 2),
    "soft_argmax_fixed": (SoftArgmax2D, dict(num_joints=21, learnable_beta=False),
                          {"heatmaps": _x(2, 8, 8, 21), "depth_maps": _x(2, 8, 8, 21, seed=1)}, {}, [_FLOAT32] * 2),
    "folded_batch_norm": (FoldedBatchNorm, {}, _x(2, 4, 4, 8), {}, None),
    "channel_affine": (ChannelAffine, dict(scale=_AFFINE[0], offset=_AFFINE[1]), _x(2, 4, 4, 8), {}, None),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_keras_contract(case, tmp_path):
    """Build, config round trip, .keras round trip and mixed_bfloat16 policy (tests/layer_test.py)."""
    layer_cls, init_kwargs, input_data, call_kwargs, bfloat16_dtypes = LAYER_CASES[case]
    run_layer_test(layer_cls, init_kwargs, input_data, tmp_path, call_kwargs=call_kwargs,
                   bfloat16_output_dtypes=bfloat16_dtypes)


def test_channel_affine_is_the_affine_map():
    scale, offset = _AFFINE
    x = _x(2, 4, 4, 8)
    np.testing.assert_allclose(ChannelAffine(scale, offset)(x).numpy(), x.numpy() * scale + offset, rtol=1e-5,
                               atol=1e-6)


def test_network_keras_contract(tmp_path):
    """LearnableGroupsNet: built without a call, config and .keras round trips with the weights,
    mixed_bfloat16 by its own policy with float32 outputs (the readouts compute in float32)."""
    config = small_config(num_groups=2)
    images = _x(1, 64, 64, 3)
    expected = run_layer_test(
        LearnableGroupsNet, dict(config=config), images, tmp_path,
        bfloat16_output_dtypes=["float32", "float32", "float32", "float32", "bfloat16", "float32", "float32"],
    )
    assert sorted(expected) == sorted(["uv", "depth", "group_uv", "group_depth", "selector", "heatmaps",
                                       "backbone_uv"])


def test_model_config_round_trip_and_weights(tmp_path):
    model = LearnableGroupsNet(small_config(num_groups=2)).build_for_input()
    clone = LearnableGroupsNet.from_config(model.get_config()).build_for_input()
    assert clone.config == model.config
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    clone.load_weights(path)
    x = tf.random.uniform((1, 64, 64, 3), seed=2)
    np.testing.assert_array_equal(model(x)["uv"].numpy(), clone(x)["uv"].numpy())


def test_building_blocks_shapes():
    x = tf.random.uniform((2, 16, 16, 8))
    assert ResidualBlock2D(4, strides=2, activate_main=True)(x).shape == (2, 8, 8, 4)
    assert UpBlock(4)(x).shape == (2, 32, 32, 4)
    assert GroupBranch(4)(x).shape == (2, 16, 16, 4)
    assert Hourglass(2, 8)(x).shape == (2, 16, 16, 8)
    heat, feat = HourglassBackbone(21, 16, 2)(tf.zeros((1, 64, 64, 3)))
    assert heat.shape == (1, 16, 16, 21) and feat.shape == (1, 16, 16, 16)
