"""The realistic world's articulation: per-joint limits, abduction, thumb opposition and the
couplings of real hands.

Same skeleton and frame as ``kinematics`` (RHD joint numbers: 0 wrist; thumb 1-4, index 5-8,
middle 9-12, ring 13-16, little 17-20, each finger tip, DIP, PIP, MCP; the thumb's 4 is its CMC).

Which joints move together by construction (what a learned grouping could find):

* Rigid palm: 0, 4, 8, 12, 16, 20 keep their places in the hand frame (up to hand size and a palm
  arch of at most 1.2 cm that brings the index and little MCPs palmar), so they move with the
  global pose only.
* Within a finger (not the thumb), PIP, DIP and tip form one chain hinged at the MCP. Its flexion
  is a curl c plus a "hook" h: MCP = -20 + 110 (c + h), PIP = 105 (c - h) degrees, so the MCP and
  PIP can also move against each other (table-top and hook poses). The DIP follows the PIP through
  the shared flexor tendon, DIP = 2/3 PIP + N(0, 5 degrees), as in real fingers. Limits (degrees):
  MCP -25..90, PIP 0..110, DIP 0..80.
* Abduction: one hand-wide spread s in [-0.3, 1] fans the fingers about the middle finger
  (rest splay index +8, ring -7, little -16 degrees, times 0.4 + 0.8 s, plus N(0, 3)); a flexed
  MCP abducts less (the factor 1 - 0.7 x its flexion fraction); limit +-25 degrees.
* Couplings across fingers (the shared extensor and the juncturae tendinum of real hands): one
  latent "ulnar" curl U drives the ring (0.85 U + 0.15 u_ring) and the little finger
  (0.9 U + 0.1 u_little), which therefore move together (correlation ~0.98); the middle finger
  follows the ring partly (0.45 c_ring + 0.15 g + 0.4 u_middle); the index is nearly independent
  (0.25 g + 0.75 u_index); g is a weak hand-wide grip and every u is uniform on [0, 1].
  The hooks are coupled likewise: the ring and little fingers share one (0.9 H + 0.1 h), the middle
  takes 0.5 H + 0.5 h, the index its own (every h, H ~ N(0, 0.15)).
* Thumb: its own chain 1, 2, 3 hinged at the CMC 4, curl 0.2 g + 0.8 u_thumb with flexions
  CMC -10 + 35c (limit -15..30), MCP 55c (-5..60), IP -10 + 85c (-15..80) degrees; and an
  independent opposition o in [0, 1] that raises the metacarpal out of the palm (palmar
  abduction 25 + 40 o degrees), swings it towards the little finger (splay 45 - 25 o) and
  pronates it (0..60 degrees about its own axis) so that its pad turns to face the finger pads.

So the skeleton suggests these groups: the palm; the thumb (own axes, opposition); the index
(nearly independent); and the middle, ring and little fingers (one ulnar latent, strongest
between ring and little), i.e. the paper's manual grouping (thumb / index / others).

``grip_bias`` (used with a grasped object) closes every finger to a curl of at least 0.35-0.6.
"""

from __future__ import annotations

import numpy as np

from lgh_tf.data import schema
from lgh_tf.data.synthetic.kinematics import (
    _DEG,
    _FINGER_MCP,
    _FINGER_PHALANGES,
    _FINGER_RADII,
    _FINGER_SPLAY,
    _PALM_EDGE_RADIUS,
    _THUMB_CMC,
    _THUMB_PHALANGES,
    _THUMB_RADII,
    _WRIST_RADIAL,
    _WRIST_ULNAR,
    HandPose,
    _chain,
    _deviation,
    _rotation_about,
    _rotation_z,
)

FINGER_LIMITS = {"mcp": (-25.0, 90.0), "pip": (0.0, 110.0), "dip": (0.0, 80.0)}  # degrees
THUMB_LIMITS = ((-15.0, 30.0), (-5.0, 60.0), (-15.0, 80.0))  # CMC, MCP, IP flexion, degrees
ABDUCTION_LIMIT = 25.0  # degrees either side of the middle finger's axis


def sample_curls(rng: np.random.Generator, grip_bias: bool = False) -> dict[str, float]:
    """Per-finger curls in [0, 1] with the couplings of the module docstring."""
    grip = rng.beta(0.9, 0.9)
    u = {finger: rng.random() for finger in schema.FINGERS}
    ulnar = rng.random()
    curls = {"thumb": 0.2 * grip + 0.8 * u["thumb"], "index": 0.25 * grip + 0.75 * u["index"]}
    curls["ring"] = 0.85 * ulnar + 0.15 * u["ring"]
    curls["little"] = 0.9 * ulnar + 0.1 * u["little"]
    curls["middle"] = 0.45 * curls["ring"] + 0.15 * grip + 0.4 * u["middle"]
    if grip_bias:
        floor = rng.uniform(0.35, 0.6)
        curls = {finger: floor + (1.0 - floor) * c * 0.6 for finger, c in curls.items()}
    return curls


def finger_angles(curl, hook, spread, splay, rng) -> tuple[float, float, float, float]:
    """(abduction, MCP, PIP, DIP flexion) in radians for one finger (not the thumb)."""
    mcp = np.clip(-20.0 + 110.0 * (curl + hook) + rng.normal(0.0, 5.0), *FINGER_LIMITS["mcp"])
    pip = np.clip(105.0 * (curl - hook) + rng.normal(0.0, 6.0), *FINGER_LIMITS["pip"])
    dip = np.clip(2.0 / 3.0 * pip + rng.normal(0.0, 5.0), *FINGER_LIMITS["dip"])  # tendon coupling
    flexed = max(mcp, 0.0) / FINGER_LIMITS["mcp"][1]
    abduction = (splay * (0.4 + 0.8 * spread) + rng.normal(0.0, 3.0)) * (1.0 - 0.7 * flexed)
    abduction = np.clip(abduction, -ABDUCTION_LIMIT, ABDUCTION_LIMIT)
    return abduction * _DEG, mcp * _DEG, pip * _DEG, dip * _DEG


