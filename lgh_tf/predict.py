"""3D hand pose for one user image: crop, predict, map back, lift, draw.

    from lgh_tf import predict
    predictor = predict.load_predictor("runs/synthetic")        # or .pth, .weights.h5, SavedModel
    result = predict.predict_image(predictor, "hand.jpg", box="120,80,200,220",
                                   intrinsics="600,600,320,240", scale=0.04, root_depth=0.5)
    paths = predict.write_outputs(result, "runs/predict")

Geometry. Pixel centres sit at integer coordinates (as in the data pipeline). A box ``x,y,w,h``
covers the pixel columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``; its centre is
``(x + (w - 1) / 2, y + (h - 1) / 2)``. The network sees the square of side
``max(w, h) * box_margin`` about that centre (``box_margin`` 1.2, the training crops' margin about
the keypoints), resampled to its input size S; without a box, the whole image padded to a square
(side ``max(W, H)``, margin 1). ``crop_from_image`` = [[z, 0, (S - 1) / 2 - z cx], [0, z,
(S - 1) / 2 - z cy], [0, 0, 1]] with ``z = S / side`` maps original pixels to crop pixels; the
predicted crop uv are mapped back with its inverse. 3D (Eq. 3) uses the crop intrinsics
``crop_from_image @ K``, i.e. the same rays as the original uv with ``K``.

The networks are trained on right hands (every data set mirrors left hands): mirror an image of a
left hand first.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from lgh_tf.data.schema import JOINT_NAMES, NUM_JOINTS, SCALE_BONE

BOX_MARGIN = 1.2
_SAVED_MODEL_SIGNATURES = ("predict_float", "serving_default")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Predictor:
    """``predictor(images)`` with float32 (B, S, S, 3) RGB in [0, 1] -> (uv (B, 21, 2) input
    pixels, depth (B, 21) relative depth), numpy; ``input_size`` S; ``description``."""

    def __init__(self, functions, input_size, description):
        self.functions = list(functions)
        self.input_size = int(input_size)
        self.description = description

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        outputs = [fn(images) for fn in self.functions]
        uv = np.mean([np.asarray(o[0], np.float64) for o in outputs], axis=0)
        depth = np.mean([np.asarray(o[1], np.float64) for o in outputs], axis=0)
        return uv, depth


def find_saved_model(path):
    """The SavedModel directory under ``path`` (itself, or the highest numbered version of a TF
    Serving base directory), or None when ``path`` holds none."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return None
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [d for d in glob.glob(os.path.join(path, "*"))
                if os.path.basename(d).isdigit() and os.path.isfile(os.path.join(d, "saved_model.pb"))]
    if versions:
        return max(versions, key=lambda d: int(os.path.basename(d)))
    return None


