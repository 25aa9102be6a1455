"""The IDX file format (MNIST's) and ``fashion-mnist`` (Xiao et al., Fashion-MNIST, 2017) read from it.

The four IDX files are searched in ``data_dir``, ``$UFM_DATA`` (each also with a
``fashion-mnist`` subfolder), then :data:`FASHION_MNIST_DIRS`.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ufm.dnn.data.registry import DatasetNotFoundError, RawData, register

__all__ = ["read_idx", "fashion_mnist", "FASHION_MNIST_DIRS"]

#: Folders searched for Fashion-MNIST after ``data_dir`` and ``$UFM_DATA``, read at each load
#: (tests monkeypatch this module's attribute). The Debian package ``dataset-fashion-mnist``
#: installs here.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)

_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_FASHION_HELP = (
    "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "or download the four IDX files from https://github.com/zalandoresearch/fashion-mnist into a "
    "folder and pass it as data_dir (or set UFM_DATA)"
)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed (by its ``.gz`` suffix).

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each
    dimension as a big-endian uint32; the data follow, big-endian, in C order.

    Returns:
        An array of that shape, in native byte order.

    Raises:
        ValueError: a bad header or a data size that does not match it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: its header {raw[:4]!r} should be 00 00 <type> <ndim>.")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    offset = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: the IDX header announces shape {shape} ({expected} bytes of data) "
                         f"but the file holds {len(raw) - offset} bytes after it.")
    data = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


@register("fashion-mnist")
def fashion_mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """Fashion-MNIST from the four IDX files (plain or ``.gz``), found in the first folder of
    :func:`_fashion_mnist_dirs` that holds all four; images (1, 28, 28) scaled to [0, 1]."""
    searched = _fashion_mnist_dirs(data_dir)
    for folder in searched:
        files = {k: _find_idx(folder, stem) for k, stem in _FASHION_FILES.items()}
        if all(files.values()):
            arrays = {k: read_idx(p) for k, p in files.items()}
            return RawData(arrays["x_train"][:, None], arrays["y_train"], arrays["x_test"][:, None],
                           arrays["y_test"], 10, (1, 28, 28), f"fashion-mnist IDX files in {folder}",
                           scale=1 / 255)
    raise DatasetNotFoundError(
        "Fashion-MNIST was not found: none of these folders holds the four IDX files "
        f"({', '.join(_FASHION_FILES.values())}, each optionally .gz): "
        f"{', '.join(str(p) for p in searched) or '(none)'}. To get it, {_FASHION_HELP}.", searched)


def _fashion_mnist_dirs(data_dir=None) -> list:
    dirs = []
    for base in (data_dir, os.environ.get("UFM_DATA") or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs += [base, base / "fashion-mnist"]
    return dirs + [Path(p) for p in FASHION_MNIST_DIRS]


def _find_idx(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None
