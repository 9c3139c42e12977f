"""FreiHAND's evaluation server input: ``pred.json`` (``[xyz_list, verts_list]``, xyz in metres in
FreiHAND's joint order, and 778 zero vertices per sample: this method predicts no mesh; the official
template's placeholder), one row per published evaluation image, in their order."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lgh_tf import files
from lgh_tf.data import schema

if TYPE_CHECKING:
    import numpy.typing as npt

FREIHAND_NUM_VERTS = 778
# FreiHAND order: 0 wrist, then thumb, index, middle, ring, little, each MCP -> tip.
# FREIHAND_FROM_OURS[i] is our (RHD-order) index of FreiHAND joint i.
FREIHAND_FROM_OURS = (0,) + tuple(
    joint for finger in schema.FINGERS for joint in reversed(schema.FINGER_JOINTS[finger])
)


def to_freihand_order(xyz: npt.ArrayLike) -> np.ndarray:
    """(..., 21, D) joints in our (RHD) order -> FreiHAND's order (wrist, each finger MCP->tip)."""
    return np.asarray(xyz)[..., list(FREIHAND_FROM_OURS), :]


def from_freihand_order(xyz: npt.ArrayLike) -> np.ndarray:
    """(..., 21, D) joints in FreiHAND's order -> our (RHD) order."""
    return np.asarray(xyz)[..., list(np.argsort(FREIHAND_FROM_OURS)), :]


def write_freihand_submission(
    path: str | os.PathLike[str], xyz_m: npt.ArrayLike, verts: npt.ArrayLike | None = None
) -> str | os.PathLike[str]:
    """Writes FreiHAND's ``pred.json``: ``[xyz_list, verts_list]`` as the official ``pred.py``.

    ``xyz_m`` (N, 21, 3) metres in our joint order, in the order of the evaluation images
    (N = 3,960 for the full set); converted to FreiHAND's order here. ``verts`` (N, V, 3) metres,
    default 778 zero vertices per sample (no mesh predicted; the template's placeholder).
    """
    xyz = np.asarray(xyz_m, np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (schema.NUM_JOINTS, 3):
        raise ValueError(f"xyz_m must have shape (N, 21, 3), got {xyz.shape}")
    check_finite_rows(xyz)
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


def submission_rows(
    results: Mapping[str, Any], predictions: Mapping[str, Any], gt: Mapping[str, Any] | None
) -> np.ndarray:
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
    check_finite_rows(xyz)
    return xyz


def check_finite_rows(xyz: np.ndarray) -> None:
    """ValueError naming the first evaluation image whose (21, 3) row is not finite."""
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=(1, 2)))
    if len(bad):
        raise ValueError(f"pred.json: the prediction of evaluation image {int(bad[0]):08d} is not finite "
                         f"({len(bad)} image(s) in all); nothing written")
