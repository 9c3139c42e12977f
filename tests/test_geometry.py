"""lgh_tf.geometry: crops, mirroring, projection and Eq. 3, against hand-computed cases and
round trips, in numpy and (where the pipeline uses it) TensorFlow."""

import numpy as np
import pytest

from lgh_tf import geometry
from lgh_tf.data import schema


def hand_uv(root=(100.0, 100.0), spread=20.0, seed=0):
    rng = np.random.default_rng(seed)
    uv = np.asarray(root) + rng.uniform(-spread, spread, (21, 2))
    uv[schema.ROOT] = root
    return uv


def test_square_crop_matrix_by_hand():
    # Square of 96 px about (119.5, 89.5) into 64 px: zoom 2/3, the centre goes to (31.5, 31.5).
    matrix = geometry.square_crop_matrix(np.array([119.5, 89.5]), 96.0, 64)
    np.testing.assert_allclose(matrix, [[2 / 3, 0, 31.5 - 2 / 3 * 119.5], [0, 2 / 3, 31.5 - 2 / 3 * 89.5], [0, 0, 1]])
    np.testing.assert_allclose(geometry.map_points(matrix, [[119.5, 89.5], [119.5 - 47.25, 89.5]]),
                               [[31.5, 31.5], [0.0, 31.5]], atol=1e-12)


def test_keypoint_box_and_image_squares_by_hand():
    uv = np.full((21, 2), 100.0)
    uv[0] = (80.0, 130.0)  # 20 left of and 30 below the root: extent 2 * 30, bbox centre (90, 115)
    centre, side = geometry.keypoint_square(uv)
    np.testing.assert_allclose(centre, (90.0, 115.0))
    assert side == pytest.approx(1.2 * 60.0)
    _, side = geometry.keypoint_square(np.full((21, 2), 5.0))  # a point: the minimum extent
    assert side == pytest.approx(1.2 * geometry.MIN_HAND_EXTENT)
    centre, side = geometry.box_square((100, 50, 40, 80))
    np.testing.assert_allclose(centre, (119.5, 89.5))
    assert side == pytest.approx(96.0)
    np.testing.assert_allclose(geometry.box_of_square(*geometry.box_square((10, 20, 30, 30), 1.0)), (10, 20, 30, 30))
    centre, side = geometry.image_square(300, 200)
    np.testing.assert_allclose(centre, (149.5, 99.5))
    assert side == 300


def test_shift_inside_the_image():
    # 40 px square about (5, 190) in a 300x200 image: shifted to (20, 179) (hull [0, 299] x [0, 199]).
    np.testing.assert_allclose(geometry.shift_inside(np.array([5.0, 190.0]), 40.0, 300, 200), (20.0, 179.0))
    # Larger than the image along both axes: the image centre.
    np.testing.assert_allclose(geometry.shift_inside(np.array([5.0, 5.0]), 400.0, 300, 200), (149.5, 99.5))


def test_tensorflow_and_numpy_crops_agree_with_the_pipeline():
    import tensorflow as tf

    from lgh_tf.data import pipeline

    uv = hand_uv(root=(30.0, 180.0), spread=25.0)
    centre, side = geometry.keypoint_square(uv)
    expected = geometry.square_crop_matrix(geometry.shift_inside(centre, side, 320, 200), side, 64)
    got = pipeline.hand_crop_matrix(tf.constant(uv, tf.float32), tf.constant(200), tf.constant(320), 64,
                                    pipeline.AugmentConfig()).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(geometry.invert_affine(tf.constant(expected, tf.float32)).numpy(),
                               np.linalg.inv(expected), rtol=1e-5, atol=1e-4)


def test_inverse_and_mirror():
    matrix = np.array([[0.7, 0.2, 5.0], [-0.1, 0.9, -3.0], [0, 0, 1]])
    np.testing.assert_allclose(geometry.invert_affine(matrix), np.linalg.inv(matrix), atol=1e-12)
    mirror = geometry.mirror_matrix(64)
    np.testing.assert_allclose(geometry.map_points(mirror, [[0.0, 5.0], [63.0, 7.0], [31.5, 1.0]]),
                               [[63.0, 5.0], [0.0, 7.0], [31.5, 1.0]])
    np.testing.assert_allclose(mirror @ mirror, np.eye(3))


def test_mirrored_annotations_still_project_and_round_trip():
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-0.05, 0.05, (2, 21, 3)) + [0.0, 0.0, 0.5]
    K = np.array([[[300.0, 2.0, 150.0], [0.0, 310.0, 120.0], [0, 0, 1]]] * 2)
    uv = geometry.project(xyz, K)
    m_uv, m_xyz, m_K = geometry.mirror_annotations(uv, xyz, K, 320, where=[True, False])
    np.testing.assert_allclose(geometry.project(m_xyz, m_K), m_uv, atol=1e-9)
    np.testing.assert_allclose(m_uv[0, :, 0], 319 - uv[0, :, 0])
    np.testing.assert_array_equal(m_uv[1], uv[1])
    back = geometry.mirror_annotations(m_uv[0], m_xyz[0], m_K[0], 320)  # no batch axis
    for a, b in zip(back, (uv[0], xyz[0], K[0])):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_lift_inverts_projection_in_numpy_and_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    xyz = rng.uniform(-0.06, 0.06, (3, 21, 3)) + [0.02, -0.01, 0.45]
    K = np.array([[[480.0, 0.0, 200.0], [0.0, 470.0, 150.0], [0, 0, 1]]] * 3)
    uv = geometry.project(xyz, K)
    child, parent = schema.SCALE_BONE
    scale = np.linalg.norm(xyz[:, child] - xyz[:, parent], axis=-1)
    root = xyz[:, schema.ROOT, 2]
    depth = (xyz[..., 2] - root[:, None]) / scale[:, None]
    np.testing.assert_allclose(geometry.lift(uv, depth, K, scale, root), xyz, atol=1e-12)
    lifted = geometry.lift(*(tf.constant(a, tf.float32) for a in (uv, depth, K, scale, root))).numpy()
    np.testing.assert_allclose(lifted, xyz, atol=1e-5)
    # The root depth from the scale (Iqbal et al. 2018's closed form) is the true one.
    np.testing.assert_allclose(geometry.root_depth_from_scale(uv, depth, K, scale), root, atol=1e-9)


def test_default_intrinsics():
    K = geometry.default_intrinsics(641, 481, field_of_view_deg=90.0)  # half-width 320.5 at 45 degrees
    np.testing.assert_allclose(K, [[320.5, 0, 320], [0, 320.5, 240], [0, 0, 1]])


def test_render_crop_follows_a_mirrored_matrix():
    import cv2

    image = np.zeros((120, 160, 3), np.uint8)
    cv2.circle(image, (50, 70), 3, (255, 255, 255), -1)
    matrix = geometry.mirror_matrix(48) @ geometry.square_crop_matrix(np.array([60.0, 60.0]), 60.0, 48)
    crop = geometry.render_crop(image, matrix, 48).astype(np.float64)[..., 0]
    rows, cols = np.mgrid[:48, :48]
    found = np.array([(crop * cols).sum(), (crop * rows).sum()]) / crop.sum()
    # (50, 70) is 10 left of and 10 below the centre: zoom 0.8, mirrored -> 8 right, 8 below.
    np.testing.assert_allclose(found, (23.5 + 8.0, 23.5 + 8.0), atol=0.2)
