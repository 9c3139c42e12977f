"""Evaluation of trained models on a held-out split: predict, lift to 3D (Eq. 3), score, report.

    from lgh_tf.evaluation import evaluate
    records, scales = evaluate.load_eval_records("stb")
    dataset = evaluate.make_eval_dataset("stb", records, output_size=256, scales=scales)
    predictions, gt = evaluate.predict_dataset([model_a, model_b], dataset)   # ensemble
    results = evaluate.evaluate("stb", predictions, gt)
    print(evaluate.results_table({"LGH": results}))
    evaluate.write_report(results, "runs/eval_stb", predictions=predictions)

Protocols by data set (``lgh_tf.evaluation.metrics``; inputs in millimetres):

* ``synthetic``, ``rhd``, ``stb``: ``rhd_stb_3d_protocol``. The network sees the crop around the
  ground-truth keypoints (the pipeline's evaluation crop) and its uv + relative depth are lifted
  with Eq. 3 using the ground-truth crop intrinsics, hand scale and root depth (Zimmermann & Brox
  2017, followed by the paper). All 21 joints count (as the authors' ``eval_RHD.py``).
* ``dexter``: ``dexter_protocol`` on the annotated fingertips. Dexter+Object labels only the five
  fingertips, so there is neither a keypoint box, a root depth nor a hand scale: the crop is a
  square about the visible fingertips (``DEXTER_BOX_FACTOR`` times their extent, at least
  ``DEXTER_MIN_CROP_PX``), and the root depth and scale of Eq. 3 are fitted by linear least squares
  to the annotated fingertips (Eq. 3 is linear in both), before the protocol's own per-sample
  scale + translation alignment ("best root and scale", Yang et al. 2019). A frame with fewer
  than two annotated fingertips fits the root depth only, with the nominal ``NOMINAL_SCALE_M``.
* ``freihand``: ``freihand_protocol`` (Procrustes-aligned and unaligned). FreiHAND's evaluation
  images are 224x224 crops centred on the hand, and their keypoints are not given at test time,
  so the network sees the whole image (resized to the model size) whether labels exist or not.
  The hand scale is the published ``evaluation_scale.json`` (the middle MCP-PIP bone, the same
  bone as ours) or, without it, the ground-truth bone. The root depth is the ground-truth one when
  evaluation labels (``evaluation_xyz.json``) exist; otherwise it is *estimated* from the scale:
  the depth at which the predicted middle MCP-PIP bone, back-projected with Eq. 3, has the given
  length (a quadratic, as Iqbal et al. 2018). ``write_report`` then writes ``pred.json`` for the
  FreiHAND server: ``[xyz_list, verts_list]``, xyz in metres in FreiHAND's joint order, and
  778 zero vertices per sample (this method predicts no mesh; the official template's
  placeholder).

2D figures (``metrics.protocol_2d``, 0-30 px) are measured in pixels of the original image (crop
pixels mapped back through the crop), per-joint errors are in every protocol's result.
"""

from __future__ import annotations

import json
import logging
import os
import weakref

import numpy as np

from lgh_tf import files, geometry
from lgh_tf.data import schema
from lgh_tf.evaluation import metrics

# Eq. 3 and the scale-based root depth live in lgh_tf.geometry; their names stay importable here.
from lgh_tf.geometry import FALLBACK_ROOT_DEPTH_M, NOMINAL_SCALE_M, back_project, root_depth_from_scale  # noqa: F401
from lgh_tf.geometry import lift as lift_numpy

# TensorFlow and the tf.data pipeline are imported where they are used, so that a missing data set
# or checkpoint is reported without the seconds TensorFlow takes to import.

logger = logging.getLogger(__name__)

# How the network's input crop is chosen, by data set (see the module docstring).
CROP_MODES = ("keypoints", "image", "fingertips")
DATASET_CROP = {
    "synthetic": "keypoints",
    "rhd": "keypoints",
    "stb": "keypoints",
    "freihand": "image",
    "dexter": "fingertips",
}
PROTOCOLS = {
    "synthetic": "rhd_stb_3d",
    "rhd": "rhd_stb_3d",
    "stb": "rhd_stb_3d",
    "dexter": "dexter",
    "freihand": "freihand",
}
TABLE_COLUMNS = {
    "rhd_stb_3d": metrics.RHD_STB_COLUMNS,
    "dexter": metrics.DEXTER_COLUMNS,
    "freihand": metrics.FREIHAND_COLUMNS,
}
DEXTER_BOX_FACTOR = 2.0
DEXTER_MIN_CROP_PX = 200.0
FREIHAND_NUM_VERTS = 778
# FreiHAND order: 0 wrist, then thumb, index, middle, ring, little, each MCP -> tip.
# FREIHAND_FROM_OURS[i] is our (RHD-order) index of FreiHAND joint i.
FREIHAND_FROM_OURS = (0,) + tuple(
    joint for finger in schema.FINGERS for joint in reversed(schema.FINGER_JOINTS[finger])
)