def thumb_frame(opposition: float) -> np.ndarray:
    """Orientation of the thumb metacarpal: columns (lateral = flexion axis, forward, nail)."""
    splay = (45.0 - 25.0 * opposition) * _DEG
    palmar = (25.0 + 40.0 * opposition) * _DEG
    forward = _deviation(splay) @ np.array([0.0, 1.0, 0.0])
    tilt_axis = np.cross([0.0, 0.0, 1.0], forward)  # rotating about it moves forward to -z
    forward = _rotation_about(tilt_axis, palmar) @ forward
    # At rest the nail faces radially and dorsally; opposition pronates it about the forward axis.
    nail = np.array([-0.75, 0.0, 0.66])
    nail = nail - nail.dot(forward) * forward
    nail = _rotation_about(forward, -60.0 * _DEG * opposition) @ (nail / np.linalg.norm(nail))
    # Flexion (about +lateral, see kinematics._flexion) must bend the thumb towards its pad (-nail).
    lateral = np.cross(forward, nail)
    return np.stack([lateral, forward, nail], axis=1)


def sample_anatomical_pose(rng: np.random.Generator, grip_bias: bool = False) -> HandPose:
    """Samples a right hand with the realistic world's articulation (module docstring)."""
    scale = rng.uniform(0.88, 1.12)
    curls = sample_curls(rng, grip_bias)
    spread = rng.uniform(-0.3, 1.0)
    ulnar_hook = rng.normal(0.0, 0.15)
    own = {finger: rng.normal(0.0, 0.15) for finger in ("index", "middle", "ring", "little")}
    hooks = {"index": own["index"], "middle": 0.5 * ulnar_hook + 0.5 * own["middle"],
             "ring": 0.9 * ulnar_hook + 0.1 * own["ring"], "little": 0.9 * ulnar_hook + 0.1 * own["little"]}
    cupping = rng.uniform(0.0, 0.012)
    radius_scale = scale * rng.uniform(0.92, 1.1)
    joints = np.zeros((schema.NUM_JOINTS, 3))
    radii = np.zeros(schema.NUM_JOINTS)

    for finger in ("index", "middle", "ring", "little"):
        tip, dip, pip, mcp = schema.FINGER_JOINTS[finger]
        mcp_position = np.array(_FINGER_MCP[finger]) * scale
        mcp_position[2] -= cupping * abs(_FINGER_MCP[finger][0]) / _FINGER_MCP["little"][0]
        hook = hooks[finger]
        abduction, *flexions = finger_angles(curls[finger], hook, spread, _FINGER_SPLAY[finger], rng)
        lengths = np.array(_FINGER_PHALANGES[finger]) * scale * rng.uniform(0.96, 1.04, size=3)
        base_direction = mcp_position / np.linalg.norm(mcp_position)
        frame = _rotation_z(np.arctan2(-base_direction[0], base_direction[1])) @ _deviation(abduction)
        joints[mcp] = mcp_position
        joints[[pip, dip, tip]] = _chain(mcp_position, frame, lengths, flexions)
        base_radius, tip_radius = _FINGER_RADII[finger]
        radii[[mcp, pip, dip, tip]] = radius_scale * np.linspace(base_radius, tip_radius, 4)

    tip, ip, thumb_mcp, cmc = schema.FINGER_JOINTS["thumb"]
    curl, opposition = curls["thumb"], rng.random()
    flexions = np.array([
        np.clip(-10.0 + 35.0 * curl + rng.normal(0.0, 5.0), *THUMB_LIMITS[0]),
        np.clip(55.0 * curl + rng.normal(0.0, 6.0), *THUMB_LIMITS[1]),
        np.clip(-10.0 + 85.0 * curl + rng.normal(0.0, 8.0), *THUMB_LIMITS[2]),
    ]) * _DEG
    cmc_position = np.array(_THUMB_CMC) * scale
    lengths = np.array(_THUMB_PHALANGES) * scale * rng.uniform(0.96, 1.04, size=3)
    joints[cmc] = cmc_position
    joints[[thumb_mcp, ip, tip]] = _chain(cmc_position, thumb_frame(opposition), lengths, flexions)
    radii[[cmc, thumb_mcp, ip, tip]] = radius_scale * np.linspace(*_THUMB_RADII, 4)
    radii[0] = radius_scale * _PALM_EDGE_RADIUS

    knuckles = [schema.FINGER_JOINTS[finger][-1] for finger in schema.FINGERS]  # CMC, 4 MCPs
    palm_outline = np.concatenate([
        np.array([_WRIST_RADIAL]) * scale, joints[knuckles], np.array([_WRIST_ULNAR]) * scale,
    ])
    # The forearm's direction (wrist flexion and deviation); its length is the renderer's.
    bend = _rotation_about([1.0, 0.0, 0.0], rng.uniform(-40.0, 40.0) * _DEG)
    bend = bend @ _rotation_z(rng.uniform(-20.0, 20.0) * _DEG)
    forearm_end = bend @ np.array([0.0, -0.075 * scale, 0.0])
    return HandPose(joints=joints, radii=radii, palm_outline=palm_outline, forearm_end=forearm_end)
