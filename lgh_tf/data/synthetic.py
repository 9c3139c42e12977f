"""An embedded synthetic hand data set: procedurally posed 3D hands rendered with OpenCV.

Every sample is a kinematic hand skeleton (metres, RHD joint order, see ``schema``) with sampled
joint angles, a random 3D orientation (back or palm towards the camera within VIEW_CONE_DEGREES,
any in-plane rotation) and a depth of 0.3-0.7 m, projected with a pinhole camera and drawn as
shaded, anti-aliased capsules (one colour per finger, one for the palm) over a
cluttered background, far-to-near so that near parts occlude far ones. The pose is therefore
recoverable from the pixels, which makes the set useful for smoke tests and small training runs
without downloading anything.

Which joints move together by construction (to judge learned joint groups against). Joint
numbers are RHD's: 0 wrist; thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20, each
finger listed tip, DIP, PIP, MCP (the thumb's "MCP", 4, sits at its carpometacarpal joint).

* The palm is rigid: the wrist 0, the thumb base 4 and the four MCPs 8, 12, 16, 20 keep fixed
  positions in the hand frame (up to the hand size and a palm arch of at most 1 cm that moves the
  index, ring and little MCPs towards the palm side), so their image positions change together with the
  global pose only.
* Within a finger one curl value c in [0, 1] drives every joint: MCP flexion -15 + 95c degrees,
  PIP 100c, DIP 0.6 x PIP (each with independent noise of 8-10 degrees), and the in-palm splay
  shrinks as c grows. The PIP, DIP and tip of a finger (e.g. 5, 6, 7 for the index) therefore move
  as one chain hinged at its MCP.
* The thumb is its own chain (1, 2, 3 hinged at 4) with its own curl (flexions -5 + 45c, 55c,
  -10 + 85c degrees) and an independent swing of +-20 degrees at its base about the thumb's nail
  axis (towards or away from the index): it moves independently of the fingers' geometry.
* Across fingers the curls are coupled: one hand-wide grip g ~ Beta(0.8, 0.8) gives each finger
  (thumb included) the curl g + N(0, 0.2), except that each finger ignores the grip with
  probability 0.25 and takes a uniform curl instead. No finger is coupled to a particular
  neighbour more than to the others (unlike real hands, where ring and little move together).

So a grouping that follows the skeleton would put each finger's PIP, DIP and tip together and the
rigid palm (0, 4, 8, 12, 16, 20) apart or with any finger; the thumb is the finger whose motion
differs most (its own axes and opposition), which is what the paper's manual grouping (thumb,
index, other fingers) assumes.

Determinism: sample ``index`` of ``split`` under ``seed`` is drawn from
``np.random.default_rng([seed, SPLIT_STREAMS[split], index])`` only, so it is identical bit-for-bit
whatever the number of samples generated, the worker count or the generation order, and the
train and test splits never share a random stream.

Left hands and the flip convention (RHD's: the data set stores every hand as a right hand).
About half of the samples are left hands (the right-hand model mirrored in its own x axis). The
stored PNG is the rendered left hand, unmodified. Its Records row has ``flip=True`` and
annotations that describe the *horizontally flipped* image, in which the hand is a right hand.
With W the image width and pixel centres at integer coordinates (OpenCV's convention), a
horizontal flip maps pixel column ``c`` to ``W - 1 - c``, and the annotations are mirrored exactly:

    u' = W - 1 - u,   v' = v
    (x', y', z') = (-x, y, z)
    K' = K with cx' = W - 1 - cx (fx, fy, cy unchanged; zero skew)

so that ``u' = fx * x' / z' + cx'`` still holds: the flipped image, uv, xyz and K agree.
For ``flip=False`` samples, image and annotations are used as they are.

Cache layout (generated on first use, re-used when complete)::

    cache_dir/<split>_s<seed>_n<num_samples>_<size>px_v<version>/
        000000.png ...            RGB images (written through cv2, i.e. converted to BGR first)
        annotations.npz           uv, xyz, K, visible, flip, metadata; written last, atomically

A directory whose ``annotations.npz`` is missing, unreadable or inconsistent is regenerated.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time

import cv2
import numpy as np

from lgh_tf import files, geometry
from lgh_tf.data import schema

# Bump whenever the generator changes what it draws: it is part of the cache directory name.
GENERATOR_VERSION = 2

DEFAULT_NUM_SAMPLES = {"train": 4000, "test": 500}
SPLIT_STREAMS = {"train": 0, "test": 1}
ANNOTATIONS_FILE = "annotations.npz"

# Reference image size; the intrinsics scale with ``image_size / REFERENCE_SIZE``.
REFERENCE_SIZE = 320
FOCAL_RANGE = (300.0, 350.0)  # pixels at REFERENCE_SIZE
DEPTH_RANGE = (0.3, 0.7)  # metres, of the root joint
# Viewpoints: the camera sees the back or the palm of the hand (even odds), the palm normal within
# this many degrees of the optical axis (uniform over that cone), then any in-plane rotation.
# Edge-on views (looking along the fingers or at the side of the hand) hide most joints behind
# others; leaving them out keeps every finger visible in most images, as in RHD and STB.
VIEW_CONE_DEGREES = 60.0
LEFT_HAND_PROBABILITY = 0.5
FULLY_INSIDE_PROBABILITY = 0.93  # otherwise the hand may be cut by the image border
IMAGE_MARGIN = 4.0  # pixels kept between a "fully inside" hand and the border
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
# Hand model
# ---------------------------------------------------------------------------------------------
# Right-hand local frame, metres: origin at the wrist, +y from the wrist towards the middle MCP,
# +x towards the little finger (ulnar side), +z out of the back of the hand (dorsal). A finger
# flexes towards -z (the palm side).

# MCP positions of the four fingers (RHD's "mcp" joints) for a hand of scale 1.
_FINGER_MCP = {
    "index": (-0.024, 0.083, 0.0),
    "middle": (0.0, 0.086, 0.0),
    "ring": (0.020, 0.080, 0.0),
    "little": (0.037, 0.070, 0.0),
}
# Phalanx lengths MCP->PIP, PIP->DIP, DIP->tip.
_FINGER_PHALANGES = {
    "index": (0.040, 0.024, 0.021),
    "middle": (0.045, 0.028, 0.023),
    "ring": (0.042, 0.027, 0.022),
    "little": (0.033, 0.019, 0.019),
}
# Resting in-palm splay (radial deviation, degrees) of each finger.
_FINGER_SPLAY = {"index": 8.0, "middle": 0.0, "ring": -7.0, "little": -16.0}
# Capsule radii at the MCP and at the tip.
_FINGER_RADII = {
    "index": (0.0095, 0.0078),
    "middle": (0.0098, 0.0080),
    "ring": (0.0092, 0.0075),
    "little": (0.0080, 0.0066),
}

# Thumb: RHD's "thumb_mcp" (joint 4) sits at the carpometacarpal joint near the wrist.
_THUMB_CMC = (-0.024, 0.026, -0.008)
_THUMB_PHALANGES = (0.042, 0.032, 0.027)  # metacarpal, proximal, distal (to the tip)
_THUMB_RADII = (0.0120, 0.0088)
_THUMB_REST_SPLAY = 42.0  # degrees from +y towards the radial side, in the palm plane
_THUMB_REST_PALMAR = 30.0  # degrees out of the palm plane, towards the palm side
_THUMB_PAD_DIRECTION = (0.75, 0.0, -0.66)  # roughly where the thumb pad faces at rest

# Palm outline (not annotated joints): radial and ulnar corners of the wrist.
_WRIST_RADIAL = (-0.022, 0.004, -0.002)
_WRIST_ULNAR = (0.027, 0.008, 0.0)
_FOREARM_LENGTH = 0.075
_FOREARM_RADIUS = 0.024
_PALM_EDGE_RADIUS = 0.008


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_about(axis, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis`` (right-hand rule)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def _flexion(angle: float) -> np.ndarray:
    """Local rotation that bends a segment's forward axis (+y) towards its palmar side (-z)."""
    return _rotation_x(-angle)