# ---------------------------------------------------------------------------------------------
# Eval inputs
# ---------------------------------------------------------------------------------------------


def load_eval_records(dataset, *, data_dir="", cache_dir="cache", seed=0, synthetic_test=None,
                      reader_options=None):
    """(Records, scales) of a data set's evaluation split.

    ``scales`` is None, or (N,) hand scales in metres given by the data set itself (FreiHAND's
    ``evaluation_scale.json``, needed when its evaluation labels are not published).
    ``reader_options`` as in ``lgh_tf.data.sources.load_sources``.
    """
    from lgh_tf.data.sources import COMBINED, load_sources

    if dataset in COMBINED:
        members = " and ".join(f"--dataset={m}" for m, _ in COMBINED[dataset])
        raise ValueError(f"--dataset={dataset} is a training mix; evaluate on {members} separately")
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown data set {dataset!r}; one of {sorted(PROTOCOLS)}")
    counts = {"test": synthetic_test} if synthetic_test else None
    [(records, _)] = load_sources(dataset, "eval", data_dir=data_dir, cache_dir=cache_dir, seed=seed,
                                  synthetic_counts=counts, reader_options=reader_options)
    scales = None
    if dataset == "freihand":
        scales = _freihand_scales(records, data_dir)
    return records, scales


def _freihand_scales(records, data_dir):
    """evaluation_scale.json aligned with ``records`` (by image id), or None if absent."""
    from lgh_tf.data import registry

    root = registry.DATASETS["freihand"].resolve_dir(data_dir or None)
    path = os.path.join(root, "evaluation_scale.json")
    if not os.path.isfile(path):
        logger.warning("freihand: %s not found; hand scale from the evaluation labels only", path)
        return None
    with open(path) as f:
        values = np.asarray(json.load(f), dtype=np.float64).reshape(-1)
    ids = [int(os.path.splitext(os.path.basename(str(p)))[0]) for p in records.image_path]
    if max(ids, default=-1) >= len(values):
        raise ValueError(f"freihand: {path} has {len(values)} entries, fewer than the images")
    return values[ids]


def _positive_or_nan(values):
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _fingertip_boxes(records):
    """(N, 3) square crops (centre u, centre v, side) about each sample's visible fingertips."""
    tips = list(metrics.FINGERTIPS)
    boxes = np.zeros((len(records), 3))
    for i in range(len(records)):
        mask = np.asarray(records.visible[i])[tips]
        uv = np.asarray(records.uv[i], np.float64)[tips][mask]
        uv = uv[np.all(np.isfinite(uv), axis=1)]
        if len(uv) == 0:
            raise ValueError(f"{records.name}: sample {i} ({records.image_path[i]}) has no annotated "
                             "fingertip to place the crop")
        centre, side = geometry.points_square(uv, DEXTER_BOX_FACTOR, DEXTER_MIN_CROP_PX)
        boxes[i] = (*centre, side)
    return boxes


