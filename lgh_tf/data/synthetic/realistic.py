"""The realistic world: skin-coloured hands, z-buffered, lit, occluded and photographed.

What a sample is (each item drawn anew per sample from its own random stream):

* the hand of ``anatomy`` (joint limits, abduction, thumb opposition, ring/little and middle/ring
  couplings: see that module for which joints move together by construction), posed by
  ``kinematics`` (viewpoint, depth, left hands mirrored);
* one skin tone for the whole hand and forearm (light to dark, no per-finger colour), with a
  low-frequency blotch texture; the forearm is bare or in a sleeve of a random cloth colour;
* a per-pixel z-buffer over tapered capsules (phalanges, forearm, palm edges, objects) and the
  palm's flat face, so that fingers occlude each other and the palm as in a photograph;
* one directional light (direction, intensity, tint), ambient light, a Blinn-Phong specular
  highlight of random strength and a soft cast shadow of the hand on the background;
* in part of the samples an object: held in the palm (a ball or a bar, the fingers closed around
  it) or passing between the hand and the camera (a stick or a ball);
* camera effects: tone curve and colour cast, Gaussian or motion blur, sensor noise, JPEG.

Per joint the sample also says whether it is hidden: ``self_occluded`` (the front-most surface at
the joint's pixel belongs to a part of the hand that does not carry the joint) or
``object_occluded`` (the object is in front). ``visible`` keeps the meaning it has in every
world: the joint projects inside the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from lgh_tf.data import schema
from lgh_tf.data.synthetic import rendering
from lgh_tf.data.synthetic.anatomy import sample_anatomical_pose
from lgh_tf.data.synthetic.kinematics import (
    LEFT_HAND_PROBABILITY,
    _inside_image,
    _place_hand,
    mirror_to_left,
    project,
    sample_intrinsics,
)

GRASP_PROBABILITY = 0.15
PASSING_OBJECT_PROBABILITY = 0.2
FOREARM_LENGTH = (0.18, 0.3)  # metres, clipped in front of the camera
FOREARM_RADII = (0.026, 0.032)  # at the wrist, at the far end
PALM_HALF_THICKNESS = 0.012
# Skin albedo, RGB in [0, 1], from light to dark; a sample interpolates between neighbours.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.90, 0.70, 0.57], [0.80, 0.58, 0.44], [0.63, 0.43, 0.30],
    [0.45, 0.29, 0.20], [0.30, 0.19, 0.13],
])

# Primitive identities in the z-buffer; a finger bone's identity is BONE_BASE + its BONES index.
ID_PALM, ID_FOREARM, ID_SLEEVE, ID_OBJECT = 0, 1, 2, 3
BONE_BASE = 4
_BONE_INDEX = {bone: i for i, bone in enumerate(schema.BONES)}
PART_OBJECT = 7  # part label of the object (rendering's labels are 0 background, 1 palm, 2..6)


class ZBuffer:
    """Depth, front-most primitive identity and surface normal per pixel (camera frame: x right,
    y down, z forward); primitives are drawn over their bounding boxes with numpy."""

    def __init__(self, height: int, width: int):
        self.depth = np.full((height, width), np.inf, np.float32)
        self.ident = np.full((height, width), -1, np.int16)
        self.normal = np.zeros((height, width, 3), np.float32)
        self.bounds = [width, height, 0, 0]  # x0, y0, x1, y1 of everything drawn (exclusive end)

    def region(self, pad: int = 0) -> tuple[slice, slice] | None:
        """(rows, columns) of the drawn pixels' bounding box grown by ``pad``; None if empty."""
        height, width = self.depth.shape
        x0, y0, x1, y1 = self.bounds
        if x0 >= x1:
            return None
        return (slice(max(y0 - pad, 0), min(y1 + pad, height)),
                slice(max(x0 - pad, 0), min(x1 + pad, width)))

    def _box(self, low, high):
        height, width = self.depth.shape
        x0, y0 = max(int(np.floor(low[0])), 0), max(int(np.floor(low[1])), 0)
        x1, y1 = min(int(np.ceil(high[0])) + 1, width), min(int(np.ceil(high[1])) + 1, height)
        if x0 >= x1 or y0 >= y1:
            return None
        bounds = self.bounds
        self.bounds = [min(bounds[0], x0), min(bounds[1], y0), max(bounds[2], x1), max(bounds[3], y1)]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        return (slice(y0, y1), slice(x0, x1)), xs, ys

    def _write(self, window, z, inside, normal, ident):
        closer = inside & (z < self.depth[window])
        self.depth[window][closer] = z[closer]
        self.ident[window][closer] = ident
        self.normal[window][closer] = normal[closer]

    def capsule(self, a, b, radius_a, radius_b, K, ident) -> None:
        """A tapered capsule between camera points ``a`` and ``b`` (metres), its camera-facing
        surface: depth = axis depth - radius x sqrt(1 - (d / r)^2) at 2D distance d from the
        projected axis (r: the projected radius there)."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        (ua, va), (ub, vb) = project(np.stack([a, b]), K)
        ra, rb = K[0, 0] * radius_a / a[2], K[0, 0] * radius_b / b[2]
        box = self._box((min(ua - ra, ub - rb), min(va - ra, vb - rb)),
                        (max(ua + ra, ub + rb), max(va + ra, vb + rb)))
        if box is None:
            return
        window, xs, ys = box
        du, dv = ub - ua, vb - va
        length2 = du * du + dv * dv
        if length2 > 1e-9:
            t = np.clip(((xs - ua) * du + (ys - va) * dv) / length2, 0.0, 1.0).astype(np.float32)
        else:
            t = np.zeros(np.broadcast_shapes(xs.shape, ys.shape), np.float32)
        ox, oy = xs - (ua + t * du), ys - (va + t * dv)
        r = ra + t * (rb - ra)
        q = (ox * ox + oy * oy) / (r * r)
        inside = q < 1.0
        h = np.sqrt(np.maximum(1.0 - q, 0.0))
        z = a[2] + t * (b[2] - a[2]) - (radius_a + t * (radius_b - radius_a)) * h
        self._write(window, z, inside, np.stack([ox / r, oy / r, -h], axis=-1), ident)

    def triangle(self, corners, normal, K, ident, centre=None, roundness=0.0) -> None:
        """A flat triangle (camera points (3, 3)); depth interpolated over the image triangle.
        ``roundness`` tilts the normal away from ``centre`` (pixels) for a slightly domed look."""
        uv = project(np.asarray(corners, np.float64), K)
        box = self._box(uv.min(axis=0), uv.max(axis=0))
        if box is None:
            return
        window, xs, ys = box
        basis = np.array([uv[1] - uv[0], uv[2] - uv[0]]).T
        if abs(np.linalg.det(basis)) < 1e-6:
            return
        inverse = np.linalg.inv(basis)
        px, py = xs - uv[0, 0], ys - uv[0, 1]
        w1 = inverse[0, 0] * px + inverse[0, 1] * py
        w2 = inverse[1, 0] * px + inverse[1, 1] * py
        inside = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)
        depths = np.asarray(corners)[:, 2]
        z = depths[0] + w1 * (depths[1] - depths[0]) + w2 * (depths[2] - depths[0])
        shape = z.shape
        n = np.broadcast_to(np.asarray(normal, np.float32), shape + (3,)).copy()
        if centre is not None and roundness:
            n[..., 0] += roundness * np.broadcast_to(xs - centre[0], shape)
            n[..., 1] += roundness * np.broadcast_to(ys - centre[1], shape)
            n /= np.linalg.norm(n, axis=-1, keepdims=True)
        self._write(window, z.astype(np.float32), inside, n, ident)


def joint_owners(joint: int) -> set[int]:
    """Identities of the primitives that carry ``joint``: its bones, and the palm for the wrist,
    the thumb's CMC and the MCPs (the forearm too for the wrist)."""
    owners = {BONE_BASE + i for (parent, child), i in _BONE_INDEX.items() if joint in (parent, child)}
    if joint == 0:
        owners |= {ID_PALM, ID_FOREARM}
    if joint in [schema.FINGER_JOINTS[finger][-1] for finger in schema.FINGERS]:
        owners.add(ID_PALM)
    return owners


