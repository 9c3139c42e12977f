"""Pickles as data: a reader of the pickle format that builds only what a published annotation file
holds, and checks each thing before it builds it.

``pickle.load`` runs whatever callable a pickle names, and even numpy's own reconstruction can be
driven into memory corruption by a crafted dtype (a structured dtype with an object field). This
module does not use ``pickle.Unpickler``: it interprets the opcodes itself and builds only

* None, bool, int (at most 64 bits), float, str, bytes, tuples, lists and dicts whose keys are
  str or int (of at most 53 bits; no key twice);
* numpy arrays and scalars of plain numeric dtypes (bool, int, uint, float, complex: no fields,
  no objects, no strings), from raw bytes of exactly the size their shape and dtype say.

Everything is bounded by the file: nesting depth (``MAX_DEPTH``), entries per container
(``MAX_ENTRIES``), values built (``MAX_VALUES``), the expanded size of any value (shared
references counted each time, at most twice the file's size), and the file's size itself
(``MAX_FILE_BYTES``). Anything else, a global
outside ``ALLOWED_GLOBALS`` above all, is refused with an ``UnsafePickleError`` naming it; a file
cut short or malformed is an ``UnpicklingError``. Both are one line; nothing in the file is run.
Python 2 strings (RHD's pickle) are read as latin-1, as numpy expects.
"""

from __future__ import annotations

import codecs
import gc
import os
import pickle
import re
import struct

import numpy as np

MAX_DEPTH = 32  # RHD needs 3 (dict -> dict -> array)
MAX_ENTRIES = 1 << 20  # RHD's training split: 41,258 entries
MAX_FILE_BYTES = 512 << 20  # RHD's training pickle is a few tens of MB
# Lists, dicts, tuples and arrays built (RHD's training split: about 20 per entry, 0.8M): an empty
# dict is one byte of file and ~250 bytes of memory with its bookkeeping, so their number is
# bounded by the file's size and absolutely (about 0.5 GB at most).
MAX_VALUES = 1 << 21
MAX_KEY_BITS = 53  # int keys beyond this are not sample ids (and could be chosen to collide)
MAX_STR_KEY = 1024
MAX_NUMBER_TEXT = 64  # characters of a protocol-0 number

# (module, name) -> what it builds. Only these globals are looked up, and each only in the shape
# numpy (or Python's pickler) writes it.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "bytes",
    ("builtins", "bytes"): "bytes",
}
_PLAIN_DTYPE = re.compile(r"(b1|[iu][1248]|f[248]|c(8|16))")
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1"}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle holds something other than plain data (code, an object dtype, a bomb)."""


class _Internal:
    """A value that exists only while reading (a callable, a dtype or an array being built); it
    never ends up in the result."""


class _Global(_Internal):
    def __init__(self, kind, name):
        self.kind, self.name = kind, name


class _DtypeBox(_Internal):
    def __init__(self, dtype):
        self.dtype, self.built, self.sealed = dtype, False, False


class _ArrayBox(_Internal):
    def __init__(self):
        self.array, self.sealed = None, False


class _Args(_Internal):
    """A tuple holding internal values: the arguments of a call or the state of a BUILD."""

    def __init__(self, items):
        self.items = items


def _refuse(message):
    raise UnsafePickleError(f"refused: {message}")


def _plain_dtype(typestr) -> np.dtype:
    if not isinstance(typestr, str) or not _PLAIN_DTYPE.fullmatch(typestr):
        _refuse(f"numpy dtype {str(typestr)[:40]!r} is not a plain numeric dtype (no fields, objects or strings)")
    return np.dtype(typestr)


def _raw_bytes(raw, what) -> bytes:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if isinstance(raw, str):  # a Python 2 str, read as latin-1
        try:
            return raw.encode("latin1")
        except UnicodeEncodeError:
            pass
    _refuse(f"{what} data is a {type(raw).__name__}, not raw bytes")


def _shape(shape, what) -> tuple[int, ...]:
    if (not isinstance(shape, tuple) or len(shape) > MAX_DEPTH
            or not all(type(n) is int and n >= 0 for n in shape)):
        _refuse(f"{what} shape {str(shape)[:60]} is not a tuple of at most {MAX_DEPTH} sizes >= 0")
    return shape


