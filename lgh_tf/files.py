"""Output files that are either complete or absent: write to a temporary name, then rename.

Every file lgh_tf writes for a user (JSON, PNG, npz, TFLite, results) goes through
:func:`atomic_path` (or a helper built on it): the data are written to ``.<name>.tmp-<pid><ext>``
in the same directory and moved over ``<name>`` with ``os.replace``, which is atomic on one file
system. A crash or kill leaves the previous file (or none) and at worst a hidden temporary file,
never a truncated output. Directories (SavedModel versions) are staged under a hidden name and
renamed when complete; :func:`remove_stale` clears what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path`` (same extension, so writers that go by it work);
    on success it replaces ``path``, on an exception it is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    temporary = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{ext}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def write_bytes(path, data: bytes):
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            f.write(data)
    return os.fspath(path)


def to_jsonable(value):
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts: numpy scalars and
    arrays become Python numbers and lists, NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def write_json(path, data, indent=2):
    """Strict JSON (no NaN / Infinity tokens: a non-finite number is a ValueError before anything
    is written), atomically."""
    text = json.dumps(data, indent=indent, allow_nan=False)
    return write_bytes(path, (text + "\n").encode())


def write_png(path, rgb):
    """An RGB uint8 image as PNG, atomically."""
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(np.asarray(rgb)[..., ::-1]))
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    return write_bytes(path, encoded.tobytes())


def save_npz(path, **arrays):
    """``np.savez_compressed`` atomically (through a file object, so no extension is appended)."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            np.savez_compressed(f, **arrays)
    return os.fspath(path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(directory, pattern) -> list[str]:
    """Removes the entries of ``directory`` whose name fully matches ``pattern`` (a regex) and
    whose group ``pid``, if the pattern has one, is not a live process (another run's staging
    area is left alone). Returns the removed paths."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        match = re.fullmatch(pattern, name)
        if not match:
            continue
        pid = match.groupdict().get("pid")
        if pid is not None and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        removed.append(path)
    return removed


def require_directory(path, what, create=True):
    """Checks that ``path`` can be a directory (neither it nor an existing parent is a file) and
    creates it (``create``); a ValueError naming ``what`` and the path otherwise."""
    path = os.path.abspath(os.fspath(path))
    existing = path
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{what}: {path} cannot be a directory: {existing} is a file")
    if create:
        os.makedirs(path, exist_ok=True)
    return path