def joint_occlusion(zbuffer: ZBuffer, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(self_occluded, object_occluded) bool (21,): what is front-most at each joint's pixel
    (joints outside the image are neither)."""
    height, width = zbuffer.depth.shape
    self_occluded = np.zeros(len(uv), bool)
    object_occluded = np.zeros(len(uv), bool)
    for joint, (u, v) in enumerate(uv):
        col, row = int(round(u)), int(round(v))
        if not (0 <= col < width and 0 <= row < height):
            continue
        front = int(zbuffer.ident[row, col])
        if front == ID_OBJECT:
            object_occluded[joint] = True
        elif front >= 0 and front not in joint_owners(joint):
            self_occluded[joint] = True
    return self_occluded, object_occluded


def _skin_albedo(rng) -> np.ndarray:
    position = rng.uniform(0.0, len(SKIN_TONES) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(SKIN_TONES) - 1)
    tone = SKIN_TONES[low] + (position - low) * (SKIN_TONES[high] - SKIN_TONES[low])
    return np.clip(tone * rng.uniform(0.95, 1.05, size=3), 0.0, 1.0)


def _hand_to_zbuffer(zbuffer, hand, joints, outline, forearm_end, K, rng, sleeve) -> None:
    """Draws the palm, the fingers and the forearm (camera frame) into ``zbuffer``."""
    for (parent, child), index in _BONE_INDEX.items():
        if parent == 0 and child != schema.FINGER_JOINTS["thumb"][-1]:
            continue  # wrist -> finger MCP lies inside the palm
        zbuffer.capsule(joints[parent], joints[child], hand.radii[parent], hand.radii[child], K,
                        BONE_BASE + index)
    # Palm: a slab of PALM_HALF_THICKNESS either side of its outline, its faces flat, its edges round.
    centre = outline.mean(axis=0)
    normal = np.cross(outline[3] - outline[0], outline[-2] - outline[0])
    normal /= np.linalg.norm(normal)
    if normal[2] > 0:  # the face towards the camera
        normal = -normal
    face = outline + PALM_HALF_THICKNESS * normal
    face_centre = centre + PALM_HALF_THICKNESS * normal
    centre_uv = project(face_centre[None], K)[0]
    roundness = 0.6 / max(K[0, 0] * 0.04 / face_centre[2], 1.0)
    for a_point, b_point in zip(face, np.roll(face, -1, axis=0)):
        zbuffer.triangle(np.stack([face_centre, a_point, b_point]), normal, K, ID_PALM,
                         centre_uv, roundness)
    for a_point, b_point in zip(outline, np.roll(outline, -1, axis=0)):
        zbuffer.capsule(a_point, b_point, PALM_HALF_THICKNESS, PALM_HALF_THICKNESS, K, ID_PALM)
    # Forearm: from the wrist away from the fingers, clipped in front of the camera.
    wrist = joints[0]
    direction = forearm_end - wrist
    direction /= np.linalg.norm(direction)
    length = rng.uniform(*FOREARM_LENGTH)
    if direction[2] < 0:
        length = min(length, max((wrist[2] - 0.08) / -direction[2], 0.03))
    cuff = rng.uniform(0.03, 0.12) if sleeve else length
    radii = np.array(FOREARM_RADII)
    zbuffer.capsule(wrist, wrist + min(cuff, length) * direction, radii[0],
                    np.interp(min(cuff, length), [0, FOREARM_LENGTH[1]], radii), K, ID_FOREARM)
    if sleeve and cuff < length:
        zbuffer.capsule(wrist + cuff * direction, wrist + length * direction, 1.25 * radii[0],
                        1.3 * radii[1], K, ID_SLEEVE)


def _object_capsule(rng, grasped, joints):
    """(a, b, radius) of the object in the camera frame, or None."""
    if grasped is not None:
        return grasped
    target = joints[rng.integers(len(joints))] + rng.normal(0.0, 0.015, size=3)
    depth = target[2] - rng.uniform(0.03, 0.12)
    target = target * depth / target[2]  # along the camera ray through the target
    radius = rng.uniform(0.008, 0.03)
    if rng.random() < 0.5:
        return target, target, rng.uniform(0.015, 0.035)
    angle = rng.uniform(0, 2 * np.pi)
    half = rng.uniform(0.05, 0.15) * np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.3, 0.3)])
    return target - half, target + half, radius


def _grasped_object(rng, hand, is_left):
    """A ball or a bar held in the palm, in the hand frame: (a, b, radius)."""
    joints = hand.joints
    palm = joints[[0, 8, 12, 16, 20]].mean(axis=0)
    radius = rng.uniform(0.02, 0.035)
    centre = palm + np.array([0.0, 0.02, -(PALM_HALF_THICKNESS + radius)])
    if rng.random() < 0.5:
        return centre, centre, radius
    # A bar across the palm, from the index side to the little side, sticking out of the fist.
    axis = np.array([1.0, rng.uniform(-0.3, 0.3), 0.0]) * (-1.0 if is_left else 1.0)
    axis = axis / np.linalg.norm(axis) * rng.uniform(0.06, 0.1)
    return centre - axis, centre + axis, 0.7 * radius


def _camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tone curve and colour cast, blur (Gaussian or motion), sensor noise, JPEG (uint8 RGB)."""
    contrast, brightness = rng.uniform(0.75, 1.2), rng.uniform(-25.0, 25.0)
    cast, gamma = rng.uniform(0.9, 1.1, size=3), rng.uniform(0.8, 1.25)
    levels = np.arange(256, dtype=np.float64)[:, None]
    curve = np.clip(((levels - 128.0) * contrast + 128.0 + brightness) * cast, 0.0, 255.0)
    image = cv2.LUT(image, np.round(255.0 * (curve / 255.0) ** gamma).astype(np.uint8).reshape(1, 256, 3))
    blur = rng.random()
    if blur < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    elif blur < 0.45:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < 0.6:
        noise = rng.standard_normal(size=image.shape[:2] + (1,), dtype=np.float32)
        image = np.clip(image + noise * np.float32(rng.uniform(1.0, 6.0)), 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        quality = int(rng.integers(35, 92))
        encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image


def _shade(zbuffer, albedo_table, rng, region) -> tuple[np.ndarray, np.ndarray]:
    """(colour float32 (h, w, 3) in 0-255 over ``region``, direction towards the light)."""
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.2)])
    light /= np.linalg.norm(light)
    intensity, ambient = rng.uniform(0.6, 1.15), rng.uniform(0.2, 0.45)
    tint = rng.uniform(0.92, 1.08, size=3)
    specular, shininess = rng.uniform(0.03, 0.35), rng.uniform(8.0, 40.0)
    halfway = light + np.array([0.0, 0.0, -1.0])
    halfway /= np.linalg.norm(halfway)
    normal = zbuffer.normal[region]
    lambert = np.maximum(normal @ light.astype(np.float32), 0.0)[..., None]
    highlight = (np.maximum(normal @ halfway.astype(np.float32), 0.0) ** np.float32(shininess))[..., None]
    albedo = albedo_table[np.maximum(zbuffer.ident[region], 0)]
    colour = albedo * (ambient + intensity * lambert) * tint + specular * intensity * highlight
    return np.float32(255.0) * colour, light