def _array(raw, dtype: np.dtype, shape, fortran: bool) -> np.ndarray:
    """The array of ``shape`` from ``raw``; its size is checked against the bytes before any is read."""
    raw = _raw_bytes(raw, "array")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        _refuse(f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
                f"the file gives {len(raw)}")
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C").copy()
    return array.view(np.uint8) != 0 if dtype.kind == "b" else array  # any byte but 0 is True, as a bool


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0
        self.stack, self.marks, self.memo = [], [], {}
        # id -> [expanded size, depth] of each container and array built (kept alive in `alive`
        # so that ids stay unique); sealed: containers already inside another one.
        self.info, self.alive, self.sealed = {}, [], set()
        self.limit = 2 * len(data) + 1024
        # One value per 4 bytes of file (RHD: one per ~60), at most MAX_VALUES.
        self.built, self.max_values = 0, min(MAX_VALUES, len(data) // 4 + 4096)

    # -- reading the stream ------------------------------------------------------------------

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise pickle.UnpicklingError(f"the pickle is cut short (needs {n} bytes at byte {self.pos})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise pickle.UnpicklingError(f"the pickle is cut short (a line at byte {self.pos} has no end)")
        chunk = self.data[self.pos:end]
        self.pos = end + 1
        return chunk

    def number_text(self) -> str:
        text = self.line()
        if len(text) > MAX_NUMBER_TEXT:
            _refuse(f"a number of {len(text)} digits")
        return text.decode("ascii")

    # -- sizes, depth, sharing -----------------------------------------------------------------

    def measure(self, value) -> tuple[int, int]:
        """(expanded size, depth) of a data value."""
        known = self.info.get(id(value))
        if known is not None:
            return known
        if isinstance(value, (str, bytes, bytearray)):
            return 1 + len(value) // 8, 0
        if type(value) is tuple:  # a small tuple of numbers and strings, not tracked (make_tuple)
            return 1 + sum(self.measure(item)[0] for item in value), 1 if value else 0
        return 1, 0

    def count(self):
        self.built += 1
        if self.built > self.max_values:
            _refuse(f"more than {self.max_values} lists, dicts, tuples and arrays (for a file of "
                    f"{len(self.data)} bytes)")
        if len(self.stack) > 2 * MAX_ENTRIES:  # items waiting for their container: checked as they come
            _refuse(f"more than {2 * MAX_ENTRIES} items waiting for a list, dict or tuple")

    def track(self, value, weight: int, depth: int):
        if weight > self.limit:
            _refuse(f"a value would expand to {weight} items, more than the file's size allows "
                    "(shared references multiplied)")
        if depth > MAX_DEPTH:
            _refuse(f"values nested deeper than {MAX_DEPTH}")
        self.count()
        self.info[id(value)] = (weight, depth)
        self.alive.append(value)
        return value

    def element(self, value):
        """``value`` as an element of a container: data only, sealed against later changes."""
        if isinstance(value, _ArrayBox) and value.array is not None:
            value.sealed = True
            value = value.array
        if isinstance(value, _Internal):
            _refuse(f"a {_describe(value)} where data is expected")
        if isinstance(value, (list, dict)):
            self.sealed.add(id(value))
        return value

    def grow(self, container, new_items):
        """Add ``new_items`` (already checked) to the bookkeeping of an open list or dict."""
        if id(container) in self.sealed:
            _refuse("a list or dict changed after it was placed in another (a cycle or a rewrite)")
        weight, depth = self.info[id(container)]
        for item in new_items:
            item_weight, item_depth = self.measure(item)
            weight += item_weight
            depth = max(depth, item_depth + 1)
        self.info[id(container)] = (weight, depth)
        if weight > self.limit:
            _refuse(f"a value would expand to {weight} items, more than the file's size allows")
        if depth > MAX_DEPTH:
            _refuse(f"values nested deeper than {MAX_DEPTH}")
        if len(container) > MAX_ENTRIES:
            _refuse(f"a list or dict of more than {MAX_ENTRIES} entries")

    def make_tuple(self, items):
        weight, depth, values = 1, 0, items
        for i, item in enumerate(items):
            kind = type(item)
            if kind is int or kind is float or kind is bool or item is None:
                weight += 1
                depth = depth or 1
                continue
            if kind is str or kind is bytes:
                weight += 1 + len(item) // 8
                depth = depth or 1
                continue
            if kind is _ArrayBox and item.array is not None:
                if values is items:
                    values = list(items)
                values[i] = item = self.element(item)
            elif isinstance(item, _Internal):
                self.count()
                for value in items:
                    if type(value) is _DtypeBox or type(value) is _ArrayBox:
                        value.sealed = True
                return _Args(items)
            item_weight, item_depth = self.measure(self.element(item))
            weight += item_weight
            depth = max(depth, item_depth + 1)
        if depth <= 1 and len(values) <= _SMALL_TUPLE:  # shapes, dtype and codec arguments: measured again
            self.count()
            return tuple(values)
        return self.track(tuple(values), weight, depth)

    def new(self, container):
        return self.track(container, 1, 0)

    def check_key(self, key):
        if type(key) is int:
            if key.bit_length() > MAX_KEY_BITS:
                _refuse(f"an int dict key of {key.bit_length()} bits (at most {MAX_KEY_BITS})")
        elif type(key) is str:
            if len(key) > MAX_STR_KEY:
                _refuse(f"a str dict key of {len(key)} characters")
        else:
            _refuse(f"a dict key that is a {type(key).__name__} ({str(key)[:40]}); only int and str keys are read")

    def set_items(self, target, items):
        if len(items) % 2:
            raise pickle.UnpicklingError("a dict is given an odd number of items")
        if type(target) is not dict:
            _refuse(f"items set on a {_describe(target)}, not a dict")
        pairs = [(self.element(items[i]), self.element(items[i + 1])) for i in range(0, len(items), 2)]
        for key, _ in pairs:
            self.check_key(key)
        if len(target) + len(pairs) > MAX_ENTRIES:  # checked before the dict grows
            _refuse(f"a dict of more than {MAX_ENTRIES} entries")
        self.grow(target, [v for pair in pairs for v in pair])
        for key, value in pairs:
            if key in target:
                _refuse(f"the dict key {key!r} twice")
            target[key] = value

    def append(self, target, items):
        if type(target) is not list:
            _refuse(f"items appended to a {_describe(target)}, not a list")
        items = [self.element(item) for item in items]
        if len(target) + len(items) > MAX_ENTRIES:
            _refuse(f"a list of more than {MAX_ENTRIES} entries")
        self.grow(target, items)
        target.extend(items)

    def pop_mark(self):
        if not self.marks:
            raise pickle.UnpicklingError("a MARK is missing")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    # -- the numpy calls -------------------------------------------------------------------------

    def call(self, function, args):
        if not isinstance(function, _Global):
            _refuse(f"a call of a {_describe(function)}")
        items = args.items if isinstance(args, _Args) else args
        if not isinstance(items, (tuple, list)):
            _refuse(f"{function.name} called with a {_describe(args)}")
        kind = function.kind
        if kind == "encode":
            if len(items) != 2 or not isinstance(items[0], str) or str(items[1]).lower() not in _LATIN1:
                _refuse("_codecs.encode other than of a str to latin-1 (how pickles store bytes)")
            return _raw_bytes(items[0], "encoded")
        if kind == "bytes":
            if len(items):
                _refuse("bytes(...) with arguments (a pickle writes only bytes() so)")
            return b""
        if kind == "dtype":
            if not 1 <= len(items) <= 3 or not all(type(flag) in (bool, int) for flag in items[1:]):
                _refuse("numpy.dtype called otherwise than numpy pickles a dtype")
            return _DtypeBox(_plain_dtype(items[0]))
        if kind == "reconstruct":
            if (len(items) != 3 or not (isinstance(items[0], _Global) and items[0].kind == "ndarray")
                    or not isinstance(items[2], (bytes, str)) or len(items[2]) > 4):
                _refuse("_reconstruct of anything but a numpy.ndarray")
            _shape(items[1], "_reconstruct")
            return _ArrayBox()
        if kind == "scalar":
            if len(items) != 2 or not isinstance(items[0], _DtypeBox):
                _refuse("numpy scalar(...) of anything but a dtype and its bytes")
            dtype = items[0].dtype
            return _array(items[1], dtype, (), False)[()]
        if kind == "frombuffer":
            if len(items) != 4 or not isinstance(items[1], _DtypeBox) or items[3] not in ("C", "F"):
                _refuse("numpy _frombuffer of anything but bytes, a dtype, a shape and an order")
            array = _array(items[0], items[1].dtype, _shape(items[2], "_frombuffer"), items[3] == "F")
            return self.track(array, 1 + array.nbytes // 8, 1)
        _refuse(f"a call of {function.name} (only the type of a _reconstruct call)")

    def build(self, target, state):
        items = state.items if isinstance(state, _Args) else state
        if isinstance(target, _DtypeBox):
            # numpy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment,
            # flags[, metadata]); anything but a plain type's is refused, before numpy sees it.
            if target.built or target.sealed:
                _refuse("a numpy dtype changed after it was made or used")
            plain = (isinstance(items, tuple) and len(items) in (8, 9) and items[0] in (3, 4)
                     and items[1] in ("<", ">", "|", "=") and items[2:5] == (None, None, None)
                     and items[5:7] == (-1, -1) and items[7] == 0 and (len(items) == 8 or items[8] is None))
            if not plain:
                _refuse("a numpy dtype with fields, a subarray, objects or metadata")
            if items[1] in "<>":
                target.dtype = target.dtype.newbyteorder(items[1])
            target.built = True
            return
        if isinstance(target, _ArrayBox):
            # numpy's array state: (version, shape, dtype, is_fortran, raw bytes); older files lack
            # the version.
            if target.array is not None or target.sealed:
                _refuse("a numpy array changed after it was made or used")
            if not isinstance(items, (tuple, list)) or len(items) not in (4, 5):
                _refuse("a numpy array state of an unknown form")
            if len(items) == 5:
                items = items[1:]
            shape, dtype, fortran, raw = items
            if not isinstance(dtype, _DtypeBox) or type(fortran) not in (bool, int):
                _refuse("a numpy array state without a plain dtype")
            array = _array(raw, dtype.dtype, _shape(shape, "array"), bool(fortran))
            target.array = self.track(array, 1 + array.nbytes // 8, 1)
            return
        _refuse(f"state set on a {_describe(target)} (only numpy arrays and dtypes take a state)")

    def find_global(self, module, name):
        kind = ALLOWED_GLOBALS.get((module, name))
        if kind is None:
            raise UnsafePickleError(
                f"refused: the pickle names {module}.{name}, which is not plain data (only dicts, lists, "
                "tuples, numbers, strings and numpy arrays are read; the file may have been tampered with)")
        return _Global(kind, f"{module}.{name}")

    # -- the loop ----------------------------------------------------------------------------------

    def run(self):
        """The loop; the opcodes of every array (memo, small ints, tuples, strings) inline."""
        data, stack, memo, marks = self.data, self.stack, self.memo, self.marks
        push, size, pos = stack.append, len(data), self.pos
        while True:
            if pos >= size:
                raise pickle.UnpicklingError("the pickle is cut short (no STOP)")
            op = data[pos]
            pos += 1
            if op == 0x71:  # BINPUT
                memo[data[pos]] = stack[-1]
                pos += 1
            elif op == 0x68 or op == 0x6A:  # BINGET, LONG_BINGET
                if op == 0x68:
                    index = data[pos]
                    pos += 1
                else:
                    index = int.from_bytes(data[pos:pos + 4], "little")
                    pos += 4
                if index not in memo:
                    raise pickle.UnpicklingError(f"memo entry {index} is read before it is written")
                push(memo[index])
            elif op == 0x72:  # LONG_BINPUT
                memo[int.from_bytes(data[pos:pos + 4], "little")] = stack[-1]
                pos += 4
            elif op == 0x4B:  # BININT1
                push(data[pos])
                pos += 1
            elif op == 0x28:  # MARK
                marks.append(len(stack))
            elif 0x85 <= op <= 0x87:  # TUPLE1..3
                n = op - 0x84
                if len(stack) - (marks[-1] if marks else 0) < n:
                    raise pickle.UnpicklingError("a TUPLE with too few items")
                items = stack[-n:]
                del stack[-n:]
                push(self.make_tuple(items))
            elif op == 0x94:  # MEMOIZE
                memo[len(memo)] = stack[-1]
            elif op == 0x89 or op == 0x88:  # NEWFALSE, NEWTRUE
                push(op == 0x88)
            elif op in _STRINGS:  # (SHORT_)BINUNICODE, (SHORT_)BINSTRING, (SHORT_)BINBYTES
                width = 1 if op in _SHORT else 4
                n = int.from_bytes(data[pos:pos + width], "little", signed=op == 0x54)
                chunk = data[pos + width:pos + width + n]
                if n < 0 or len(chunk) != n:
                    raise pickle.UnpicklingError(f"the pickle is cut short (needs {n} bytes at byte {pos})")
                pos += width + n
                push(chunk.decode("utf-8", "surrogatepass") if op in _UNICODE
                     else _py2_str(chunk) if op in _PY2_STR else chunk)
            elif op == 0x74:  # TUPLE
                self.pos = pos
                push(self.make_tuple(self.pop_mark()))
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                push(self.call(stack.pop(), args))
            elif op == 0x62:  # BUILD
                state = stack.pop()
                self.build(stack[-1], state)
            elif op == 0x2E:  # STOP
                if len(stack) != 1 or marks:
                    raise pickle.UnpicklingError("the pickle ends with an unbalanced stack")
                self.pos = pos
                return self.element(stack[0])
            else:
                self.pos = pos
                self.step(op)
                pos = self.pos

    def step(self, op):
        """One of the rarer opcodes (the frequent ones are inline in ``run``)."""
        stack, memo = self.stack, self.memo
        unpack = struct.unpack
        if op == 0x80:  # PROTO
            if self.take(1)[0] > 5:
                raise pickle.UnpicklingError("unknown pickle protocol")
        elif op == 0x95:  # FRAME (a length hint only)
            self.take(8)
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op == 0x4D:  # BININT2
            stack.append(unpack("<H", self.take(2))[0])
        elif op == 0x4A:  # BININT
            stack.append(unpack("<i", self.take(4))[0])
        elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
            n = self.take(1)[0] if op == 0x8A else unpack("<i", self.take(4))[0]
            if not 0 <= n <= 8:
                _refuse(f"an integer of {n} bytes (at most 8)")
            stack.append(int.from_bytes(self.take(n), "little", signed=True))
        elif op == 0x49:  # INT (text; I00 / I01 are False / True)
            text = self.number_text()
            stack.append(text == "01" if text in ("00", "01") else int(text))
        elif op == 0x4C:  # LONG (text)
            stack.append(int(self.number_text().rstrip("L")))
        elif op == 0x46:  # FLOAT (text)
            stack.append(float(self.number_text()))
        elif op == 0x47:  # BINFLOAT
            stack.append(unpack(">d", self.take(8))[0])
        elif op == 0x53:  # STRING (text, quoted)
            raw = self.line()
            if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                raise pickle.UnpicklingError("a STRING without quotes")
            stack.append(_py2_str(codecs.escape_decode(raw[1:-1])[0]))
        elif op == 0x8E:  # BINBYTES8
            stack.append(self.take(unpack("<Q", self.take(8))[0]))
        elif op == 0x96:  # BYTEARRAY8
            stack.append(bytearray(self.take(unpack("<Q", self.take(8))[0])))
        elif op == 0x8D:  # BINUNICODE8
            stack.append(self.take(unpack("<Q", self.take(8))[0]).decode("utf-8", "surrogatepass"))
        elif op == 0x56:  # UNICODE (text)
            stack.append(self.line().decode("raw-unicode-escape"))
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(self.make_tuple([]))
        elif op == 0x5D:  # EMPTY_LIST
            stack.append(self.new([]))
        elif op == 0x6C:  # LIST
            items = self.pop_mark()
            target = self.new([])
            self.append(target, items)
            stack.append(target)
        elif op == 0x7D:  # EMPTY_DICT
            stack.append(self.new({}))
        elif op == 0x64:  # DICT
            items = self.pop_mark()
            target = self.new({})
            self.set_items(target, items)
            stack.append(target)
        elif op == 0x61:  # APPEND
            item = stack.pop()
            self.append(stack[-1], [item])
        elif op == 0x65:  # APPENDS
            items = self.pop_mark()
            self.append(stack[-1], items)
        elif op == 0x73:  # SETITEM
            value = stack.pop()
            key = stack.pop()
            self.set_items(stack[-1], [key, value])
        elif op == 0x75:  # SETITEMS
            items = self.pop_mark()
            self.set_items(stack[-1], items)
        elif op == 0x30:  # POP
            if self.marks and self.marks[-1] == len(stack):
                self.marks.pop()
            else:
                stack.pop()
        elif op == 0x31:  # POP_MARK
            self.pop_mark()
        elif op == 0x32:  # DUP
            stack.append(stack[-1])
        elif op == 0x67:  # GET (text)
            index = int(self.number_text())
            if index not in memo:
                raise pickle.UnpicklingError(f"memo entry {index} is read before it is written")
            stack.append(memo[index])
        elif op == 0x70:  # PUT (text)
            memo[int(self.number_text())] = stack[-1]
        elif op == 0x63:  # GLOBAL
            module = self.line().decode("utf-8")
            name = self.line().decode("utf-8")
            stack.append(self.find_global(module, name))
        elif op == 0x93:  # STACK_GLOBAL
            name = stack.pop()
            module = stack.pop()
            if not isinstance(module, str) or not isinstance(name, str):
                raise pickle.UnpicklingError("STACK_GLOBAL of non-strings")
            stack.append(self.find_global(module, name))
        else:
            name = _OPCODE_NAMES.get(op)
            if name is None:
                raise pickle.UnpicklingError(f"invalid pickle opcode {op:#04x} at byte {self.pos - 1}")
            _refuse(f"the pickle opcode {name} (it builds objects, not data)")


_SMALL_TUPLE = 8
_STRINGS = frozenset(b"\x8cXUTCB")
_SHORT = frozenset(b"\x8cUC")
_UNICODE = frozenset(b"\x8cX")
_PY2_STR = frozenset(b"UT")
_OPCODE_NAMES = {ord(code): name for code, name in (
    ("P", "PERSID"), ("Q", "BINPERSID"), ("i", "INST"), ("o", "OBJ"), ("\x81", "NEWOBJ"),
    ("\x92", "NEWOBJ_EX"), ("\x82", "EXT1"), ("\x83", "EXT2"), ("\x84", "EXT4"), ("\x8f", "EMPTY_SET"),
    ("\x90", "ADDITEMS"), ("\x91", "FROZENSET"), ("\x97", "NEXT_BUFFER"), ("\x98", "READONLY_BUFFER"))}


def _describe(value) -> str:
    if isinstance(value, _Global):
        return value.name
    if isinstance(value, _DtypeBox):
        return "numpy dtype"
    if isinstance(value, _ArrayBox):
        return "numpy array without its data"
    if isinstance(value, _Args):
        return "tuple of internal values"
    return type(value).__name__


def _py2_str(raw: bytes) -> str:
    """A Python 2 str: ASCII text, or numpy's raw array bytes (latin-1 maps each byte to itself)."""
    return raw.decode("latin1")


def loads(data: bytes):
    """The data pickled in ``data`` (see the module docstring)."""
    if len(data) > MAX_FILE_BYTES:
        _refuse(f"{len(data)} bytes, more than the {MAX_FILE_BYTES} an annotation pickle may have")
    reader = _Reader(bytes(data))
    collecting = gc.isenabled()
    gc.disable()  # the reader makes no cycles (a container is sealed once inside another); without
    # this, full collections over the growing result make a large file superlinear
    try:
        return reader.run()
    except pickle.UnpicklingError:
        raise
    except RecursionError:
        raise UnsafePickleError("refused: values nested too deeply") from None
    except MemoryError:
        raise UnsafePickleError("refused: the pickle needs more memory than there is") from None
    except (IndexError, KeyError, ValueError, TypeError, struct.error, UnicodeError, OverflowError) as error:
        raise pickle.UnpicklingError(
            f"malformed pickle at byte {reader.pos} ({type(error).__name__}: {str(error)[:120]})") from None
    finally:
        if collecting:
            gc.enable()


def load(path: str | os.PathLike):
    """The data pickled in ``path``, built from data only (see the module docstring)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    return loads(data)

