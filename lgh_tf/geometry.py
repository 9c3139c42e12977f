"""Image and camera geometry shared by training, evaluation, prediction, video and serving.

One place for: the square hand crop (about the keypoints, a box or the whole image), the affine
map to the S x S network input, mirroring (left hand -> right hand), pinhole projection, the lift of
uv + relative depth to camera 3D (paper Eq. 3) and the root depth from the hand scale.

Conventions. Pixel ``(row r, column c)`` has its centre at ``(u, v) = (c, r)`` (integer
coordinates), so a horizontal mirror maps ``u -> W - 1 - u`` and an S-pixel output has its centre
at ``(S - 1) / 2``. A crop is described by ``crop_from_image``, the 3x3 affine that maps original
pixels to crop pixels; crop intrinsics are ``crop_from_image @ K``.

The crop functions take numpy arrays or TensorFlow tensors (the tf.data pipeline runs them in its
graph, under XLA) and answer in kind; the rest is numpy (float64).
"""

from __future__ import annotations

import types

import numpy as np

from lgh_tf.data import schema

# The training crop: side = CROP_MARGIN * max(2 * max_j max(|u_j - u_root|, |v_j - v_root|),
# MIN_HAND_EXTENT) about the keypoints' bounding box (as the authors' data loader).
CROP_MARGIN = 1.2
MIN_HAND_EXTENT = 30.0
# Middle MCP-PIP length (the reference bone, schema.SCALE_BONE) of an average adult hand, metres:
# the scale used when the user gives none.
NOMINAL_SCALE_M = 0.04
# Root depth used when the scale-based estimate fails (degenerate 2D bone), metres.
FALLBACK_ROOT_DEPTH_M = 0.6
# Horizontal field of view assumed when the camera is unknown (a typical phone main camera or
# webcam: 26-28 mm equivalent lens, about 65 degrees across the longer image side).
DEFAULT_FIELD_OF_VIEW_DEG = 65.0


def _ops(*values, keep_float64=False):
    """The array namespace of ``values``: TensorFlow (float32; float64 with ``keep_float64`` when
    a tensor is float64) when any is a tf tensor, else numpy."""
    tensors = [v for v in values if type(v).__module__.startswith("tensorflow")]
    if tensors:
        import tensorflow as tf

        wide = tf.float64 if keep_float64 and any(v.dtype == tf.float64 for v in tensors) else tf.float32
        return types.SimpleNamespace(
            tf=True, abs=tf.abs, max=tf.reduce_max, min=tf.reduce_min, maximum=tf.maximum,
            clip=tf.clip_by_value, where=tf.where, stack=tf.stack, concat=tf.concat,
            ones_like=tf.ones_like, reshape=tf.reshape, solve=tf.linalg.solve,
            transpose=tf.linalg.matrix_transpose,
            float=lambda x: tf.cast(x, wide), const=lambda x: tf.constant(x, wide))
    return types.SimpleNamespace(
        tf=False, abs=np.abs, max=np.max, min=np.min, maximum=np.maximum, clip=np.clip,
        where=np.where, stack=np.stack, concat=np.concatenate, ones_like=np.ones_like,
        reshape=np.reshape, solve=np.linalg.solve, transpose=lambda x: np.swapaxes(x, -1, -2),
        float=lambda x: np.asarray(x, np.float64),
        const=lambda x: np.asarray(x, np.float64))


# ---------------------------------------------------------------------------------------------
# Crop squares: (centre (2,), side)
# ---------------------------------------------------------------------------------------------


def keypoint_square(uv, margin=CROP_MARGIN, min_extent=MIN_HAND_EXTENT):
    """The training crop about 21 keypoints ``uv`` (21, 2): centred on their bounding box, side
    ``margin * max(2 * max_j max(|u_j - u_root|, |v_j - v_root|), min_extent)``."""
    ops = _ops(uv)
    uv = ops.float(uv)
    extent = ops.maximum(2.0 * ops.max(ops.abs(uv - uv[schema.ROOT])), min_extent)
    return 0.5 * (ops.min(uv, axis=0) + ops.max(uv, axis=0)), margin * extent