def make_eval_dataset(dataset, records, *, output_size, batch_size=16, crop=None, scales=None,
                      augment_config=None):
    """Batched evaluation inputs with everything needed to score them.

    Args:
      dataset: data set name (picks the crop, ``DATASET_CROP``, unless ``crop`` is given).
      records: the evaluation Records (``load_eval_records``).
      output_size: the model's input size.
      crop: "keypoints" (the pipeline's evaluation crop about the ground-truth keypoints; the
        records are validated first as in training), "image" (the whole image, padded to a
        square) or "fingertips" (about the visible fingertips, Dexter+Object).
      scales: optional (N,) hand scales in metres, used where the labels give none.

    Returns a dataset of dicts: ``image`` (B, S, S, 3) in [0, 1]; ``uv`` (B, 21, 2) crop pixels
    and ``uv_image`` original pixels (NaN where unknown); ``xyz`` (B, 21, 3) metres; ``K`` crop
    intrinsics; ``crop_from_image`` (B, 3, 3); ``scale`` and ``root_depth`` (B,) metres (NaN where
    unknown); ``visible`` (B, 21); ``index`` (B,) row in ``records``. Unreadable images are
    dropped with a logged warning (``index`` tells which rows survive).
    """
    import tensorflow as tf

    from lgh_tf.data import pipeline

    crop = crop or DATASET_CROP.get(dataset)
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    config = augment_config or pipeline.AugmentConfig()
    n = len(records)
    index = np.arange(n)
    if crop == "keypoints":
        problems = pipeline.find_invalid_samples(records)
        if problems:
            keep = np.ones(n, bool)
            keep[list(problems)] = False
            index = index[keep]
            logger.warning("%s: %d of %d samples cannot be evaluated (first: %s)", records.name,
                           len(problems), n, next(iter(problems.values())))
        if len(index) == 0:
            raise ValueError(f"{records.name}: no valid sample to evaluate")
    xyz = np.asarray(records.xyz, np.float64)
    child, parent = schema.SCALE_BONE
    with np.errstate(invalid="ignore"):
        scale = _positive_or_nan(np.linalg.norm(xyz[:, child] - xyz[:, parent], axis=-1))
    scale[scale < 1e-6] = np.nan
    if scales is not None:
        given = _positive_or_nan(np.asarray(scales, np.float64).reshape(-1))
        if given.shape != (n,):
            raise ValueError(f"scales must have one entry per record ({n}), got {given.shape}")
        scale = np.where(np.isfinite(scale), scale, given)
    root_depth = _positive_or_nan(xyz[:, schema.ROOT, 2])
    boxes = _fingertip_boxes(records) if crop == "fingertips" else np.zeros((n, 3))

    elements = tf.data.Dataset.from_tensor_slices({
        "image_path": np.asarray(records.image_path, dtype=str).astype(object)[index],
        "uv": np.asarray(records.uv, np.float32)[index],
        "xyz": np.asarray(records.xyz, np.float32)[index],
        "K": np.asarray(records.K, np.float32)[index],
        "visible": np.asarray(records.visible, np.float32)[index],
        "flip": np.asarray(records.flip, bool)[index],
        "scale": scale.astype(np.float32)[index],
        "root_depth": root_depth.astype(np.float32)[index],
        "box": boxes.astype(np.float32)[index],
        "index": index.astype(np.int64),
    })

    def load(element):
        image = pipeline.read_image(element["image_path"])
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        if crop == "keypoints":
            matrix = pipeline.hand_crop_matrix(element["uv"], height, width, output_size, config)
        elif crop == "image":
            matrix = geometry.square_crop_matrix(*geometry.image_square(width, height), output_size)
        else:
            matrix = geometry.square_crop_matrix(element["box"][:2], element["box"][2], output_size)
        source = pipeline.source_from_crop(matrix, width, element["flip"])
        pixels = pipeline.warp_image_projective(image, source, output_size)
        uv = element["uv"]
        return {
            "image": tf.clip_by_value(pixels * (1.0 / 255.0), 0.0, 1.0),
            "uv": geometry.map_points(matrix, uv),
            "uv_image": uv,
            "xyz": element["xyz"],
            "K": matrix @ element["K"],
            "crop_from_image": matrix,
            "scale": element["scale"],
            "root_depth": element["root_depth"],
            "visible": element["visible"],
            "index": element["index"],
        }

    data = elements.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    data = data.ignore_errors(log_warning=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


def fit_root_and_scale(uv, depth, intrinsics, gt_xyz, visible):
    """(root depth, scale) (N,) minimising sum ||(s d_j + z) r_j - X_j||^2 over visible joints.

    Eq. 3 is linear in (z_root, s): a 2x2 least-squares problem per sample. Samples with fewer
    than two visible joints fit z_root only, with ``NOMINAL_SCALE_M``; NaN where none is visible.
    """
    rays = back_project(uv, intrinsics)
    depth = np.asarray(depth, np.float64)
    gt_xyz = np.asarray(gt_xyz, np.float64)
    visible = np.asarray(visible) > 0
    n = len(rays)
    roots, scales = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        joints = np.flatnonzero(visible[i])
        if len(joints) == 0:
            continue
        r, d, x = rays[i, joints], depth[i, joints], gt_xyz[i, joints]
        if len(joints) >= 2:
            design = np.stack([r.reshape(-1), (d[:, None] * r).reshape(-1)], axis=1)
            solution, *_ = np.linalg.lstsq(design, x.reshape(-1), rcond=None)
            if np.all(np.isfinite(solution)) and solution[0] > 0 and solution[1] > 0:
                roots[i], scales[i] = solution
                continue
        s = NOMINAL_SCALE_M
        target = (x - s * d[:, None] * r).reshape(-1)
        rr = r.reshape(-1)
        roots[i], scales[i] = float(rr @ target / (rr @ rr)), s
    return roots, scales


def load_models(paths):
    """``lgh_tf.model.io.load_model`` for each path (a list, or one comma-separated string).

    A checkpoint that does not fit the network of its config.json (another version of the code,
    say) raises a short ValueError naming the path instead of TensorFlow's list of variables.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [p.strip() for p in os.fspath(paths).split(",")]
    paths = [os.fspath(p) for p in paths if os.fspath(p)]
    if not paths:
        raise ValueError("checkpoint: no model path given")
    for path in paths:
        if not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise FileNotFoundError(f"checkpoint: {path} does not exist")
    from lgh_tf.model.io import load_model

    models = []
    for path in paths:
        try:
            models.append(load_model(path))
        except AssertionError as error:
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise ValueError(f"checkpoint: {path} does not match the network described by its "
                             f"config (written by another version of lgh_tf?): {first}") from None
    return models


def _as_model_list(models):
    if isinstance(models, (list, tuple)):
        models = list(models)
    else:
        models = [models]
    if not models:
        raise ValueError("predict_dataset needs at least one model")
    return models


_COMPILED = weakref.WeakKeyDictionary()


def _prediction_fn(model):
    """A compiled ``images -> (uv, depth)`` for a Keras LearnableGroupsNet (one per model, cached),
    or a wrapper of any callable returning a dict with uv and depth."""
    import keras
    import tensorflow as tf

    if isinstance(model, keras.Model):
        if model not in _COMPILED:

            @tf.function(reduce_retracing=True)
            def run(images):
                out = model(images, training=False)
                return out["uv"], out["depth"]

            _COMPILED[model] = run
        run = _COMPILED[model]
        return lambda images: tuple(t.numpy() for t in run(images))

    def run_callable(images):
        out = model(images)
        return np.asarray(out["uv"]), np.asarray(out["depth"])

    return run_callable


def model_input_size(model):
    """The square input size a model expects (``config.input_size`` or ``input_size``)."""
    config = getattr(model, "config", None)
    size = getattr(config, "input_size", None) or getattr(model, "input_size", None)
    return int(size) if size else None


def predict_dataset(models, dataset, *, max_batches=None):
    """Runs one model or a checkpoint ensemble over a batched eval dataset.

    Ensemble (paper Table 1): the mean of the models' uv and relative depth. 3D joints come from
    Eq. 3 with each batch's crop intrinsics ``K``, ``scale`` and ``root_depth``; where the root
    depth is unknown (NaN, e.g. FreiHAND without labels) it is estimated from the scale
    (``root_depth_from_scale``), where the scale is unknown too ``NOMINAL_SCALE_M`` is used.

    Args:
      models: a model (``model(images, training=False)`` -> dict with uv, depth) or a list of them;
        any callable returning such a dict works as well.
      dataset: batches as ``make_eval_dataset`` (or ``pipeline.make_dataset(training=False)``,
        which lacks ``crop_from_image``, so 2D figures are then in crop pixels).

    Returns:
      ``(predictions, gt)``, dicts of numpy arrays, lengths in **millimetres**:
      predictions: ``uv_px`` (N, 21, 2) crop pixels, ``uv_image_px`` original pixels (when the
      batches carry ``crop_from_image``), ``depth`` (N, 21), ``xyz_mm`` (N, 21, 3),
      ``root_depth_mm`` and ``scale_mm`` (N,) used for the lift, ``root_estimated`` (N,) bool,
      ``num_models``.
      gt: ``uv_px``, ``uv_image_px``, ``xyz_mm``, ``visible``, ``K`` (crop), ``crop_from_image``,
      ``scale_mm``, ``root_depth_mm`` (NaN where unknown), ``index``.
    """
    models = _as_model_list(models)
    sizes = {model_input_size(m) for m in models} - {None}
    if len(sizes) > 1:
        raise ValueError(f"the models of an ensemble must share the input size, got {sorted(sizes)}")
    functions = [_prediction_fn(m) for m in models]
    collected = {}
    for number, batch in enumerate(dataset):
        if max_batches is not None and number >= max_batches:
            break
        images = batch["image"]
        if sizes and images.shape[1] not in sizes:
            raise ValueError(f"the dataset's images are {images.shape[1]} px, the model takes "
                             f"{sizes.pop()} px")
        outputs = [fn(images) for fn in functions]
        row = {
            "pred_uv": np.mean([o[0] for o in outputs], axis=0, dtype=np.float64),
            "pred_depth": np.mean([o[1] for o in outputs], axis=0, dtype=np.float64),
        }
        for key, value in batch.items():
            if key != "image":
                row[key] = value.numpy()
        for key, value in row.items():
            collected.setdefault(key, []).append(value)
    if not collected:
        raise ValueError("the evaluation dataset is empty")
    data = {key: np.concatenate(values) for key, values in collected.items()}
    n = len(data["pred_uv"])

    scale = data.get("scale", np.full(n, np.nan)).astype(np.float64)
    root_depth = data.get("root_depth", np.full(n, np.nan)).astype(np.float64)
    scale_used = np.where(np.isfinite(scale) & (scale > 0), scale, NOMINAL_SCALE_M)
    estimated = ~(np.isfinite(root_depth) & (root_depth > 0))
    root_used = root_depth.copy()
    if estimated.any():
        root_used[estimated] = root_depth_from_scale(
            data["pred_uv"][estimated], data["pred_depth"][estimated], data["K"][estimated],
            scale_used[estimated])
    xyz = lift_numpy(data["pred_uv"], data["pred_depth"], data["K"], scale_used, root_used)

    predictions = {
        "uv_px": data["pred_uv"],
        "depth": data["pred_depth"],
        "xyz_mm": 1000.0 * xyz,
        "root_depth_mm": 1000.0 * root_used,
        "scale_mm": 1000.0 * scale_used,
        "root_estimated": estimated,
        "num_models": len(models),
    }
    gt = {
        "uv_px": data["uv"].astype(np.float64),
        "xyz_mm": 1000.0 * data["xyz"].astype(np.float64),
        "visible": data["visible"] > 0,
        "K": data["K"].astype(np.float64),
        "scale_mm": 1000.0 * scale,
        "root_depth_mm": 1000.0 * root_depth,
        "index": data.get("index", np.arange(n)),
    }
    if "crop_from_image" in data:
        matrix = data["crop_from_image"].astype(np.float64)
        predictions["uv_image_px"] = geometry.map_points(np.linalg.inv(matrix), data["pred_uv"])
        gt["uv_image_px"] = data["uv_image"].astype(np.float64)
        gt["crop_from_image"] = matrix
    return predictions, gt


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _has_labels(gt):
    xyz = gt["xyz_mm"]
    return bool(np.isfinite(xyz).all(axis=-1).any()) and bool(np.asarray(gt["visible"]).any())


def evaluate(dataset, predictions, gt):
    """Scores predictions with the data set's protocol; a JSON-ready dict (see module docstring).

    Returns ``dataset``, ``protocol``, ``num_samples``, ``3d`` (the protocol's figures, PCK curve
    and per-joint mean errors, or None without labels), ``2d`` (``metrics.protocol_2d`` in
    original-image pixels, or crop pixels when the batches had no crop matrix), ``units``,
    ``root_depth`` / ``scale`` / ``crop`` (how Eq. 3 was fed) and ``notes``.
    """
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown data set {dataset!r}; one of {sorted(PROTOCOLS)}")
    protocol = PROTOCOLS[dataset]
    n = len(predictions["uv_px"])
    notes = []
    labelled = _has_labels(gt)
    pred_xyz = predictions["xyz_mm"]
    visible_2d = None
    root_note = ("ground truth" if not np.any(predictions["root_estimated"])
                 else "estimated from the hand scale (no ground truth)")
    scale_note = "ground truth" if np.all(np.isfinite(gt["scale_mm"])) else "partly nominal"

    if protocol == "dexter":
        visible = np.asarray(gt["visible"], bool)
        roots, scales = fit_root_and_scale(predictions["uv_px"], predictions["depth"], gt["K"],
                                           gt["xyz_mm"] / 1000.0, visible)
        ok = np.isfinite(roots)
        pred_xyz = pred_xyz.copy()
        pred_xyz[ok] = 1000.0 * lift_numpy(predictions["uv_px"][ok], predictions["depth"][ok],
                                           gt["K"][ok], scales[ok], roots[ok])
        root_note = scale_note = "least-squares fit to the annotated fingertips"
        result_3d = metrics.dexter_protocol(pred_xyz, gt["xyz_mm"], visible)
        visible_2d = visible & np.isin(np.arange(schema.NUM_JOINTS), metrics.FINGERTIPS)
    elif not labelled:
        result_3d = None
        notes.append("no ground truth in this split: nothing scored (FreiHAND: submit pred.json "
                     "to the evaluation server)")
    elif protocol == "freihand":
        result_3d = metrics.freihand_protocol(pred_xyz, gt["xyz_mm"])
    else:
        result_3d = metrics.rhd_stb_3d_protocol(pred_xyz, gt["xyz_mm"])

    if "uv_image_px" in predictions:
        pred_uv, gt_uv, unit = predictions["uv_image_px"], gt["uv_image_px"], "original-image pixels"
    else:
        pred_uv, gt_uv, unit = predictions["uv_px"], gt["uv_px"], "crop pixels"
    result_2d = None
    if labelled:
        result_2d = metrics.protocol_2d(pred_uv, gt_uv, visible_2d)
    crop = {"rhd_stb_3d": "ground-truth keypoint box", "dexter": "fingertip box",
            "freihand": "whole image"}[protocol]
    return {
        "dataset": dataset,
        "protocol": protocol,
        "num_samples": int(n),
        "num_models": int(predictions.get("num_models", 1)),
        "3d": None if result_3d is None else metrics.summarize(result_3d, curves=True),
        "2d": None if result_2d is None else metrics.summarize(result_2d, curves=True),
        "units": {"3d": "mm (mean EPE also in cm for FreiHAND)", "2d": unit},
        "root_depth": root_note,
        "scale": scale_note,
        "crop": crop,
        "notes": notes,
    }


def results_table(rows, *, precision=3):
    """The paper's table layout for ``{row name: evaluate(...) result}`` (one protocol), plus the
    2D figures (mean EPE in px, AUC over 0-30 px)."""
    rows = dict(rows)
    protocols = {r["protocol"] for r in rows.values()}
    if len(protocols) != 1:
        raise ValueError(f"one protocol per table, got {sorted(protocols)}")
    columns = tuple(TABLE_COLUMNS[protocols.pop()]) + (
        ("2D EPE [px]", "epe_2d_px"), ("2D AUC [0-30px]", "auc_2d"))
    flat = {}
    for name, result in rows.items():
        cells = dict(result.get("3d") or {})
        if result.get("2d"):
            cells["epe_2d_px"] = result["2d"].get("mean_epe_px")
            cells["auc_2d"] = result["2d"].get("auc")
        flat[name] = cells
    return metrics.format_table(flat, columns, precision=precision)


# ---------------------------------------------------------------------------------------------
# FreiHAND submission
# ---------------------------------------------------------------------------------------------


def to_freihand_order(xyz):
    """(..., 21, D) joints in our (RHD) order -> FreiHAND's order (wrist, each finger MCP->tip)."""
    return np.asarray(xyz)[..., list(FREIHAND_FROM_OURS), :]


def from_freihand_order(xyz):
    """(..., 21, D) joints in FreiHAND's order -> our (RHD) order."""
    return np.asarray(xyz)[..., list(np.argsort(FREIHAND_FROM_OURS)), :]


def write_freihand_submission(path, xyz_m, verts=None):
    """Writes FreiHAND's ``pred.json``: ``[xyz_list, verts_list]`` as the official ``pred.py``.

    ``xyz_m`` (N, 21, 3) metres in our joint order, in the order of the evaluation images
    (N = 3,960 for the full set); converted to FreiHAND's order here. ``verts`` (N, V, 3) metres,
    default 778 zero vertices per sample (no mesh predicted; the template's placeholder).
    """
    xyz = np.asarray(xyz_m, np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (schema.NUM_JOINTS, 3):
        raise ValueError(f"xyz_m must have shape (N, 21, 3), got {xyz.shape}")
    _check_finite_rows(xyz)
    xyz_list = to_freihand_order(xyz).tolist()
    if verts is None:
        zeros = [[0.0, 0.0, 0.0] for _ in range(FREIHAND_NUM_VERTS)]
        verts_list = [zeros] * len(xyz)
    else:
        verts = np.asarray(verts, np.float64)
        if verts.ndim != 3 or verts.shape[0] != len(xyz) or verts.shape[2] != 3:
            raise ValueError(f"verts must have shape (N, V, 3) with N = {len(xyz)}, got {verts.shape}")
        verts_list = verts.tolist()
    files.write_bytes(path, json.dumps([xyz_list, verts_list], allow_nan=False).encode())
    return path


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _freihand_rows(results, predictions, gt):
    """pred.json's rows (N, 21, 3) metres: one per published evaluation image, in order, or a
    ValueError naming the first image without a (finite) prediction."""
    index = np.asarray(gt["index"]) if gt is not None else np.arange(len(predictions["xyz_mm"]))
    expected = results.get("num_records", len(index))
    missing = sorted(set(range(expected)) - set(index.tolist()))
    if missing:
        raise ValueError(f"pred.json needs a prediction for each of the {expected} evaluation "
                         f"images; {len(missing)} could not be read (first: image {missing[0]:08d}); "
                         "nothing written")
    order = np.argsort(index, kind="stable")
    xyz = np.asarray(predictions["xyz_mm"], np.float64)[order] / 1000.0
    _check_finite_rows(xyz)
    return xyz


def _check_finite_rows(xyz):
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=(1, 2)))
    if len(bad):
        raise ValueError(f"pred.json: the prediction of evaluation image {int(bad[0]):08d} is not finite "
                         f"({len(bad)} image(s) in all); nothing written")


