"""Pickles as data: an unpickler that builds only what a published annotation file holds.

``pickle.load`` runs whatever callable a pickle names (``__reduce__``), so a data set file from a
mirror or a colleague could run code. :func:`load` admits only dicts, lists, tuples, sets,
numbers, strings, bytes, numpy arrays, numpy scalars and dtypes; any other global is refused with
an ``UnsafePickleError`` naming it (the file is never executed). Python 2 pickles (RHD's) are read
with latin-1 strings.
"""

from __future__ import annotations

import io
import os
import pickle

# (module, name) of the callables the pickles of numpy data name: building an array, a scalar or a
# dtype from bytes, and the bytes themselves (protocol 2 writes them with _codecs.encode).
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("__builtin__", "set"), ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "frozenset"),
    ("__builtin__", "complex"), ("builtins", "complex"),
})
# copyreg._reconstructor(cls, base, state) only calls base.__new__(cls): with cls limited to the
# classes above (found through this same gate) it builds nothing else.


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside ALLOWED_GLOBALS (code, not data)."""


class DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refused: the pickle names {module}.{name}, which is not plain data (only dicts, lists, "
                "tuples, numbers, strings and numpy arrays are read; the file may have been tampered with)")
        return super().find_class(module, name)


def loads(data: bytes, encoding: str = "ASCII"):
    return DataUnpickler(io.BytesIO(data), encoding=encoding).load()


def load(path: str | os.PathLike):
    """The object pickled in ``path``, built from data only (see the module docstring)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return loads(data)
    except UnicodeDecodeError:  # a Python 2 pickle with non-ASCII str: latin-1, as numpy expects
        return loads(data, encoding="latin1")