def _deviation(angle: float) -> np.ndarray:
    """Local rotation that swings a segment's forward axis (+y) sideways, towards -x."""
    return _rotation_z(angle)


def _random_view(rng: np.random.Generator, cone_degrees: float = VIEW_CONE_DEGREES) -> np.ndarray:
    """Hand-to-camera rotation: back (or palm) towards the camera within ``cone_degrees``.

    The hand's dorsal axis (+z, local frame) is first turned towards the camera (camera -z, the back
    of the hand seen) or away from it (the palm seen), then tilted about a random axis in the
    image plane by an angle uniform over the spherical cap, then rotated in the image plane.
    """
    face = np.diag([1.0, -1.0, -1.0]) if rng.random() < 0.5 else np.eye(3)  # back / palm
    cos_tilt = rng.uniform(np.cos(cone_degrees * _DEG), 1.0)
    axis_angle = rng.uniform(0.0, 2.0 * np.pi)
    tilt = _rotation_about((np.cos(axis_angle), np.sin(axis_angle), 0.0), np.arccos(cos_tilt))
    spin = _rotation_z(rng.uniform(0.0, 2.0 * np.pi))
    return spin @ tilt @ face


@dataclasses.dataclass
class HandPose:
    """A posed right hand in its local frame (metres) plus what is needed to draw it."""

    joints: np.ndarray  # (21, 3), RHD order
    radii: np.ndarray  # (21,) capsule radius at each joint
    palm_outline: np.ndarray  # (7, 3) palm polygon: wrist corners, thumb CMC and the four MCPs
    forearm_end: np.ndarray | None  # (3,) far end of the forearm, or None without a forearm