def _saved_model_function(directory):
    """(fn(images) -> (uv, depth), input size) from a SavedModel with a ``predict_float`` (or
    ``serving_default``) signature taking one image tensor and returning ``uv`` and ``depth``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(directory)
    signature, name = None, None
    for candidate in _SAVED_MODEL_SIGNATURES:
        if candidate in loaded.signatures:
            signature, name = loaded.signatures[candidate], candidate
            break
    if signature is None:
        raise ValueError(f"SavedModel {directory} has none of the signatures {_SAVED_MODEL_SIGNATURES} "
                         f"(it has {sorted(loaded.signatures)})")
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        image_keys = [k for k in specs if "image" in k]
        if len(image_keys) != 1:
            raise ValueError(f"SavedModel {directory}: signature {name!r} takes {sorted(specs)}; "
                             "expected one image input")
        input_name = image_keys[0]
    else:
        input_name = next(iter(specs))
    spec = specs[input_name]
    size = spec.shape[1] if spec.shape.rank == 4 else None
    if size is None:
        size = getattr(loaded, "input_size", None)
        size = int(size.numpy()) if hasattr(size, "numpy") else size
    if not size:
        raise ValueError(f"SavedModel {directory}: input {input_name!r} has no static size "
                         f"({spec.shape}) and the model no input_size attribute")
    outputs = signature.structured_outputs
    missing = [k for k in ("uv", "depth") if k not in outputs]
    if missing:
        raise ValueError(f"SavedModel {directory}: signature {name!r} returns {sorted(outputs)}; "
                         "expected 'uv' and 'depth'")

    def run(images):
        tensor = tf.convert_to_tensor(images, tf.float32)
        if spec.dtype == tf.uint8:
            tensor = tf.cast(tf.round(tf.clip_by_value(tensor, 0.0, 1.0) * 255.0), tf.uint8)
        else:
            tensor = tf.cast(tensor, spec.dtype)
        out = signature(**{input_name: tensor})
        return out["uv"].numpy(), out["depth"].numpy()

    return run, int(size)


def load_predictor(paths):
    """A :class:`Predictor` for one model path or a list (an ensemble: mean uv and depth).

    Each path may be a training directory or checkpoint prefix, an authors' ``.pth``, a
    ``.weights.h5`` with its ``.config.json`` (``lgh_tf.model.io.load_model``), or a SavedModel
    directory (``saved_model.pb`` inside, or a TF Serving base directory with numbered versions),
    used through its ``predict_float`` signature (``serving_default`` otherwise).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths if os.fspath(p)]
    if not paths:
        raise ValueError("checkpoint: no model path given")
    functions, sizes = [], []
    for path in paths:
        saved_model = find_saved_model(path)
        if saved_model is not None:
            fn, size = _saved_model_function(saved_model)
        else:
            fn, size = _keras_function(path)
        functions.append(fn)
        sizes.append(size)
    if len(set(sizes)) != 1:
        raise ValueError(f"checkpoint: the models of an ensemble must share the input size, got {sizes}")
    description = paths[0] if len(paths) == 1 else f"ensemble of {len(paths)}: " + ", ".join(paths)
    return Predictor(functions, sizes[0], description)


def _keras_function(path):
    import tensorflow as tf

    from lgh_tf.evaluation.evaluate import load_models

    [model] = load_models([path])

    @tf.function(reduce_retracing=True)
    def run(images):
        out = model(images, training=False)
        return out["uv"], out["depth"]

    def call(images):
        uv, depth = run(tf.convert_to_tensor(images, tf.float32))
        return uv.numpy(), depth.numpy()

    return call, model.config.input_size


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def parse_floats(text, count, name, meaning):
    """``count`` comma-separated finite numbers from ``text``, or a ValueError naming ``name``."""
    if isinstance(text, (list, tuple, np.ndarray)):
        parts = list(np.asarray(text, dtype=object).reshape(-1))
    else:
        parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: cannot parse {text!r} as {count} numbers {meaning}") from None
    if len(values) != count:
        raise ValueError(f"{name}: expected {count} numbers {meaning}, got {len(values)} in {text!r}")
    if not all(np.isfinite(values)):
        raise ValueError(f"{name}: {text!r} has a non-finite value")
    return values


def parse_intrinsics(text):
    """``"fx,fy,cx,cy"`` (pixels) -> the 3x3 camera matrix; a 3x3 matrix is passed through."""
    if isinstance(text, np.ndarray) and text.shape == (3, 3):
        matrix = text.astype(np.float64)
        if not np.all(np.isfinite(matrix)) or not np.allclose(matrix[2], (0, 0, 1)):
            raise ValueError("intrinsics: a 3x3 matrix must be finite with last row (0, 0, 1)")
        return matrix
    fx, fy, cx, cy = parse_floats(text, 4, "intrinsics", "fx,fy,cx,cy")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"intrinsics: focal lengths must be positive, got fx={fx:g}, fy={fy:g}")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def parse_box(text, image_width, image_height):
    """``"x,y,w,h"`` (pixels of the image) -> (x, y, w, h); it must overlap the image."""
    x, y, w, h = parse_floats(text, 4, "box", "x,y,w,h")
    if w <= 0 or h <= 0:
        raise ValueError(f"box: width and height must be positive, got w={w:g}, h={h:g}")
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box: ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {image_width}x{image_height} "
                         "image (x, y is the top-left corner in pixels)")
    return x, y, w, h


