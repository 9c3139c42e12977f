"""Records validation before the tf.data pipeline: labels that cannot train and image files that
cannot be decoded, found up front (numpy and file reads only, no TensorFlow), named and counted.

:func:`validate_records` drops (and logs, by path) files that are missing, empty, not PNG/JPEG/BMP
by their magic bytes, truncated (a PNG without its IEND trailer, a JPEG without an EOI marker near
its end, a BMP shorter than its header says) or, for PNGs, damaged anywhere (every chunk's CRC-32
is checked); and samples whose labels are missing or degenerate. Split out of
``lgh_tf.data.pipeline``, which re-exports these names (and logs under the same logger).
"""

from __future__ import annotations

import logging
import os
import zlib

import numpy as np

from lgh_tf.data import schema

logger = logging.getLogger("lgh_tf.data.pipeline")  # the pipeline's logger, as before the split

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_TRAILER = b"IEND\xaeB`\x82"
_JPEG_MAGIC = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
# Dexter+Object ships its colour frames as BMP (color/Color_%04d.bmp); a BMP's header declares
# its file size (bytes 2-5, little-endian), so a cut file is found before decoding.
_BMP_MAGIC = b"BM"
# Bytes at the end of a JPEG file searched for its end-of-image marker (tolerates trailing padding).
_JPEG_TAIL_BYTES = 1024


# ---------------------------------------------------------------------------------------------
# Validation (numpy, once per Records).
# ---------------------------------------------------------------------------------------------


