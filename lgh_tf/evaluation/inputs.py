"""Evaluation inputs: a data set's evaluation split and the batches the network sees.

How the network's input crop is chosen (``DATASET_CROP``):

* ``synthetic``, ``rhd``, ``stb``: the pipeline's evaluation crop about the ground-truth keypoints
  (Zimmermann & Brox 2017, followed by the paper).
* ``dexter``: Dexter+Object labels only the five fingertips, so there is no keypoint box: the crop
  is a square about the visible fingertips (``DEXTER_BOX_FACTOR`` times their extent, at least
  ``DEXTER_MIN_CROP_PX``).
* ``freihand``: FreiHAND's evaluation images are 224x224 crops centred on the hand, and their
  keypoints are not given at test time, so the network sees the whole image (resized to the model
  size) whether labels exist or not. The hand scale is the published ``evaluation_scale.json``
  (the middle MCP-PIP bone, the same bone as ours) where the labels give none.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf import geometry
from lgh_tf.data import schema
from lgh_tf.evaluation import metrics

if TYPE_CHECKING:
    import numpy.typing as npt
    import tensorflow as tf

    from lgh_tf.config import AugmentConfig
    from lgh_tf.data.schema import Records

# TensorFlow and the tf.data pipeline are imported where they are used, so that a missing data set
# is reported without the seconds TensorFlow takes to import.

logger = logging.getLogger(__name__)

CROP_MODES = ("keypoints", "image", "fingertips")
DATASET_CROP = {
    "synthetic": "keypoints",
    "rhd": "keypoints",
    "stb": "keypoints",
    "freihand": "image",
    "dexter": "fingertips",
}
DEXTER_BOX_FACTOR = 2.0
DEXTER_MIN_CROP_PX = 200.0


def load_eval_records(
    dataset: str,
    *,
    data_dir: str = "",
    cache_dir: str = "cache",
    seed: int = 0,
    synthetic_test: int | None = None,
    reader_options: dict[str, Any] | None = None,
    synthetic_world: str = "coded",
) -> tuple[Records, np.ndarray | None]:
    """(Records, scales) of a data set's evaluation split.

    ``scales`` is None, or (N,) hand scales in metres given by the data set itself (FreiHAND's
    ``evaluation_scale.json``, needed when its evaluation labels are not published).
    ``reader_options`` and ``synthetic_world`` as in ``lgh_tf.data.sources.load_sources``.
    """
    from lgh_tf.data.sources import COMBINED, load_sources

    if dataset in COMBINED:
        members = " and ".join(f"--dataset={m}" for m, _ in COMBINED[dataset])
        raise ValueError(f"--dataset={dataset} is a training mix; evaluate on {members} separately")
    if dataset not in DATASET_CROP:
        raise ValueError(f"unknown data set {dataset!r}; one of {sorted(DATASET_CROP)}")
    counts = {"test": synthetic_test} if synthetic_test else None
    [(records, _)] = load_sources(dataset, "eval", data_dir=data_dir, cache_dir=cache_dir, seed=seed,
                                  synthetic_counts=counts, reader_options=reader_options,
                                  synthetic_world=synthetic_world)
    scales = None
    if dataset == "freihand":
        scales = _freihand_scales(records, data_dir)
    return records, scales


def training_data_notes(checkpoints, dataset: str, synthetic_world: str = "coded") -> list[str]:
    """Notes for the evaluation of ``checkpoints`` (training directories or prefixes in one) on
    the synthetic hands of ``synthetic_world`` when a run was trained on another world (its
    config.json's ``data``; runs that recorded none say nothing)."""
    if dataset != "synthetic":
        return []
    notes = []
    for path in checkpoints:
        path = os.fspath(path)
        model_dir = path if os.path.isdir(path) else os.path.dirname(os.path.dirname(os.path.abspath(path)))
        try:
            with open(os.path.join(model_dir, "config.json")) as f:
                data = json.load(f).get("data") or {}
        except (OSError, ValueError, AttributeError):
            continue
        trained = data.get("synthetic_world") if data.get("dataset") == "synthetic" else data.get("dataset")
        if trained and trained != synthetic_world:
            what = f"the {trained} synthetic world" if data.get("dataset") == "synthetic" else trained
            notes.append(f"{path} was trained on {what}, evaluated here on the {synthetic_world} synthetic world")
    return notes


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


def unusable_samples(dataset: str, records: schema.Records, crop: str | None = None) -> dict[int, str]:
    """Row -> why it cannot be scored: an image file missing, cut short, damaged or not of the data
    set's documented size, and, for the ground-truth keypoint crop, labels that cannot be cropped
    about (the fingertip and whole-image crops score partly annotated samples)."""
    from lgh_tf.data import pipeline

    crop = crop or DATASET_CROP.get(dataset)
    return pipeline.find_invalid_samples(records, check_labels=crop == "keypoints")


def skipped_notes(records: schema.Records, unusable: dict[int, str], num_scored: int) -> list[str]:
    """The results' notes on the rows not scored: counted by kind, the first named, and those
    TensorFlow could not decode after the file checks passed."""
    notes = []
    if unusable:
        kinds = collections.Counter(reason.split(":")[0] for reason in unusable.values())
        first = min(unusable)
        notes.append(f"{len(unusable)} of {len(records)} samples not scored ("
                     + "; ".join(f"{count} x {kind}" for kind, count in sorted(kinds.items()))
                     + f"); first: {records.image_path[first]}: {unusable[first]}")
    undecoded = len(records) - len(unusable) - num_scored
    if undecoded > 0:
        notes.append(f"{undecoded} more samples could not be decoded and were not scored (see the log)")
    return notes


def make_eval_dataset(
    dataset: str,
    records: Records,
    *,
    output_size: int,
    batch_size: int = 16,
    crop: str | None = None,
    scales: npt.ArrayLike | None = None,
    augment_config: AugmentConfig | None = None,
    unusable: dict[int, str] | None = None,
) -> tf.data.Dataset:
    """Batched evaluation inputs with everything needed to score them.

    Args:
      dataset: data set name (picks the crop, ``DATASET_CROP``, unless ``crop`` is given).
      records: the evaluation Records (``load_eval_records``).
      output_size: the model's input size.
      crop: "keypoints" (the pipeline's evaluation crop about the ground-truth keypoints; the
        records are validated first as in training), "image" (the whole image, padded to a
        square) or "fingertips" (about the visible fingertips, Dexter+Object).
      scales: optional (N,) hand scales in metres, used where the labels give none.
      unusable: ``unusable_samples(dataset, records, crop)`` when the caller has it already.

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
    problems = unusable_samples(dataset, records, crop) if unusable is None else unusable
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
