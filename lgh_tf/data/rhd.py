"""Reader for the Rendered Hand Pose Dataset (RHD, Zimmermann & Brox, ICCV 2017).

On-disk layout (``RHD_published_v2``)::

    training/anno_training.pickle     dict sample_id -> {'uv_vis': (42, 3), 'xyz': (42, 3), 'K': (3, 3)}
    training/color/%05d.png           320 x 320 RGB
    training/mask/%05d.png            320 x 320 part labels
    evaluation/...                    the same with "evaluation"

The pickle is read as data only (``safe_pickle``: dicts, lists, numbers, strings, numpy arrays of
plain dtypes, sizes bounded by the file); a pickle that names anything else is refused, never run.
A key that is not an int sample id in 0..99999 is a counted, named skip.

Keypoints (42): 0 left wrist, 1-4 left thumb tip -> MCP, 5-8 index, 9-12 middle, 13-16 ring,
17-20 little; 21-41 the same for the right hand. Each 21-joint half is already in this library's
joint order (``schema``: wrist, then thumb, index, middle, ring, little, tip -> MCP), so no
reordering is applied. ``uv_vis[:, :2]`` are pixels, ``uv_vis[:, 2] == 1`` marks visible joints,
``xyz`` is in metres in the camera frame and ``K`` is per sample.

Mask labels: 0 background, 1 person, 2-17 left hand (thumb, index, middle, ring, little, palm),
18-33 right hand. Like the authors' loader (after Zimmermann & Brox), each sample keeps the hand
with more mask pixels (left if strictly more left pixels, else right). Left hands are mirrored to
right hands: ``flip=True`` and uv, xyz and K mirrored together (see ``registry.mirror_horizontally``).

Choosing the hand needs every mask (41k PNGs for training), so the per-sample choice is computed
once, in parallel, and cached in ``cache_dir`` (default ``~/.cache/lgh_tf``), keyed by the
annotation file's path, size and modification time; the data set directory is never written to.

``mask_path`` points at the raw part-label PNG (values as above, not a binary mask): a consumer
should binarise it, e.g. ``mask > 1`` for "any hand" (mirroring the mask with the image).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from lgh_tf import files
from lgh_tf.data import registry, safe_pickle

logger = logging.getLogger(__name__)

INFO = registry.DATASETS["rhd"]
IMAGE_SIZE = 320  # width == height
NUM_KEYPOINTS = 42
MAX_SAMPLE_ID = 99_999  # images are %05d.png
LEFT = slice(0, 21)
RIGHT = slice(21, 42)
# Mask label ranges of each hand (inclusive bounds).
LEFT_MASK_IDS = (2, 17)
RIGHT_MASK_MIN = 18

_SPLIT_DIRS = {"train": "training", "eval": "evaluation"}
_CACHE_VERSION = 1


def load_rhd(data_dir: str | os.PathLike | None = None, split: str = "train", *,
             cache_dir: str | os.PathLike | None = registry.DEFAULT_CACHE_DIR,
             mirror_left: bool = True, num_workers: int = 16) -> registry.schema.Records:
    """Read an RHD split as Records (one row per image, the hand with more mask pixels).

    Args:
      data_dir: the ``RHD_published_v2`` directory (default: ``$LGH_TF_RHD_DIR`` or
        ``~/datasets/RHD_published_v2``).
      split: ``"train"`` (41,258 samples) or ``"eval"`` (2,728).
      cache_dir: where the per-sample hand choice is cached; ``None`` disables the cache.
      mirror_left: mirror left hands to right hands (``flip=True``); if False, left hands are kept
        as they are and ``flip`` is all False.
      num_workers: threads reading masks when the hand choice is not cached.

    Raises:
      DatasetNotFoundError: the directory, the annotation pickle, the colour or mask folder, or a
        mask needed to choose a hand is missing.
    """
    split = registry.normalize_split(split, INFO)
    root = INFO.resolve_dir(data_dir)
    registry.require_dir(INFO, root)
    split_dir = root / _SPLIT_DIRS[split]
    registry.require_dir(INFO, root, split_dir)
    anno_path = registry.require_file(INFO, root, split_dir / f"anno_{_SPLIT_DIRS[split]}.pickle")
    registry.require_dir(INFO, root, split_dir / "color")
    registry.require_dir(INFO, root, split_dir / "mask")

    with registry.reading(INFO, anno_path):  # a pickle as data only: no code runs (safe_pickle)
        annotations = safe_pickle.load(anno_path)
        if not isinstance(annotations, dict):
            raise ValueError(f"it holds a {type(annotations).__name__}, expected a dict")
        sample_ids = sorted(annotations, key=_sort_key)

    ids, uv_vis, xyz, K, skipped = [], [], [], [], []
    for sample_id in sample_ids:
        entry = annotations[sample_id]
        # Only an int names an image (%05d.png): a str "00001" beside 1 would be a second record.
        if type(sample_id) is not int or not 0 <= sample_id <= MAX_SAMPLE_ID:
            skipped.append((repr(sample_id)[:40], f"not a sample id (an int in 0..{MAX_SAMPLE_ID})"))
            continue
        parsed, reason = _parse_entry(entry)
        if reason is not None:
            skipped.append((str(sample_id), reason))
            continue
        ids.append(int(sample_id))
        uv_vis.append(parsed[0])
        xyz.append(parsed[1])
        K.append(parsed[2])
    label = f"rhd/{split}"
    registry.require_usable("rhd", anno_path, len(sample_ids), skipped)
    registry.report_skipped(logger, label, skipped)

    ids = np.asarray(ids, dtype=np.int64)
    uv_vis = np.asarray(uv_vis, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    K = np.asarray(K, dtype=np.float64).reshape(-1, 3, 3)

    mask_paths = [str(split_dir / "mask" / f"{i:05d}.png") for i in ids]
    is_left = choose_left_hands(root, anno_path, ids, mask_paths, cache_dir, num_workers)

    hand_uv_vis = np.where(is_left[:, None, None], uv_vis[:, LEFT], uv_vis[:, RIGHT])
    hand_xyz = np.where(is_left[:, None, None], xyz[:, LEFT], xyz[:, RIGHT])
    uv = hand_uv_vis[..., :2]
    visible = hand_uv_vis[..., 2] > 0.5
    flip = is_left & mirror_left
    uv, hand_xyz, K = registry.mirror_horizontally(uv, hand_xyz, K, IMAGE_SIZE, where=flip)

    logger.info("%s: %d samples (%d left hands%s) from %s", label, len(ids), int(is_left.sum()),
                ", mirrored" if mirror_left else "", root)
    return registry.make_records(
        label,
        (str(split_dir / "color" / f"{i:05d}.png") for i in ids),
        uv, hand_xyz, K, visible, flip, mask_path=mask_paths,
    )


def _sort_key(sample_id):
    try:
        return (0, int(sample_id))
    except (TypeError, ValueError):
        return (1, str(sample_id))


def _parse_entry(entry):
    """``((uv_vis, xyz, K), None)`` for a well-formed entry, else ``(None, reason)``."""
    if not isinstance(entry, dict):
        return None, f"entry is a {type(entry).__name__}, not a dict"
    missing = [key for key in ("uv_vis", "xyz", "K") if key not in entry]
    if missing:
        return None, f"missing keys {missing}"
    uv_vis, reason = registry.check_array(entry["uv_vis"], (NUM_KEYPOINTS, 3), "uv_vis")
    if reason:
        return None, reason
    xyz, reason = registry.check_array(entry["xyz"], (NUM_KEYPOINTS, 3), "xyz")
    if reason:
        return None, reason
    K, reason = registry.check_array(entry["K"], (3, 3), "K")
    if reason:
        return None, reason
    if abs(np.linalg.det(K)) < 1e-12:
        return None, "K is singular"
    return (uv_vis, xyz, K), None


def hand_pixel_counts(mask_path: str) -> tuple[int, int]:
    """(left, right) hand pixel counts of one RHD part-label mask."""
    import cv2  # imported lazily: only needed when the hand choice is not cached

    mask = cv2.imread(mask_path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise registry.read_error("rhd", mask_path, "not a readable image (needed to choose the hand)")
    if mask.ndim == 3:  # a grey mask saved as 3 equal channels
        mask = mask[..., 0]
    left = int(np.count_nonzero((mask >= LEFT_MASK_IDS[0]) & (mask <= LEFT_MASK_IDS[1])))
    right = int(np.count_nonzero(mask >= RIGHT_MASK_MIN))
    return left, right


def choose_left_hands(root: Path, anno_path: Path, ids: np.ndarray, mask_paths: list[str],
                      cache_dir: str | os.PathLike | None, num_workers: int = 16) -> np.ndarray:
    """Boolean (N,): True where the left hand has strictly more mask pixels than the right one.

    Pixel counts are cached per sample id in ``cache_dir``; only ids missing from the cache are
    read (in ``num_workers`` threads) and the cache is then rewritten atomically.
    """
    cache_file = None
    counts: dict[int, tuple[int, int]] = {}
    if cache_dir is not None:
        stat = anno_path.stat()
        key = f"{anno_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{_CACHE_VERSION}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        cache_file = Path(cache_dir).expanduser() / f"rhd_{anno_path.stem}_{digest}.npz"
        counts = _read_cache(cache_file)

    todo = [(int(i), p) for i, p in zip(ids, mask_paths) if int(i) not in counts]
    if todo:
        for _, path in todo:
            if not os.path.isfile(path):
                raise registry.not_found(INFO, root, Path(path), "mask (needed to choose the hand)")
        logger.info("rhd: counting hand pixels in %d masks (cached afterwards)", len(todo))
        with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
            results = list(pool.map(hand_pixel_counts, (p for _, p in todo)))
        counts.update({i: c for (i, _), c in zip(todo, results)})
        if cache_file is not None:
            _write_cache(cache_file, counts)

    pixels = np.array([counts[int(i)] for i in ids], dtype=np.int64).reshape(-1, 2)
    return pixels[:, 0] > pixels[:, 1]


def _read_cache(cache_file: Path) -> dict[int, tuple[int, int]]:
    try:
        with np.load(cache_file) as data:
            return {int(i): (int(left), int(right))
                    for i, left, right in zip(data["ids"], data["left"], data["right"])}
    except FileNotFoundError:
        return {}
    except Exception as error:  # an unreadable cache is rebuilt, never trusted
        logger.warning("rhd: ignoring unreadable hand-choice cache %s (%s)", cache_file, error)
        return {}


def _write_cache(cache_file: Path, counts: dict[int, tuple[int, int]]) -> None:
    ids = np.array(sorted(counts), dtype=np.int64)
    pixels = np.array([counts[i] for i in ids], dtype=np.int64).reshape(-1, 2)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_path(cache_file) as temporary, open(temporary, "wb") as f:
            np.savez(f, ids=ids, left=pixels[:, 0], right=pixels[:, 1])
    except (OSError, files.OutputError) as error:  # the choice is recomputed next time
        logger.warning("rhd: could not write hand-choice cache %s (%s)", cache_file, error)