def image_file_problem(path: str, size: tuple[int, int] | None = None) -> str | None:
    """Why the image file at ``path`` cannot be decoded (cheap checks), or, given ``size`` (width,
    height), does not have that size according to its header; None if it looks fine."""
    problem = _file_problem(path)
    if problem is None and size is not None:
        found = header_size(path)
        if found is not None and tuple(found) != tuple(size):
            return (f"image size: {found[0]}x{found[1]}, the data set's images are {size[0]}x{size[1]} "
                    "(resized or another data set's file)")
    return problem


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a PNG, BMP or JPEG header without decoding; None when it cannot tell."""
    with open(path, "rb") as f:
        head = f.read(26)
        if head.startswith(_PNG_MAGIC) and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head.startswith(_BMP_MAGIC) and len(head) >= 26:
            if int.from_bytes(head[14:18], "little") == 12:  # OS/2 header: 16-bit sizes
                return int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little")
            return (int.from_bytes(head[18:22], "little", signed=True),
                    abs(int.from_bytes(head[22:26], "little", signed=True)))  # negative: rows top-down
        if head.startswith(_JPEG_MAGIC):
            return _jpeg_size(f)
    return None


def _jpeg_size(f) -> tuple[int, int] | None:
    """The frame size of a JPEG's first start-of-frame segment (segments skipped by their length)."""
    position = 2
    for _ in range(1000):
        f.seek(position)
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind, length = marker[1], int.from_bytes(marker[2:4], "big")
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):  # SOF0..15 (not DHT, JPG, DAC)
            frame = f.read(5)
            return (int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")) if len(frame) == 5 else None
        position += 2 + length
    return None


def _file_problem(path: str) -> str | None:
    if not path:
        return "image file missing: empty path"
    if not os.path.isfile(path):
        return "image file missing: no such file"
    size = os.path.getsize(path)
    if size == 0:
        return "image file empty: 0 bytes"
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(max(0, size - _JPEG_TAIL_BYTES))
        tail = f.read()
    if head.startswith(_PNG_MAGIC):
        if not tail.endswith(_PNG_TRAILER):
            return "image file truncated: PNG without IEND trailer"
        return _png_chunk_problem(path)
    if head.startswith(_JPEG_MAGIC):
        if _JPEG_EOI not in tail:
            return "image file truncated: JPEG without end-of-image marker"
        return None
    if head.startswith(_BMP_MAGIC) and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        if size < declared:
            return f"image file truncated: BMP of {size} bytes, its header says {declared}"
        return None
    return "image file not PNG/JPEG/BMP: unknown magic bytes"


def _png_chunk_problem(path: str) -> str | None:
    """Walks a PNG's chunks and checks each one's CRC-32: a file damaged in the middle (which
    still has its signature and IEND trailer) is found here, named and counted, instead of
    failing to decode later. Reads the whole file (zlib.crc32 runs at GB/s)."""
    with open(path, "rb") as f:
        data = f.read()
    position = len(_PNG_MAGIC)
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        end = position + 12 + length
        kind = data[position + 4:position + 8]
        if end > len(data):
            return f"image file corrupt: PNG chunk {kind!r} at byte {position} runs past the end"
        if zlib.crc32(data[position + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"image file corrupt: PNG chunk {kind.decode('latin-1')} at byte {position} fails its CRC"
        if kind == b"IEND":
            return None
        position = end
    return "image file corrupt: PNG chunks do not end with IEND"


def _label_problem(uv: np.ndarray, xyz: np.ndarray, intrinsics: np.ndarray) -> str | None:
    """Why one sample's labels are unusable; None if they are fine."""
    for name, value, shape in (
        ("uv", uv, (schema.NUM_JOINTS, 2)),
        ("xyz", xyz, (schema.NUM_JOINTS, 3)),
        ("K", intrinsics, (3, 3)),
    ):
        if value.shape != shape:
            return f"bad label shape: {name} is {value.shape}, expected {shape}"
        bad = ~np.isfinite(value)
        if bad.any():
            if name == "K":
                return "non-finite K: NaN/inf entries"
            joints = np.flatnonzero(bad.any(axis=-1)).tolist()
            return f"missing joints: {name} is NaN/inf at joints {joints}"
    if not np.allclose(intrinsics[2], (0.0, 0.0, 1.0)) or abs(np.linalg.det(intrinsics)) < 1e-12:
        return "bad K: not an invertible pinhole matrix with last row (0, 0, 1)"
    child, parent = schema.SCALE_BONE
    hand_scale = float(np.linalg.norm(xyz[child].astype(np.float64) - xyz[parent]))
    if not np.isfinite(hand_scale) or hand_scale <= 1e-6:
        return f"bad hand scale: |xyz[{child}] - xyz[{parent}]| = {hand_scale:g}"
    root_depth = float(xyz[schema.ROOT, 2])
    if root_depth <= 0.0:
        return f"non-positive root depth: z[{schema.ROOT}] = {root_depth:g}"
    behind = np.flatnonzero(xyz[:, 2] <= 0.0).tolist()
    if behind:
        return f"non-positive joint depth: joints {behind}"
    return None


def find_invalid_samples(records: schema.Records, *, check_images: bool = True,
                         check_labels: bool = True) -> dict[int, str]:
    """Index -> reason for every sample of ``records`` that must not reach training.

    Checks NaN/inf (missing) joints in uv/xyz and bad K, a zero or non-finite hand scale
    ``|xyz[12] - xyz[11]|``, non-positive depths (root included) and, when ``check_images``, image
    files that are missing, empty, not PNG/JPEG/BMP, truncated (reads 8 head and <= 1 KiB tail bytes)
    or, where the records name their data set's image size, of another size (from the header).
    ``check_labels=False``: the images only (a protocol that scores partly annotated samples).
    """
    problems: dict[int, str] = {}
    uv = np.asarray(records.uv, dtype=np.float32)
    xyz = np.asarray(records.xyz, dtype=np.float32)
    intrinsics = np.asarray(records.K, dtype=np.float32)
    for i in range(len(records)):
        reason = _label_problem(uv[i], xyz[i], intrinsics[i]) if check_labels else None
        if reason is None and check_images:
            reason = image_file_problem(str(records.image_path[i]), records.image_size)
        if reason is not None:
            problems[i] = reason
    return problems


def validate_records(
    records: schema.Records, *, check_images: bool = True, max_logged: int = 20
) -> schema.Records:
    """Returns ``records`` without the samples :func:`find_invalid_samples` rejects.

    Logs one warning per rejected sample naming its image path and the reason (the first
    ``max_logged`` of them; the rest only in the count), then one summary line.
    """
    problems = find_invalid_samples(records, check_images=check_images)
    if not problems:
        logger.info("%s: all %d samples valid.", records.name, len(records))
        return records
    for n, (index, reason) in enumerate(sorted(problems.items())):
        if n == max_logged:
            logger.warning(
                "%s: ... %d more invalid samples not listed.", records.name, len(problems) - n
            )
            break
        logger.warning(
            "%s: skipping sample %d (%s): %s",
            records.name, index, records.image_path[index], reason,
        )
    reasons: dict[str, int] = {}
    for reason in problems.values():
        kind = reason.split(":")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    logger.warning(
        "%s: skipped %d of %d samples (%s).",
        records.name,
        len(problems),
        len(records),
        "; ".join(f"{count} x {kind}" for kind, count in sorted(reasons.items())),
    )
    keep = np.ones(len(records), dtype=bool)
    keep[list(problems)] = False
    return records.subset(keep)
