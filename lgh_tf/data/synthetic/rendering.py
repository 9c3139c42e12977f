"""The colour-coded world's drawing: shaded capsules, one colour per finger, far-to-near.

Every sample is a posed hand (``kinematics``) drawn as shaded, anti-aliased capsules (one colour per
finger, one for the palm) over a cluttered background, far-to-near by primitive so that near parts
occlude far ones. A joint is found from its finger's colour alone, which makes this world quick to
learn (smoke tests, small runs) but poses no question about joint groups; ``realistic`` does.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from lgh_tf import geometry
from lgh_tf.data import schema
from lgh_tf.data.synthetic.kinematics import (
    _FOREARM_RADIUS,
    LEFT_HAND_PROBABILITY,
    REFERENCE_SIZE,
    HandPose,
    _inside_image,
    _place_hand,
    _rotation_z,
    mirror_to_left,
    project,
    sample_hand_pose,
    sample_intrinsics,
)

# Per-pixel noise roughly doubles the PNG size, so only some images get it.
SENSOR_NOISE_PROBABILITY = 0.4

# Drawing colours, RGB. Saturated, well separated hues for the fingers; a skin tone for the palm.
FINGER_COLORS = {
    "thumb": (230, 40, 40),  # red
    "index": (240, 200, 30),  # yellow
    "middle": (40, 200, 60),  # green
    "ring": (40, 120, 240),  # blue
    "little": (200, 50, 220),  # magenta
}
PALM_COLOR = (225, 170, 130)
FOREARM_COLOR = (200, 150, 115)

# Part labels of the ``part_labels`` map returned by ``render_sample``.
PART_BACKGROUND = 0
PART_PALM = 1  # palm and forearm
PART_FINGER = {finger: 2 + i for i, finger in enumerate(schema.FINGERS)}  # 2..6

_DEG = np.pi / 180.0
_SUBPIXEL_BITS = 4  # cv2 drawing "shift": coordinates in 1/16 pixel
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Primitive:
    """One far-to-near sortable piece of the hand: a tapered capsule or a flat polygon."""

    depth: float
    points: np.ndarray  # (2, 2) capsule end points or (N, 2) polygon, pixels
    radii: np.ndarray | None  # (2,) capsule end radii in pixels; None for polygons
    color: np.ndarray  # (3,) float RGB before shading
    label: int


def _fixed_point(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _SUBPIXEL).astype(np.int32)


def _capsule_outline(ends: np.ndarray, radii: np.ndarray) -> np.ndarray | None:
    """Quad joining the outer tangents of two circles, or None if one circle contains the other."""
    direction = ends[1] - ends[0]
    length = np.linalg.norm(direction)
    if length <= abs(radii[1] - radii[0]) + 1e-6:
        return None
    direction = direction / length
    normal = np.array([-direction[1], direction[0]])
    # Tangent points of the outer common tangents of two circles of different radii.
    sine = (radii[0] - radii[1]) / length
    cosine = np.sqrt(max(1.0 - sine * sine, 0.0))
    offsets = [sine * direction + cosine * normal, sine * direction - cosine * normal]
    return np.array([
        ends[0] + radii[0] * offsets[0],
        ends[1] + radii[1] * offsets[0],
        ends[1] + radii[1] * offsets[1],
        ends[0] + radii[0] * offsets[1],
    ])


def _draw_capsule(canvas, ends, radii, color, line_type) -> None:
    """Tapered capsule: a circle at each end and the tangent quad between them."""
    for end, radius in zip(ends, radii):
        cv2.circle(
            canvas, tuple(int(c) for c in _fixed_point(end)), int(round(radius * _SUBPIXEL)),
            color, -1, line_type, _SUBPIXEL_BITS,
        )
    quad = _capsule_outline(ends, radii)
    if quad is not None:
        cv2.fillConvexPoly(canvas, _fixed_point(quad), color, line_type, _SUBPIXEL_BITS)


def _draw_primitive(image, labels, primitive: _Primitive, shade: float) -> None:
    color = tuple(float(c) for c in np.clip(primitive.color * shade, 0, 255))
    if primitive.radii is None:
        points = _fixed_point(primitive.points)
        cv2.fillPoly(image, [points], color, cv2.LINE_AA, _SUBPIXEL_BITS)
        cv2.fillPoly(labels, [points], primitive.label, cv2.LINE_8, _SUBPIXEL_BITS)
        return
    _draw_capsule(image, primitive.points, primitive.radii, color, cv2.LINE_AA)
    _draw_capsule(labels, primitive.points, primitive.radii, primitive.label, cv2.LINE_8)
    if primitive.label == PART_PALM:
        return
    # A lighter core along a finger's axis gives it a rounded, tube-like look.
    highlight = np.clip(0.7 * np.array(color) + 0.3 * 255.0 * shade, 0, 255)
    highlight = tuple(float(c) for c in highlight)
    _draw_capsule(image, primitive.points, 0.4 * primitive.radii, highlight, cv2.LINE_AA)


def _hand_primitives(hand: HandPose, camera_points, K) -> list[_Primitive]:
    """Capsules for every bone, palm triangles and the forearm, in camera space, unsorted."""
    joints, outline, forearm = camera_points
    fx = K[0, 0]
    primitives = []

    def capsule(a_point, b_point, a_radius, b_radius, color, label):
        ends = project(np.stack([a_point, b_point]), K)
        radii = fx * np.array([a_radius, b_radius]) / np.array([a_point[2], b_point[2]])
        depth = 0.5 * (a_point[2] + b_point[2])
        primitives.append(_Primitive(depth, ends, radii, np.array(color, float), label))

    def bone(parent, child, color, label):
        capsule(joints[parent], joints[child], hand.radii[parent], hand.radii[child], color, label)

    for finger in schema.FINGERS:
        chain = schema.FINGER_JOINTS[finger][::-1]  # MCP -> tip
        color, label = FINGER_COLORS[finger], PART_FINGER[finger]
        for parent, child in zip(chain[:-1], chain[1:]):
            bone(parent, child, color, label)
        # Palm side of the finger: wrist -> MCP (thumb CMC), in the palm colour.
        bone(0, chain[0], PALM_COLOR, PART_PALM)

    # Palm: a fan of triangles around its centroid, each sorted at its own depth.
    centre = outline.mean(axis=0)
    for a_point, b_point in zip(outline, np.roll(outline, -1, axis=0)):
        triangle = np.stack([centre, a_point, b_point])
        primitives.append(_Primitive(
            depth=triangle[:, 2].mean(), points=project(triangle, K), radii=None,
            color=np.array(PALM_COLOR, float), label=PART_PALM,
        ))
    if forearm is not None:
        capsule(forearm, joints[0], 1.1 * _FOREARM_RADIUS, _FOREARM_RADIUS, FOREARM_COLOR,
                PART_PALM)
    return primitives


def draw_hand(image, labels, hand: HandPose, camera_points, K, rng) -> None:
    """Paints the hand into ``image`` (uint8 RGB) and ``labels`` (uint8 part map), far to near.

    Shading depends on depth: the nearest primitive keeps its colour, the farthest is darkened by
    up to ``depth_shading``.
    """
    primitives = _hand_primitives(hand, camera_points, K)
    depths = np.array([p.depth for p in primitives])
    near, far = depths.min(), depths.max()
    depth_shading = rng.uniform(0.3, 0.55)
    for index in np.argsort(-depths, kind="stable"):
        relative = (depths[index] - near) / max(far - near, 1e-6)
        _draw_primitive(image, labels, primitives[index], 1.0 - depth_shading * relative)


def _random_color(rng, saturation_range=(0.0, 0.8), value_range=(0.15, 1.0)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation_range) * 255,
                      rng.uniform(*value_range) * 255]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def draw_background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """uint8 RGB background: gradient, low-frequency noise and random clutter shapes.

    The canvas is uint8 because OpenCV only anti-aliases (LINE_AA) on 8-bit images.
    """
    size = image_size
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    cols, rows = axis[None, :], axis[:, None]
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.float32(np.cos(angle)) * cols + np.float32(np.sin(angle)) * rows
    else:
        centre = rng.uniform(0, 1, size=2).astype(np.float32)
        ramp = np.sqrt((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = _random_color(rng), _random_color(rng)
    image = start + ramp[..., None] * (end - start)

    cells = int(rng.integers(3, 12))
    blotches = rng.normal(0.0, rng.uniform(5, 35), size=(cells, cells, 3)).astype(np.float32)
    image += cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    for _ in range(int(rng.integers(2, 14))):
        _draw_clutter_shape(image, rng, size)
    return image


def _draw_clutter_shape(image, rng, size) -> None:
    """One random circle, ellipse, rectangle, line or polygon."""
    color = tuple(float(c) for c in _random_color(rng))
    kind = rng.integers(5)
    thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, max(2, size // 40)))
    def point():
        return tuple(int(c) for c in rng.integers(-size // 8, size + size // 8, size=2))

    if kind == 0:
        cv2.circle(image, point(), int(rng.integers(3, size // 5)), color, thickness, cv2.LINE_AA)
    elif kind == 1:
        axes = tuple(int(a) for a in rng.integers(3, size // 4, size=2))
        cv2.ellipse(image, point(), axes, float(rng.uniform(0, 180)), 0, 360, color, thickness,
                    cv2.LINE_AA)
    elif kind == 2:
        cv2.rectangle(image, point(), point(), color, thickness, cv2.LINE_AA)
    elif kind == 3:
        width = int(rng.integers(1, max(2, size // 30)))
        cv2.line(image, point(), point(), color, width, cv2.LINE_AA)
    else:
        polygon = np.array([point() for _ in range(int(rng.integers(3, 7)))], np.int32)
        cv2.fillPoly(image, [polygon], color, cv2.LINE_AA)


def apply_lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global contrast, brightness, colour cast and gamma, then blur and sensor noise (uint8).

    The per-channel tone curve is applied as a lookup table.
    """
    contrast = rng.uniform(0.7, 1.2)
    brightness = rng.uniform(-30.0, 30.0)
    cast = rng.uniform(0.88, 1.12, size=3)
    gamma = rng.uniform(0.8, 1.25)
    levels = np.arange(256, dtype=np.float64)[:, None]
    curve = np.clip(((levels - 128.0) * contrast + 128.0 + brightness) * cast, 0.0, 255.0)
    curve = np.round(255.0 * (curve / 255.0) ** gamma).astype(np.uint8)  # (256, 3)
    toned = cv2.LUT(image, curve.reshape(1, 256, 3))
    if rng.random() < 0.3:
        toned = cv2.GaussianBlur(toned, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() >= SENSOR_NOISE_PROBABILITY:
        return toned
    # Luminance noise, shared by the channels (a third of the cost of per-channel noise).
    noise_level = np.float32(rng.uniform(0.5, 4.0))
    noise = rng.standard_normal(size=toned.shape[:2] + (1,), dtype=np.float32)
    return np.clip(toned + np.round(noise * noise_level), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------
def flip_annotations(uv, xyz, K, image_width: int):
    """Mirrors annotations to match a horizontal image flip (column c -> W - 1 - c)."""
    return geometry.mirror_annotations(uv, xyz, K, image_width)


def render_coded(rng: np.random.Generator, image_size: int = REFERENCE_SIZE) -> dict:
    """Renders one colour-coded sample from ``rng`` (``dataset.render_sample`` seeds it).

    Returns:
      A dict with
        image        uint8 (S, S, 3) RGB, as stored on disk (a left hand when ``flip``),
        uv           float32 (21, 2), xyz float32 (21, 3), K float32 (3, 3): annotations of the
                     image as the pipeline sees it, i.e. after the horizontal flip when ``flip``,
        visible      bool (21,), joints whose uv lies inside the image,
        flip         bool, True for left hands (see the module docstring),
        mask         uint8 (S, S), 1 on the hand (palm, fingers, forearm), in ``image``'s frame,
        part_labels  uint8 (S, S), 0 background, 1 palm/forearm, 2..6 thumb..little, ditto.
    """
    K = sample_intrinsics(rng, image_size)
    hand = sample_hand_pose(rng)
    is_left = rng.random() < LEFT_HAND_PROBABILITY
    if is_left:
        hand = mirror_to_left(hand)
    drawn_points = hand.palm_outline
    if hand.forearm_end is not None:
        drawn_points = np.concatenate([drawn_points, hand.forearm_end[None]])
    rotation, translation = _place_hand(hand.joints, drawn_points, rng, K, image_size)
    root = hand.joints[schema.ROOT]

    def to_camera(points):
        return None if points is None else (np.asarray(points) - root) @ rotation.T + translation

    xyz = to_camera(hand.joints)
    camera_points = (xyz, to_camera(hand.palm_outline), to_camera(hand.forearm_end))

    image = draw_background(rng, image_size)
    labels = np.zeros((image_size, image_size), np.uint8)
    draw_hand(image, labels, hand, camera_points, K, rng)
    image = apply_lighting(image, rng)

    uv = project(xyz, K)
    if is_left:
        uv, xyz, K = flip_annotations(uv, xyz, K, image_size)
    return dict(
        image=image,
        uv=uv.astype(np.float32),
        xyz=xyz.astype(np.float32),
        K=K.astype(np.float32),
        visible=_inside_image(uv, image_size),
        flip=bool(is_left),
        mask=(labels > 0).astype(np.uint8),
        part_labels=labels,
    )


def _open_hand(rng: np.random.Generator, tries: int = 12) -> HandPose:
    """The pose, of ``tries`` random ones, whose closest two joints are farthest apart."""
    best = None
    for _ in range(tries):
        hand = sample_hand_pose(rng)
        gaps = np.linalg.norm(hand.joints[:, None] - hand.joints[None], axis=-1) + np.eye(len(hand.joints))
        if best is None or gaps.min() > best[0]:
            best = (gaps.min(), hand)
    return best[1]


def render_sequence(num_frames: int, width: int = 640, height: int = 480, seed: int = 0, absent=(),
                    period: int | None = None) -> dict:
    """A video of one right hand moving and scaling across a ``width`` x ``height`` frame.

    Palm towards the camera, fingers up (f = 500 px, principal point at the centre). Over ``period``
    frames (default ``num_frames``) the root follows a Lissajous path over the middle 60% of the
    frame, its depth goes 0.35 -> 0.6 -> 0.35 m (the hand spans about 240 -> 140 px) and the hand
    rolls +-20 degrees. Frames listed in ``absent`` show the background only.

    Returns a dict: frames [(H, W, 3) uint8 RGB], uv [(21, 2) or None], xyz [(21, 3) or None], K.
    """
    rng = np.random.default_rng([seed, 7])
    hand = _open_hand(rng)
    K = np.array([[500.0, 0.0, (width - 1) / 2], [0.0, 500.0, (height - 1) / 2], [0.0, 0.0, 1.0]])
    background = draw_background(rng, max(width, height))[:height, :width]
    facing = np.diag([1.0, -1.0, -1.0])  # local +y (fingers) -> camera -y, palm normal -> camera
    root = hand.joints[schema.ROOT]
    absent = set(absent)
    out = {"frames": [], "uv": [], "xyz": [], "K": K}
    for t in range(num_frames):
        image = background.copy()
        if t in absent:
            out["frames"].append(image)
            out["uv"].append(None)
            out["xyz"].append(None)
            continue
        phase = 2 * np.pi * t / max(period or num_frames, 1)
        depth = 0.475 - 0.125 * np.cos(phase)
        pixel = (width / 2 + 0.3 * width * np.sin(phase), height / 2 + 0.3 * height * np.sin(2 * phase))
        rotation = _rotation_z(np.radians(20) * np.sin(phase)) @ facing
        translation = depth * np.linalg.solve(K, np.array([pixel[0], pixel[1], 1.0]))

        def to_camera(points, rotation=rotation, translation=translation):
            return None if points is None else (np.asarray(points) - root) @ rotation.T + translation

        xyz = to_camera(hand.joints)
        labels = np.zeros((height, width), np.uint8)
        draw_hand(image, labels, hand, (xyz, to_camera(hand.palm_outline), to_camera(hand.forearm_end)), K,
                  np.random.default_rng([seed, 8]))
        out["frames"].append(image)
        out["uv"].append(project(xyz, K))
        out["xyz"].append(xyz)
    return out

