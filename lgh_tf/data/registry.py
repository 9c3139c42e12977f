"""Registry of the four real data sets: name -> reader, default directory, layout and provenance.

    from lgh_tf.data import registry
    records = registry.load("rhd", split="train")            # ~/datasets/RHD_published_v2
    records = registry.load("stb", "/data/STB", split="eval")

Each reader (``load_rhd``, ``load_stb``, ``load_freihand``, ``load_dexter``) returns a
:class:`lgh_tf.data.schema.Records` in the canonical schema: RHD joint order, metres, pixel uv of
the (possibly mirrored) image, per-sample intrinsics, and a ``flip`` flag for left hands mirrored
to right hands (the image is flipped when decoded; uv, xyz and K are already mirrored).

Errors
------
* :class:`DatasetNotFoundError` is raised before anything is parsed when the data set directory or
  a required annotation file / image folder is missing; its message names the missing path, the
  expected layout and who publishes the data set. (Individual image files are not stat'ed up front;
  the pipeline's ``validate_records`` checks them.)
* :class:`DatasetReadError` (a ValueError) when an annotation file (or a mask needed to read
  the labels) is damaged: cut short, garbage, the wrong structure, or a pickle that names code.
  Every reader parses each file inside :func:`reading`, so the message is always
  ``<dataset>: cannot read <file>: <reason>``.
* A corrupt annotation *entry* (non-finite values, wrong shape, a joint behind the camera) is
  skipped, counted and named in one ``logging`` warning per load (logger ``lgh_tf.data.<reader>``).

This module also holds the small helpers the readers share (projection, mirroring, split names,
path checks), so that the readers do not depend on each other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from lgh_tf import geometry
from lgh_tf.data import schema

logger = logging.getLogger(__name__)

SPLITS = ("train", "eval")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "eval": "eval",
    "evaluation": "eval",
    "test": "eval",
}

# Where derived, re-creatable files (e.g. RHD's per-sample hand choice) are written.
DEFAULT_CACHE_DIR = os.environ.get("LGH_TF_CACHE_DIR", "~/.cache/lgh_tf")


class DatasetNotFoundError(FileNotFoundError):
    """A data set directory or one of its required files is missing."""


class DatasetReadError(ValueError):
    """An annotation file of a data set is damaged; the message names the data set and the file."""


def read_error(name: str, path, reason) -> DatasetReadError:
    if isinstance(reason, BaseException):
        lines = str(reason).strip().splitlines()
        reason = f"{type(reason).__name__}: {lines[0]}" if lines else type(reason).__name__
    return DatasetReadError(f"{name}: cannot read {path}: {reason}")


@contextlib.contextmanager
def reading(info: DatasetInfo | str, path):
    """Parses of ``path`` inside the block: any failure but a missing file (truncated, garbage,
    wrong structure, refused pickle) becomes ``DatasetReadError("<dataset>: cannot read <path>:
    <reason>")``. The readers' one place for damaged annotation files."""
    name = info if isinstance(info, str) else info.name
    try:
        yield
    except (DatasetNotFoundError, DatasetReadError):
        raise
    except Exception as error:  # noqa: BLE001  whatever the damage, the user gets the file's name
        raise read_error(name, path, error) from None


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the library knows about one published data set.

    Attributes:
      name: registry key.
      title: full name of the data set.
      publisher: who publishes it and with which paper (no URLs: look the paper up).
      default_dir: directory used when ``data_dir`` is not given, unless ``env_var`` is set.
      env_var: environment variable overriding ``default_dir``.
      layout: the on-disk layout the reader expects, relative to the data set directory.
      sizes: number of samples per split in the full release.
      image_size: (width, height) of the images in pixels.
      splits: splits the reader accepts.
      reader_path: ``"module:function"`` of the reader (imported lazily).
    """

    name: str
    title: str
    publisher: str
    default_dir: str
    env_var: str
    layout: str
    sizes: dict
    image_size: tuple
    splits: tuple
    reader_path: str

    @property
    def reader(self) -> Callable[..., schema.Records]:
        """The reader function ``load_<name>(data_dir, split, **options) -> Records``."""
        module_name, function_name = self.reader_path.split(":")
        return getattr(importlib.import_module(module_name), function_name)

    def resolve_dir(self, data_dir: str | os.PathLike | None = None) -> Path:
        """``data_dir`` if given, else ``$env_var`` if set, else ``default_dir``; ``~`` expanded."""
        if data_dir is None:
            data_dir = os.environ.get(self.env_var) or self.default_dir
        return Path(data_dir).expanduser()

    def where_to_get_it(self) -> str:
        return f"{self.title} is published by {self.publisher}."


DATASETS: dict[str, DatasetInfo] = {
    "rhd": DatasetInfo(
        name="rhd",
        title="The Rendered Hand Pose Dataset (RHD, release RHD_published_v2)",
        publisher=(
            "the Computer Vision Group (LMB) of the University of Freiburg with Zimmermann & Brox, "
            "'Learning to Estimate 3D Hand Pose from Single RGB Images', ICCV 2017"
        ),
        default_dir="~/datasets/RHD_published_v2",
        env_var="LGH_TF_RHD_DIR",
        layout=(
            "training/anno_training.pickle      dict sample_id -> {'uv_vis' (42,3), 'xyz' (42,3) m, "
            "'K' (3,3)}\n"
            "training/color/%05d.png            320x320 RGB\n"
            "training/mask/%05d.png             320x320 part labels (0 bg, 1 person, 2-17 left "
            "hand, 18-33 right hand)\n"
            "evaluation/anno_evaluation.pickle, evaluation/color/, evaluation/mask/  (same)"
        ),
        sizes={"train": 41258, "eval": 2728},
        image_size=(320, 320),
        splits=("train", "eval"),
        reader_path="lgh_tf.data.rhd:load_rhd",
    ),
    "stb": DatasetInfo(
        name="stb",
        title="The Stereo Hand Pose Tracking Benchmark (STB)",
        publisher=(
            "Zhang, Jiao, Chen, Qu, Xu & Yang with 'A Hand Pose Tracking Benchmark from Stereo "
            "Matching', ICIP 2017"
        ),
        default_dir="~/datasets/STB",
        env_var="LGH_TF_STB_DIR",
        layout=(
            "labels/B{1..6}{Counting,Random}_{BB,SK}.mat   'handPara' 3 x 21 x 1500, millimetres\n"
            "images/B{1..6}{Counting,Random}/{BB_left,BB_right,SK_color,SK_depth}_{i}.png  640x480\n"
            "  (the sequence folders may also sit directly in the data set directory)"
        ),
        sizes={"train": 15000, "eval": 3000},
        image_size=(640, 480),
        splits=("train", "eval"),
        reader_path="lgh_tf.data.stb:load_stb",
    ),
    "freihand": DatasetInfo(
        name="freihand",
        title="FreiHAND (release FreiHAND_pub_v2)",
        publisher=(
            "the Computer Vision Group (LMB) of the University of Freiburg with Zimmermann, Ceylan, "
            "Yang, Russell, Argus & Brox, 'FreiHAND: A Dataset for Markerless Capture of Hand Pose "
            "and Shape from Single RGB Images', ICCV 2019"
        ),
        default_dir="~/datasets/FreiHAND_pub_v2",
        env_var="LGH_TF_FREIHAND_DIR",
        layout=(
            "training_K.json, training_xyz.json (m), training_scale.json   one entry per unique "
            "sample (32,560)\n"
            "training/rgb/%08d.jpg              224x224; sample i, colour version k at i + k*32560 "
            "(k: gs, hom, sample, auto)\n"
            "training/mask/%08d.jpg             optional, one per unique sample\n"
            "evaluation_K.json, evaluation_scale.json, evaluation/rgb/%08d.jpg (3,960)\n"
            "evaluation_xyz.json                optional (released later); without it eval xyz is NaN"
        ),
        sizes={"train": 130240, "eval": 3960},
        image_size=(224, 224),
        splits=("train", "eval"),
        reader_path="lgh_tf.data.freihand:load_freihand",
    ),
    "dexter": DatasetInfo(
        name="dexter",
        title="Dexter+Object",
        publisher=(
            "the Max Planck Institute for Informatics (Graphics, Vision & Video group) with Sridhar, "
            "Mueller, Zollhoefer, Casas, Oulasvirta & Theobalt, 'Real-time Joint Tracking of a Hand "
            "Manipulating an Object from RGB-D Input', ECCV 2016"
        ),
        default_dir="~/datasets/dexter+object",
        env_var="LGH_TF_DEXTER_DIR",
        layout=(
            "data/<Seq>/color/Color_%04d.bmp    640x480 colour frames (BMP), one per annotation line\n"
            "data/<Seq>/depth/                  320x240 depth (unused)\n"
            "data/<Seq>/annotations/<Seq>3D.txt one line per frame: 'x, y, z;' x 5 fingertips "
            "(thumb..little), mm, depth-camera frame, 32001 = not annotated (my_<Seq>3D.txt: the "
            "corrected annotations, with corrected_annotations=True)\n"
            "  <Seq> in Grasp1, Grasp2, Occlusion, Rigid, Pinch, Rotate (the sequence folders may "
            "also sit directly in the data set directory)"
        ),
        sizes={"eval": None},  # six sequences, about 3k frames; exact count not verified here
        image_size=(640, 480),
        splits=("eval",),
        reader_path="lgh_tf.data.dexter:load_dexter",
    ),
}


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (case-insensitive)."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise KeyError(f"Unknown data set {name!r}; known: {sorted(DATASETS)}") from None


def load(name: str, data_dir: str | os.PathLike | None = None, split: str = "train", **options):
    """Read split ``split`` of data set ``name`` (see :data:`DATASETS`) as Records.

    ``data_dir`` defaults to ``$LGH_TF_<NAME>_DIR`` or the data set's ``default_dir``. Extra
    keyword ``options`` go to the reader (e.g. ``camera="SK_color"`` for STB).
    """
    info = get_info(name)
    try:
        return info.reader(data_dir, split, **options)
    except (ValueError, FileNotFoundError):
        raise  # named by the reader (bad option, missing or damaged file)
    except Exception as error:  # noqa: BLE001  a damage no reader foresaw: still one line
        raise read_error(info.name, info.resolve_dir(data_dir), error) from None


# ---------------------------------------------------------------------------------------------
# Helpers shared by the readers.
# ---------------------------------------------------------------------------------------------


def normalize_split(split: str, info: DatasetInfo) -> str:
    """Map ``train``/``training`` and ``eval``/``evaluation``/``test`` to ``train``/``eval``."""
    canonical = _SPLIT_ALIASES.get(str(split).lower())
    if canonical is None or canonical not in info.splits:
        raise ValueError(f"{info.name}: unknown split {split!r}; this data set has {info.splits}")
    return canonical


def not_found(info: DatasetInfo, root: Path, missing: Path, what: str) -> DatasetNotFoundError:
    """The error for a missing ``what`` at ``missing``: the path, the expected layout, the source."""
    layout = "\n".join("    " + line for line in info.layout.splitlines())
    return DatasetNotFoundError(
        f"{info.name}: {what} not found: {missing}\n"
        f"  Data set directory: {root} (pass data_dir=... or set ${info.env_var}).\n"
        f"  Expected layout under it:\n{layout}\n"
        f"  Where to get it: {info.where_to_get_it()}"
    )


def require_dir(info: DatasetInfo, root: Path, path: Path | None = None) -> Path:
    """Return ``path`` (default ``root``) if it is a directory, else raise DatasetNotFoundError."""
    path = root if path is None else path
    if not path.is_dir():
        raise not_found(info, root, path, "directory")
    return path


def require_file(info: DatasetInfo, root: Path, path: Path) -> Path:
    """Return ``path`` if it is a file, else raise DatasetNotFoundError naming it."""
    if not path.is_file():
        raise not_found(info, root, path, "required file")
    return path


def first_existing_dir(info: DatasetInfo, root: Path, candidates: Sequence[Path]) -> Path:
    """The first of ``candidates`` that is a directory; else DatasetNotFoundError naming the first."""
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise not_found(info, root, candidates[0], "directory")


def report_skipped(log: logging.Logger, label: str, skipped: Sequence[tuple[str, str]],
                   max_listed: int = 20) -> None:
    """Log one warning naming the skipped (id, reason) entries; nothing when there are none."""
    if not skipped:
        return
    listed = ", ".join(f"{sample_id} ({reason})" for sample_id, reason in skipped[:max_listed])
    more = f", ... and {len(skipped) - max_listed} more" if len(skipped) > max_listed else ""
    log.warning("%s: skipped %d corrupt annotation entr%s: %s%s", label, len(skipped),
                "y" if len(skipped) == 1 else "ies", listed, more)


def require_usable(name: str, path, total: int, skipped: Sequence[tuple[str, str]]) -> None:
    """A file none of whose ``total`` entries is usable is damaged as a whole (the wrong structure,
    another data set's file): DatasetReadError naming it, not a data set that silently ends empty."""
    if total and len(skipped) >= total:
        raise read_error(name, path, f"none of its {total} entries is usable (first: {skipped[0][1]})")


def check_array(value, shape: tuple[int, ...], name: str) -> tuple[np.ndarray | None, str | None]:
    """``(array float64, None)`` if ``value`` has ``shape`` and is finite, else ``(None, reason)``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None, f"{name} is not numeric"
    if array.shape != shape:
        return None, f"{name} has shape {array.shape}, expected {shape}"
    if not np.all(np.isfinite(array)):
        return None, f"{name} has non-finite values"
    return array, None


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """A zero-skew pinhole matrix; fx, fy, cx and cy are kept apart on purpose."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


# Pinhole projection and the left -> right mirror of annotations (lgh_tf.geometry), used by every reader.
project = geometry.project
mirror_horizontally = geometry.mirror_annotations


def make_records(name: str, image_path: Iterable[str], uv, xyz, K, visible, flip,
                 mask_path: Iterable[str] | None = None) -> schema.Records:
    """Build Records with the schema's dtypes (float32 / bool / str); ``name`` is
    ``<data set>/<split>``, whose documented image size every image must have."""
    image_path = np.asarray(list(image_path), dtype=str)
    n = len(image_path)
    return schema.Records(
        image_path=image_path,
        uv=np.asarray(uv, dtype=np.float32).reshape(n, schema.NUM_JOINTS, 2),
        xyz=np.asarray(xyz, dtype=np.float32).reshape(n, schema.NUM_JOINTS, 3),
        K=np.asarray(K, dtype=np.float32).reshape(n, 3, 3),
        visible=np.asarray(visible, dtype=bool).reshape(n, schema.NUM_JOINTS),
        flip=np.asarray(flip, dtype=bool).reshape(n),
        mask_path=None if mask_path is None else np.asarray(list(mask_path), dtype=str),
        name=name,
        image_size=getattr(DATASETS.get(name.split("/")[0]), "image_size", None),
    )
