"""Alignment of predicted poses onto the ground truth: least-squares scale + translation
(Dexter+Object's "best root and scale") and similarity (Procrustes, FreiHAND)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lgh_tf.evaluation.metrics.checks import _as_pair, _as_visible, _require_finite

if TYPE_CHECKING:
    import numpy.typing as npt


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
