"""Pickled data files read without running code: a restricted unpickler for the CIFAR batches.

A pickle is a program: unpickling calls whatever callable the file names, so a CIFAR file from
an untrusted mirror could run code with ``pickle.load``. Refusing unknown globals is not enough:
numpy's own constructors, fed a crafted state (an object dtype whose flags are cleared), read
and write memory at addresses taken from the file. So :func:`load_pickle` never lets numpy see
the file's state. The few globals numpy's pickles of plain arrays name (``_reconstruct`` and
``ndarray``, ``_frombuffer`` for protocol 5, ``dtype``, under numpy 1's and 2's module names,
and ``_codecs.encode`` with the latin-1 codec and ``bytes()``, which Python 3 uses for ``bytes`` in
protocol 2)
resolve to inert stand-ins that only record a shape, a dtype's name and byte order, and raw
bytes. After loading, each recorded array is rebuilt with ``numpy.frombuffer`` from a dtype of
kind bool, int, unsigned or float only (no object, string, void or structured dtype) whose byte
count matches its shape. Containers (dict, list, tuple), bytes, str and numbers need no global.
Any other global, dtype or shape is refused with one line naming the file, so nothing in the
file is ever called.

Files written by Python 2 (the published CIFAR batches) hold Python 2 ``str`` objects: they are
read with ``encoding="latin1"`` (which maps every byte), so their keys come back as ``str``;
files written by Python 3 with ``bytes`` keys (``b"data"``) are read too, their top-level keys
decoded to ``str``.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

from ufm._core.validation import DataFileError

__all__ = ["load_pickle", "ALLOWED_GLOBALS"]

_NUMPY_CORE = ("numpy.core", "numpy._core")
#: the only globals a data pickle may name: (module, name); each resolves to an inert stand-in
ALLOWED_GLOBALS = frozenset(
    {(f"{core}.multiarray", "_reconstruct") for core in _NUMPY_CORE}
    | {(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE}
    | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("__builtin__", "bytes"),
       ("builtins", "bytes")})
#: dtype kinds an array may have: bool, signed and unsigned integers, floats
_KINDS = "biuf"
_MAX_DEPTH = 32


class _Refused(Exception):
    """What the file holds is not plain data (the message says what)."""


class _Dtype:
    """Stands in for ``numpy.dtype(name, align, copy)``: records the name and, from its state, the byte order."""

    def __init__(self, name, align=False, copy=False, *rest):
        self.name = name.decode("latin1") if isinstance(name, bytes) else name
        self.order = "="
        if not isinstance(self.name, str):
            raise _Refused(f"a dtype named by a {type(self.name).__name__}")

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], (str, bytes)):
            raise _Refused("a dtype with an unexpected state")
        order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"a dtype with byte order {order!r}")
        if any(part is not None for part in state[2:5]):  # subarray, names, fields
            raise _Refused("a structured or subarray dtype")
        self.order = order


class _NdarrayName:
    """Stands in for ``numpy.ndarray`` as the class argument of ``_reconstruct``; never called."""


class _Array:
    """Stands in for an array being unpickled: records shape, dtype and raw bytes from its state."""

    def __init__(self, shape=(), dtype=None, raw=None, order="C"):
        self.shape, self.dtype, self.raw, self.order = shape, dtype, raw, order

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("an array with an unexpected state")
        shape, dtype, fortran, raw = state[-4:]
        self.shape, self.dtype, self.raw, self.order = shape, dtype, raw, "F" if fortran else "C"


def _reconstruct(cls, shape, typecode):
    if cls is not _NdarrayName:
        raise _Refused("an array of a class other than numpy.ndarray")
    return _Array()


def _frombuffer(buf, dtype, shape, order):
    return _Array(shape, dtype, buf, order)


def _latin1(text, encoding="utf-8", errors="strict"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with the codec {encoding!r}")
    return text.encode("latin1")


def _empty_bytes():
    return b""


_STAND_INS = {"_reconstruct": _reconstruct, "_frombuffer": _frombuffer, "ndarray": _NdarrayName, "dtype": _Dtype,
              "encode": _latin1, "bytes": _empty_bytes}


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`, each to its stand-in."""

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataFileError(f"{self.path}: refused to unpickle the global {module}.{name}; a data file may "
                                "hold only arrays, containers, strings and numbers (the file may have been "
                                "tampered with: get it again from its official source).")
        return _STAND_INS[name]


def _array(a: _Array):
    """The numpy array an :class:`_Array` records, rebuilt from its bytes (a copy)."""
    import numpy as np

    if not isinstance(a.dtype, _Dtype):
        raise _Refused("an array without a dtype")
    try:
        dtype = np.dtype(a.dtype.name)
    except TypeError:
        raise _Refused(f"an array of dtype {a.dtype.name!r}") from None
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"an array of dtype {a.dtype.name!r} (only booleans, integers and floats are read)")
    dtype = dtype.newbyteorder(a.dtype.order) if a.dtype.order in "<>" else dtype
    raw = a.raw.encode("latin1") if isinstance(a.raw, str) else a.raw
    shape = tuple(a.shape) if isinstance(a.shape, (tuple, list)) else None
    if not isinstance(raw, (bytes, bytearray)) or shape is None or not all(
            isinstance(s, int) and s >= 0 for s in shape):
        raise _Refused("an array whose shape or data is not plain")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise _Refused(f"an array of shape {shape} and dtype {dtype} holding {len(raw)} bytes")
    out = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order=a.order if a.order in "CF" else "C")
    return np.ascontiguousarray(out).astype(dtype.newbyteorder("="), copy=False)


def _plain(obj, depth: int = 0):
    """``obj`` with every recorded array rebuilt; anything but containers, bytes, str and numbers refused."""
    if depth > _MAX_DEPTH:
        raise _Refused(f"containers nested deeper than {_MAX_DEPTH}")
    if isinstance(obj, _Array):
        return _array(obj)
    if isinstance(obj, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, depth + 1) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, bytearray)):
        return obj
    raise _Refused(f"a {type(obj).__name__} object")


def load_pickle(path) -> object:
    """The plain data pickled in ``path``, rebuilt without calling anything the file names.

    Raises:
        DataFileError: the file names a global outside :data:`ALLOWED_GLOBALS` (refused before it is
            resolved), holds an array that is not a plain bool, int or float array, or is not a
            complete pickle (truncated, corrupted).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            obj = _plain(_DataUnpickler(fh, path).load())
    except DataFileError:
        raise
    except _Refused as err:
        raise DataFileError(f"{path}: refused: it holds {err}; a data file may hold only plain arrays, containers, "
                            "strings and numbers (get it again from its official source).") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RuntimeError, OverflowError, RecursionError, UnicodeError) as err:
        raise DataFileError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); the file is "
                            "truncated or corrupted: get it again from its official source.") from None
    if isinstance(obj, dict):
        obj = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj
