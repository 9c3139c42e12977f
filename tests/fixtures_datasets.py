"""Tiny on-disk copies of RHD, STB, FreiHAND and Dexter+Object, written in their published formats.

Every fixture starts from a synthetic right hand in camera space (metres, this library's joint
order) and converts it to the data set's raw joint order, units, frame and handedness here, by
joint *name* and with its own geometry code, so that the tests check the readers' conversions
independently of the readers' tables. Each writer returns the ground truth the reader should
produce (``expected``), keyed by image path.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
from scipy import io as scipy_io
from scipy.spatial.transform import Rotation

OUR_NAMES = ("wrist",) + tuple(
    f"{finger}_{part}" for finger in ("thumb", "index", "middle", "ring", "little")
    for part in ("tip", "dip", "pip", "mcp")
)
_FINGERS_RAW = ("thumb", "index", "middle", "ring", "little")


def _names_mcp_to_tip(fingers):
    return tuple(f"{f}_{p}" for f in fingers for p in ("mcp", "pip", "dip", "tip"))


# Published raw orders, written out by name.
RHD_NAMES = OUR_NAMES  # RHD README: wrist, then thumb..pinky each [tip to palm]
STB_NAMES = ("palm",) + _names_mcp_to_tip(("little", "ring", "middle", "index", "thumb"))
FREIHAND_NAMES = ("wrist",) + _names_mcp_to_tip(_FINGERS_RAW)
DEXTER_TIPS = tuple(f"{f}_tip" for f in _FINGERS_RAW)


def idx(name: str) -> int:
    return OUR_NAMES.index(name)


def to_raw(xyz_ours: np.ndarray, raw_names, palm: np.ndarray | None = None) -> np.ndarray:
    """Our-order joints (21, 3) -> a raw order given by joint names ('palm' needs ``palm``)."""
    rows = [palm if name == "palm" else xyz_ours[idx(name)] for name in raw_names]
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------
# Synthetic hand and geometry (independent of lgh_tf).
# ---------------------------------------------------------------------------------------------

_MCP_LOCAL = {  # hand frame, metres: palm in the x-y plane, fingers along +y, palm side is +z
    "thumb": (0.035, 0.030, 0.015),
    "index": (0.025, 0.085, 0.0),
    "middle": (0.004, 0.090, 0.0),
    "ring": (-0.016, 0.085, 0.0),
    "little": (-0.033, 0.074, 0.0),
}
_BONES = {"thumb": (0.035, 0.030, 0.025), "index": (0.040, 0.025, 0.020),
          "middle": (0.045, 0.028, 0.022), "ring": (0.042, 0.026, 0.021),
          "little": (0.032, 0.020, 0.018)}


def synthetic_right_hand(rng: np.random.Generator, depth: float = 0.55,
                         offset=(0.0, 0.0)) -> np.ndarray:
    """A plausible right hand (21, 3) in metres, our joint order, centred near (offset, depth)."""
    joints = {"wrist": np.zeros(3)}
    for finger, mcp in _MCP_LOCAL.items():
        position = np.array(mcp, dtype=float)
        direction = (np.array([0.7, 0.6, 0.4]) if finger == "thumb"
                     else np.array([0.08 * np.sign(mcp[0]), 1.0, 0.0]))
        direction /= np.linalg.norm(direction)
        joints[f"{finger}_mcp"] = position
        for part, length in zip(("pip", "dip", "tip"), _BONES[finger]):
            bend = Rotation.from_rotvec([rng.uniform(0.0, 0.5), 0.0, 0.0])  # flex to the palm side
            direction = bend.apply(direction)
            position = position + length * direction
            joints[f"{finger}_{part}"] = position
    local = np.stack([joints[name] for name in OUR_NAMES])
    local -= local[idx("middle_mcp")]
    rotation = Rotation.from_euler("xyz", rng.uniform(-0.6, 0.6, size=3))
    translation = np.array([offset[0], offset[1], depth]) + rng.uniform(-0.01, 0.01, size=3)
    return rotation.apply(local) + translation


def mirror_x(xyz: np.ndarray) -> np.ndarray:
    """The mirror image (x -> -x): a right hand becomes a left hand."""
    return np.asarray(xyz, dtype=float) * np.array([-1.0, 1.0, 1.0])


def chirality(xyz: np.ndarray) -> float:
    """Sign of det[index MCP, little MCP, thumb MCP] (relative to the wrist): flips with a mirror."""
    xyz = np.asarray(xyz, dtype=float)
    w = xyz[idx("wrist")]
    m = np.stack([xyz[idx("index_mcp")] - w, xyz[idx("little_mcp")] - w, xyz[idx("thumb_mcp")] - w])
    return float(np.sign(np.linalg.det(m)))


def K_matrix(fx, fy, cx, cy) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def pinhole(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=float)
    u = K[0, 0] * xyz[:, 0] / xyz[:, 2] + K[0, 1] * xyz[:, 1] / xyz[:, 2] + K[0, 2]
    v = K[1, 1] * xyz[:, 1] / xyz[:, 2] + K[1, 2]
    return np.stack([u, v], axis=1)


def flipped_K(K: np.ndarray, width: int) -> np.ndarray:
    out = np.array(K, dtype=float)
    out[0, 2] = width - 1 - out[0, 2]
    return out


def _write_image(path: Path, width: int, height: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    assert cv2.imwrite(str(path), image)


# ---------------------------------------------------------------------------------------------
# RHD
# ---------------------------------------------------------------------------------------------

def write_rhd(root: Path, split_dir: str = "training", dominant=("left", "right", "left", "right"),
              corrupt: dict | None = None, seed: int = 0) -> dict:
    """RHD_published_v2/<split_dir>/{anno_<split_dir>.pickle, color/, mask/}.

    ``dominant[i]`` is the hand with more mask pixels in sample i. ``corrupt`` maps extra sample
    ids to a kind ("nan_xyz", "bad_uv_shape"). Returns {"expected": {image_path: dict}, ...}.
    """
    rng = np.random.default_rng(seed)
    base = root / split_dir
    annotations, expected = {}, {}
    n_valid = len(dominant)
    all_ids = list(range(n_valid)) + sorted((corrupt or {}).keys())
    for sample_id in all_ids:
        K = K_matrix(rng.uniform(270, 300), rng.uniform(310, 340), 157.25 + sample_id,
                     166.75 - sample_id)
        right = synthetic_right_hand(rng, depth=0.6, offset=(0.03, 0.0))
        other = synthetic_right_hand(rng, depth=0.7, offset=(-0.05, 0.02))
        side = dominant[sample_id] if sample_id < n_valid else "right"
        if side == "left":
            left_xyz, right_xyz = mirror_x(right), other
        else:
            left_xyz, right_xyz = mirror_x(other), right
        xyz42 = np.concatenate([to_raw(left_xyz, RHD_NAMES), to_raw(right_xyz, RHD_NAMES)])
        uv42 = pinhole(xyz42, K)
        vis42 = rng.integers(0, 2, size=42).astype(float)
        entry = {"uv_vis": np.concatenate([uv42, vis42[:, None]], axis=1).astype(np.float32),
                 "xyz": xyz42.astype(np.float32), "K": K.astype(np.float32)}
        kind = (corrupt or {}).get(sample_id)
        if kind == "nan_xyz":
            entry["xyz"][5, 1] = np.nan
        elif kind == "bad_uv_shape":
            entry["uv_vis"] = entry["uv_vis"][:41]
        annotations[sample_id] = entry

        color = base / "color" / f"{sample_id:05d}.png"
        _write_image(color, 320, 320, rng)
        mask = np.zeros((320, 320), dtype=np.uint8)
        mask[:40, :] = 1  # person
        big, small = (slice(100, 160), slice(100, 160)), (slice(200, 210), slice(200, 210))
        left_region, right_region = (big, small) if side == "left" else (small, big)
        mask[left_region] = rng.integers(2, 18, size=mask[left_region].shape)
        mask[right_region] = rng.integers(18, 34, size=mask[right_region].shape)
        (base / "mask").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(base / "mask" / f"{sample_id:05d}.png"), mask)

        if kind is None:
            hand = slice(0, 21) if side == "left" else slice(21, 42)
            K_out = flipped_K(K, 320) if side == "left" else K
            uv_out = uv42[hand].copy()
            if side == "left":
                uv_out[:, 0] = 319 - uv_out[:, 0]
            expected[str(color)] = {
                "xyz": right, "uv": uv_out, "K": K_out, "visible": vis42[hand] == 1,
                "flip": side == "left", "mask": str(base / "mask" / f"{sample_id:05d}.png"),
            }
    with open(base / f"anno_{split_dir}.pickle", "wb") as f:
        pickle.dump(annotations, f)
    return {"expected": expected}


# ---------------------------------------------------------------------------------------------
# STB
# ---------------------------------------------------------------------------------------------

STB_SEQUENCES = tuple(f"B{n}{kind}" for n in range(1, 7) for kind in ("Counting", "Random"))
STB_BB = dict(fx=822.79041, fy=822.79041, cx=318.47345, cy=250.31296)
STB_SK_COLOR = dict(fx=607.92271, fy=607.88192, cx=314.78337, cy=236.42484)
STB_SK_OM = np.array([0.00531, -0.01196, 0.00301])
STB_SK_T_MM = np.array([-24.0381, -0.4563, -1.2326])


def write_stb(root: Path, frames: int = 2, nan_frame: tuple[str, int] | None = None,
              seed: int = 1) -> dict:
    """STB/{labels/<seq>_{BB,SK}.mat, images/<seq>/{BB_left,BB_right,SK_color}_<i>.png}.

    Hands are left hands; the palm centre is written as the midpoint of wrist and middle MCP.
    Returns {"BB": {seq: [right-hand xyz (21,3) m, ...]}, "SK": {...}} in colour/left-camera
    frames (i.e. what the reader must return after mirroring).
    """
    rng = np.random.default_rng(seed)
    truth = {"BB": {}, "SK": {}}
    R_sk = Rotation.from_rotvec(STB_SK_OM).as_matrix()
    for seq in STB_SEQUENCES:
        for suffix in ("BB", "SK"):
            hands, raw = [], []
            for i in range(frames):
                right = synthetic_right_hand(rng, depth=0.5, offset=(0.01, 0.02))
                left_mm = mirror_x(right) * 1000.0  # STB shows a left hand, in millimetres
                palm = 0.5 * (left_mm[idx("wrist")] + left_mm[idx("middle_mcp")])
                joints = to_raw(left_mm, STB_NAMES, palm=palm)
                if suffix == "SK":  # SK labels live in the depth camera: p_d = R p_c + T
                    joints = joints @ R_sk.T + STB_SK_T_MM
                if nan_frame == (seq, i) and suffix == "BB":
                    joints[3, 0] = np.nan
                hands.append(right)
                raw.append(joints)
            truth[suffix][seq] = hands
            hand_para = np.transpose(np.stack(raw), (2, 1, 0))  # (3, 21, N)
            (root / "labels").mkdir(parents=True, exist_ok=True)
            scipy_io.savemat(str(root / "labels" / f"{seq}_{suffix}.mat"), {"handPara": hand_para})
        for i in range(frames):
            for prefix in ("BB_left", "BB_right", "SK_color"):
                _write_image(root / "images" / seq / f"{prefix}_{i}.png", 640, 480, rng)
    return truth


# ---------------------------------------------------------------------------------------------
# FreiHAND
# ---------------------------------------------------------------------------------------------

def write_freihand(root: Path, n_train: int = 3, n_eval: int = 2, eval_labels: bool = True,
                   bad_K_id: int | None = None, seed: int = 2, nan_eval_K_id: int | None = None) -> dict:
    """FreiHAND_pub_v2/{training_*.json, training/rgb, training/mask, evaluation_*.json, ...}."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    for set_name, n in (("training", n_train), ("evaluation", n_eval)):
        Ks, xyzs, scales, hands = [], [], [], []
        for i in range(n):
            K = K_matrix(rng.uniform(450, 500), rng.uniform(520, 560), 111.5 + i, 113.25 - i)
            right = synthetic_right_hand(rng, depth=0.6)
            Ks.append(K.tolist())
            xyzs.append(to_raw(right, FREIHAND_NAMES).tolist())
            scales.append(float(np.linalg.norm(right[idx("middle_mcp")] - right[idx("middle_pip")])))
            hands.append((right, K))
        if set_name == "training" and bad_K_id is not None:
            Ks[bad_K_id] = Ks[bad_K_id][:2]
        if set_name == "evaluation" and nan_eval_K_id is not None:
            Ks[nan_eval_K_id][0][0] = float("nan")
        truth[set_name] = hands
        (root / f"{set_name}_K.json").write_text(json.dumps(Ks))
        (root / f"{set_name}_scale.json").write_text(json.dumps(scales))
        if set_name == "training" or eval_labels:
            (root / f"{set_name}_xyz.json").write_text(json.dumps(xyzs))
        versions = 4 if set_name == "training" else 1
        for image_id in range(n * versions):
            _write_image(root / set_name / "rgb" / f"{image_id:08d}.jpg", 224, 224, rng)
        if set_name == "training":
            for i in range(n):
                _write_image(root / set_name / "mask" / f"{i:08d}.jpg", 224, 224, rng)
    return truth


