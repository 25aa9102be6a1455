"""The entry point :func:`load_dataset`: validate, call the named loader, then subsample,
split and standardize (the steps of :mod:`ufm.dnn.data.splits`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ufm._core.validation import Boolean, Interval, InvalidParameterError, Options, OrNone, PathLike, check_param
from ufm.dnn.data.registry import DATASETS, Dataset, DatasetNotFoundError
from ufm.dnn.data.splits import as_float, per_class, rng, standardize_, statistics, stratified_split

__all__ = ["load_dataset"]


def load_dataset(name: str, *, data_dir=None, val_fraction: float = 0.1, seed: int = 0,
                 train_per_class: Optional[int] = None, test_per_class: Optional[int] = None,
                 download: bool = False, **options) -> Dataset:
    """Load a dataset of :data:`DATASETS` by name: subsampled, split and standardized.

    Args:
        name: one of ``DATASETS``: ``'gaussian'``, ``'mnist1d'``, ``'digits'``,
            ``'fashion-mnist'``, ``'mnist'``, ``'cifar10'``, ``'cifar100'``,
            ``'stl10'``, ``'tinyimagenet'``.
        data_dir: the first folder searched for a dataset's files (then ``$UFM_DATA``, then
            ``~/.cache/ufm``: :mod:`ufm.dnn.data.files`), and the folder of caches and downloads
            (default ``$UFM_DATA``, else ``~/.cache/ufm``: :func:`~ufm.dnn.data.data_root`).
        val_fraction: in [0, 1); ``round(val_fraction * n_k)`` training samples of
            each class k form the validation split.
        seed: int >= 0; drives subsampling, the validation split and synthetic data.
        train_per_class: keep n random training samples of each class (before the
            validation split is carved out of them); None keeps all.
        test_per_class: keep n random test samples of each class; None keeps all.
        download: when the files are not found, download the dataset's official archive
            into ``data_root(data_dir)``, checked against its published checksum
            (:func:`~ufm.dnn.data.download.download_dataset`: ``mnist``, ``fashion-mnist``,
            ``cifar10``, ``cifar100``, ``stl10``, ``tinyimagenet``); otherwise nothing is
            downloaded.
        **options: the loader's options, defaults in brackets:
            ``gaussian``: ``num_classes`` [10], ``dim`` [32], ``train_size_per_class``
            [200], ``test_size_per_class`` [200], ``separation`` [3.0], ``noise`` [1.0];
            ``mnist1d``: ``num_samples`` [5000];
            ``digits``: ``test_fraction`` [0.2], ``split_seed`` [0];
            the others take none.

    Returns:
        A :class:`Dataset`; inputs float32 standardized with training statistics,
        labels int64.

    Raises:
        InvalidParameterError: an unknown name or option (listing the valid ones), an
            argument out of range, or a per-class count larger than a class holds.
        DatasetNotFoundError: the files are not there (the message says where it
            looked and how to get them).
        DataFileError: a file is truncated, corrupted or unsafe (the message names it).
        ImportError: an optional package is missing (the message names the extra).

    Example::

        >>> ds = load_dataset("gaussian", num_classes=4, dim=8, val_fraction=0.25, seed=1)
        >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape
        (torch.Size([600, 8]), torch.Size([200, 8]), torch.Size([800, 8]))
    """
    loader = _check_arguments(name, data_dir, val_fraction, seed, train_per_class, test_per_class, download, options)
    raw = _read(loader, name, data_dir, int(seed), download, options)
    K = int(raw.num_classes)
    y_train = _labels(raw.y_train, K, name)  # (N_train,)
    y_test = _labels(raw.y_test, K, name)  # (N_test,)
    idx_train, idx_test = _subsample(y_train, y_test, K, seed, train_per_class, test_per_class, name, options)
    i_fit, i_val = _validation_split(y_train, idx_train, K, val_fraction, seed, name)

    x_train = as_float(raw.x_train, i_fit, raw.scale)  # (N_fit, *input_shape)
    x_val = as_float(raw.x_train, i_val, raw.scale)  # (N_val, *input_shape)
    x_test = as_float(raw.x_test, idx_test, raw.scale)  # (N_test, *input_shape)
    shape = tuple(int(s) for s in raw.input_shape)
    mean, std = statistics(x_train, shape)  # (L,) or (C, 1, 1) each
    for x in (x_train, x_val, x_test):
        standardize_(x, mean, std)

    config = {"name": name, "data_dir": None if data_dir is None else str(data_dir),
              "val_fraction": float(val_fraction), "seed": int(seed), "train_per_class": train_per_class,
              "test_per_class": test_per_class, **loader.options, **options}
    pixels = {}
    if _is_uint8(raw.x_train) and _is_uint8(raw.x_test):  # 8-bit images: keep the pixels too
        pixels = {"train": _rows(raw.x_train, i_fit), "val": _rows(raw.x_train, i_val),
                  "test": _rows(raw.x_test, idx_test)}
    return Dataset(
        name=name, num_classes=K, input_shape=shape,
        x_train=x_train, y_train=torch.from_numpy(y_train[i_fit]),
        x_val=x_val, y_val=torch.from_numpy(y_train[i_val]),
        x_test=x_test, y_test=torch.from_numpy(y_test[idx_test]),
        source=raw.source, mean=mean.float(), std=std.float(), config=config, uint8=pixels, scale=float(raw.scale))


def _is_uint8(x) -> bool:
    return (x.dtype == torch.uint8) if isinstance(x, torch.Tensor) else np.asarray(x).dtype == np.uint8


def _rows(x, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of x as a (contiguous, copied) tensor."""
    return x[torch.from_numpy(idx)].clone() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)[idx])


