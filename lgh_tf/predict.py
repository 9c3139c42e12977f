"""3D hand pose for one user image: crop, predict, map back, lift, draw.

    from lgh_tf import predict
    predictor = predict.load_predictor("runs/synthetic")        # or .pth, .weights.h5, SavedModel
    result = predict.predict_image(predictor, "hand.jpg", box=(120, 80, 200, 220),
                                   intrinsics=(600, 600, 320, 240), scale=0.04, root_depth=0.5)
    paths = predict.write_outputs(result, "runs/predict")

Geometry (``lgh_tf.geometry``). Pixel centres sit at integer coordinates (as in the data
pipeline). A box ``x,y,w,h`` covers the pixel columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``;
its centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)``. The network sees the square of side
``max(w, h) * box_margin`` about that centre (``box_margin`` 1.2, the training crops' margin about
the keypoints), resampled to its input size S. Without a box the hand is searched for
(``lgh_tf.localize``): the whole image padded to a square (side ``max(W, H)``) first, then the
training crop about the predicted joints until it is stable. ``crop_from_image`` = [[z, 0,
(S - 1) / 2 - z cx], [0, z, (S - 1) / 2 - z cy], [0, 0, 1]] with ``z = S / side`` (times the crop
mirror ``u -> S - 1 - u`` for a left hand) maps original pixels to crop pixels; the predicted crop
uv are mapped back with its inverse. 3D (Eq. 3) uses the crop intrinsics ``crop_from_image @ K``,
i.e. the same rays as the original uv with ``K``. Without intrinsics or scale, the documented
defaults (``camera_and_scale``) are used and written under "assumptions".

The networks are trained on right hands (every data set mirrors left hands): ``hand="left"``
mirrors the crop, ``hand="auto"`` tries both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf import geometry
from lgh_tf.data.schema import JOINT_NAMES, NUM_JOINTS, SCALE_BONE

# Reading and checking the inputs (lgh_tf.predict_inputs); every name stays importable from here.
from lgh_tf.predict_inputs import (  # noqa: F401
    _EXIF_TRANSFORMS,
    _positive,
    check_box,
    exif_orientation,
    image_damage,
    intrinsics_matrix,
    numbers,
    read_image,
    to_rgb_uint8,
)

if TYPE_CHECKING:
    import numpy.typing as npt

BOX_MARGIN = geometry.CROP_MARGIN


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Predictor:
    """``predictor(images)`` with float32 (B, S, S, 3) RGB in [0, 1] -> (uv (B, 21, 2) input
    pixels, depth (B, 21) relative depth), numpy; ``input_size`` S; ``description``.

    Each function answers ``(uv, depth)`` or ``(uv, depth, heatmaps)`` (heatmaps (B, S/4, S/4, 21),
    the backbone's, read by :func:`lgh_tf.localize.heatmap_confidence`); ``run`` returns all three
    (heatmaps None when a function gives none), averaged over an ensemble."""

    def __init__(
        self, functions: Iterable[Callable[[np.ndarray], Sequence[Any]]], input_size: int, description: str
    ) -> None:
        self.functions = list(functions)
        self.input_size = int(input_size)
        self.description = description

    def run(self, images: npt.ArrayLike) -> dict[str, np.ndarray | None]:
        images = np.asarray(images, np.float32)
        outputs = [tuple(fn(images)) for fn in self.functions]
        mean = lambda i: np.mean([np.asarray(o[i], np.float64) for o in outputs], axis=0)  # noqa: E731
        heatmaps = mean(2) if all(len(o) > 2 and o[2] is not None for o in outputs) else None
        return {"uv": mean(0), "depth": mean(1), "heatmaps": heatmaps}

    def __call__(self, images: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        out = self.run(images)
        return out["uv"], out["depth"]


def load_predictor(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Predictor:
    """A :class:`Predictor` for one model path or a list (an ensemble: mean uv and depth).

    Each path is anything ``lgh_tf.model.io.load_function`` reads: a training directory or
    checkpoint prefix, an authors' ``.pth``, a ``.weights.h5`` with its ``.config.json``, a
    SavedModel directory (or a TF Serving base directory) or a ``.tflite`` file.
    """
    from lgh_tf.model import io

    paths = io.model_paths(paths)
    functions, sizes = [], []
    for path in paths:
        fn, size = io.load_function(path)
        functions.append(fn)
        sizes.append(size)
    if len(set(sizes)) != 1:
        raise ValueError(f"checkpoint: the models of an ensemble must share the input size, got {sizes}")
    description = paths[0] if len(paths) == 1 else f"ensemble of {len(paths)}: " + ", ".join(paths)
    return Predictor(functions, sizes[0], description)


# ---------------------------------------------------------------------------------------------
# Crop geometry
# ---------------------------------------------------------------------------------------------


# The crop geometry is lgh_tf.geometry's; these names stay importable from here.
square_crop_matrix = geometry.square_crop_matrix
map_points = geometry.map_points
render_crop = geometry.render_crop


def crop_for_box(
    box: Sequence[float] | None, image_width: int, image_height: int, output_size: int, box_margin: float = BOX_MARGIN
) -> tuple[np.ndarray, np.ndarray, float]:
    """(crop_from_image, centre, side) for a box (x, y, w, h), or the whole image when None."""
    if box is None:
        centre, side = geometry.image_square(image_width, image_height)
    else:
        centre, side = geometry.box_square(box, box_margin)
    return geometry.square_crop_matrix(centre, float(side), output_size), centre, float(side)


def depth_display_scale(uv: np.ndarray) -> float:
    """Pixels per unit of relative depth for the 2.5D view: the longest 2D proximal phalanx of the
    four fingers (the least foreshortened; the reference bone is such a phalanx)."""
    from lgh_tf.data.schema import FINGER_JOINTS

    lengths = [np.linalg.norm(uv[FINGER_JOINTS[f][2]] - uv[FINGER_JOINTS[f][3]])
               for f in ("index", "middle", "ring", "little")]
    value = float(np.max(lengths))
    return value if np.isfinite(value) and value > 0 else 1.0


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


def load_inputs(
    image: str | os.PathLike[str] | np.ndarray,
    *,
    intrinsics: npt.ArrayLike | None = None,
    box: npt.ArrayLike | None = None,
    scale: float | None = None,
    root_depth: float | None = None,
    boxes: Sequence[npt.ArrayLike] | None = None,
) -> dict[str, Any]:
    """Reads and checks everything about one prediction except the model (cheap, so that bad input
    fails before a model is loaded). Returns a dict: rgb, source, K, box, boxes, scale, root_depth,
    notes, warnings (a damaged file decoded only partly). ``boxes`` are a detector's boxes (a list
    of (x, y, w, h)); the most confident hand of them is kept. Raises ValueError naming the input
    (image, intrinsics, box, scale, root_depth)."""
    if isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
        rgb, notes = read_image(source)
        warnings = image_damage(source)
    else:
        source = None
        rgb, notes = to_rgb_uint8(image)
        warnings = []
    height, width = rgb.shape[:2]
    K = None if intrinsics is None else intrinsics_matrix(intrinsics)
    box = None if box is None else check_box(box, width, height)
    boxes = [check_box(b, width, height) for b in (boxes or [])]
    return {
        "rgb": rgb, "source": source, "K": K, "box": box, "boxes": boxes, "scale": _positive(scale, "scale"),
        "root_depth": _positive(root_depth, "root_depth"), "notes": notes, "warnings": warnings,
    }


def camera_and_scale(
    K: np.ndarray | None,
    scale: float | None,
    width: int,
    height: int,
    *,
    assume_camera: bool = True,
    field_of_view: float = geometry.DEFAULT_FIELD_OF_VIEW_DEG,
) -> tuple[np.ndarray | None, float | None, dict[str, str]]:
    """(K, scale, assumptions): the given intrinsics and hand scale, or, with ``assume_camera``,
    the documented defaults (``geometry.default_intrinsics``, ``geometry.NOMINAL_SCALE_M``), each
    assumption written out in ``assumptions`` {what: sentence}."""
    assumptions = {}
    if K is None and assume_camera:
        K = geometry.default_intrinsics(width, height, field_of_view)
        assumptions["intrinsics"] = (
            f"unknown camera: square pixels, principal point at the image centre, {field_of_view:g} degree "
            f"field of view across the longer image side (focal length {K[0, 0]:.1f} px)")
    if scale is None and assume_camera:
        scale = geometry.NOMINAL_SCALE_M
        assumptions["scale"] = (f"unknown hand size: middle finger MCP-PIP bone {scale:g} m (an average "
                                "adult hand); xyz are in metres")
    return K, scale, assumptions


def lift_hand(
    uv_crop: npt.ArrayLike,
    depth: npt.ArrayLike,
    crop_from_image: npt.ArrayLike,
    K: npt.ArrayLike,
    scale: float,
    root_depth: float | None = None,
) -> tuple[np.ndarray, float, str]:
    """Eq. 3 for one hand: (xyz (21, 3), root_depth, source). ``K`` is the original image's; the
    crop intrinsics are ``crop_from_image @ K``. Without ``root_depth`` it is the depth at which the
    predicted reference bone has length ``scale`` (``geometry.root_depth_from_scale``, the
    scale-normalised 2.5D closed form of Iqbal et al. 2018)."""
    K_crop = (np.asarray(crop_from_image, np.float64) @ np.asarray(K, np.float64))[None]
    uv_crop, depth = np.asarray(uv_crop, np.float64)[None], np.asarray(depth, np.float64)[None]
    source = "given"
    if root_depth is None:
        root_depth = float(geometry.root_depth_from_scale(uv_crop, depth, K_crop, np.array([scale]))[0])
        source = "estimated from the scale"
    xyz = geometry.lift(uv_crop, depth, K_crop, np.array([scale]), np.array([root_depth]))[0]
    return xyz, float(root_depth), source


def predict_image(
    predictor: Predictor,
    image: str | os.PathLike[str] | np.ndarray | dict[str, Any],
    *,
    intrinsics: npt.ArrayLike | None = None,
    box: npt.ArrayLike | None = None,
    scale: float | None = None,
    root_depth: float | None = None,
    box_margin: float = BOX_MARGIN,
    hand: str = "right",
    boxes: Sequence[npt.ArrayLike] | None = None,
    iterations: int | None = None,
    assume_camera: bool = True,
    field_of_view: float = geometry.DEFAULT_FIELD_OF_VIEW_DEG,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    """Runs ``predictor`` on one image; returns a JSON-ready dict (plus the image under "_image").

    Args:
      predictor: a :class:`Predictor` (``load_predictor``).
      image: a file path (EXIF orientation applied), or an (H, W, C) RGB(A)/grey array; or the dict
        of ``load_inputs`` (then the other input arguments are ignored).
      intrinsics: (fx, fy, cx, cy) (or a 3x3 matrix) of the original image, or None (with
        ``assume_camera``: ``field_of_view`` degrees across the longer side).
      box: (x, y, w, h) around the hand in original pixels, or None: the hand is
        searched for with the network (``lgh_tf.localize``).
      scale: hand scale, the length of the middle finger's MCP-PIP bone, in the unit wanted for
        xyz (metres, say); None: ``geometry.NOMINAL_SCALE_M`` with ``assume_camera``.
      root_depth: depth of the root joint (middle MCP) in the same unit; None: estimated from the
        scale (``root_depth_source`` says so).
      box_margin: the square crop's side is ``max(w, h) * box_margin``.
      hand: "right", "left" (the crop is mirrored) or "auto" (both, the more confident kept).
      boxes: a detector's boxes (list of x, y, w, h): each is tried, the most confident hand kept.
      iterations: search passes without a box (default ``localize.SEARCH_ITERATIONS``; 1 = the
        whole image only).
      assume_camera: without intrinsics or scale, use the documented defaults (written under
        "assumptions"); False: no 3D then.

    Returns keys: image, image_size [W, H], model, input_size, crop {box, centre, side,
    crop_from_image, whole_image, source, iterations, squares}, joints (names), uv (21, 2) original
    pixels, uv_crop, depth_relative (21,), xyz (21, 3) or None, hand, handedness, confidence,
    joint_confidence, spread_px, hand_size_px, status, detected, intrinsics, scale, root_depth,
    root_depth_source, assumptions, units, notes.

    Raises ValueError naming the input (image, intrinsics, box, scale, root_depth) when it is bad.
    """
    from lgh_tf import localize

    if isinstance(image, dict):
        inputs = image
    else:
        inputs = load_inputs(image, intrinsics=intrinsics, box=box, scale=scale, root_depth=root_depth,
                             boxes=boxes)
    rgb, box = inputs["rgb"], inputs["box"]
    notes = list(inputs["notes"])
    height, width = rgb.shape[:2]
    K, scale, assumptions = camera_and_scale(inputs["K"], inputs["scale"], width, height,
                                             assume_camera=assume_camera, field_of_view=field_of_view)
    root_depth = inputs["root_depth"]
    options = dict(hand=hand, margin=box_margin,
                   iterations=localize.SEARCH_ITERATIONS if iterations is None else iterations)
    if min_confidence is not None:
        options["min_confidence"] = min_confidence
    candidates = list(inputs.get("boxes") or [])
    if box is not None:
        candidates = [box]
    if candidates:
        found = [localize.localize(predictor, rgb, box=b, **options) for b in candidates]
        best = max(range(len(found)), key=lambda i: -np.inf if found[i]["confidence"] is None
                   else found[i]["confidence"])
        hand_result, box = found[best], candidates[best]
        if len(candidates) > 1:
            notes.append(f"{len(candidates)} detector boxes: kept box {best} (the most confident hand)")
    else:
        hand_result = localize.localize(predictor, rgb, **options)
        if hand_result["iterations"] == 1:
            notes.append(f"no box given: the whole {width}x{height} image (padded to a square) was the "
                         "only crop; pass a box x,y,w,h around the hand, or allow more search passes")
        else:
            notes.append(f"no box given: the hand was searched for with the network ({hand_result['iterations']} "
                         "passes: the whole image, then the training crop about the predicted joints)")
    if hand_result["status"] != "ok":
        notes.append(f"{hand_result['status']}: confidence {hand_result['confidence']}, hand "
                     f"{hand_result['hand_size_px']:.0f} px across; the joints are probably wrong (no hand?)")

    matrix = hand_result["crop_from_image"]
    uv_crop, depth = hand_result["uv_crop"], hand_result["depth"]
    if not (np.isfinite(uv_crop).all() and np.isfinite(depth).all()):
        raise ValueError(f"checkpoint: {predictor.description} predicts non-finite joints for this image "
                         "(diverged or corrupt weights?); nothing written")
    xyz, root_source = None, None
    if K is not None and scale is not None:
        xyz, root_depth, root_source = lift_hand(uv_crop, depth, matrix, K, scale, root_depth)
        if not np.isfinite(xyz).all():
            raise ValueError(f"the 3D lift (Eq. 3) is not finite (root depth {root_depth!r}, scale {scale!r}); "
                             "nothing written")
        if root_source != "given":
            assumptions["root_depth"] = ("estimated from the scale: the depth at which the predicted middle "
                                         "MCP-PIP bone has that length (Iqbal et al. 2018)")
    else:
        missing = [n for n, v in (("intrinsics", K), ("scale", scale)) if v is None]
        notes.append(f"no 3D joints: they need {' and '.join(missing)} (and a root depth, or it is "
                     "estimated from the scale); the 3D picture shows uv with relative depth (2.5D)")
    for what, sentence in assumptions.items():
        notes.append(f"assumed {what}: {sentence}")

    centre, side = hand_result["squares"][-1][:2], hand_result["squares"][-1][2]
    optional = lambda value: None if value is None else np.asarray(value).tolist()  # noqa: E731
    return {
        "image": inputs["source"],
        "image_size": [int(width), int(height)],
        "model": predictor.description,
        "input_size": int(predictor.input_size),
        "crop": {
            "box": None if box is None else [float(v) for v in box],
            "whole_image": hand_result["source"] == "search" and hand_result["iterations"] == 1,
            "centre": list(centre),
            "side": float(side),
            "crop_from_image": matrix.tolist(),
            "source": hand_result["source"],
            "iterations": hand_result["iterations"],
            "squares": hand_result["squares"],
        },
        "joints": list(JOINT_NAMES),
        "uv": hand_result["uv"].tolist(),
        "uv_crop": uv_crop.tolist(),
        "depth_relative": depth.tolist(),
        "xyz": optional(xyz),
        "hand": hand_result["hand"],
        "handedness": hand_result["handedness"],
        "confidence": hand_result["confidence"],
        "joint_confidence": optional(hand_result["joint_confidence"]),
        "spread_px": hand_result["spread_px"],
        "hand_size_px": hand_result["hand_size_px"],
        "status": hand_result["status"],
        "detected": hand_result["detected"],
        "intrinsics": optional(K),
        "scale": scale,
        "root_depth": root_depth,
        "root_depth_source": root_source,
        "assumptions": assumptions,
        "units": {
            "uv": "pixels of the image as displayed (EXIF orientation applied; u = column, v = row, "
                  "pixel centres at integers)",
            "depth_relative": f"(z - z_root) / scale, root = middle MCP, scale = |joint {SCALE_BONE[0]} - "
                              f"joint {SCALE_BONE[1]}|",
            "xyz": "camera coordinates in the unit of scale and root_depth",
            "confidence": "heatmap probability mass within 8 crop pixels of each joint (0-1; flat map "
                          "~0.003); the hand's is the mean over joints",
        },
        "notes": notes,
        "warnings": list(inputs.get("warnings", [])),  # e.g. a damaged file decoded only partly
        "_image": rgb,
    }


def write_outputs(result: dict[str, Any], out_dir: str, stem: str | None = None) -> dict[str, str]:
    """Writes ``<stem>.json``, ``<stem>_skeleton.png`` (the 2D skeleton over the image) and
    ``<stem>_3d.png`` (3D skeleton, or 2.5D from uv + relative depth, two viewpoints) into
    ``out_dir``; returns ``{what: path}``."""
    from lgh_tf import files, visualize

    files.require_directory(out_dir, "output_dir")
    if stem is None:
        stem = os.path.splitext(os.path.basename(result["image"]))[0] if result.get("image") else "image"
    paths = {}
    data = {k: v for k, v in result.items() if not k.startswith("_")}
    paths["json"] = os.path.join(out_dir, f"{stem}.json")
    files.write_json(paths["json"], data)

    uv = np.asarray(result["uv"], np.float64)
    overlay = visualize.draw_skeleton(result["_image"], uv)
    paths["skeleton"] = os.path.join(out_dir, f"{stem}_skeleton.png")
    files.write_png(paths["skeleton"], overlay)

    if result.get("xyz") is not None:
        points = np.asarray(result["xyz"], np.float64)
        figure = visualize.skeleton_3d_figure(points, "3D joints (camera coordinates)")
    else:
        depth = np.asarray(result["depth_relative"], np.float64)
        points = np.concatenate([uv, (depth * depth_display_scale(uv))[:, None]], axis=1)
        figure = visualize.skeleton_3d_figure(
            points, "2.5D: uv [px] and relative depth (no 3D: intrinsics/scale unknown)",
            axis_labels=("u [px]", "v [px]", "relative depth [~px]"))
    paths["3d"] = os.path.join(out_dir, f"{stem}_3d.png")
    files.write_png(paths["3d"], figure)
    return paths


MAX_DETECTIONS_BYTES = 64 << 20  # ~1M lines of boxes: hours of video at 30 frames/s


def read_detections(path: str | os.PathLike[str]) -> dict[str | int, list[list[float]]]:
    """A detector's boxes from a JSON-lines file: one object per line, ``{"image": NAME, "boxes":
    [[x, y, w, h], ...]}`` (NAME: the file's name or path) or ``{"frame": INDEX, "boxes": ...}``
    (video frames, counted from 0). Returns {name or frame index: [boxes]}; ValueError naming the
    file and line when a line is not such an object, or when the file is larger than
    ``MAX_DETECTIONS_BYTES`` (/dev/zero is not read to the end)."""
    with open(path, "rb") as f:
        data = f.read(MAX_DETECTIONS_BYTES + 1)
    if len(data) > MAX_DETECTIONS_BYTES:
        raise ValueError(f"detections: {path}: more than {MAX_DETECTIONS_BYTES >> 20} MiB, not a file of boxes")
    table = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key = entry["frame"] if "frame" in entry else entry["image"]
            if "frame" in entry and type(key) is float and key.is_integer():  # inf and nan are not
                key = int(key)
            if "frame" in entry and (type(key) is not int or not 0 <= key < 2**63):
                raise ValueError(f"frame {str(key)[:40]} is not a frame index (an integer >= 0)")
            if "frame" not in entry and not isinstance(key, str):
                raise ValueError("image is not a file name")
            boxes = [[float(v) for v in b] for b in entry["boxes"]]
            if any(len(b) != 4 or not all(np.isfinite(b)) for b in boxes):
                raise ValueError("a box is not 4 finite numbers")
        except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: [[[[...]]]]
            raise ValueError(f"detections: {path} line {number}: expected {{\"image\"|\"frame\": ..., "
                             f"\"boxes\": [[x, y, w, h], ...]}} ({type(error).__name__}: "
                             f"{str(error)[:200]})") from None
        key = key if type(key) is int else os.path.basename(key)
        table.setdefault(key, []).extend(boxes)
    return table


def run(
    checkpoints: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    image: str | os.PathLike[str] | np.ndarray,
    *,
    out_dir: str = "runs/predict",
    intrinsics: npt.ArrayLike | None = None,
    box: npt.ArrayLike | None = None,
    scale: float | None = None,
    root_depth: float | None = None,
    detections: str | os.PathLike[str] | None = None,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """load_predictor + predict_image + write_outputs; returns (result, paths). ``detections``: a
    JSON-lines file of boxes (``read_detections``), looked up by the image's file name;
    ``options`` go to ``predict_image`` (hand, iterations, field_of_view, ...)."""
    boxes = None
    if detections:
        boxes = read_detections(detections).get(os.path.basename(os.fspath(image)))
    inputs = load_inputs(image, intrinsics=intrinsics, box=box, scale=scale, root_depth=root_depth,
                         boxes=boxes)
    predictor = load_predictor(checkpoints)
    result = predict_image(predictor, inputs, **options)
    return result, write_outputs(result, out_dir)


__all__ = [
    "BOX_MARGIN", "NUM_JOINTS", "Predictor", "camera_and_scale", "crop_for_box", "exif_orientation",
    "lift_hand", "load_inputs", "load_predictor", "read_detections",
    "map_points", "check_box", "intrinsics_matrix", "numbers", "predict_image", "read_image", "render_crop",
    "run", "square_crop_matrix", "to_rgb_uint8", "write_outputs",
]