# ---------------------------------------------------------------------------------------------
# Dexter+Object
# ---------------------------------------------------------------------------------------------

DEXTER_SEQUENCES = ("Grasp1", "Grasp2", "Occlusion", "Rigid", "Pinch", "Rotate")
DEXTER_K = K_matrix(587.45209, 600.67456, 325.0, 249.0)
DEXTER_EXTRINSICS = np.array([[0.9999, 0.0034, 0.0161, 19.0473],
                              [-0.0033, 1.0000, -0.0079, -1.8514],
                              [-0.0162, 0.0079, 0.9998, -4.7501]])
DEXTER_DEPTH_K = K_matrix(224.502, 230.494, 160.0, 120.0)


def write_dexter(root: Path, frames: int = 3, missing_tip: tuple[str, int, int] | None = None,
                 corrupt_line: tuple[str, int] | None = None,
                 empty_frame: tuple[str, int] | None = None, seed: int = 3, corrected: bool = False) -> dict:
    """dexter+object/data/<Seq>/{color/Color_%04d.bmp, depth/, annotations/<Seq>{2D,3D}.txt} (with
    ``corrected`` also annotations/my_<Seq>3D.txt, holding the same lines).

    Returns {seq: [(image path, right-hand xyz (21,3) m, left-hand tips uv (5,2) or None), ...]}.
    """
    rng = np.random.default_rng(seed)
    R, t = DEXTER_EXTRINSICS[:, :3], DEXTER_EXTRINSICS[:, 3]
    truth = {}
    for seq in DEXTER_SEQUENCES:
        base = root / "data" / seq
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        lines_3d, lines_2d, rows = [], [], []
        for i in range(frames):
            right = synthetic_right_hand(rng, depth=0.45, offset=(0.0, 0.01))
            left_tips_mm = np.stack([mirror_x(right)[idx(n)] for n in DEXTER_TIPS]) * 1000.0
            # colour frame -> depth frame (standard axes) -> annotation axes (x, y negated)
            depth_std = np.linalg.solve(R, (left_tips_mm - t).T).T
            raw = depth_std * np.array([-1.0, -1.0, 1.0])
            fields = [f"{x:.6f}, {y:.6f}, {z:.6f}" for x, y, z in raw]
            if missing_tip is not None and missing_tip[:2] == (seq, i):
                fields[missing_tip[2]] = "32001, 32001, 32001"
            if empty_frame == (seq, i):
                fields = ["32001, 32001, 32001"] * 5
            corners = [f"{v:.3f}, {v + 1:.3f}, {v + 400:.3f}" for v in rng.uniform(-50, 50, 3)]
            line = "; ".join(fields + corners) + ";"
            if corrupt_line == (seq, i):
                line = "1.0, 2.0; oops"
            lines_3d.append(line)
            uv_depth = pinhole(depth_std, DEXTER_DEPTH_K)
            lines_2d.append("; ".join(f"{u:.2f}, {v:.2f}" for u, v in uv_depth) + ";")
            image = base / "color" / f"Color_{i:04d}.bmp"  # as released: 640x480 BMP
            _write_image(image, 640, 480, rng)
            depth = np.full((240, 320), 500, dtype=np.uint16)
            (base / "depth").mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(base / "depth" / f"Depth_{i:04d}.png"), depth)
            rows.append((str(image), right, pinhole(left_tips_mm / 1000.0, DEXTER_K)))
        (base / "annotations" / f"{seq}3D.txt").write_text("\n".join(lines_3d) + "\n")
        if corrected:  # the corrected annotations some public evaluations use: same format, own name
            (base / "annotations" / f"my_{seq}3D.txt").write_text("\n".join(lines_3d) + "\n")
        (base / "annotations" / f"{seq}2D.txt").write_text("\n".join(lines_2d) + "\n")
        truth[seq] = rows
    return truth


# ---------------------------------------------------------------------------------------------
# Damage, as a hostile user or a bad download makes it (tests/test_reliability.py)
# ---------------------------------------------------------------------------------------------

def damage(path: Path, how: str = "truncate") -> Path:
    """Damages a written fixture file in place: "truncate" (cut at half), "empty" (0 bytes) or
    "garbage" (bytes that are no format)."""
    path = Path(path)
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(bytes(range(256))[::-1] * 8)
    else:
        raise ValueError(f"unknown damage {how!r}")
    return path


class RunsCode:
    """Unpickled by a plain ``pickle.load``, it creates ``marker`` (the harmless stand-in for a shell
    command): a pickle is a program unless it is read with a restricted unpickler."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def write_rhd_pickle(root: Path, content, split_dir: str = "evaluation") -> Path:
    """Replaces the annotation pickle of an RHD fixture (``write_rhd``) by ``content``."""
    path = root / split_dir / f"anno_{split_dir}.pickle"
    with open(path, "wb") as f:
        pickle.dump(content, f)
    return path


def write_video(path: Path, frames: int = 10, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """An MJPG .avi of ``frames`` random frames (cv2.VideoWriter)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    writer.release()
    return Path(path)
