"""The benchmarks' protocols: RHD / STB 3D, Dexter+Object, FreiHAND and 2D keypoints, each a
dict of figures from predicted and ground-truth joints (see ``lgh_tf.evaluation.metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf.data.schema import FINGER_JOINTS, FINGERS, JOINT_NAMES, NUM_JOINTS
from lgh_tf.evaluation.metrics.alignment import align_scale_translation, procrustes_align
from lgh_tf.evaluation.metrics.checks import _as_pair, _as_visible, _require_joints, _warn_if_not_millimetres
from lgh_tf.evaluation.metrics.errors import _curve_summary, auc, epe, pck_curve, per_joint_epe

if TYPE_CHECKING:
    import numpy.typing as npt


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# RHD / STB (Zimmermann & Brox 2017): 20 evenly spaced thresholds over 0-50 mm.
RHD_STB_THRESHOLDS_MM = _frozen(np.linspace(0.0, 50.0, 20))
# "AUC [20-50]" keeps the thresholds from index 8 on: 21.05 mm ... 50 mm (authors' eval_RHD.py).
AUC_20_50_FIRST_INDEX = 8
# FreiHAND (Zimmermann et al. 2019): 100 evenly spaced thresholds over 0-50 mm.
FREIHAND_THRESHOLDS_MM = _frozen(np.linspace(0.0, 50.0, 100))
# 2D PCK in pixels of the original image: 20 thresholds over 0-30 px (authors' eval_RHD.py).
PCK_2D_THRESHOLDS_PX = _frozen(np.linspace(0.0, 30.0, 20))

# The five fingertips, the only hand joints Dexter+Object annotates (RHD indices 1, 5, 9, 13, 17).
FINGERTIPS = tuple(FINGER_JOINTS[finger][0] for finger in FINGERS)


def rhd_stb_3d_protocol(
    pred_mm: npt.ArrayLike, gt_mm: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, pooled: bool = False
) -> dict[str, Any]:
    """RHD / STB 3D protocol (Zimmermann & Brox 2017; the paper's Tables 2-3 and Fig. 3a-b).

    The prediction must already be in camera coordinates with the GT root depth and the GT hand
    scale applied (the protocol's assumption, root = middle MCP 12, scale = |xyz[12] - xyz[11]|);
    nothing is aligned here. Inputs in millimetres, 21 joints in RHD order.

    ``visible=None`` counts all 21 joints of every sample, which is what both Zimmermann & Brox's
    ``eval3d.py`` and the authors' ``eval_RHD.py`` do for 3D (RHD's visibility flags are not
    applied); pass a mask for the visible-only variant.

    Returns a dict:
      mean_epe_mm, median_epe_mm: per-keypoint convention (see module docstring) unless pooled;
      auc_0_50: AUC over the 20 thresholds ``np.linspace(0, 50, 20)`` mm;
      auc_20_50: AUC over those thresholds from index 8 on (21.05 ... 50 mm), the paper's
        "AUC [20-50]", normalised by that sub-range;
      thresholds_mm (20,), pck (20,): the PCK curve;
      per_joint_mean_epe_mm: {joint name: mean error or None};
      num_samples, num_joints_counted.
    """
    pred, gt = _as_pair(pred_mm, gt_mm, dims=(3,), names=("pred_mm", "gt_mm"))
    _require_joints(pred, "pred_mm")
    errors = epe(pred, gt, visible)
    counted = np.isfinite(errors)
    _warn_if_not_millimetres(gt, counted)

    thresholds = np.array(RHD_STB_THRESHOLDS_MM)
    mean, median, pck, auc_0_50 = _curve_summary(errors, thresholds, pooled)
    k = AUC_20_50_FIRST_INDEX
    return {
        "mean_epe_mm": mean,
        "median_epe_mm": median,
        "auc_20_50": auc(thresholds[k:], pck[k:]),
        "auc_0_50": auc_0_50,
        "thresholds_mm": thresholds,
        "pck": pck,
        "per_joint_mean_epe_mm": per_joint_epe(errors),
        "num_samples": int(pred.shape[0]),
        "num_joints_counted": int(counted.sum()),
    }


def dexter_protocol(
    pred_mm: npt.ArrayLike,
    gt_mm: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    joints: Sequence[int] = FINGERTIPS,
    align: str = "scale_translation",
    thresholds_mm: npt.ArrayLike | None = None,
    pooled: bool = False,
) -> dict[str, Any]:
    """Dexter+Object protocol (Sridhar et al. 2016 data; evaluation as Yang et al. 2019).

    Only the annotated joints count: ``joints`` (default the five fingertips, RHD indices 1, 5,
    9, 13, 17) and, within those, the ones marked in ``visible`` (frames where a fingertip is not
    annotated). Other joints of ``gt_mm`` may be NaN. Each predicted pose is first aligned to the
    ground truth on those joints with the least-squares scale + translation of
    ``align_scale_translation`` ("best root and scale"; no rotation). Then mean/median EPE and
    PCK/AUC over 0-50 mm (default thresholds ``np.linspace(0, 50, 20)``, the RHD/STB grid).

    Args:
      pred_mm, gt_mm: (N, 21, 3) in millimetres, RHD joint order.
      visible: optional (N, 21) / (21,) mask of annotated joints, intersected with ``joints``.
      joints: joint indices that carry annotation.
      align: "scale_translation" (default), "translation" (centroid only) or "none".
      thresholds_mm: PCK thresholds (1-D, increasing) for the curve and AUC.
      pooled: pool all joints instead of averaging per keypoint.

    Returns a dict: mean_epe_mm, median_epe_mm, auc_0_50 (AUC over ``thresholds_mm``),
    thresholds_mm, pck, per_joint_mean_epe_mm (annotated joints only), num_samples,
    num_joints_counted.
    """
    pred, gt = _as_pair(pred_mm, gt_mm, dims=(3,), names=("pred_mm", "gt_mm"))
    _require_joints(pred, "pred_mm")
    joints = [int(j) for j in joints]
    if not joints or any(j < 0 or j >= NUM_JOINTS for j in joints):
        raise ValueError(f"joints must be non-empty indices in [0, {NUM_JOINTS}), got {joints}")
    selected = np.zeros(NUM_JOINTS, dtype=bool)
    selected[joints] = True
    vis = _as_visible(visible, pred.shape[:2]) & selected

    if align == "scale_translation":
        pred = align_scale_translation(pred, gt, vis)
    elif align == "translation":
        pred = align_scale_translation(pred, gt, vis, scale=False)
    elif align != "none":
        raise ValueError(
            f"align must be 'scale_translation', 'translation' or 'none', got {align!r}"
        )

    errors = epe(pred, gt, vis)
    counted = np.isfinite(errors)
    _warn_if_not_millimetres(gt, counted)
    thresholds = np.array(
        RHD_STB_THRESHOLDS_MM if thresholds_mm is None else thresholds_mm, dtype=np.float64
    )
    mean, median, pck, area = _curve_summary(errors, thresholds, pooled)
    names = [JOINT_NAMES[j] for j in joints]
    return {
        "mean_epe_mm": mean,
        "median_epe_mm": median,
        "auc_0_50": area,
        "thresholds_mm": thresholds,
        "pck": pck,
        "per_joint_mean_epe_mm": per_joint_epe(errors[:, joints], names=names),
        "num_samples": int(pred.shape[0]),
        "num_joints_counted": int(counted.sum()),
    }


def freihand_protocol(
    pred_mm: npt.ArrayLike,
    gt_mm: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    allow_reflection: bool = True,
    pooled: bool = False,
) -> dict[str, Any]:
    """FreiHAND keypoint protocol (Zimmermann et al. 2019, official ``eval.py``; paper Table 1).

    Every predicted pose is similarity-aligned to its ground truth with ``procrustes_align`` on
    the counted joints; errors are then scored on 100 thresholds ``np.linspace(0, 50, 100)`` mm
    (the official 0-5 cm grid). The mean EPE is reported in cm as on the FreiHAND leaderboard
    (the paper's Table 1 header says mm but its numbers, e.g. 0.796, are cm). The unaligned
    figures are returned as well.

    ``allow_reflection=True`` (default) reproduces the official script, whose
    ``scipy.linalg.orthogonal_procrustes`` allows an improper rotation; False enforces
    ``det(R) = +1``. The official script also normalises both sets by their Frobenius norm
    plus 1e-8 before fitting, which changes nothing beyond ~1e-8 relative.

    Returns a dict with, for the aligned (prefix ``pa_``) and unaligned (no prefix) errors:
    ``mean_epe_cm``, ``mean_epe_mm``, ``median_epe_mm``, ``auc_0_50``, ``pck``; plus
    ``thresholds_mm`` (100,), ``pa_per_joint_mean_epe_mm``, ``num_samples``, ``num_joints_counted``.
    """
    pred, gt = _as_pair(pred_mm, gt_mm, dims=(3,), names=("pred_mm", "gt_mm"))
    _require_joints(pred, "pred_mm")
    vis = _as_visible(visible, pred.shape[:2])
    errors = epe(pred, gt, vis)
    _warn_if_not_millimetres(gt, vis)
    aligned = procrustes_align(pred, gt, vis, allow_reflection=allow_reflection)
    pa_errors = epe(aligned, gt, vis)

    thresholds = np.array(FREIHAND_THRESHOLDS_MM)
    result: dict = {}
    for prefix, err in (("pa_", pa_errors), ("", errors)):
        mean, median, pck, area = _curve_summary(err, thresholds, pooled)
        result[prefix + "mean_epe_cm"] = mean / 10.0
        result[prefix + "mean_epe_mm"] = mean
        result[prefix + "median_epe_mm"] = median
        result[prefix + "auc_0_50"] = area
        result[prefix + "pck"] = pck
    result["thresholds_mm"] = thresholds
    result["pa_per_joint_mean_epe_mm"] = per_joint_epe(pa_errors)
    result["num_samples"] = int(pred.shape[0])
    result["num_joints_counted"] = int(np.isfinite(errors).sum())
    return result


def pck_2d(
    pred_uv: npt.ArrayLike,
    gt_uv: npt.ArrayLike,
    thresholds_px: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    pooled: bool = False,
) -> np.ndarray:
    """2D PCK curve in pixels: fraction of visible keypoints within each threshold (``<=``).

    Per-keypoint averaging as ``pck_curve`` (Zimmermann & Brox 2017 ``eval2d.py`` also counts
    only visible keypoints). ``pred_uv``, ``gt_uv``: (N, J, 2) pixel coordinates of the same image
    (the authors measure in original-image pixels, i.e. crop coordinates divided by the crop
    scale).
    """
    pred, gt = _as_pair(pred_uv, gt_uv, dims=(2,), names=("pred_uv", "gt_uv"))
    return pck_curve(epe(pred, gt, visible), thresholds_px, pooled=pooled)


def protocol_2d(
    pred_uv: npt.ArrayLike,
    gt_uv: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    thresholds_px: npt.ArrayLike | None = None,
    pooled: bool = False,
) -> dict[str, Any]:
    """2D keypoint figures in pixels: mean/median EPE, PCK curve and its AUC.

    Default thresholds ``np.linspace(0, 30, 20)`` px, as the authors' ``eval_RHD.py``, which
    counts all 21 joints (``visible=None`` reproduces that; Zimmermann & Brox's ``eval2d.py``
    counts visible ones only). Returns
    mean_epe_px, median_epe_px, auc (over ``thresholds_px``), thresholds_px, pck,
    per_joint_mean_epe_px, num_samples, num_joints_counted.
    """
    pred, gt = _as_pair(pred_uv, gt_uv, dims=(2,), names=("pred_uv", "gt_uv"))
    errors = epe(pred, gt, visible)
    thresholds = np.array(
        PCK_2D_THRESHOLDS_PX if thresholds_px is None else thresholds_px, dtype=np.float64
    )
    mean, median, pck, area = _curve_summary(errors, thresholds, pooled)
    return {
        "mean_epe_px": mean,
        "median_epe_px": median,
        "auc": area,
        "thresholds_px": thresholds,
        "pck": pck,
        "per_joint_mean_epe_px": per_joint_epe(errors),
        "num_samples": int(pred.shape[0]),
        "num_joints_counted": int(np.isfinite(errors).sum()),
    }
