"""``cifar10`` and ``cifar100`` (Krizhevsky, Learning multiple layers of features from tiny images,
2009) read from their published "python version" files, without torchvision.

CIFAR-10: ``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` (training, in that order) and
``test_batch``, each a pickled dict with ``data`` (N x 3072 uint8: the 1024 red values, then the
1024 green, then the 1024 blue, each channel a 32 x 32 image in row-major order) and ``labels``
(N integers in [0, 10)); ``batches.meta`` with ``label_names``. CIFAR-100: ``cifar-100-python/train``
and ``test`` with ``data``, ``fine_labels`` (used: 100 classes) and ``coarse_labels``; ``meta`` with
``fine_label_names``. The published files were written by Python 2, so their keys are bytes; both
kinds are read. Every file goes through the restricted unpickler of :mod:`ufm.dnn.data.pickles`,
which calls nothing the file names: arrays are rebuilt from their bytes (bool, int, float only),
and any other global is refused.
"""
from __future__ import annotations

import numpy as np

from ufm._core.validation import DataFileError
from ufm.dnn.data.files import check_labels, find_files
from ufm.dnn.data.pickles import load_pickle
from ufm.dnn.data.registry import RawData, register

__all__ = ["cifar10", "cifar100", "read_cifar_batch"]

_PIXELS = 3 * 32 * 32


def read_cifar_batch(path, label_key: str, K: int) -> tuple:
    """One CIFAR file: images ``(N, 3, 32, 32)`` uint8 and labels int64 ``(N,)`` in ``[0, K)``.

    Raises:
        DataFileError: not a dict holding ``data`` and ``label_key``, data not N x 3072 uint8, a
            label count other than N, a label out of range, or a pickle naming a refused global.
    """
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise DataFileError(f"{path}: a CIFAR batch should be a pickled dict; got {type(batch).__name__}.")
    for key in ("data", label_key):
        if key not in batch:
            raise DataFileError(f"{path}: the batch has no {key!r} entry (its keys: "
                                f"{', '.join(map(repr, sorted(map(str, batch))))}).")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFileError(f"{path}: 'data' should be an N x {_PIXELS} uint8 array; got a {what}.")
    labels = check_labels(batch[label_key], K, path)
    if len(labels) != len(data):
        raise DataFileError(f"{path}: {len(labels)} labels for {len(data)} images.")
    # each row: 1024 red, 1024 green, 1024 blue values, each channel row-major 32 x 32 -> (C, H, W)
    return data.reshape(-1, 3, 32, 32), labels


def _label_names(path, key: str, K: int) -> list:
    meta = load_pickle(path)
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != K:
        count = len(names) if isinstance(names, (list, tuple)) else "no"
        raise DataFileError(f"{path}: {key!r} should list the {K} class names; found {count}.")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read(name: str, data_dir, folder: str, train_files, test_file: str, meta: tuple, label_key: str,
          K: int) -> RawData:
    files = find_files(name, data_dir, folder, [*train_files, test_file, meta[0]])
    _label_names(files[meta[0]], meta[1], K)
    parts = [read_cifar_batch(files[f], label_key, K) for f in train_files]
    x_test, y_test = read_cifar_batch(files[test_file], label_key, K)
    where = files[test_file].parent
    return RawData(np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), x_test, y_test, K,
                   (3, 32, 32), f"{name} python-version files in {where}", scale=1 / 255)


@register("cifar10")
def cifar10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-10 from ``cifar-10-batches-py``: 50,000 training images (the five batches in order) and
    10,000 test images, (3, 32, 32) scaled to [0, 1]."""
    return _read("cifar10", data_dir, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                 ("batches.meta", "label_names"), "labels", 10)


@register("cifar100")
def cifar100(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-100 (the 100 fine labels) from ``cifar-100-python``: 50,000 training and 10,000 test
    images, (3, 32, 32) scaled to [0, 1]."""
    return _read("cifar100", data_dir, "cifar-100-python", ["train"], "test", ("meta", "fine_label_names"),
                 "fine_labels", 100)
