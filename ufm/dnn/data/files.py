"""Where a dataset's files are looked for, and the checks every reader of a published format shares.

A dataset stored as files is searched in the bases ``data_dir`` (when given), ``$UFM_DATA`` (when
set) and the cache folder ``~/.cache/ufm``, in that order, each first with the dataset's own folder
name (``cifar-10-batches-py``, the folder its archive extracts to) and then as it is; then in any
system folders the reader adds (the Debian package of Fashion-MNIST). The first folder holding any
of the dataset's files is the one read (a base folder counts only if it holds them all): if the
dataset's own folder lacks some, that is an error naming them (a partial copy is never mixed with
another), and if no folder holds them, :class:`DatasetNotFoundError` lists every folder searched and
the command that gets the data (``ufm data download NAME``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ufm._core.validation import DataFileError
from ufm.dnn.data.registry import CACHE_DIR, DatasetNotFoundError, data_root

__all__ = ["search_dirs", "find_files", "check_labels", "read_uint8", "read_text"]


def search_dirs(data_dir, folder: str, extra: Iterable = ()) -> List[Path]:
    """The folders searched for a dataset whose own folder is named ``folder``, in order, without repeats."""
    bases = [Path(b).expanduser() for b in (data_dir, os.environ.get("UFM_DATA") or None) if b is not None]
    bases.append(Path(CACHE_DIR).expanduser())
    out: List[Path] = []
    for p in [q for b in bases for q in (b / folder, b)] + [Path(e) for e in extra]:
        if p not in out:
            out.append(p)
    return out


def find_files(name: str, data_dir, folder: str, files: Sequence[str], *, gz: bool = False,
               extra: Iterable = (), how: Optional[str] = None, bare: bool = True) -> Dict[str, Path]:
    """The paths of ``files`` in the first searched folder that holds them (each also as ``NAME.gz``
    when ``gz``).

    A folder named ``folder`` (or one of ``extra``) that holds some of the files but not all is an
    incomplete copy: an error. A base folder of another name counts only when it holds all of them
    (a stray file of the same name is not a dataset); with ``bare=False`` (MNIST and Fashion-MNIST,
    whose files have the same names) a base holding them all is an error too, since nothing says
    which dataset they are.

    Raises:
        DatasetNotFoundError: no searched folder holds the files (the message lists the folders and
            how to get the data: ``how``, or ``ufm data download NAME``).
        DataFileError: an incomplete copy (the missing files named), or files of ambiguous identity.
    """
    extra = [Path(e) for e in extra]
    searched = search_dirs(data_dir, folder, extra)
    for where in searched:
        found = {f: _present(where, f, gz) for f in files}
        own = where.name == folder or where in extra
        if own and any(found.values()):
            missing = [f for f, p in found.items() if p is None]
            if missing:
                raise DataFileError(f"{where} holds part of {name} but not {', '.join(missing)}: the copy is "
                                    f"incomplete; remove {where}, then run `ufm data download {name}`.")
            return found
        if not own and all(found.values()):
            if not bare:
                raise DataFileError(f"{where} holds the files {', '.join(files)} directly, but MNIST and "
                                    f"Fashion-MNIST files have the same names: move them into {where / folder}.")
            return found
    how = how or (f"run `ufm data download {name}` (it fetches the official archive, checks its published "
                  f"checksum and extracts it into {data_root(data_dir)}), or place the folder {folder} in one "
                  "of these folders, or pass the folder holding it as data_dir (--data-dir) or UFM_DATA")
    raise DatasetNotFoundError(
        f"The dataset {name!r} was not found: none of these folders holds {', '.join(files)}"
        f"{' (each optionally .gz)' if gz else ''}: {', '.join(str(p) for p in searched)}. To get it, {how}.",
        searched)


def _present(folder: Path, file: str, gz: bool) -> Optional[Path]:
    for candidate in (file, file + ".gz") if gz else (file,):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def check_labels(y, K: int, path, first: int = 0) -> np.ndarray:
    """Labels ``y`` as int64 ``(N,)`` shifted to start at 0, each checked to lie in
    ``[first, first + K)``; a label outside is an error naming ``path``."""
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataFileError(f"{path}: the labels should be a list of integers; got an array of dtype {y.dtype} "
                            f"and shape {y.shape}.")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < first) | (y >= first + K))
    if len(bad):
        raise DataFileError(f"{path}: label {int(y[bad[0]])} (at position {int(bad[0])}) is outside "
                            f"[{first}, {first + K - 1}].")
    return y - first


def read_uint8(path, record: int) -> np.ndarray:
    """The bytes of ``path`` as uint8 records of ``record`` bytes each, ``(N, record)``; a size that
    is not a whole number of records is an error naming the file."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size % record:
        raise DataFileError(f"{path}: {data.size} bytes is not a whole number of {record}-byte records; the file "
                            "is truncated or corrupted.")
    return data.reshape(-1, record)


def read_text(path) -> str:
    """A text file of a dataset (class names, annotations); one that is not UTF-8 text is an error naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not a text file ({err.reason} at byte {err.start}); the file is corrupted.") from None