def _cast_shadow(background, mask, light, rng) -> None:
    """Darkens ``background`` (uint8, in place) by the hand's soft shadow, away from the light
    (computed at a quarter of the resolution: it is blurred anyway)."""
    size = background.shape[0]
    small = cv2.resize(mask.astype(np.float32), (size // 4, size // 4), interpolation=cv2.INTER_AREA)
    shift = -light[:2] * size / 4 * rng.uniform(0.03, 0.1)  # longer when the light is grazing
    small = cv2.warpAffine(small, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), small.shape[::-1])
    small = cv2.GaussianBlur(small, (0, 0), size / 4 * rng.uniform(0.01, 0.03) + 0.5)
    shadow = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    darken = 1.0 - rng.uniform(0.25, 0.6) * shadow
    background[:] = np.clip(background * darken[..., None], 0, 255).astype(np.uint8)


def render_realistic(rng: np.random.Generator, image_size: int) -> dict:
    """Renders one realistic sample from ``rng`` (``dataset.render_sample`` seeds it).

    Returns the keys of ``rendering.render_coded`` (part_labels: 7 marks the object) plus
    ``self_occluded`` and ``object_occluded`` (bool (21,), in the joints' order, left hands too)
    and ``extra_annotations`` (the names of the arrays the cache stores beside uv, xyz, K, ...).
    """
    K = sample_intrinsics(rng, image_size)
    grasp = rng.random() < GRASP_PROBABILITY
    hand = sample_anatomical_pose(rng, grip_bias=grasp)
    is_left = rng.random() < LEFT_HAND_PROBABILITY
    grasped = _grasped_object(rng, hand, False) if grasp else None
    if is_left:
        hand = mirror_to_left(hand)
        if grasped is not None:
            grasped = tuple(p * np.array([-1.0, 1.0, 1.0]) for p in grasped[:2]) + (grasped[2],)
    drawn = np.concatenate([hand.palm_outline, hand.forearm_end[None]])
    rotation, translation = _place_hand(hand.joints, drawn, rng, K, image_size)
    root = hand.joints[schema.ROOT]

    def to_camera(points):
        return (np.asarray(points) - root) @ rotation.T + translation

    xyz = to_camera(hand.joints)
    zbuffer = ZBuffer(image_size, image_size)
    sleeve = rng.random() < 0.6
    _hand_to_zbuffer(zbuffer, hand, xyz, to_camera(hand.palm_outline), to_camera(hand.forearm_end),
                     K, rng, sleeve)
    if grasped is not None:
        grasped = (to_camera(grasped[0]), to_camera(grasped[1]), grasped[2])
    if grasp or rng.random() < PASSING_OBJECT_PROBABILITY:
        a, b, radius = _object_capsule(rng, grasped, xyz)
        zbuffer.capsule(a, b, radius, radius, K, ID_OBJECT)

    skin = _skin_albedo(rng)
    albedo = np.tile(skin, (BONE_BASE + len(schema.BONES), 1))
    albedo[ID_SLEEVE] = rendering._random_color(rng, (0.1, 0.8), (0.2, 0.9)) / 255.0
    albedo[ID_OBJECT] = rendering._random_color(rng, (0.2, 1.0), (0.3, 1.0)) / 255.0
    background = rendering.draw_background(rng, image_size)
    region = zbuffer.region(pad=3)
    mask = zbuffer.ident >= 0
    light = np.array([0.0, 0.0, -1.0])
    if region is not None:
        colour, light = _shade(zbuffer, albedo.astype(np.float32), rng, region)
        ident = zbuffer.ident[region]
        texture = rng.normal(1.0, 0.05, size=(6, 6)).astype(np.float32)  # skin blotches, hand-wide
        texture = cv2.resize(texture, (ident.shape[1], ident.shape[0]))
        colour *= np.where((ident >= 0) & (ident != ID_SLEEVE) & (ident != ID_OBJECT), texture, 1.0)[..., None]
        if rng.random() < 0.8:
            _cast_shadow(background, mask, light, rng)
        alpha = cv2.GaussianBlur(mask[region].astype(np.float32), (0, 0), 0.6)[..., None]
        under = background[region].astype(np.float32)
        background[region] = np.clip(alpha * colour + (1.0 - alpha) * under, 0, 255).astype(np.uint8)
    image = _camera_effects(background, rng)

    part_of = np.zeros(BONE_BASE + len(schema.BONES) + 1, np.uint8)  # identity + 1 -> part label
    part_of[1:] = rendering.PART_PALM
    part_of[ID_OBJECT + 1] = PART_OBJECT
    for (_, child), index in _BONE_INDEX.items():
        finger = next(f for f, joints in schema.FINGER_JOINTS.items() if child in joints)
        part_of[BONE_BASE + index + 1] = rendering.PART_FINGER[finger]
    labels = part_of[zbuffer.ident + 1]

    uv = project(xyz, K)
    self_occluded, object_occluded = joint_occlusion(zbuffer, uv)
    if is_left:
        uv, xyz, K = rendering.flip_annotations(uv, xyz, K, image_size)
    return dict(
        image=image, uv=uv.astype(np.float32), xyz=xyz.astype(np.float32), K=K.astype(np.float32),
        visible=_inside_image(uv, image_size), flip=bool(is_left), mask=mask.astype(np.uint8),
        part_labels=labels, self_occluded=self_occluded, object_occluded=object_occluded,
        extra_annotations=("self_occluded", "object_occluded"),
    )
