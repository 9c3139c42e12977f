"""The hand model of the synthetic worlds: skeleton, pose sampling, viewpoint and placement.

Right-hand local frame, metres: origin at the wrist, +y from the wrist towards the middle MCP, +x
towards the little finger (ulnar side), +z out of the back of the hand (dorsal). Joint numbers are
RHD's: 0 wrist; thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20, each finger listed
tip, DIP, PIP, MCP (the thumb's "MCP", 4, sits at its carpometacarpal joint).

``sample_hand_pose`` is the colour-coded world's articulation (``anatomy`` holds the realistic
world's). Which joints move together by construction in it (to judge learned joint groups against):

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
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lgh_tf import geometry
from lgh_tf.data import schema

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

_DEG = np.pi / 180.0


# ---------------------------------------------------------------------------------------------
# Hand model
# ---------------------------------------------------------------------------------------------
# A finger flexes towards -z (the palm side).

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

