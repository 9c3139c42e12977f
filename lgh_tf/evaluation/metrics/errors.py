"""End-point errors, PCK curves and their AUC, averaged per keypoint as Zimmermann & Brox's
``EvalUtil`` (see ``lgh_tf.evaluation.metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lgh_tf.data.schema import JOINT_NAMES, NUM_JOINTS
from lgh_tf.evaluation.metrics.checks import _as_errors, _as_pair, _as_thresholds, _as_visible, _require_finite

if TYPE_CHECKING:
    import numpy.typing as npt


def epe(pred: npt.ArrayLike, gt: npt.ArrayLike, visible: npt.ArrayLike | None = None) -> np.ndarray:
    """Per-joint end-point errors: the Euclidean distance between ``pred`` and ``gt``.

    Args:
      pred, gt: (N, J, D) arrays in the same unit (mm for 3D, px for 2D).
      visible: None (all joints counted) or a (N, J) / (J,) bool or numeric mask.

    Returns:
      float64 (N, J) errors in the input unit; NaN where a joint is not visible, which the other
      functions of this module read as "not counted".

    Raises:
      ValueError: shapes differ or are not (N, J, D); a visible joint of gt or pred is NaN/inf.
    """
    pred, gt = _as_pair(pred, gt)
    vis = _as_visible(visible, pred.shape[:2])
    _require_finite(gt, vis, "gt")
    _require_finite(pred, vis, "pred")
    with np.errstate(invalid="ignore"):  # inf - inf at joints that are not counted
        diff = np.where(vis[..., None], pred - gt, np.nan)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def _per_joint_stat(err: np.ndarray, counted: np.ndarray, statistic: str) -> np.ndarray:
    """(J,) mean or median over the counted samples of each joint; NaN for joints never counted."""
    reducers = {"mean": np.nanmean, "median": np.nanmedian}
    if statistic not in reducers:
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    out = np.full(err.shape[1], np.nan)
    cols = counted.any(axis=0)
    out[cols] = reducers[statistic](np.where(counted, err, np.nan)[:, cols], axis=0)
    return out


def _average_error(errors, visible, pooled: bool, statistic: str) -> float:
    err, counted = _as_errors(errors, visible)
    if pooled:
        values = err[counted]
        return float(np.mean(values) if statistic == "mean" else np.median(values))
    per_joint = _per_joint_stat(err, counted, statistic)
    return float(np.mean(per_joint[np.isfinite(per_joint)]))


def mean_epe(errors: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, pooled: bool = False) -> float:
    """Mean end-point error of (N, J) ``errors`` over the counted joints.

    Default (Zimmermann & Brox 2017 ``EvalUtil``): mean over keypoints of each keypoint's mean
    error. ``pooled=True``: one mean over every counted joint. They agree when every joint is
    counted in every sample. NaN errors are not counted.
    """
    return _average_error(errors, visible, pooled, "mean")


def median_epe(errors: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, pooled: bool = False) -> float:
    """Median end-point error of (N, J) ``errors`` over the counted joints.

    Default (Zimmermann & Brox 2017 ``EvalUtil``, used for the paper's "Median EPE"): the mean over
    keypoints of each keypoint's median error. ``pooled=True``: the median of all counted errors.
    """
    return _average_error(errors, visible, pooled, "median")


def per_joint_epe(
    errors: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    names: Sequence[str] | None = None,
    statistic: str = "mean",
) -> dict[str, float | None]:
    """Per-joint mean (or median) error as ``{joint name: value}``; None for a joint never counted.

    Names default to ``lgh_tf.data.schema.JOINT_NAMES`` for 21 joints, else ``joint_<j>``.
    """
    err, counted = _as_errors(errors, visible)
    num_joints = err.shape[1]
    if names is None:
        if num_joints == NUM_JOINTS:
            names = JOINT_NAMES
        else:
            names = [f"joint_{j}" for j in range(num_joints)]
    if len(names) != num_joints:
        raise ValueError(f"got {len(names)} names for {num_joints} joints")
    values = _per_joint_stat(err, counted, statistic)
    return {name: (float(v) if np.isfinite(v) else None) for name, v in zip(names, values)}


def pck_curve(
    errors: npt.ArrayLike, thresholds: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, pooled: bool = False
) -> np.ndarray:
    """Percentage of correct keypoints: the fraction of counted errors ``<= t`` for each threshold.

    Default (Zimmermann & Brox 2017 ``EvalUtil``): PCK is computed per keypoint over the samples
    where it is counted, then averaged over the keypoints counted at least once. ``pooled=True``:
    one fraction over every counted joint (each joint weighs the same, so keypoints that are
    visible more often weigh more). A joint is correct at threshold t when its error is <= t, so
    a perfect prediction scores 1 already at t = 0.

    Args:
      errors: (N, J) errors, e.g. from ``epe``; NaN = not counted.
      thresholds: 1-D thresholds in the unit of ``errors``.
      visible: optional (N, J) / (J,) mask, combined with the NaN mask.

    Returns:
      float64 array shaped like ``thresholds``, values in [0, 1].
    """
    err, counted = _as_errors(errors, visible)
    t = _as_thresholds(thresholds)
    if pooled:
        values = np.sort(err[counted])
        return np.searchsorted(values, t, side="right") / values.size
    curves = []
    for j in range(err.shape[1]):
        values = np.sort(err[counted[:, j], j])
        if values.size:
            curves.append(np.searchsorted(values, t, side="right") / values.size)
    return np.mean(curves, axis=0)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    # np.trapezoid is NumPy >= 2.0 (np.trapz is gone there); the fallback serves NumPy 1.26.
    integrate = getattr(np, "trapezoid", None) or np.trapz
    return float(integrate(y, x))


def auc(thresholds: npt.ArrayLike, pck: npt.ArrayLike) -> float:
    """Area under a PCK curve, normalised by the threshold range (so a perfect curve gives 1).

    Trapezoid rule over the given thresholds, divided by ``thresholds[-1] - thresholds[0]``:
    Zimmermann & Brox 2017 ``calc_auc`` (their normaliser ``trapz(ones, x)`` is that range).
    ``thresholds`` must be strictly increasing with at least two entries.
    """
    t = _as_thresholds(thresholds, strictly_increasing=True)
    p = np.asarray(pck, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pck must have the shape of thresholds {t.shape}, got {p.shape}")
    if t.size < 2:
        raise ValueError("auc needs at least two thresholds")
    if not np.all(np.isfinite(p)):
        raise ValueError("pck contains NaN or inf")
    return _trapezoid(p, t) / float(t[-1] - t[0])


def _curve_summary(errors, thresholds, pooled: bool) -> tuple[float, float, np.ndarray, float]:
    """(mean, median, pck, auc) of an error array over the given thresholds."""
    pck = pck_curve(errors, thresholds, pooled=pooled)
    return (
        mean_epe(errors, pooled=pooled),
        median_epe(errors, pooled=pooled),
        pck,
        auc(thresholds, pck),
    )
