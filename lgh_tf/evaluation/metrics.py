"""Hand-pose evaluation metrics in pure numpy: EPE, PCK curves, AUC and Procrustes alignment.

Units. Every 3D function takes keypoints in **millimetres**, arrays of shape (N, J, 3) (N samples,
J joints; J = 21 in RHD order, see ``lgh_tf.data.schema``). The canonical sample stores ``xyz`` in
metres, so multiply by 1000 before calling. 2D functions take pixels, shape (N, J, 2).

Visibility. ``visible`` is a (N, J) or (J,) mask, bool or numeric (a value > 0 counts as visible).
A joint that is not visible is left out of every statistic; its ground truth may be NaN. A NaN or
inf in a counted joint of ``gt`` or ``pred`` raises ValueError naming the sample and joint.

Averaging convention (Zimmermann & Brox 2017, ``EvalUtil`` in their hand3d code; the authors of
this paper reuse it in their ``utils/eval_utils.py``, minus the visibility argument):

* errors are collected **per keypoint** (over the samples where that keypoint is counted);
* mean EPE = mean over keypoints of the per-keypoint mean error;
* median EPE = mean over keypoints of the per-keypoint **median** error (not the median of all
  errors pooled together);
* PCK(t) = mean over keypoints of the fraction of that keypoint's errors <= t (note ``<=``);
* AUC = trapezoid area under the PCK curve divided by the threshold range; since the per-keypoint
  average is linear, the mean of per-keypoint AUCs equals the AUC of the averaged curve;
* keypoints that are counted in no sample are skipped, not scored as 0.

When every joint is counted in every sample the per-keypoint and pooled means and PCKs coincide;
the medians still differ in general. ``pooled=True`` on the functions below selects the "pool all
joints" variant (one mean/median/PCK over every counted joint).

Protocols implemented here:

* ``rhd_stb_3d_protocol`` -- RHD and STB (Zimmermann & Brox 2017, followed by this paper): GT root
  and scale already applied to the prediction by the caller, 20 thresholds
  ``np.linspace(0, 50, 20)`` mm, AUC over 0-50 mm and over the thresholds from index 8 on
  (21.05-50 mm, reported as "AUC [20-50]").
* ``dexter_protocol`` -- Dexter+Object (as Yang et al. 2019): fingertips only, after a least-squares
  scale + translation ("best root and scale") alignment per sample, AUC over 0-50 mm.
* ``freihand_protocol`` -- FreiHAND (Zimmermann et al. 2019): similarity (Procrustes) alignment per
  sample, 100 thresholds ``np.linspace(0, 50, 100)`` mm, mean EPE reported in cm; unaligned too.
* ``protocol_2d`` -- 2D keypoints in pixels, 20 thresholds over 0-30 px (the authors' 2D setting).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf.data.schema import FINGER_JOINTS, FINGERS, JOINT_NAMES, NUM_JOINTS

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "AUC_20_50_FIRST_INDEX",
    "DEXTER_COLUMNS",
    "FINGERTIPS",
    "FREIHAND_COLUMNS",
    "FREIHAND_THRESHOLDS_MM",
    "PCK_2D_THRESHOLDS_PX",
    "RHD_STB_COLUMNS",
    "RHD_STB_THRESHOLDS_MM",
    "align_scale_translation",
    "auc",
    "dexter_protocol",
    "epe",
    "format_table",
    "freihand_protocol",
    "mean_epe",
    "median_epe",
    "pck_2d",
    "pck_curve",
    "per_joint_epe",
    "procrustes_align",
    "protocol_2d",
    "rhd_stb_3d_protocol",
    "summarize",
]


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

# format_table columns: (header, result key). The paper's Tables 2/3 plus AUC [0-50] (Fig. 3).
RHD_STB_COLUMNS = (
    ("Mean EPE [mm]", "mean_epe_mm"),
    ("Median EPE [mm]", "median_epe_mm"),
    ("AUC [20-50]", "auc_20_50"),
    ("AUC [0-50]", "auc_0_50"),
)
# The paper's Table 1 (aligned figures; FreiHAND reports the mean EPE in cm), then unaligned ones.
FREIHAND_COLUMNS = (
    ("Mean EPE [cm]", "pa_mean_epe_cm"),
    ("AUC [0-50]", "pa_auc_0_50"),
    ("Mean EPE [cm] unaligned", "mean_epe_cm"),
    ("AUC [0-50] unaligned", "auc_0_50"),
)
DEXTER_COLUMNS = (
    ("Mean EPE [mm]", "mean_epe_mm"),
    ("Median EPE [mm]", "median_epe_mm"),
    ("AUC [0-50]", "auc_0_50"),
)


# ---------------------------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------------------------


def _joint_label(j: int, num_joints: int) -> str:
    return f"joint {j} ({JOINT_NAMES[j]})" if num_joints == NUM_JOINTS else f"joint {j}"


def _as_points(x, name: str, dims: tuple[int, ...] | None = None) -> np.ndarray:
    """``x`` as a float64 (N, J, D) array, or a ValueError that says what was expected."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape (N, J, D): {exc}") from None
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (N, J, D) (samples, joints, coordinates), got {arr.shape}; "
            "add a leading batch axis for a single pose"
        )
    if dims is not None and arr.shape[-1] not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name} must have {want} coordinates per joint, got shape {arr.shape}")
    return arr