def _read(loader, name: str, data_dir, seed: int, download: bool, options: dict):
    """The loader's raw data; with ``download``, a dataset that is not found is downloaded first."""
    try:
        return loader(data_dir=data_dir, seed=seed, download=download, **options)
    except DatasetNotFoundError:
        from ufm.dnn.data.download import SOURCES, download_dataset

        if not download or name not in SOURCES:
            raise
    download_dataset(name, data_dir)
    return loader(data_dir=data_dir, seed=seed, download=download, **options)


def _check_arguments(name, data_dir, val_fraction, seed, train_per_class, test_per_class, download, options):
    """Check every argument of :func:`load_dataset`; returns the loader of ``name``."""
    caller = "load_dataset"
    check_param("name", name, Options(tuple(DATASETS)), caller)
    check_param("data_dir", data_dir, OrNone(PathLike()), caller)
    check_param("val_fraction", val_fraction, Interval("float", 0, 1, "left"), caller)
    check_param("seed", seed, Interval("int", 0, None, "left"), caller)
    for key, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if value is not None:
            check_param(key, value, Interval("int", 1, None, "left"), caller)
    check_param("download", download, Boolean(), caller)
    loader = DATASETS[name]
    for key, value in options.items():
        if key not in loader.options:
            valid = ", ".join(repr(k) for k in sorted(loader.options)) or "none"
            raise InvalidParameterError(
                f"Unknown option {key!r} of load_dataset for dataset {name!r}; valid options: {valid}.",
                param=key, value=value, expected=f"one of {valid}")
        check_param(key, value, loader.constraints[key], caller)
    return loader


def _labels(y, K: int, name: str) -> np.ndarray:
    y = np.ascontiguousarray(y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
    if y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= K)):
        raise ValueError(f"The loader of {name!r} returned labels outside [0, {K}) or not of shape (N,).")
    return y


def _subsample(y_train, y_test, K, seed, train_per_class, test_per_class, name, options):
    """Indices of the training and test samples kept by balanced subsampling (all without it);
    every class must keep a training sample."""
    idx_train = np.arange(len(y_train))
    if train_per_class is not None:
        idx_train = per_class(y_train, K, train_per_class, rng(seed, "subsample_train"),
                              "train_per_class", "training", name)
    idx_test = np.arange(len(y_test))
    if test_per_class is not None:
        idx_test = per_class(y_test, K, test_per_class, rng(seed, "subsample_test"),
                             "test_per_class", "test", name)
    absent = np.flatnonzero(np.bincount(y_train[idx_train], minlength=K) == 0)
    if len(absent):
        raise InvalidParameterError(
            f"The training set of {name!r} holds no sample of class {int(absent[0])} with these options "
            f"({options or 'defaults'}); every class needs at least one.",
            param="options", value=options, expected="options giving every class a training sample")
    return idx_train, idx_test


def _validation_split(y_train, idx_train, K, val_fraction, seed, name):
    """Indices (into the loader's training set) of the fitted part and of the validation split
    carved from the kept training samples ``idx_train``; every class must keep a fitted sample."""
    fit, val = stratified_split(y_train[idx_train], K, val_fraction, rng(seed, "validation"))
    fit_empty = [k for k in range(K) if not np.any(y_train[idx_train[fit]] == k)]
    if fit_empty:
        raise InvalidParameterError(
            f"The 'val_fraction' parameter of load_dataset must leave at least one training sample "
            f"of each class; {val_fraction!r} leaves none of class {fit_empty[0]} of {name!r}. "
            "Use a smaller val_fraction or a larger train_per_class.",
            param="val_fraction", value=val_fraction, expected="a fraction leaving every class a sample")
    return idx_train[fit], idx_train[val]
