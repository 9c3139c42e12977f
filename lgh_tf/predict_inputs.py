"""The inputs of one prediction, read and checked before any model runs: numbers and boxes from the
command line or a caller, and image files or arrays as (H, W, 3) uint8 RGB as displayed (EXIF
orientation applied), with notes and, for a file that decodes only partly, warnings. Split out of
``lgh_tf.predict``, which re-exports every name.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def numbers(values: npt.ArrayLike, count: int, name: str, meaning: str) -> list[float]:
    """``count`` finite numbers from a sequence, or a ValueError naming ``name``. Text such as
    ``"x,y,w,h"`` is the command line's to parse (``flags.lgh_flags.parse_numbers``)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name}: expected {count} numbers {meaning}, got the text {values!r}")
    try:
        result = [float(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {values!r} is not {count} numbers {meaning}") from None
    if len(result) != count:
        raise ValueError(f"{name}: expected {count} numbers {meaning}, got {len(result)} in {values!r}")
    if not all(np.isfinite(result)):
        raise ValueError(f"{name}: {values!r} has a non-finite value")
    return result


def intrinsics_matrix(intrinsics: npt.ArrayLike) -> np.ndarray:
    """(fx, fy, cx, cy) (pixels) -> the 3x3 camera matrix; a 3x3 matrix is checked and passed through."""
    if isinstance(intrinsics, np.ndarray) and intrinsics.shape == (3, 3):
        matrix = intrinsics.astype(np.float64)
        if not np.all(np.isfinite(matrix)) or not np.allclose(matrix[2], (0, 0, 1)):
            raise ValueError("intrinsics: a 3x3 matrix must be finite with last row (0, 0, 1)")
        return matrix
    fx, fy, cx, cy = numbers(intrinsics, 4, "intrinsics", "fx,fy,cx,cy")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"intrinsics: focal lengths must be positive, got fx={fx:g}, fy={fy:g}")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def check_box(box: npt.ArrayLike, image_width: int, image_height: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) (pixels of the image) as floats; it must overlap the image."""
    x, y, w, h = numbers(box, 4, "box", "x,y,w,h")
    if w <= 0 or h <= 0:
        raise ValueError(f"box: width and height must be positive, got w={w:g}, h={h:g}")
    if x >= image_width or y >= image_height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box: ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {image_width}x{image_height} "
                         "image (x, y is the top-left corner in pixels)")
    return x, y, w, h


def _positive(value, name):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a positive number, got {value!r}")
    return value


def to_rgb_uint8(image: npt.ArrayLike, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """An image array -> ((H, W, 3) uint8 RGB, notes). Grey is replicated, RGBA loses its alpha;
    other channel counts raise ValueError. 16-bit and float ([0, 1]) images are rescaled.
    Arrays are taken as RGB(A); ``read_image`` converts OpenCV's BGR(A) first."""
    image = np.asarray(image)
    notes = []
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or image.size == 0 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"{name}: {channels} channels; expected 3 (RGB), 4 (RGBA: the alpha is "
                         "dropped) or 1 (grey)")
    if image.dtype == np.uint16:
        image = (image.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        finite = image[np.isfinite(image)]
        top = float(finite.max()) if finite.size else 0.0
        image = np.clip(np.nan_to_num(image) * (255.0 if top <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if channels == 1:
        image = np.repeat(image[..., None], 3, axis=2)
        notes.append("grey image: replicated to RGB")
    elif channels == 4:
        image = image[..., :3]
        notes.append("RGBA image: alpha channel dropped")
    return np.ascontiguousarray(image), notes


# EXIF orientation tag (0x0112) -> the numpy transform that shows the stored pixels as displayed
# (the transposes of PIL.ImageOps.exif_transpose).
_EXIF_ORIENTATION = 0x0112
_EXIF_TRANSFORMS = {
    2: ("mirrored horizontally", lambda a: a[:, ::-1]),
    3: ("rotated 180 degrees", lambda a: a[::-1, ::-1]),
    4: ("mirrored vertically", lambda a: a[::-1]),
    5: ("transposed", lambda a: a.swapaxes(0, 1)),
    6: ("rotated 90 degrees clockwise", lambda a: np.rot90(a, -1)),
    7: ("transversed", lambda a: a[::-1, ::-1].swapaxes(0, 1)),
    8: ("rotated 90 degrees counter-clockwise", lambda a: np.rot90(a, 1)),
}


def exif_orientation(path: str | os.PathLike[str]) -> int:
    """The EXIF orientation tag of an image file (1-8), 1 when it has none or cannot say."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - no EXIF (or a format PIL does not know) means as stored
        return 1
    return value if value in _EXIF_TRANSFORMS else 1


# Pixels read from one image file: a 108-megapixel phone photo fits, a 16000x16000 PNG of a few
# hundred kB (3 GB decoded and resized) does not.
MAX_IMAGE_PIXELS = 1 << 27


def too_many_pixels(path: str) -> str | None:
    """Why ``path`` is too large to decode (from its header, before any pixel is decoded), or None;
    a format PIL cannot read is left to OpenCV (whose own cap is 2**30 pixels)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the size is judged here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:  # PIL's own cap, twice its warning size: above ours
        count = re.search(r"\((\d+) pixels\)", str(error))
        return f"{count.group(1) if count else 'too many'} pixels"
    except Exception:  # noqa: BLE001 - not a format PIL knows
        return None
    if width * height > MAX_IMAGE_PIXELS:
        return f"{width}x{height} = {width * height} pixels"
    return None


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Reads an image file -> ((H, W, 3) uint8 RGB, notes) as displayed: a photo's EXIF orientation
    is applied (a phone photo comes out upright, and all pixel coordinates refer to it); ValueError
    naming the file if it cannot be read or has an unsupported channel count."""
    import cv2

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"image: {path} is a directory, not an image file (a folder of frames is --images)")
    if not os.path.isfile(path):
        raise ValueError(f"image: no such file {path}")
    too_many = too_many_pixels(path)
    if too_many:
        raise ValueError(f"image: {path} has {too_many}, more than the {MAX_IMAGE_PIXELS} an image may have here "
                         "(downscale it first)")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image: cannot read {path} (not an image format OpenCV can decode, or "
                         "a damaged file)")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[..., ::-1]  # BGR -> RGB
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., [2, 1, 0, 3]]  # BGRA -> RGBA
    notes = []
    orientation = exif_orientation(path)
    if orientation != 1:
        what, transform = _EXIF_TRANSFORMS[orientation]
        image = transform(image)
        notes.append(f"EXIF orientation {orientation}: the stored image was {what} to show it as displayed; "
                     "pixel coordinates refer to the displayed image")
    rgb, more = to_rgb_uint8(image, f"image {path}")
    return rgb, notes + more


def image_damage(path: str | os.PathLike[str]) -> list[str]:
    """Warnings for an image file that OpenCV decodes only partly (cut short, a damaged chunk): the
    same checks as the data-set pipeline's; [] for a sound file."""
    from lgh_tf.data.validation import image_file_problem

    problem = image_file_problem(os.fspath(path))
    return [f"{os.fspath(path)}: {problem}; the prediction used what could be decoded"] if problem else []