def _positive(value, name):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a positive number, got {value!r}")
    return value


def to_rgb_uint8(image, name="image"):
    """An image array -> ((H, W, 3) uint8 RGB, notes). Grey is replicated, RGBA loses its alpha;
    other channel counts raise ValueError. 16-bit and float ([0, 1]) images are rescaled.
    Arrays are taken as RGB(A); ``read_image`` converts OpenCV's BGR(A) first."""
    image = np.asarray(image)
    notes = []
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or image.size == 0 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"{name}: {channels} channels; expected 3 (RGB), 4 (RGBA: the alpha is "
                         "dropped) or 1 (grey)")
    if image.dtype == np.uint16:
        image = (image.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        finite = image[np.isfinite(image)]
        top = float(finite.max()) if finite.size else 0.0
        image = np.clip(np.nan_to_num(image) * (255.0 if top <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if channels == 1:
        image = np.repeat(image[..., None], 3, axis=2)
        notes.append("grey image: replicated to RGB")
    elif channels == 4:
        image = image[..., :3]
        notes.append("RGBA image: alpha channel dropped")
    return np.ascontiguousarray(image), notes


def read_image(path):
    """Reads an image file -> ((H, W, 3) uint8 RGB, notes); ValueError naming the file if it
    cannot be read or has an unsupported channel count."""
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"image: no such file {path}")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image: cannot read {path} (not an image format OpenCV can decode, or "
                         "a damaged file)")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[..., ::-1]  # BGR -> RGB
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., [2, 1, 0, 3]]  # BGRA -> RGBA
    return to_rgb_uint8(image, f"image {path}")


# ---------------------------------------------------------------------------------------------
# Crop geometry
# ---------------------------------------------------------------------------------------------


def square_crop_matrix(centre, side, output_size):
    """3x3 map from image pixels to the S x S crop of the square of ``side`` px about ``centre``."""
    zoom = output_size / float(side)
    shift = 0.5 * (output_size - 1.0) - zoom * np.asarray(centre, np.float64)
    return np.array([[zoom, 0.0, shift[0]], [0.0, zoom, shift[1]], [0.0, 0.0, 1.0]])


def crop_for_box(box, image_width, image_height, output_size, box_margin=BOX_MARGIN):
    """(crop_from_image, centre, side) for a box (x, y, w, h), or the whole image when None."""
    if box is None:
        centre = np.array([(image_width - 1) / 2.0, (image_height - 1) / 2.0])
        side = float(max(image_width, image_height))
    else:
        x, y, w, h = box
        centre = np.array([x + (w - 1) / 2.0, y + (h - 1) / 2.0])
        side = float(max(w, h)) * box_margin
    return square_crop_matrix(centre, side, output_size), centre, side


def map_points(matrix, points):
    """Applies a 3x3 affine map to (..., 2) points."""
    points = np.asarray(points, np.float64)
    return points @ np.asarray(matrix)[:2, :2].T + np.asarray(matrix)[:2, 2]


def render_crop(image, crop_from_image, output_size):
    """The S x S crop (uint8 RGB), bilinear with zero fill; strong down-scaling is area-averaged
    first (cv2.INTER_AREA) so that a large photo does not alias."""
    import cv2

    matrix = np.asarray(crop_from_image, np.float64)
    zoom = matrix[0, 0]
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


def depth_display_scale(uv):
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


def load_inputs(image, *, intrinsics=None, box=None, scale=None, root_depth=None):
    """Reads and checks everything about one prediction except the model (cheap, so that bad input
    fails before a model is loaded). Returns a dict: rgb, source, K, box, scale, root_depth, notes.
    Raises ValueError naming the input (image, intrinsics, box, scale, root_depth)."""
    if isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
        rgb, notes = read_image(source)
    else:
        source = None
        rgb, notes = to_rgb_uint8(image)
    height, width = rgb.shape[:2]
    blank = lambda value: value is None or (isinstance(value, str) and not value.strip())  # noqa: E731
    K = None if blank(intrinsics) else parse_intrinsics(intrinsics)
    if blank(box):
        box = None
        notes.append(f"no box given: using the whole {width}x{height} image (padded to a square); "
                     "pass a box x,y,w,h around the hand for a better result")
    else:
        box = parse_box(box, width, height)
    return {
        "rgb": rgb, "source": source, "K": K, "box": box, "scale": _positive(scale, "scale"),
        "root_depth": _positive(root_depth, "root_depth"), "notes": notes,
    }


def predict_image(predictor, image, *, intrinsics=None, box=None, scale=None, root_depth=None,
                  box_margin=BOX_MARGIN, verbose=True):
    """Runs ``predictor`` on one image; returns a JSON-ready dict (plus the image under "_image").

    Args:
      predictor: a :class:`Predictor` (``load_predictor``).
      image: a file path, or an (H, W, C) RGB(A)/grey array; or the dict of ``load_inputs``
        (then the other input arguments are ignored).
      intrinsics: ``"fx,fy,cx,cy"`` (or a 3x3 matrix) of the original image, or None.
      box: ``"x,y,w,h"`` (or a 4-sequence) around the hand in original pixels, or None for the
        whole image (a note says so).
      scale: hand scale, the length of the middle finger's MCP-PIP bone, in the unit wanted for
        xyz (metres, say).
      root_depth: depth of the root joint (middle MCP) in the same unit. With ``intrinsics`` and
        ``scale`` but no ``root_depth``, it is estimated from the scale (the depth at which the
        predicted reference bone has that length; ``root_depth_source`` says so).
      box_margin: the square crop's side is ``max(w, h) * box_margin``.
      verbose: print the notes.

    Returns keys: image, image_size [W, H], model, input_size, crop {box, centre, side,
    crop_from_image, whole_image}, joints (names), uv (21, 2) original pixels, uv_crop,
    depth_relative (21,), xyz (21, 3) or None, intrinsics, scale, root_depth, root_depth_source,
    units, notes.

    Raises ValueError naming the input (image, intrinsics, box, scale, root_depth) when it is bad.
    """
    from lgh_tf.evaluation.evaluate import root_depth_from_scale
    from lgh_tf.model.recovery import lift_to_camera

    if isinstance(image, dict):
        inputs = image
    else:
        inputs = load_inputs(image, intrinsics=intrinsics, box=box, scale=scale, root_depth=root_depth)
    rgb, K, box = inputs["rgb"], inputs["K"], inputs["box"]
    scale, root_depth = inputs["scale"], inputs["root_depth"]
    notes = list(inputs["notes"])
    height, width = rgb.shape[:2]

    size = predictor.input_size
    matrix, centre, side = crop_for_box(box, width, height, size, box_margin)
    crop = render_crop(rgb, matrix, size)
    uv_crop, depth = predictor(crop[None].astype(np.float32) / 255.0)
    uv_crop, depth = np.asarray(uv_crop[0], np.float64), np.asarray(depth[0], np.float64)
    uv = map_points(np.linalg.inv(matrix), uv_crop)

    xyz, root_source = None, None
    if K is not None and scale is not None:
        if root_depth is None:
            root_depth = float(root_depth_from_scale(uv_crop[None], depth[None], (matrix @ K)[None],
                                                     np.array([scale]))[0])
            root_source = "estimated from the scale"
            notes.append("no root depth given: estimated from the scale (the depth at which the "
                         "predicted middle MCP-PIP bone has that length)")
        else:
            root_source = "given"
        xyz = lift_to_camera(uv_crop[None], depth[None], (matrix @ K)[None], [scale], [root_depth])
        xyz = xyz.numpy()[0].astype(np.float64)
    else:
        missing = [n for n, v in (("intrinsics", K), ("scale", scale)) if v is None]
        notes.append(f"no 3D joints: they need {' and '.join(missing)} (and a root depth, or it is "
                     "estimated from the scale); the 3D picture shows uv with relative depth (2.5D)")

    if verbose:
        for note in notes:
            print(f"note: {note}")
    return {
        "image": inputs["source"],
        "image_size": [int(width), int(height)],
        "model": predictor.description,
        "input_size": int(size),
        "crop": {
            "box": None if box is None else [float(v) for v in box],
            "whole_image": box is None,
            "centre": centre.tolist(),
            "side": float(side),
            "crop_from_image": matrix.tolist(),
        },
        "joints": list(JOINT_NAMES),
        "uv": uv.tolist(),
        "uv_crop": uv_crop.tolist(),
        "depth_relative": depth.tolist(),
        "xyz": None if xyz is None else xyz.tolist(),
        "intrinsics": None if K is None else K.tolist(),
        "scale": scale,
        "root_depth": root_depth,
        "root_depth_source": root_source,
        "units": {
            "uv": "pixels of the original image (u = column, v = row, pixel centres at integers)",
            "depth_relative": f"(z - z_root) / scale, root = middle MCP, scale = |joint {SCALE_BONE[0]} - "
                              f"joint {SCALE_BONE[1]}|",
            "xyz": "camera coordinates in the unit of scale and root_depth",
        },
        "notes": notes,
        "_image": rgb,
    }


def write_outputs(result, out_dir, stem=None):
    """Writes ``<stem>.json``, ``<stem>_skeleton.png`` (the 2D skeleton over the image) and
    ``<stem>_3d.png`` (3D skeleton, or 2.5D from uv + relative depth, two viewpoints) into
    ``out_dir``; returns ``{what: path}``."""
    import cv2

    from lgh_tf import visualize

    os.makedirs(out_dir, exist_ok=True)
    if stem is None:
        stem = os.path.splitext(os.path.basename(result["image"]))[0] if result.get("image") else "image"
    paths = {}
    data = {k: v for k, v in result.items() if not k.startswith("_")}
    paths["json"] = os.path.join(out_dir, f"{stem}.json")
    with open(paths["json"], "w") as f:
        json.dump(data, f, indent=2, allow_nan=False)

    uv = np.asarray(result["uv"], np.float64)
    overlay = visualize.draw_skeleton(result["_image"], uv)
    paths["skeleton"] = os.path.join(out_dir, f"{stem}_skeleton.png")
    if not cv2.imwrite(paths["skeleton"], overlay[..., ::-1]):
        raise OSError(f"cannot write {paths['skeleton']}")

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
    if not cv2.imwrite(paths["3d"], figure[..., ::-1]):
        raise OSError(f"cannot write {paths['3d']}")
    return paths


def run(checkpoints, image, *, out_dir="runs/predict", intrinsics=None, box=None, scale=None,
        root_depth=None):
    """load_predictor + predict_image + write_outputs; returns (result, paths)."""
    inputs = load_inputs(image, intrinsics=intrinsics, box=box, scale=scale, root_depth=root_depth)
    predictor = load_predictor(checkpoints)
    result = predict_image(predictor, inputs)
    return result, write_outputs(result, out_dir)


__all__ = [
    "BOX_MARGIN", "NUM_JOINTS", "Predictor", "crop_for_box", "find_saved_model", "load_inputs",
    "load_predictor",
    "map_points", "parse_box", "parse_intrinsics", "predict_image", "read_image", "render_crop",
    "run", "square_crop_matrix", "to_rgb_uint8", "write_outputs",
]
