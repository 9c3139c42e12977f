"""Reader for the Stereo Hand Pose Tracking Benchmark (STB, Zhang et al., ICIP 2017).

On-disk layout (as published; the README of the release describes it)::

    labels/B{1..6}{Counting,Random}_BB.mat   'handPara' 3 x 21 x 1500, mm, Bumblebee2 (left camera)
    labels/B{1..6}{Counting,Random}_SK.mat   'handPara' 3 x 21 x 1500, mm, RealSense F200 depth camera
    images/B{n}{Counting,Random}/BB_left_{i}.png, BB_right_{i}.png, SK_color_{i}.png, SK_depth_{i}.png
                                             640 x 480, i = 0..1499 (the sequence folders may also
                                             sit directly in the data set directory)

Raw joint order: palm centre, then little, ring, middle, index, thumb, each MCP -> tip. It is
converted to RHD order (wrist, thumb, index, middle, ring, little, each tip -> MCP), millimetres
to metres.

Cameras (numbers from the release's README; fx, fy, cx, cy are kept apart):

* ``BB_left`` (default): Bumblebee2 left image with the ``_BB`` labels, which are in that camera's
  frame; fx = fy = 822.79041, cx = 318.47345, cy = 250.31296 (baseline 120.054 mm, unused).
* ``SK_color``: RealSense colour image with the ``_SK`` labels. Those labels are in the *depth*
  camera frame; the README gives the rotation vector om = (0.00531, -0.01196, 0.00301) and the
  translation T = (-24.0381, -0.4563, -1.2326) mm that take colour-camera coordinates to
  depth-camera coordinates, p_depth = R(om) p_colour + T, so p_colour = R^T (p_depth - T) (its
  ``positionCalc.m`` does the same). Colour intrinsics fx = 607.92271, fy = 607.88192,
  cx = 314.78337, cy = 236.42484.

Split (Zimmermann & Brox 2017, followed by the paper): B2-B6 train (10 sequences, 15,000 frames),
B1 evaluation (2 sequences, 3,000 frames), one image per stereo pair (``camera``).

Palm centre -> wrist (``wrist_rule``). STB annotates the palm centre where RHD has the wrist, so
joint 0 is moved to ``wrist = anchor + s * (palm - anchor)``:

* ``"zb2017"`` (default): anchor = middle MCP, s = 2, i.e. ``wrist = palm + 1.0 * (palm - middle
  MCP)``. This inverts Zimmermann & Brox's (ICCV 2017) definition of the palm keypoint they train
  with, ``palm = (wrist + middle MCP) / 2`` (their RHD reader, ``use_wrist_coord=False``); the STB
  reader in the code of Xiang et al.'s Monocular Total Capture (CVPR 2019) applies exactly this
  conversion (``wrist = 2 palm - middle MCP``).
* ``"ge2019"``: anchor = ring MCP, s = 2 (the STB loader of Ge et al.'s code for "3D Hand Shape
  and Pose Estimation from a Single RGB Image", CVPR 2019).
* ``"yang2020"``: anchor = middle MCP, s = 2.2 (the STB loader of Yang et al.'s BiHand code,
  BMVC 2020).
* ``"palm"``: keep the palm centre as joint 0 (no conversion).
* a number ``k``: ``wrist = palm + k * (palm - middle MCP)``.

The evaluation (root = middle MCP, scale = MCP-PIP of the middle finger) does not depend on the
rule except through joint 0 itself.

Handedness: STB shows a left hand (as noted in Ge et al.'s and Yang et al.'s STB loaders, which
mirror it). With ``mirror_left=True`` (default) every sample is mirrored to a right hand
(``flip=True``; uv, xyz, K mirrored together), like RHD's left hands.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from lgh_tf.data import registry

logger = logging.getLogger(__name__)

INFO = registry.DATASETS["stb"]
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480

TRAIN_SEQUENCES = tuple(f"B{n}{kind}" for n in range(2, 7) for kind in ("Counting", "Random"))
EVAL_SEQUENCES = ("B1Counting", "B1Random")

# Published calibration (STB README).
BB_INTRINSICS = dict(fx=822.79041, fy=822.79041, cx=318.47345, cy=250.31296)
BB_BASELINE_MM = 120.054
SK_COLOR_INTRINSICS = dict(fx=607.92271, fy=607.88192, cx=314.78337, cy=236.42484)
SK_DEPTH_INTRINSICS = dict(fx=475.62768, fy=474.77709, cx=336.41179, cy=238.77962)
SK_ROTATION_VECTOR = (0.00531, -0.01196, 0.00301)  # colour -> depth, Rodrigues vector
SK_TRANSLATION_MM = (-24.0381, -0.4563, -1.2326)  # colour -> depth

# camera -> (label suffix, image file prefix, intrinsics, labels in the SK depth frame?)
CAMERAS = {
    "BB_left": ("BB", "BB_left", BB_INTRINSICS, False),
    "SK_color": ("SK", "SK_color", SK_COLOR_INTRINSICS, True),
}

# Raw STB order: 0 palm, 1-4 little MCP->tip, 5-8 ring, 9-12 middle, 13-16 index, 17-20 thumb.
# OURS_FROM_STB[j] is the raw index of our joint j (wrist/palm, then tip -> MCP per finger).
OURS_FROM_STB = (0,
                 20, 19, 18, 17,  # thumb tip..MCP
                 16, 15, 14, 13,  # index
                 12, 11, 10, 9,  # middle
                 8, 7, 6, 5,  # ring
                 4, 3, 2, 1)  # little

# rule -> (anchor joint in OUR order, s) with wrist = anchor + s * (palm - anchor).
MIDDLE_MCP, RING_MCP = 12, 16
WRIST_RULES = {
    "zb2017": (MIDDLE_MCP, 2.0),
    "ge2019": (RING_MCP, 2.0),
    "yang2020": (MIDDLE_MCP, 2.2),
    "palm": None,
}


def rodrigues(rotation_vector) -> np.ndarray:
    """Rotation matrix of an axis-angle vector (the Rodrigues formula, as MATLAB/OpenCV use it)."""
    r = np.asarray(rotation_vector, dtype=np.float64)
    theta = float(np.linalg.norm(r))
    if theta < 1e-15:
        return np.eye(3)
    k = r / theta
    k_cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * k_cross + (1.0 - np.cos(theta)) * (k_cross @ k_cross)


def sk_depth_to_color(xyz_depth: np.ndarray) -> np.ndarray:
    """SK depth-camera coordinates (..., 3) -> colour-camera coordinates, same unit (mm)."""
    R = rodrigues(SK_ROTATION_VECTOR)
    # p_depth = R p_colour + T  =>  p_colour = R^T (p_depth - T); row vectors: (p - T) @ R.
    return (np.asarray(xyz_depth, dtype=np.float64) - np.asarray(SK_TRANSLATION_MM)) @ R


def palm_to_wrist(xyz: np.ndarray, rule: str | float = "zb2017") -> np.ndarray:
    """Replace joint 0 (palm centre, OUR order, (..., 21, 3)) by a wrist estimate; see module doc."""
    xyz = np.array(xyz, dtype=np.float64)
    if isinstance(rule, str) and rule not in WRIST_RULES:
        try:
            rule = float(rule)  # "1.5" from the command line
        except ValueError:
            pass
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        anchor, s = MIDDLE_MCP, 1.0 + float(rule)
    else:
        if rule not in WRIST_RULES:
            raise ValueError(f"stb: unknown wrist_rule {rule!r}; use one of {sorted(WRIST_RULES)} "
                             "or a number k (wrist = palm + k (palm - middle MCP))")
        if WRIST_RULES[rule] is None:
            return xyz
        anchor, s = WRIST_RULES[rule]
    palm = xyz[..., 0, :].copy()
    xyz[..., 0, :] = xyz[..., anchor, :] + s * (palm - xyz[..., anchor, :])
    return xyz


def load_stb(data_dir: str | os.PathLike | None = None, split: str = "train", *,
             camera: str = "BB_left", wrist_rule: str | float = "zb2017",
             mirror_left: bool = True, intrinsics: dict | None = None) -> registry.schema.Records:
    """Read an STB split as Records.

    Args:
      data_dir: the STB directory holding ``labels/`` and ``images/`` (default: ``$LGH_TF_STB_DIR``
        or ``~/datasets/STB``).
      split: ``"train"`` (B2-B6, 15,000 frames) or ``"eval"`` (B1, 3,000 frames).
      camera: ``"BB_left"`` (default; ``_BB`` labels) or ``"SK_color"`` (``_SK`` labels moved from
        the depth to the colour camera frame).
      wrist_rule: palm centre -> wrist conversion, see the module docstring.
      mirror_left: mirror the (left) hands to right hands (``flip=True``).
      intrinsics: optional ``dict(fx=, fy=, cx=, cy=)`` replacing the published intrinsics of
        ``camera`` (e.g. for a re-calibration).

    Raises:
      DatasetNotFoundError: the directory, a label file or a sequence folder (with its first
        image) of the split is missing.
    """
    split = registry.normalize_split(split, INFO)
    if camera not in CAMERAS:
        raise ValueError(f"stb: unknown camera {camera!r}; use one of {sorted(CAMERAS)}")
    suffix, prefix, published, labels_in_depth_frame = CAMERAS[camera]
    params = dict(published if intrinsics is None else intrinsics)
    K = registry.intrinsics(params["fx"], params["fy"], params["cx"], params["cy"])

    root = INFO.resolve_dir(data_dir)
    registry.require_dir(INFO, root)
    sequences = TRAIN_SEQUENCES if split == "train" else EVAL_SEQUENCES
    label_files = [registry.require_file(INFO, root, root / "labels" / f"{seq}_{suffix}.mat")
                   for seq in sequences]
    image_dirs = [registry.first_existing_dir(INFO, root, [root / "images" / seq, root / seq])
                  for seq in sequences]
    for image_dir in image_dirs:
        registry.require_file(INFO, root, image_dir / f"{prefix}_0.png")

    paths, xyz_all, skipped = [], [], []
    for seq, label_file, image_dir in zip(sequences, label_files, image_dirs):
        xyz_mm = _read_hand_para(label_file)  # (N, 21, 3) raw order, mm
        skipped_before = len(skipped)
        for i, joints in enumerate(xyz_mm):
            reason = None
            if not np.all(np.isfinite(joints)):
                reason = "non-finite coordinates"
            if reason is None:
                if labels_in_depth_frame:
                    joints = sk_depth_to_color(joints)
                if np.any(joints[:, 2] <= 0):
                    reason = "joint at or behind the camera"
            if reason is not None:
                skipped.append((f"{seq}:{i}", reason))
                continue
            paths.append(str(image_dir / f"{prefix}_{i}.png"))
            xyz_all.append(joints[list(OURS_FROM_STB)] / 1000.0)
        registry.require_usable("stb", label_file, len(xyz_mm), skipped[skipped_before:])
    label = f"stb/{split}"
    registry.report_skipped(logger, label, skipped)

    xyz = palm_to_wrist(np.asarray(xyz_all, dtype=np.float64).reshape(-1, 21, 3), wrist_rule)
    n = len(paths)
    Ks = np.broadcast_to(K, (n, 3, 3))
    uv = registry.project(xyz, Ks)
    flip = np.full(n, bool(mirror_left))
    uv, xyz, Ks = registry.mirror_horizontally(uv, xyz, Ks, IMAGE_WIDTH, where=flip)
    logger.info("%s: %d frames, camera %s, wrist rule %s, from %s", label, n, camera, wrist_rule,
                root)
    return registry.make_records(label, paths, uv, xyz, Ks, np.ones((n, 21), dtype=bool), flip,
                                 mask_path=None)


def _read_hand_para(label_file: Path) -> np.ndarray:
    """``handPara`` of one label file as (N, 21, 3) in the raw joint order, millimetres."""
    from scipy import io as scipy_io

    with registry.reading(INFO, label_file):
        contents = scipy_io.loadmat(str(label_file))
        if "handPara" not in contents:
            raise ValueError("no 'handPara' array")
        hand_para = np.asarray(contents["handPara"], dtype=np.float64)
        if hand_para.ndim == 2 and hand_para.shape == (3, 21):  # a single frame squeezed by MATLAB
            hand_para = hand_para[:, :, None]
        if hand_para.ndim != 3 or hand_para.shape[:2] != (3, 21):
            raise ValueError(f"handPara has shape {hand_para.shape}, expected (3, 21, N)")
    return np.transpose(hand_para, (2, 1, 0))
