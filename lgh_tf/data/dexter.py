"""Reader for Dexter+Object (Sridhar et al., ECCV 2016): evaluation only, fingertips only.

On-disk layout (as the public loaders of the data set read it; the release has one folder per
sequence)::

    data/<Seq>/color/Color_%04d.bmp        640 x 480 colour frames, BMP as released (PNG/JPEG are
                                           read too; sorted by name = frame order)
    data/<Seq>/depth/                      320 x 240 depth frames (unused)
    data/<Seq>/annotations/<Seq>3D.txt     one line per frame: "x, y, z;" for the five fingertips
                                           (thumb, index, middle, ring, little), millimetres, in
                                           the depth sensor's frame; further fields (object
                                           corners) are ignored; 32001 marks a fingertip that is
                                           not annotated in that frame
    data/<Seq>/annotations/<Seq>2D.txt     the same fingertips in depth-image pixels (unused)
    data/<Seq>/annotations/my_<Seq>3D.txt  corrected 3D annotations some public evaluations use
                                           (same format), read with ``corrected_annotations=True``

    <Seq>: Grasp1, Grasp2, Occlusion, Rigid, Pinch, Rotate. The sequence folders may also sit
    directly in the data set directory (without ``data/``).

Geometry. The 3D annotations use the depth sensor's convention with x and y pointing the other
way (left, up); they are turned into a standard camera frame (x right, y down, z forward) by
negating x and y, then moved into the colour camera with the colour extrinsics and projected with
the colour intrinsics. The calibration numbers are the ones used by the public Dexter+Object
loaders (colour: fx = 587.45209, fy = 600.67456, cx = 325, cy = 249; depth -> colour [R | t] with
t in mm, below); pass ``intrinsics``/``extrinsics`` to override them.

Records: ``xyz`` in the colour camera frame (metres), ``K`` the colour intrinsics, ``uv`` the
projection. Only the five fingertips (our joints 1, 5, 9, 13, 17) can be visible; a fingertip
marked 32001 and every other joint get ``visible=False`` and placeholder zeros in uv and xyz (finite
on purpose; evaluation must use ``visible`` only). Frames with no annotated fingertip are dropped
(``drop_unannotated``). The hands are left hands (as the public loaders note); with
``mirror_left=True`` (default) they are mirrored to right hands (``flip=True``), like RHD and STB.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from lgh_tf.data import registry

logger = logging.getLogger(__name__)

INFO = registry.DATASETS["dexter"]
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
SEQUENCES = ("Grasp1", "Grasp2", "Occlusion", "Rigid", "Pinch", "Rotate")

COLOR_INTRINSICS = dict(fx=587.45209, fy=600.67456, cx=325.0, cy=249.0)
# Depth (standard camera axes) -> colour camera, [R | t], t in millimetres.
DEPTH_TO_COLOR = np.array([[0.9999, 0.0034, 0.0161, 19.0473],
                           [-0.0033, 1.0000, -0.0079, -1.8514],
                           [-0.0162, 0.0079, 0.9998, -4.7501]])
# The annotation frame's axes relative to a standard camera frame.
ANNOTATION_AXES = np.diag([-1.0, -1.0, 1.0])
MISSING_VALUE = 32001.0
NUM_FINGERTIPS = 5
# Our joint index of the fingertips in annotation order: thumb, index, middle, ring, little.
FINGERTIP_JOINTS = (1, 5, 9, 13, 17)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def parse_annotation_line(line: str) -> np.ndarray:
    """(5, 3) fingertips of one ``<Seq>3D.txt`` line, mm; NaN rows for not-annotated tips.

    Raises ValueError for a malformed line (fewer than five ``x, y, z`` fields, non-numbers,
    non-finite values).
    """
    fields = [field.strip() for field in line.strip().split(";")]
    fields = [field for field in fields if field]
    if len(fields) < NUM_FINGERTIPS:
        raise ValueError(f"{len(fields)} fields, expected at least {NUM_FINGERTIPS}")
    tips = np.empty((NUM_FINGERTIPS, 3), dtype=np.float64)
    for t, field in enumerate(fields[:NUM_FINGERTIPS]):
        values = [v for v in re.split(r"[,\s]+", field) if v]
        if len(values) != 3:
            raise ValueError(f"fingertip {t} has {len(values)} values, expected 3")
        try:
            tips[t] = [float(v) for v in values]
        except ValueError:
            raise ValueError(f"fingertip {t} is not numeric: {field!r}") from None
    if not np.all(np.isfinite(tips)):
        raise ValueError("non-finite values")
    tips[np.any(np.abs(tips) >= MISSING_VALUE - 0.5, axis=1)] = np.nan
    return tips


def annotation_to_color(tips_mm: np.ndarray, extrinsics: np.ndarray = DEPTH_TO_COLOR) -> np.ndarray:
    """Annotation-frame points (..., 3) mm -> colour camera frame (..., 3) mm."""
    standard = np.asarray(tips_mm, dtype=np.float64) @ ANNOTATION_AXES.T
    return standard @ extrinsics[:, :3].T + extrinsics[:, 3]


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_dexter(data_dir: str | os.PathLike | None = None, split: str = "eval", *,
                sequences: tuple[str, ...] = SEQUENCES, mirror_left: bool = True,
                drop_unannotated: bool = True, intrinsics: dict | None = None,
                extrinsics: np.ndarray | None = None,
                corrected_annotations: bool = False) -> registry.schema.Records:
    """Read Dexter+Object (evaluation only) as Records with fingertip-only labels.

    Args:
      data_dir: the Dexter+Object directory (default: ``$LGH_TF_DEXTER_DIR`` or
        ``~/datasets/dexter+object``).
      split: ``"eval"`` (the only split).
      sequences: sequences to read, in this order.
      mirror_left: mirror the (left) hands to right hands (``flip=True``).
      drop_unannotated: drop frames in which no fingertip is annotated.
      intrinsics: ``dict(fx=, fy=, cx=, cy=)`` replacing the colour intrinsics.
      extrinsics: 3x4 depth -> colour ``[R | t]`` (t in mm) replacing ``DEPTH_TO_COLOR``.
      corrected_annotations: read ``annotations/my_<Seq>3D.txt`` (the corrected annotation files
        some public evaluations use) instead of ``<Seq>3D.txt``.

    Raises:
      DatasetNotFoundError: the directory, a sequence's colour folder or annotation file is missing.
      ValueError: a sequence has a different number of colour frames than annotation lines.
    """
    split = registry.normalize_split(split, INFO)
    params = dict(COLOR_INTRINSICS if intrinsics is None else intrinsics)
    K = registry.intrinsics(params["fx"], params["fy"], params["cx"], params["cy"])
    extrinsics = DEPTH_TO_COLOR if extrinsics is None else np.asarray(extrinsics, dtype=np.float64)
    if extrinsics.shape != (3, 4):
        raise ValueError(f"dexter: extrinsics must be 3x4, got {extrinsics.shape}")

    root = INFO.resolve_dir(data_dir)
    registry.require_dir(INFO, root)
    seq_dirs = [registry.first_existing_dir(INFO, root, [root / "data" / seq, root / seq])
                for seq in sequences]
    color_dirs = [registry.require_dir(INFO, root, d / "color") for d in seq_dirs]
    prefix = "my_" if corrected_annotations else ""
    anno_files = [registry.require_file(INFO, root, d / "annotations" / f"{prefix}{seq}3D.txt")
                  for seq, d in zip(sequences, seq_dirs)]

    paths, tips_all, skipped, unannotated = [], [], [], 0
    for seq, color_dir, anno_file in zip(sequences, color_dirs, anno_files):
        images = sorted((p for p in color_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES),
                        key=_natural_key)
        with registry.reading(INFO, anno_file):
            lines = [line for line in anno_file.read_text().splitlines() if line.strip()]
        if len(images) != len(lines):
            raise registry.read_error("dexter", anno_file, f"{len(lines)} annotation lines but {len(images)} "
                                      f"colour frames in {color_dir}")
        skipped_before = len(skipped)
        for index, (image, line) in enumerate(zip(images, lines)):
            try:
                tips = annotation_to_color(parse_annotation_line(line), extrinsics)
            except ValueError as error:
                skipped.append((f"{seq}:{index}", str(error)))
                continue
            annotated = ~np.isnan(tips[:, 0])
            if np.any(tips[annotated, 2] <= 0):
                skipped.append((f"{seq}:{index}", "fingertip at or behind the camera"))
                continue
            if drop_unannotated and not annotated.any():
                unannotated += 1
                continue
            paths.append(str(image))
            tips_all.append(tips)
        if lines and len(skipped) - skipped_before == len(lines):  # not one line parses: not this format
            raise registry.read_error("dexter", anno_file, f"no line is an annotation ({skipped[-len(lines)][1]})")
    label = f"dexter/{split}"
    registry.report_skipped(logger, label, skipped)
    if unannotated:
        logger.info("%s: dropped %d frames without any annotated fingertip", label, unannotated)

    n = len(paths)
    tips = np.asarray(tips_all, dtype=np.float64).reshape(n, NUM_FINGERTIPS, 3) / 1000.0
    visible = np.zeros((n, 21), dtype=bool)
    visible[:, FINGERTIP_JOINTS] = ~np.isnan(tips[..., 0])
    xyz = np.zeros((n, 21, 3))
    xyz[:, FINGERTIP_JOINTS] = np.nan_to_num(tips, nan=0.0)
    Ks = np.broadcast_to(K, (n, 3, 3))
    # Project the annotated tips only (placeholders at the origin would divide by zero).
    safe_xyz = np.where(visible[..., None], xyz, np.array([0.0, 0.0, 1.0]))
    uv = np.where(visible[..., None], registry.project(safe_xyz, Ks), 0.0)
    flip = np.full(n, bool(mirror_left))
    uv, xyz, Ks = registry.mirror_horizontally(uv, xyz, Ks, IMAGE_WIDTH, where=flip)
    uv[~visible] = 0.0  # keep the placeholders at zero after mirroring
    xyz[~visible] = 0.0
    logger.info("%s: %d frames from %d sequences in %s", label, n, len(sequences), root)
    return registry.make_records(label, paths, uv, xyz, Ks, visible, flip, mask_path=None)
