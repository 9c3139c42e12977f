"""Output files that are either complete or absent: write to a temporary name, then rename.

Every file lgh_tf writes for a user (JSON, PNG, npz, TFLite, results) goes through
:func:`atomic_path` (or a helper built on it): the data are written to ``.<name>.tmp-<pid><ext>``
in the same directory and moved over ``<name>`` with ``os.replace``, which is atomic on one file
system. A crash or kill leaves the previous file (or none) and at worst a hidden temporary file,
never a truncated output. Directories (SavedModel versions) are staged under a hidden name and
renamed when complete; :func:`remove_stale` clears what a killed run left behind.

A write that fails (read-only folder, full disk, no permission) raises :class:`OutputError`, a
ValueError naming the path, after the temporary file is removed: the previous output stays.
:func:`run_lock` makes one process the only writer of a run folder (an OS file lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import stat

import numpy as np


class OutputError(ValueError):
    """An output could not be written (read-only folder, full disk, permission): names the path."""


def output_error(path, error: BaseException) -> OutputError:
    """The one-line OutputError for ``error`` (an OSError or TensorFlow's I/O error) at ``path``."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
    if "No space left" in reason or (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
        reason += " (the disk is full)"
    return OutputError(f"cannot write {path}: {reason}; earlier outputs were left as they were")


# How the I/O layers under TensorFlow and OpenCV word a failed write (they raise their own types).
WRITE_FAILURE_TEXTS = ("No space left", "Read-only file system", "Permission denied", "Disk quota")


def is_write_failure(error: BaseException) -> bool:
    """True for an OSError or a TensorFlow error that reports a full disk, a read-only file system
    or a missing permission."""
    return isinstance(error, OSError) or any(text in str(error) for text in WRITE_FAILURE_TEXTS)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path`` (same extension, so writers that go by it work);
    on success it replaces ``path``, on an exception it is removed and ``path`` is untouched
    (an OSError becomes an OutputError naming ``path``)."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    temporary = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{ext}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError):
            raise output_error(path, error) from None
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


@contextlib.contextmanager
def staged_outputs(directory, names):
    """Outputs written as a whole or not at all: yields a hidden staging folder inside ``directory``.
    On success the ``names`` it did not produce (a previous run's) are removed from ``directory``
    and its files replace their namesakes, ``names`` in their order last (put the index file last),
    so the folder never mixes two runs; on an exception ``directory`` is left untouched."""
    directory = os.fspath(directory)
    remove_stale(directory, r"\.staging-(?P<pid>\d+)")
    staging = os.path.join(directory, f".staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
    except OSError as error:
        raise output_error(staging, error) from None
    try:
        try:
            yield staging
        except OutputError as error:  # name the output, not the staging folder
            raise OutputError(str(error).replace(staging + os.sep, directory + os.sep)) from None
        produced = set(os.listdir(staging))
        for name in set(names) - produced:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
        for name in sorted(produced - set(names)) + [n for n in names if n in produced]:
            os.replace(os.path.join(staging, name), os.path.join(directory, name))
    except OSError as error:
        raise output_error(directory, error) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{what}: cannot create {path}: {error.strerror}") from None
    return path


def require_writable(path, what, create=True):
    """``require_directory``, then a probe file written and removed in it (or, not created, in its
    nearest existing parent): a read-only folder, a full disk or a missing permission is an
    OutputError naming ``what`` and the path before any work is done."""
    path = require_directory(path, what, create=create)
    existing = path
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    probe = os.path.join(existing, f".write-probe-{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise OutputError(f"{what}: cannot write in {existing}: {error.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
    return path


LOCK_NAME = ".lock"
_held_locks: dict[str, list] = {}  # real path -> [file descriptor, depth]: re-entrant in one process


class RunFolderBusyError(ValueError):
    """Another live process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(directory, what="--model_dir"):
    """Holds an exclusive OS lock (``flock``) on ``<directory>/.lock`` for the block: one writer per
    run folder. The kernel releases it when the process ends, however it ends (``kill -9``
    included), so no stale lock is ever left. Re-entrant within one process (stage 1 of a run
    folder runs inside its stage 2's lock). A second process gets a RunFolderBusyError naming the
    folder and the holder's PID (written into the lock file)."""
    created = not os.path.isdir(directory)
    directory = require_directory(directory, what)
    key = os.path.realpath(directory)
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield directory
        finally:
            _held_locks[key][1] -= 1
        return
    path = os.path.join(directory, LOCK_NAME)
    try:  # never through a link: that would truncate (or create) the link's target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP or os.path.islink(path):
            raise OutputError(f"{what}: the lock file {path} is a symbolic link; remove it and run again") from None
        raise OutputError(f"{what}: cannot create the lock file {path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{what}: the lock file {path} is not a regular file; remove it and run again")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputError(f"{what}: cannot lock {path}: {error.strerror}") from None
        raise RunFolderBusyError(
            f"{what} {directory} is in use by another run (PID {holder}); wait for it to end or stop it, "
            "or use another folder") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the lock holds without the PID note
    _held_locks[key] = [fd, 1]
    failed = True
    try:
        yield directory
        failed = False
    finally:
        del _held_locks[key]
        if failed and created and os.listdir(directory) == [LOCK_NAME]:
            with contextlib.suppress(OSError):  # a run that stopped before writing leaves no folder
                os.remove(path)
                os.rmdir(directory)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


PLACEHOLDER = "RUN"  # what committed text shows for a folder outside the checkout
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def portable_path(path, root=None, placeholder=PLACEHOLDER) -> str:
    """``path`` as text that names no machine (pages, tables, picture titles): relative to ``root``
    (default: the checkout this package is in, else the working folder) when inside it, else
    ``placeholder/<last component>``. Relative paths are kept."""
    path = os.fspath(path)
    if not os.path.isabs(path):
        return path
    for base in ([root] if root is not None else [_CHECKOUT, os.getcwd()]):
        base = os.path.abspath(os.fspath(base))
        if os.path.commonpath([base, os.path.abspath(path)]) == base:
            return os.path.relpath(path, base)
    name = os.path.basename(os.path.normpath(path))
    return f"{placeholder}/{name}" if name else placeholder


def portable_command(args, root=None, placeholder=PLACEHOLDER) -> list[str]:
    """Command-line arguments with every absolute path (alone, after ``--flag=``, or in a comma
    list) made ``portable_path``."""
    def one(value):
        if "," in value and any(os.path.isabs(v) for v in value.split(",")):
            return ",".join(one(v) for v in value.split(","))
        return portable_path(value, root, placeholder) if os.path.isabs(value) else value

    shown = []
    for arg in map(str, args):
        if arg.startswith("-") and "=" in arg:
            flag, value = arg.split("=", 1)
            shown.append(f"{flag}={one(value)}")
        else:
            shown.append(one(arg))
    return shown
