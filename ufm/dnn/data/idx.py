"""The IDX file format and the two datasets published in it: ``mnist`` (LeCun et al., 1998) and
``fashion-mnist`` (Xiao et al., Fashion-MNIST, 2017).

Both are four IDX files with the same names (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``), searched as every
dataset's files are (:mod:`ufm.dnn.data.files`: ``data_dir``, ``$UFM_DATA``, ``~/.cache/ufm``, each
with the subfolder ``mnist`` or ``fashion-mnist`` first); Fashion-MNIST also in
:data:`FASHION_MNIST_DIRS`. Because the names are the same, keep each dataset in its own subfolder.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ufm._core.validation import DataFileError
from ufm.dnn.data.files import check_labels, find_files
from ufm.dnn.data.registry import RawData, register

__all__ = ["read_idx", "mnist", "fashion_mnist", "FASHION_MNIST_DIRS"]

#: Folders searched for Fashion-MNIST after ``data_dir`` and ``$UFM_DATA``, read at each load
#: (tests monkeypatch this module's attribute). The Debian package ``dataset-fashion-mnist``
#: installs here.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)

_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_FASHION_HELP = (
    "run `ufm data download fashion-mnist`, or install the Debian package dataset-fashion-mnist "
    "(apt-get install dataset-fashion-mnist), or download the four IDX files from "
    "https://github.com/zalandoresearch/fashion-mnist into a folder and pass it as data_dir (or set UFM_DATA)"
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
        DataFileError: a bad header or a data size that does not match it (a ``ValueError``).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # a truncated or damaged .gz
        raise DataFileError(f"{path}: the compressed file is truncated or damaged ({err}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or len(raw) < 4 + 4 * raw[3]:
        raise DataFileError(f"{path} is not an IDX file: its header {raw[:4]!r} should be 00 00 <type> <ndim>.")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    offset = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataFileError(f"{path}: the IDX header announces shape {shape} ({expected} bytes of data) "
                         f"but the file holds {len(raw) - offset} bytes after it.")
    data = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _read_idx_dataset(name: str, data_dir, folder: str, extra=(), how=None) -> RawData:
    files = find_files(name, data_dir, folder, list(_IDX_FILES.values()), gz=True, extra=extra, how=how, bare=False)
    arrays = {key: read_idx(files[stem]) for key, stem in _IDX_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        where = files[_IDX_FILES[f"y_{split}"]]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise DataFileError(f"{files[_IDX_FILES[f'x_{split}']]}: expected uint8 images of 28 x 28; got "
                                f"{x.dtype} of shape {x.shape}.")
        arrays[f"y_{split}"] = check_labels(y, 10, where)
        if len(y) != len(x):
            raise DataFileError(f"{where}: {len(y)} labels for {len(x)} images.")
    return RawData(arrays["x_train"][:, None], arrays["y_train"], arrays["x_test"][:, None], arrays["y_test"],
                   10, (1, 28, 28), f"{name} IDX files in {files[_IDX_FILES['x_train']].parent}", scale=1 / 255)


@register("mnist")
def mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """MNIST from its four IDX files (plain or ``.gz``); images (1, 28, 28) scaled to [0, 1]."""
    return _read_idx_dataset("mnist", data_dir, "mnist")


@register("fashion-mnist")
def fashion_mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """Fashion-MNIST from its four IDX files (plain or ``.gz``), also searched in
    :data:`FASHION_MNIST_DIRS`; images (1, 28, 28) scaled to [0, 1]."""
    return _read_idx_dataset("fashion-mnist", data_dir, "fashion-mnist", FASHION_MNIST_DIRS, _FASHION_HELP)
