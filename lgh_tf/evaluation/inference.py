"""Running one model or a checkpoint ensemble over evaluation batches (``inputs.make_eval_dataset``)
and lifting its predictions to 3D with Eq. 3 (``lgh_tf.geometry``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf import geometry
from lgh_tf.geometry import NOMINAL_SCALE_M, root_depth_from_scale
from lgh_tf.geometry import lift as lift_numpy

if TYPE_CHECKING:
    import tensorflow as tf

    # a LearnableGroupsNet, or any callable images -> {"uv": ..., "depth": ...}
    PoseModel = Callable[..., dict[str, Any]]


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


def model_input_size(model: PoseModel) -> int | None:
    """The square input size a model expects (``config.input_size`` or ``input_size``)."""
    config = getattr(model, "config", None)
    size = getattr(config, "input_size", None) or getattr(model, "input_size", None)
    return int(size) if size else None


def predict_dataset(
    models: PoseModel | Sequence[PoseModel], dataset: tf.data.Dataset, *, max_batches: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
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
      ``num_models``, ``crop_size_px`` (the side of the square crop the network saw).
      gt: ``uv_px``, ``uv_image_px``, ``xyz_mm``, ``visible``, ``K`` (crop), ``crop_from_image``,
      ``scale_mm``, ``root_depth_mm`` (NaN where unknown), ``index``.
    """
    models = _as_model_list(models)
    sizes = {model_input_size(m) for m in models} - {None}
    if len(sizes) > 1:
        raise ValueError(f"the models of an ensemble must share the input size, got {sorted(sizes)}")
    functions = [_prediction_fn(m) for m in models]
    collected = {}
    crop_size = None
    for number, batch in enumerate(dataset):
        if max_batches is not None and number >= max_batches:
            break
        images = batch["image"]
        if sizes and images.shape[1] not in sizes:
            raise ValueError(f"the dataset's images are {images.shape[1]} px, the model takes "
                             f"{sizes.pop()} px")
        crop_size = int(images.shape[1])
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
        "crop_size_px": crop_size,
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