def points_square(points, margin, min_side=0.0):
    """A square about any points (N, 2) (numpy): centred on their bounding box, side
    ``max(margin * longer box side, min_side)`` (e.g. Dexter+Object's fingertips)."""
    points = np.asarray(points, np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    return 0.5 * (low + high), max(margin * float(np.max(high - low)), float(min_side))


def box_square(box, margin=CROP_MARGIN):
    """The square about a box ``(x, y, w, h)`` covering pixel columns ``x .. x + w - 1`` and rows
    ``y .. y + h - 1``: centre ``(x + (w - 1) / 2, y + (h - 1) / 2)``, side ``margin * max(w, h)``."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + (w - 1) / 2.0, y + (h - 1) / 2.0]), margin * max(w, h)


def image_square(width, height):
    """The whole image padded to a square: centre of the image, side ``max(W, H)``."""
    ops = _ops(width, height)
    size = ops.stack([ops.float(width), ops.float(height)])
    return 0.5 * (size - 1.0), ops.max(size)


def box_of_square(centre, side):
    """(x, y, w, h) of a square, the inverse of ``box_square`` with margin 1."""
    centre = np.asarray(centre, np.float64)
    return [float(centre[0] - (side - 1) / 2.0), float(centre[1] - (side - 1) / 2.0), float(side), float(side)]


def shift_inside(centre, side, width, height):
    """Border rule "shift, then pad": along each axis a square that fits inside the image (the hull
    ``[0, size - 1]`` of its pixel centres) is shifted inside it, so bilinear sampling never blends
    in the zero fill where the image has content; a larger one is centred on the image."""
    ops = _ops(centre, side, width, height)
    last = ops.stack([ops.float(width), ops.float(height)]) - 1.0
    low, high = 0.5 * side, last - 0.5 * side
    return ops.where(side <= last, ops.clip(centre, low, ops.maximum(low, high)), 0.5 * last)


def square_crop_matrix(centre, side, output_size):
    """3x3 ``crop_from_image`` for the square of ``side`` px about ``centre``, resized to S x S."""
    ops = _ops(centre, side)
    zoom = output_size / side
    shift = 0.5 * (output_size - 1.0) - zoom * ops.float(centre)
    zero = zoom * 0.0
    return ops.stack([ops.stack([zoom, zero, shift[0]]), ops.stack([zero, zoom, shift[1]]),
                      ops.const([0.0, 0.0, 1.0])])


def invert_affine(matrix):
    """Inverse of a 3x3 affine matrix (last row 0 0 1), in closed form (XLA-friendly)."""
    ops = _ops(matrix)
    a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    d, e, f = matrix[1, 0], matrix[1, 1], matrix[1, 2]
    inv_det = 1.0 / (a * e - b * d)
    a_, b_, d_, e_ = e * inv_det, -b * inv_det, -d * inv_det, a * inv_det
    return ops.stack([ops.stack([a_, b_, -(a_ * c + b_ * f)]), ops.stack([d_, e_, -(d_ * c + e_ * f)]),
                      ops.const([0.0, 0.0, 1.0])])


def mirror_matrix(width):
    """3x3 horizontal mirror of an image ``width`` pixels wide: ``u -> W - 1 - u`` (its own inverse)."""
    ops = _ops(width)
    w = ops.float(width)
    return ops.stack([ops.stack([w * 0.0 - 1.0, w * 0.0, w - 1.0]), ops.const([0.0, 1.0, 0.0]),
                      ops.const([0.0, 0.0, 1.0])])


def map_points(matrix, points):
    """Applies a 3x3 affine map (or a batch (N, 3, 3)) to points (..., 2) (batch: (N, J, 2))."""
    ops = _ops(matrix, points)
    if ops.tf:
        import tensorflow as tf

        return tf.linalg.matvec(matrix[..., None, :2, :2], points) + matrix[..., None, :2, 2]
    matrix, points = np.asarray(matrix, np.float64), np.asarray(points, np.float64)
    if matrix.ndim == 3:
        return np.einsum("nab,njb->nja", matrix[:, :2, :2], points) + matrix[:, None, :2, 2]
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def render_crop(image, crop_from_image, output_size):
    """The S x S crop of an (H, W, C) image (numpy, uint8 in, uint8 out), bilinear with zero fill;
    strong down-scaling is area-averaged first (cv2.INTER_AREA) so that a large photo does not
    alias."""
    import cv2

    matrix = np.asarray(crop_from_image, np.float64)
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    if zoom < 0.5:
        height, width = image.shape[:2]
        new_w, new_h = max(1, int(round(width * zoom))), max(1, int(round(height * zoom)))
        small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx, fy = new_w / width, new_h / height
        # resized pixel centre u' = (u + 0.5) f - 0.5
        resized_from_image = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])
        matrix = matrix @ np.linalg.inv(resized_from_image)
        image = small
    return cv2.warpAffine(image, matrix[:2], (output_size, output_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# ---------------------------------------------------------------------------------------------
# Cameras (numpy, float64)
# ---------------------------------------------------------------------------------------------


def project(xyz, K):
    """Pinhole projection of camera points (..., J, 3) with ``K`` (3, 3) or (..., 3, 3) to pixels
    (..., J, 2) (u = column, v = row)."""
    xyz = np.asarray(xyz, np.float64)
    K = np.asarray(K, np.float64)
    homogeneous = np.einsum("...ij,...kj->...ki", K, xyz) if K.ndim > 2 else xyz @ K.T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def mirror_annotations(uv, xyz, K, width, where=None):
    """Annotations of the horizontally mirrored image (a left hand becomes a right hand).

    ``u -> W - 1 - u``, ``x -> -x``, ``cx -> W - 1 - cx``, skew ``-> -skew``; fx, fy, cy and v are
    unchanged, so ``u = fx x / z + cx`` still holds. Arrays (..., 21, 2), (..., 21, 3), (..., 3, 3);
    with ``where`` (N,), rows where it is False are returned unchanged. Returns new arrays.
    """
    uv, xyz, K = (np.array(a, dtype=np.float64) for a in (uv, xyz, K))
    rows = slice(None) if where is None else np.asarray(where, dtype=bool)
    if where is None:
        uv, xyz, K = uv[None], xyz[None], K[None]
    uv[rows, ..., 0] = (width - 1) - uv[rows, ..., 0]
    xyz[rows, ..., 0] = -xyz[rows, ..., 0]
    K[rows, ..., 0, 2] = (width - 1) - K[rows, ..., 0, 2]
    K[rows, ..., 0, 1] = -K[rows, ..., 0, 1]
    if where is None:
        uv, xyz, K = uv[0], xyz[0], K[0]
    return uv, xyz, K


def default_intrinsics(width, height, field_of_view_deg=DEFAULT_FIELD_OF_VIEW_DEG):
    """Camera matrix of an unknown camera: square pixels, principal point at the image centre,
    horizontal field of view ``field_of_view_deg`` across the longer image side."""
    focal = 0.5 * max(width, height) / np.tan(np.radians(field_of_view_deg) / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def back_project(uv, intrinsics):
    """Rays K^-1 [u, v, 1]^T: uv (N, J, 2), intrinsics (N, 3, 3) (any invertible matrix with last
    row (0, 0, 1), e.g. a rotated crop's) -> (N, J, 3). numpy float64, or tf float32 (float64 for
    float64 tensors: a float64 network's)."""
    ops = _ops(uv, intrinsics, keep_float64=True)
    uv, intrinsics = ops.float(uv), ops.float(intrinsics)
    homogeneous = ops.concat([uv, ops.ones_like(uv[..., :1])], axis=-1)
    return ops.transpose(ops.solve(intrinsics, ops.transpose(homogeneous)))


def lift(uv, depth, intrinsics, scale, root_depth):
    """Eq. 3: [x, y, z]^T = (s0 * z_rel + z_root) * K^-1 [u, v, 1]^T -> (N, J, 3).

    uv (N, J, 2) pixels of the image that ``intrinsics`` (N, 3, 3) describe; depth (N, J) relative
    depth; scale and root_depth (N,) in the output unit. numpy float64, or tf float32 when any
    input is a tensor (the training loss and the exported ``predict_xyz`` signature; float64 for
    a float64 network's tensors).
    """
    ops = _ops(uv, depth, intrinsics, scale, root_depth, keep_float64=True)
    z = ops.reshape(ops.float(scale), [-1, 1]) * ops.float(depth) + ops.reshape(ops.float(root_depth), [-1, 1])
    return z[..., None] * back_project(uv, intrinsics)  # Eq. 2: z = s0 * z_rel + z_root


def root_depth_from_scale(uv, depth, intrinsics, scale):
    """Root depth at which the predicted middle MCP-PIP bone has length ``scale`` (N,).

    With rays r = K^-1 [u, v, 1] and Eq. 3, X_j = (s d_j + z_root) r_j, so
    |X_12 - X_11| = s is a quadratic in z_root (the scale-normalised 2.5D closed form of Iqbal
    et al. 2018, for our reference bone); the larger root is the hand in front of the camera.
    Without a real root (the 2D bone too long for the scale) the closest depth is used; degenerate
    cases fall back to ``FALLBACK_ROOT_DEPTH_M`` (times scale / ``NOMINAL_SCALE_M``).
    """
    rays = back_project(uv, intrinsics)
    depth = np.asarray(depth, np.float64)
    scale = np.asarray(scale, np.float64)
    child, parent = schema.SCALE_BONE
    a = rays[:, child] - rays[:, parent]
    b = scale[:, None] * (depth[:, child, None] * rays[:, child] - depth[:, parent, None] * rays[:, parent])
    qa = np.sum(a * a, axis=-1)
    qb = 2.0 * np.sum(a * b, axis=-1)
    qc = np.sum(b * b, axis=-1) - scale**2
    with np.errstate(invalid="ignore", divide="ignore"):
        disc = qb * qb - 4.0 * qa * qc
        root = (-qb + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * qa)
    fallback = FALLBACK_ROOT_DEPTH_M * scale / NOMINAL_SCALE_M
    bad = ~np.isfinite(root) | (root <= 0) | (qa < 1e-12)
    return np.where(bad, fallback, root)