def write_report(results, out_dir, *, predictions=None, gt=None, title=None):
    """Writes the evaluation into ``out_dir``; returns ``{what: path}``.

    ``results.json`` (every figure of ``results``, curves and per-joint errors included),
    ``pck_curves.png`` (3D and 2D PCK curves), ``per_joint_errors.png`` (when 3D was scored),
    ``predictions.npz`` (when ``predictions`` are given) and, for FreiHAND with predictions,
    ``pred.json`` for the evaluation server, rows in the order of the evaluation images.
    """
    from lgh_tf import visualize

    submission = None
    if predictions is not None and results.get("dataset") == "freihand":
        submission = _freihand_rows(results, predictions, gt)  # checked before anything is written
    files.require_directory(out_dir, "output_dir")
    paths = {}
    title = title or f"{results.get('dataset', '')}: {results.get('protocol', '')}"
    path = os.path.join(out_dir, "results.json")
    files.write_json(path, files.to_jsonable(results))
    paths["results"] = path

    panels = []
    r3, r2 = results.get("3d"), results.get("2d")
    if r3:
        curves = [("PCK", r3["thresholds_mm"], r3["pck"], r3.get("auc_0_50"))]
        if "pa_pck" in r3:
            curves = [("Procrustes aligned", r3["thresholds_mm"], r3["pa_pck"], r3.get("pa_auc_0_50")),
                      ("unaligned", r3["thresholds_mm"], r3["pck"], r3.get("auc_0_50"))]
        panels.append(("3D PCK", "error threshold [mm]", curves))
    if r2:
        panels.append(("2D PCK", f"error threshold [px, {results['units']['2d']}]",
                       [("PCK", r2["thresholds_px"], r2["pck"], r2.get("auc"))]))
    if panels:
        path = os.path.join(out_dir, "pck_curves.png")
        files.write_png(path, visualize.pck_curves_figure(panels, title))
        paths["pck_curves"] = path
    if r3:
        per_joint = r3.get("per_joint_mean_epe_mm") or r3.get("pa_per_joint_mean_epe_mm") or {}
        label = "mean error [mm]" + (" (aligned)" if "pa_per_joint_mean_epe_mm" in r3 else "")
        if per_joint:
            path = os.path.join(out_dir, "per_joint_errors.png")
            files.write_png(path, visualize.per_joint_error_figure(per_joint, label, title))
            paths["per_joint_errors"] = path

    if predictions is not None:
        path = os.path.join(out_dir, "predictions.npz")
        arrays = {f"pred_{k}": np.asarray(v) for k, v in predictions.items()}
        if gt is not None:
            arrays.update({f"gt_{k}": np.asarray(v) for k, v in gt.items()})
        files.save_npz(path, **arrays)
        paths["predictions"] = path
        if submission is not None:
            path = os.path.join(out_dir, "pred.json")
            write_freihand_submission(path, submission)
            paths["freihand_submission"] = path
    return paths
