"""Reader for FreiHAND (Zimmermann et al., ICCV 2019), release ``FreiHAND_pub_v2``.

On-disk layout (as the release's toolbox, ``utils/fh_utils.py``, reads it)::

    training_K.json          list of 32,560 3x3 intrinsics, one per unique training sample
    training_xyz.json        list of 32,560 (21, 3) joints, metres, camera frame
    training_scale.json      list of 32,560 floats (hand scale; not needed here)
    training/rgb/%08d.jpg    224 x 224; sample i in colour version k is image i + k * 32,560,
                             k = 0 gs (green screen), 1 hom, 2 sample, 3 auto (130,240 images)
    training/mask/%08d.jpg   optional hand masks, one per unique sample
    evaluation_K.json, evaluation_scale.json, evaluation/rgb/%08d.jpg   3,960 samples
    evaluation_xyz.json      evaluation joints (released later; optional)

The number of unique samples is taken from ``training_K.json`` (32,560 in the release), so the
version offset follows the files. Joint order: wrist, then thumb, index, middle, ring, little, each
MCP -> tip; converted to RHD order (tip -> MCP). The hands are right hands: ``flip`` is all False.
uv = projection of xyz with K; all joints are labelled (``visible`` all True).

A corrupt training entry is skipped and named; a corrupt evaluation entry is an error naming it,
because the evaluation server reads ``pred.json`` by position (one row per image, in order).

Evaluation without labels: when ``evaluation_xyz.json`` is absent (the original release, where
evaluation is done by the online server), eval Records still list every image with its K, but
``xyz`` and ``uv`` are NaN and ``visible`` is all False; an info message says so. A consumer can
test ``np.isnan(records.xyz).all()`` to know that only prediction is possible.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from lgh_tf.data import registry

logger = logging.getLogger(__name__)

INFO = registry.DATASETS["freihand"]
IMAGE_SIZE = 224
VERSIONS = ("gs", "hom", "sample", "auto")  # order defines the image-id offset

# FreiHAND: 0 wrist, 1-4 thumb MCP->tip, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little.
# OURS_FROM_FREIHAND[j] is the FreiHAND index of our joint j.
OURS_FROM_FREIHAND = (0,
                      4, 3, 2, 1,  # thumb tip..MCP
                      8, 7, 6, 5,  # index
                      12, 11, 10, 9,  # middle
                      16, 15, 14, 13,  # ring
                      20, 19, 18, 17)  # little

_SET_NAMES = {"train": "training", "eval": "evaluation"}


def load_freihand(data_dir: str | os.PathLike | None = None, split: str = "train", *,
                  versions: tuple[str, ...] | None = None,
                  require_eval_labels: bool = False) -> registry.schema.Records:
    """Read a FreiHAND split as Records.

    Args:
      data_dir: the ``FreiHAND_pub_v2`` directory (default: ``$LGH_TF_FREIHAND_DIR`` or
        ``~/datasets/FreiHAND_pub_v2``).
      split: ``"train"`` or ``"eval"``.
      versions: training colour versions to include, a subset of ``("gs", "hom", "sample",
        "auto")`` (default all four: 130,240 rows, sample-major within each version). The
        evaluation split has a single version.
      require_eval_labels: raise DatasetNotFoundError when ``evaluation_xyz.json`` is missing
        instead of returning unlabelled (NaN) eval Records.

    Raises:
      DatasetNotFoundError: the directory, ``<set>_K.json``, ``training_xyz.json`` or the rgb
        folder is missing.
    """
    split = registry.normalize_split(split, INFO)
    set_name = _SET_NAMES[split]
    root = INFO.resolve_dir(data_dir)
    registry.require_dir(INFO, root)
    k_path = registry.require_file(INFO, root, root / f"{set_name}_K.json")
    xyz_path = root / f"{set_name}_xyz.json"
    if split == "train" or require_eval_labels:
        registry.require_file(INFO, root, xyz_path)
    rgb_dir = registry.require_dir(INFO, root, root / set_name / "rgb")

    if split == "train":
        versions = VERSIONS if versions is None else tuple(versions)
        unknown = [v for v in versions if v not in VERSIONS]
        if unknown or not versions:
            raise ValueError(f"freihand: versions must be a non-empty subset of {VERSIONS}, "
                             f"got {versions}")
    else:
        if versions not in (None, ("gs",), ["gs"]):
            raise ValueError("freihand: the evaluation split has only the 'gs' version")
        versions = ("gs",)

    K_list = _json_list(k_path)
    labelled = xyz_path.is_file()
    xyz_list = _json_list(xyz_path) if labelled else None
    if xyz_list is not None and len(xyz_list) != len(K_list):
        raise registry.read_error("freihand", xyz_path, f"{len(xyz_list)} entries, but {k_path.name} has "
                                  f"{len(K_list)}")
    num_unique = len(K_list)

    keep, Ks, xyzs, skipped = [], [], [], []
    for i in range(num_unique):
        K, reason = registry.check_array(K_list[i], (3, 3), "K")
        xyz = None
        if reason is None and labelled:
            xyz, reason = registry.check_array(xyz_list[i], (21, 3), "xyz")
            if reason is None and np.any(xyz[:, 2] <= 0):
                reason = "joint at or behind the camera"
        if reason is not None:
            if split == "eval":  # the server reads pred.json by position: no row may go missing
                damaged = k_path if reason.startswith("K ") or not labelled else xyz_path
                raise registry.read_error("freihand", damaged, f"evaluation sample {i:08d}: {reason}; every "
                                          "evaluation image needs its row, so the split cannot be used as it is")
            skipped.append((f"{i:08d}", reason))
            continue
        keep.append(i)
        Ks.append(K)
        xyzs.append(xyz[list(OURS_FROM_FREIHAND)] if labelled else np.full((21, 3), np.nan))
    label = f"freihand/{split}"
    damaged = k_path if not skipped or skipped[0][1].startswith("K ") or not labelled else xyz_path
    registry.require_usable("freihand", damaged, num_unique, skipped)
    registry.report_skipped(logger, label, skipped)

    keep = np.asarray(keep, dtype=np.int64)
    Ks = np.asarray(Ks, dtype=np.float64).reshape(-1, 3, 3)
    xyzs = np.asarray(xyzs, dtype=np.float64).reshape(-1, 21, 3)
    if labelled:
        uvs = registry.project(xyzs, Ks)
        visible = np.ones(xyzs.shape[:2], dtype=bool)
    else:
        uvs = np.full(xyzs.shape[:2] + (2,), np.nan)
        visible = np.zeros(xyzs.shape[:2], dtype=bool)
        logger.info("%s: %s not found; returning %d unlabelled samples (xyz and uv NaN, "
                    "visible False) for prediction only", label, xyz_path.name, len(keep))

    mask_dir = root / set_name / "mask"
    has_masks = mask_dir.is_dir()
    image_paths, mask_paths, rows = [], [], []
    for version in versions:
        offset = VERSIONS.index(version) * num_unique
        image_paths.extend(str(rgb_dir / f"{i + offset:08d}.jpg") for i in keep)
        mask_paths.extend((str(mask_dir / f"{i:08d}.jpg") if has_masks else "") for i in keep)
        rows.append(np.arange(len(keep)))
    rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    first = Path(image_paths[0]) if image_paths else None
    if first is not None:
        registry.require_file(INFO, root, first)

    logger.info("%s: %d unique samples x %d version(s) from %s", label, len(keep), len(versions),
                root)
    n = len(rows)
    return registry.make_records(label, image_paths, uvs[rows], xyzs[rows], Ks[rows],
                                 visible[rows], np.zeros(n, dtype=bool), mask_path=mask_paths)


def _json_list(path: Path) -> list:
    with registry.reading(INFO, path):
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, list):
            raise ValueError(f"it holds a {type(data).__name__}, expected a list")
    return data