def _as_pair(pred, gt, dims=None, names=("pred", "gt")) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_points(pred, names[0], dims)
    gt = _as_points(gt, names[1], dims)
    if pred.shape != gt.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {pred.shape} and {gt.shape}"
        )
    return pred, gt


def _as_visible(visible, shape: tuple[int, int], name: str = "visible") -> np.ndarray:
    """A bool (N, J) mask from None (all visible), a (N, J) or a (J,) bool/numeric mask."""
    if visible is None:
        return np.ones(shape, dtype=bool)
    vis = np.asarray(visible)
    if vis.dtype != bool:
        if not (np.issubdtype(vis.dtype, np.number)):
            raise ValueError(f"{name} must be a bool or numeric mask, got dtype {vis.dtype}")
        vis = vis.astype(np.float64)
        if not np.all(np.isfinite(vis)):
            raise ValueError(f"{name} contains NaN or inf")
        vis = vis > 0
    if vis.shape == shape[1:]:
        return np.broadcast_to(vis, shape)
    if vis.shape != shape:
        raise ValueError(f"{name} must have shape {shape} or {shape[1:]}, got {vis.shape}")
    return vis


def _require_joints(points: np.ndarray, name: str, num_joints: int = NUM_JOINTS) -> None:
    if points.shape[1] != num_joints:
        raise ValueError(
            f"{name} must hold {num_joints} joints in RHD order (lgh_tf.data.schema), "
            f"got shape {points.shape}"
        )


def _require_finite(points: np.ndarray, counted: np.ndarray, name: str) -> None:
    """ValueError naming the first sample/joint where a counted joint of ``points`` is NaN/inf."""
    bad = counted & ~np.all(np.isfinite(points), axis=-1)
    if bad.any():
        n, j = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} is NaN or inf at sample {n}, {_joint_label(j, points.shape[1])} "
            f"({int(bad.sum())} such joint(s) in total); mark such joints not visible or drop "
            "the sample"
        )


def _as_errors(errors, visible) -> tuple[np.ndarray, np.ndarray]:
    """Errors (N, J) and the mask of those counted: visible and finite (NaN = not counted)."""
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2:
        raise ValueError(f"errors must have shape (N, J), got {err.shape}")
    counted = _as_visible(visible, err.shape) & np.isfinite(err)
    if not counted.any():
        raise ValueError("no visible joint with a finite error: nothing to evaluate")
    if np.any(err[counted] < 0):
        raise ValueError("errors must be non-negative distances")
    return err, counted