def _chain(origin, frame, lengths, angles) -> list[np.ndarray]:
    """Positions of the joints after ``origin`` along a planar flexion chain.

    Args:
      origin: (3,) start of the chain.
      frame: (3, 3) orientation at the origin; column 1 is the first segment's direction.
      lengths: segment lengths.
      angles: flexion of each segment relative to the previous one (radians); the first angle is
        applied at the origin.
    """
    points, position = [], np.asarray(origin, dtype=np.float64)
    for length, angle in zip(lengths, angles):
        frame = frame @ _flexion(angle)
        position = position + length * frame[:, 1]
        points.append(position)
    return points


def _sample_curls(rng: np.random.Generator) -> dict[str, float]:
    """Per-finger curl in [0, 1]: one hand-wide grip, perturbed per finger, sometimes ignored."""
    grip = rng.beta(0.8, 0.8)
    curls = {}
    for finger in schema.FINGERS:
        if rng.random() < 0.25:
            curls[finger] = rng.random()
        else:
            curls[finger] = float(np.clip(grip + rng.normal(0.0, 0.2), 0.0, 1.0))
    return curls


def _finger_angles(curl: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(MCP abduction offset, MCP flexion, PIP flexion, DIP flexion) in radians for one finger."""
    abduction = rng.normal(0.0, 6.0) * (1.0 - 0.6 * curl)
    mcp = np.clip(-15.0 + 95.0 * curl + rng.normal(0.0, 8.0), -25.0, 90.0)
    pip = np.clip(100.0 * curl + rng.normal(0.0, 10.0), 0.0, 105.0)
    dip = np.clip(0.6 * pip + rng.normal(0.0, 8.0), -5.0, 75.0)
    return abduction * _DEG, mcp * _DEG, pip * _DEG, dip * _DEG


def _thumb_rest_frame() -> np.ndarray:
    """Orientation of the thumb metacarpal at rest: columns (lateral, forward, dorsal=nail)."""
    forward = _deviation(_THUMB_REST_SPLAY * _DEG) @ np.array([0.0, 1.0, 0.0])
    tilt_axis = np.cross([0.0, 0.0, 1.0], forward)  # rotating about it moves forward to -z
    forward = _rotation_about(tilt_axis, _THUMB_REST_PALMAR * _DEG) @ forward
    pad = np.asarray(_THUMB_PAD_DIRECTION, dtype=np.float64)
    pad = pad - pad.dot(forward) * forward
    dorsal = -pad / np.linalg.norm(pad)
    lateral = np.cross(forward, dorsal)
    return np.stack([lateral, forward, dorsal], axis=1)


def sample_hand_pose(rng: np.random.Generator) -> HandPose:
    """Samples a right hand: size, per-bone jitter, joint angles; returns its local geometry."""
    scale = rng.uniform(0.9, 1.1)
    curls = _sample_curls(rng)
    cupping = rng.uniform(0.0, 0.01)  # palm arch: outer MCPs move palmar
    joints = np.zeros((schema.NUM_JOINTS, 3))
    radii = np.zeros(schema.NUM_JOINTS)
    radius_scale = scale * rng.uniform(0.9, 1.1)

    for finger in ("index", "middle", "ring", "little"):
        tip, dip, pip, mcp = schema.FINGER_JOINTS[finger]
        mcp_position = np.array(_FINGER_MCP[finger]) * scale
        mcp_position[2] -= cupping * abs(_FINGER_MCP[finger][0]) / _FINGER_MCP["little"][0]
        abduction, *flexions = _finger_angles(curls[finger], rng)
        lengths = np.array(_FINGER_PHALANGES[finger]) * scale * rng.uniform(0.97, 1.03, size=3)
        base_direction = mcp_position / np.linalg.norm(mcp_position)
        frame = _rotation_z(np.arctan2(-base_direction[0], base_direction[1]))
        frame = frame @ _deviation(_FINGER_SPLAY[finger] * _DEG * (1.0 - 0.5 * curls[finger]))
        frame = frame @ _deviation(abduction)
        joints[mcp] = mcp_position
        joints[[pip, dip, tip]] = _chain(mcp_position, frame, lengths, flexions)
        base_radius, tip_radius = _FINGER_RADII[finger]
        radii[[mcp, pip, dip, tip]] = radius_scale * np.linspace(base_radius, tip_radius, 4)

    tip, ip, thumb_mcp, cmc = schema.FINGER_JOINTS["thumb"]
    thumb_curl = curls["thumb"]
    cmc_position = np.array(_THUMB_CMC) * scale
    frame = _thumb_rest_frame() @ _deviation(rng.uniform(-20.0, 20.0) * _DEG)
    flexions = np.array([
        np.clip(-5.0 + 45.0 * thumb_curl + rng.normal(0.0, 8.0), -15.0, 50.0),
        np.clip(55.0 * thumb_curl + rng.normal(0.0, 8.0), -5.0, 65.0),
        np.clip(-10.0 + 85.0 * thumb_curl + rng.normal(0.0, 10.0), -20.0, 85.0),
    ]) * _DEG
    lengths = np.array(_THUMB_PHALANGES) * scale * rng.uniform(0.97, 1.03, size=3)
    joints[cmc] = cmc_position
    joints[[thumb_mcp, ip, tip]] = _chain(cmc_position, frame, lengths, flexions)
    radii[[cmc, thumb_mcp, ip, tip]] = radius_scale * np.linspace(*_THUMB_RADII, 4)
    radii[0] = radius_scale * _PALM_EDGE_RADIUS

    knuckles = [schema.FINGER_JOINTS[finger][-1] for finger in schema.FINGERS]  # CMC, 4 MCPs
    palm_outline = np.concatenate([
        np.array([_WRIST_RADIAL]) * scale, joints[knuckles], np.array([_WRIST_ULNAR]) * scale,
    ])
    forearm_end = None
    if rng.random() < 0.8:
        wrist_flexion = _rotation_x(rng.uniform(-35.0, 35.0) * _DEG)
        bend = wrist_flexion @ _rotation_z(rng.uniform(-20.0, 20.0) * _DEG)
        forearm_end = bend @ np.array([0.0, -_FOREARM_LENGTH * scale, 0.0])
    return HandPose(joints=joints, radii=radii, palm_outline=palm_outline, forearm_end=forearm_end)


def mirror_to_left(hand: HandPose) -> HandPose:
    """The left hand that mirrors ``hand`` in its local x axis (the left/right symmetry plane)."""
    mirror = np.array([-1.0, 1.0, 1.0])
    return HandPose(
        joints=hand.joints * mirror,
        radii=hand.radii,
        palm_outline=hand.palm_outline * mirror,
        forearm_end=None if hand.forearm_end is None else hand.forearm_end * mirror,
    )


# ---------------------------------------------------------------------------------------------
# Camera and placement
# ---------------------------------------------------------------------------------------------
def sample_intrinsics(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """A pinhole K for a square image: f in FOCAL_RANGE (scaled), principal point near centre."""
    factor = image_size / REFERENCE_SIZE
    fx = rng.uniform(*FOCAL_RANGE) * factor
    fy = fx * rng.uniform(0.98, 1.02)
    centre = (image_size - 1) / 2.0
    cx, cy = centre + rng.normal(0.0, 4.0 * factor, size=2)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


project = geometry.project


def _inside_image(uv: np.ndarray, image_size: int, margin: float = 0.0) -> np.ndarray:
    return np.all((uv >= margin) & (uv <= image_size - 1 - margin), axis=-1)


def _place_hand(joints, drawn_points, rng, K, image_size) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation and translation putting the hand in front of the camera.

    Rotates about the root joint, draws the root depth in DEPTH_RANGE and the root pixel uniformly
    in the image; retries until the joints are inside the image (with IMAGE_MARGIN), unless this
    sample is allowed to be cut by the border, and everything drawn is at least 10 cm away.

    Args:
      joints: (21, 3) local joint positions.
      drawn_points: (M, 3) other local points that get drawn (palm outline, forearm).

    Returns:
      (rotation (3, 3), translation (3,)) mapping local points p to R @ (p - root) + t.
    """
    root = joints[schema.ROOT]
    rotation = _random_view(rng)
    centred = (joints - root) @ rotation.T
    centred_drawn = (drawn_points - root) @ rotation.T
    require_inside = rng.random() < FULLY_INSIDE_PROBABILITY
    for _ in range(50):
        depth = rng.uniform(*DEPTH_RANGE)
        root_pixel = rng.uniform(0.0, image_size - 1, size=2)
        ray = np.linalg.solve(K, np.array([root_pixel[0], root_pixel[1], 1.0]))
        translation = ray * depth
        camera_points = centred + translation
        if min(camera_points[:, 2].min(), (centred_drawn + translation)[:, 2].min()) < 0.1:
            continue
        inside = _inside_image(project(camera_points, K), image_size, IMAGE_MARGIN)
        if inside.all() or (not require_inside and inside[schema.ROOT]):
            return rotation, translation
    # Far and centred: only reached for very unlucky draws.
    centre_ray = np.linalg.solve(K, np.array([K[0, 2], K[1, 2], 1.0]))
    return rotation, centre_ray * DEPTH_RANGE[1]


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


def render_sample(seed: int, index: int, image_size: int = REFERENCE_SIZE,
                  split: str = "train") -> dict:
    """Renders sample ``index`` of ``split`` under ``seed``.

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
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], index])
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


# ---------------------------------------------------------------------------------------------
# The cached data set
# ---------------------------------------------------------------------------------------------
def split_directory(cache_dir, split: str, num_samples: int, seed: int, image_size: int) -> str:
    """Where a split's PNGs and annotations live; versioned so generator changes regenerate."""
    name = f"{split}_s{seed}_n{num_samples}_{image_size}px_v{GENERATOR_VERSION}"
    return os.path.join(os.fspath(cache_dir), name)


def _image_name(index: int) -> str:
    return f"{index:06d}.png"


def _generate_one(job) -> dict:
    """Renders one sample, writes its PNG, returns its annotations (a multiprocessing task)."""
    directory, split, seed, index, image_size = job
    sample = render_sample(seed, index, image_size, split)
    files.write_png(os.path.join(directory, _image_name(index)), sample["image"])
    return {key: sample[key] for key in ("uv", "xyz", "K", "visible", "flip")}


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _generate_split(directory, split, num_samples, seed, image_size, num_workers) -> None:
    """Renders every sample of a split into ``directory``, then writes the annotations."""
    os.makedirs(directory, exist_ok=True)
    stale = os.path.join(directory, ANNOTATIONS_FILE)
    if os.path.exists(stale):
        os.remove(stale)
    jobs = [(directory, split, seed, index, image_size) for index in range(num_samples)]
    logging.info("Generating %d synthetic %s samples (seed %d, %dpx) into %s with %d worker(s).",
                 num_samples, split, seed, image_size, directory, num_workers)
    start = time.perf_counter()
    results = []
    log_every = max(1, num_samples // 10)

    def collect(iterator):
        for result in iterator:
            results.append(result)
            if len(results) % log_every == 0 or len(results) == num_samples:
                elapsed = time.perf_counter() - start
                logging.info("  %d/%d samples, %.0f samples/s", len(results), num_samples,
                             len(results) / max(elapsed, 1e-9))

    if num_workers > 1:
        # "spawn": safe even when the parent has TensorFlow's threads running.
        context = multiprocessing.get_context("spawn")
        with context.Pool(num_workers, initializer=_worker_init) as pool:
            collect(pool.imap(_generate_one, jobs, chunksize=16))  # ordered: results[i] is i
    else:
        collect(map(_generate_one, jobs))

    annotations = {key: np.stack([r[key] for r in results]) for key in results[0]}
    metadata = dict(version=GENERATOR_VERSION, seed=seed, split=split, image_size=image_size,
                    num_samples=num_samples)
    with files.atomic_path(os.path.join(directory, ANNOTATIONS_FILE)) as temporary, open(temporary, "wb") as f:
        np.savez(f, **annotations, **{f"meta_{k}": v for k, v in metadata.items()})
    elapsed = time.perf_counter() - start
    logging.info("Generated %d samples in %.1f s (%.0f samples/s).", num_samples, elapsed,
                 num_samples / max(elapsed, 1e-9))


def _load_annotations(directory, split, num_samples, seed, image_size) -> dict | None:
    """The cached annotations if they are complete and match the request, else None."""
    path = os.path.join(directory, ANNOTATIONS_FILE)
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception:  # missing, truncated or corrupt: regenerate  pylint: disable=broad-except
        return None
    expected = dict(version=GENERATOR_VERSION, seed=seed, split=split, image_size=image_size,
                    num_samples=num_samples)
    for key, value in expected.items():
        if f"meta_{key}" not in arrays or arrays[f"meta_{key}"].item() != value:
            return None
    if any(arrays.get(key, np.empty(0)).shape[:1] != (num_samples,)
           for key in ("uv", "xyz", "K", "visible", "flip")):
        return None
    if not all(os.path.exists(os.path.join(directory, _image_name(i))) for i in range(num_samples)):
        return None
    return arrays


def load_synthetic(cache_dir, split: str = "train", num_samples: int | None = None, seed: int = 0,
                   image_size: int = REFERENCE_SIZE, num_workers: int | None = None
                   ) -> schema.Records:
    """The synthetic split as Records, generating it into ``cache_dir`` on first use.

    Args:
      cache_dir: root of the cache; the split lives in ``split_directory(...)`` below it.
      split: "train" or "test" (independent random streams).
      num_samples: defaults to DEFAULT_NUM_SAMPLES[split] (4000 train, 500 test).
      seed: data set seed; (seed, split, index) determines a sample completely.
      image_size: side of the square images in pixels (intrinsics scale with it).
      num_workers: generation processes; default 2 (when available) for 64+ samples, else 1.
        The output does not depend on it.

    Returns:
      Records with absolute PNG paths; ``flip`` marks left hands whose annotations describe the
      horizontally flipped image (see the module docstring).
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[split]
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1) if num_samples >= 64 else 1
    directory = os.path.abspath(split_directory(cache_dir, split, num_samples, seed, image_size))

    arrays = _load_annotations(directory, split, num_samples, seed, image_size)
    if arrays is None:
        _generate_split(directory, split, num_samples, seed, image_size, num_workers)
        arrays = _load_annotations(directory, split, num_samples, seed, image_size)
        if arrays is None:
            raise RuntimeError(f"Synthetic data generation into {directory} did not complete.")
    else:
        logging.info("Using cached synthetic %s split from %s.", split, directory)

    image_paths = np.array([os.path.join(directory, _image_name(i)) for i in range(num_samples)])
    return schema.Records(
        image_path=image_paths,
        uv=arrays["uv"].astype(np.float32),
        xyz=arrays["xyz"].astype(np.float32),
        K=arrays["K"].astype(np.float32),
        visible=arrays["visible"].astype(bool),
        flip=arrays["flip"].astype(bool),
        mask_path=None,
        name=f"synthetic_{split}",
    )
