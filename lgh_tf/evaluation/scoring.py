"""Scoring predictions with each data set's protocol (``lgh_tf.evaluation.metrics``; inputs in
millimetres).

* ``synthetic``, ``rhd``, ``stb``: ``rhd_stb_3d_protocol``. The uv + relative depth predicted on
  the ground-truth keypoint crop are lifted with Eq. 3 using the ground-truth crop intrinsics, hand
  scale and root depth (Zimmermann & Brox 2017, followed by the paper). All 21 joints count (as
  the authors' ``eval_RHD.py``).
* ``dexter``: ``dexter_protocol`` on the annotated fingertips. Dexter+Object has neither a root
  depth nor a hand scale: they are fitted by linear least squares to the annotated fingertips
  (Eq. 3 is linear in both; ``fit_root_and_scale``), before the protocol's own per-sample scale +
  translation alignment ("best root and scale", Yang et al. 2019). A frame with fewer than two
  annotated fingertips fits the root depth only, with the nominal ``NOMINAL_SCALE_M``.
* ``freihand``: ``freihand_protocol`` (Procrustes-aligned and unaligned). The root depth is the
  ground-truth one when evaluation labels (``evaluation_xyz.json``) exist; otherwise it is
  *estimated* from the scale (``lgh_tf.geometry.root_depth_from_scale``, during inference) and
  nothing is scored here: the FreiHAND server scores ``pred.json`` (``freihand_io``).

2D figures (``metrics.protocol_2d``, 0-30 px) are measured in pixels of the original image (crop
pixels mapped back through the crop); per-joint errors are in every protocol's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf.data import schema
from lgh_tf.evaluation import metrics
from lgh_tf.geometry import NOMINAL_SCALE_M, back_project
from lgh_tf.geometry import lift as lift_numpy

if TYPE_CHECKING:
    import numpy.typing as npt

PROTOCOLS = {
    "synthetic": "rhd_stb_3d",
    "rhd": "rhd_stb_3d",
    "stb": "rhd_stb_3d",
    "dexter": "dexter",
    "freihand": "freihand",
}


def fit_root_and_scale(
    uv: npt.ArrayLike, depth: npt.ArrayLike, intrinsics: npt.ArrayLike, gt_xyz: npt.ArrayLike, visible: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
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


def _has_labels(gt):
    xyz = gt["xyz_mm"]
    return bool(np.isfinite(xyz).all(axis=-1).any()) and bool(np.asarray(gt["visible"]).any())


def score(dataset: str, predictions: Mapping[str, Any], gt: Mapping[str, Any]) -> dict[str, Any]:
    """Scores predictions with the data set's protocol; a JSON-ready dict (see module docstring).

    Returns ``dataset``, ``protocol``, ``num_samples``, ``3d`` (the protocol's figures, PCK curve
    and per-joint mean errors, or None without labels), ``2d`` (``metrics.protocol_2d`` in
    original-image pixels, or crop pixels when the batches had no crop matrix), ``2d_crop`` (mean
    and median EPE in the network's crop pixels, and the mean as a percentage of the crop side;
    when the predictions name the crop size), ``units``, ``root_depth`` / ``scale`` / ``crop``
    (how Eq. 3 was fed) and ``notes``.
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
    result_2d = result_2d_crop = None
    if labelled:
        result_2d = metrics.protocol_2d(pred_uv, gt_uv, visible_2d)
        size = predictions.get("crop_size_px")
        if size:
            # In the network's own crop too: the training logs' held-out 2D error, and its share of
            # the crop side, comparable across input sizes.
            crop_2d = metrics.protocol_2d(predictions["uv_px"], gt["uv_px"], visible_2d)
            result_2d_crop = {
                "crop_size_px": int(size),
                "mean_epe_px": crop_2d["mean_epe_px"],
                "median_epe_px": crop_2d["median_epe_px"],
                "mean_epe_percent_of_crop": 100.0 * crop_2d["mean_epe_px"] / float(size),
            }
    crop = {"rhd_stb_3d": "ground-truth keypoint box", "dexter": "fingertip box",
            "freihand": "whole image"}[protocol]
    return {
        "dataset": dataset,
        "protocol": protocol,
        "num_samples": int(n),
        "num_models": int(predictions.get("num_models", 1)),
        "3d": None if result_3d is None else metrics.summarize(result_3d, curves=True),
        "2d": None if result_2d is None else metrics.summarize(result_2d, curves=True),
        "2d_crop": None if result_2d_crop is None else metrics.summarize(result_2d_crop),
        "units": {"3d": "mm (mean EPE also in cm for FreiHAND)", "2d": unit},
        "root_depth": root_note,
        "scale": scale_note,
        "crop": crop,
        "notes": notes,
    }
