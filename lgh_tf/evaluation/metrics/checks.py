"""Input checking of the metrics: points, visibility masks, errors and thresholds as float64
arrays, or a ValueError naming what was expected (the sample and joint of a NaN)."""

from __future__ import annotations

import warnings

import numpy as np

from lgh_tf.data.schema import JOINT_NAMES, NUM_JOINTS


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