def _as_thresholds(thresholds, name: str = "thresholds", strictly_increasing: bool = False):
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} contains NaN or inf")
    if strictly_increasing and np.any(np.diff(t) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return t


def _warn_if_not_millimetres(gt: np.ndarray, counted: np.ndarray) -> None:
    """Warn when the hands look ~1000x too small, i.e. the caller passed metres."""
    enough = counted.sum(axis=1) >= 2
    if not enough.any():
        return
    pts = np.where(counted[enough][..., None], gt[enough], np.nan)
    extent = np.linalg.norm(np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1), axis=-1)
    if np.median(extent) < 1.0:
        warnings.warn(
            f"the ground-truth hands span {np.median(extent):.3g} units (median): the 3D "
            "protocols expect millimetres; multiply metres by 1000",
            UserWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------
# Errors, PCK, AUC
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------


def _masked_centroids(pred, gt, vis):
    """Per-sample centroids of the counted joints, and centred copies (0 where not counted)."""
    w = vis[..., None]
    count = vis.sum(axis=1)[:, None].astype(np.float64)
    safe = np.maximum(count, 1.0)
    p0 = np.where(w, pred, 0.0)
    g0 = np.where(w, gt, 0.0)
    mu_p = p0.sum(axis=1) / safe
    mu_g = g0.sum(axis=1) / safe
    pc = np.where(w, p0 - mu_p[:, None], 0.0)
    gc = np.where(w, g0 - mu_g[:, None], 0.0)
    return mu_p, mu_g, pc, gc, count[:, 0] > 0


def align_scale_translation(
    pred: npt.ArrayLike, gt: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, scale: bool = True
) -> np.ndarray:
    """Least-squares scale + translation of each predicted pose onto its ground truth.

    For each sample, finds ``s >= 0`` and ``t`` minimising ``sum_j ||s * pred_j + t - gt_j||^2``
    over the visible joints, and returns ``s * pred + t`` for all joints. Closed form: with both
    point sets centred on their visible centroids, ``s = <pred_c, gt_c> / ||pred_c||^2`` and
    ``t = mean(gt) - s * mean(pred)``. This is our reading of the "best root and scale" used for
    Dexter+Object by Yang et al. 2019 (after Iqbal et al. 2018): the GT root and hand size are
    not comparable across data sets there, so the prediction gets the root position and global
    scale that fit the annotated joints best. No rotation.

    Edge cases: a sample with one visible joint (or coincident visible predictions) keeps
    ``s = 1`` and is only translated; a negative least-squares scale (a point reflection) is
    clipped to 0; a sample with no visible joint is returned unchanged.

    Args:
      pred, gt: (N, J, D) arrays. visible: (N, J) / (J,) mask of the joints to fit (None = all).
      scale: False fits the translation only (centroid alignment).
    """
    pred, gt = _as_pair(pred, gt)
    vis = _as_visible(visible, pred.shape[:2])
    _require_finite(gt, vis, "gt")
    _require_finite(pred, vis, "pred")
    mu_p, mu_g, pc, gc, has = _masked_centroids(pred, gt, vis)
    s = np.ones(pred.shape[0])
    if scale:
        num = np.sum(pc * gc, axis=(1, 2))
        den = np.sum(pc * pc, axis=(1, 2))
        fit = den > 0
        s[fit] = np.maximum(num[fit], 0.0) / den[fit]
    t = mu_g - s[:, None] * mu_p
    aligned = s[:, None, None] * pred + t[:, None, :]
    return np.where(has[:, None, None], aligned, pred)


def procrustes_align(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    allow_reflection: bool = False,
    return_transform: bool = False,
) -> np.ndarray | tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Similarity (Procrustes) alignment of each predicted pose onto its ground truth.

    For each sample, finds the scale ``s``, rotation ``R`` and translation ``t`` minimising
    ``sum_j ||s * R @ pred_j + t - gt_j||^2`` over the visible joints (Schönemann 1966; closed form
    of Umeyama 1991): centre both sets, take the SVD ``U S V^T`` of the cross-covariance
    ``sum_j gt_c,j pred_c,j^T``, ``R = U diag(1, .., 1, d) V^T`` with ``d = sign(det(U V^T))`` so
    ``det(R) = +1``, ``s = trace(diag(S) diag(1, .., d)) / ||pred_c||^2`` and
    ``t = mean(gt) - s R mean(pred)``. The transform is applied to all joints.

    ``allow_reflection=True`` drops the ``det(R) = +1`` constraint (``d = 1``): R may then be an
    improper rotation. That is what the official FreiHAND evaluation computes
    (``scipy.linalg.orthogonal_procrustes`` does not constrain the determinant). The two differ
    only when a mirror image fits better than any rotation, i.e. for very wrong predictions.

    Degenerate cases: coincident visible predictions get ``s = 0`` (every joint moves to the GT
    centroid, the least-squares optimum); a sample with no visible joint is returned unchanged.

    Args:
      pred, gt: (N, J, D) arrays, or a single (J, D) pose each.
      visible: (N, J) / (J,) mask of the joints the transform is fitted on (None = all).
      allow_reflection: see above.
      return_transform: also return ``(s, R, t)`` with shapes (N,), (N, D, D), (N, D) (without
        the N axis for a single pose), such that ``aligned = s * pred @ R.T + t``.

    Returns:
      the aligned prediction, shaped like ``pred``; or ``(aligned, (s, R, t))``.
    """
    single = np.ndim(pred) == 2 and np.ndim(gt) == 2
    if single:  # a (J,) mask broadcasts to the added batch axis
        pred, gt = np.asarray(pred)[None], np.asarray(gt)[None]
    pred, gt = _as_pair(pred, gt)
    vis = _as_visible(visible, pred.shape[:2])
    _require_finite(gt, vis, "gt")
    _require_finite(pred, vis, "pred")
    n, _, dims = pred.shape

    mu_p, mu_g, pc, gc, has = _masked_centroids(pred, gt, vis)
    cov = np.einsum("nja,njb->nab", gc, pc)
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones((n, dims))
    if not allow_reflection:
        d[:, -1] = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    rot = (u * d[:, None, :]) @ vt
    var = np.sum(pc * pc, axis=(1, 2))
    s = np.zeros(n)
    np.divide(np.sum(sv * d, axis=1), var, out=s, where=var > 0)

    # Samples without a visible joint: identity transform.
    rot[~has] = np.eye(dims)
    s[~has] = 1.0
    t = mu_g - s[:, None] * np.einsum("nab,nb->na", rot, mu_p)
    t[~has] = 0.0

    aligned = s[:, None, None] * np.einsum("nab,njb->nja", rot, pred) + t[:, None, :]
    if single:
        aligned, s, rot, t = aligned[0], s[0], rot[0], t[0]
    return (aligned, (s, rot, t)) if return_transform else aligned


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _plain_scalar(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(result: Mapping[str, Any], *, curves: bool = False) -> dict[str, Any]:
    """A JSON-serialisable copy of a protocol result: Python floats/ints, nested dicts kept.

    Arrays (PCK curves, thresholds) are dropped unless ``curves=True``, which turns them into
    lists of floats. NaN/inf become None, so ``json.dumps(..., allow_nan=False)`` works.
    """
    out = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            out[str(key)] = summarize(value, curves=curves)
        elif isinstance(value, (np.ndarray, list, tuple)):
            if curves:
                out[str(key)] = [_plain_scalar(v) for v in np.asarray(value).ravel().tolist()]
        else:
            out[str(key)] = _plain_scalar(value)
    return out


def format_table(
    results: Mapping[str, Mapping[str, Any]] | Sequence[tuple[str, Mapping[str, Any]]],
    columns: Sequence[tuple[str, str]] = RHD_STB_COLUMNS,
    *,
    name_header: str = "Method",
    precision: int = 3,
) -> str:
    """Render results as a plain-text table in the paper's layout; returns the string to print.

    Args:
      results: ``{row name: result dict}`` (a protocol result or its ``summarize``), or a
        sequence of ``(row name, result dict)`` pairs, in display order.
      columns: ``(header, key)`` pairs. ``RHD_STB_COLUMNS`` (default) gives the paper's
        "Mean EPE [mm] | Median EPE [mm] | AUC [20-50]" plus "AUC [0-50]";
        ``FREIHAND_COLUMNS`` and ``DEXTER_COLUMNS`` suit the other protocols.
      precision: decimals (the paper prints 3). A missing or None value prints as "-".
    """
    rows = list(results.items()) if isinstance(results, Mapping) else list(results)
    header = [name_header] + [title for title, _ in columns]
    body = []
    for name, result in rows:
        cells = [str(name)]
        for _, key in columns:
            value = result.get(key) if isinstance(result, Mapping) else None
            cells.append("-" if value is None else f"{float(value):.{precision}f}")
        body.append(cells)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(cells) for cells in body])
