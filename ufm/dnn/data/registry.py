"""The dataset registry: what a loader returns, the dataset it becomes, and where data lives.

A loader is a function registered under a name with :func:`register`; :func:`ufm.dnn.data.load_dataset`
validates its arguments, calls the loader and turns its :class:`RawData` into a :class:`Dataset`.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import torch

from ufm._core.validation import MissingPackageError

__all__ = ["Dataset", "RawData", "DatasetNotFoundError", "DATASETS", "register", "data_root", "missing_package"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looked.

    The message names every folder searched and how to get the data; ``searched``
    holds those folders.
    """

    def __init__(self, message: str, searched=()):
        super().__init__(message)
        self.searched = [str(p) for p in searched]


class RawData(NamedTuple):
    """What a loader returns, before subsampling, splitting and normalization.

    ``x_*`` are numpy arrays or tensors of shape ``(N, *input_shape)`` in any real
    or integer dtype; they are multiplied by ``scale`` when converted to float32
    (``1/255`` keeps 8-bit images as uint8 until then). ``y_*`` hold integer
    labels in ``[0, num_classes)``.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    num_classes: int
    input_shape: tuple
    source: str
    scale: float = 1.0


@dataclass
class Dataset:
    """A labelled dataset as normalized CPU tensors, split into train / val / test.

    Attributes:
        name: the registry name.
        num_classes: K.
        input_shape: the shape of one sample: ``(L,)`` for vectors, ``(C, H, W)``
            for images.
        x_train, x_val, x_test: float32 ``(N, *input_shape)``, standardized with the
            training part's statistics; ``x_val`` has 0 rows when ``val_fraction=0``.
        y_train, y_val, y_test: int64 ``(N,)`` in ``[0, K)``.
        source: where the data came from (the generator and its arguments, or the
            folder read).
        mean, std: the statistics used, shaped to broadcast against one sample:
            ``(L,)`` for vectors, ``(C, 1, 1)`` for images (float32); the raw input
            is ``x * std + mean``.
        config: the resolved arguments of :func:`~ufm.dnn.data.load_dataset` (defaults
            filled in), enough to load the same dataset again.
        uint8: for datasets of 8-bit pixels, ``{split: uint8 tensor (N, *input_shape)}``, the
            pixels each split's float inputs were computed from (empty otherwise), so that a
            training run can keep them on its device at a quarter of the memory and normalize
            each batch as it is used (:meth:`normalize`, which gives the float inputs exactly).
        scale: the factor of those pixels (1/255).
    """

    name: str
    num_classes: int
    input_shape: tuple
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    mean: Optional[torch.Tensor] = None
    std: Optional[torch.Tensor] = None
    config: dict = field(default_factory=dict)
    uint8: dict = field(default_factory=dict, repr=False)
    scale: float = 1.0

    def normalize(self, pixels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float inputs from 8-bit pixels ``(B, *input_shape)``: the functions :func:`load_dataset`
        normalizes with (``splits.scaled``, then ``splits.standardize_``), so the result equals the
        corresponding rows of ``x_*`` bit for bit; then cast to ``dtype``."""
        from ufm.dnn.data.splits import scaled, standardize_

        return standardize_(scaled(pixels, self.scale), self.mean, self.std).to(dtype)

    def describe(self) -> dict:
        """Name, K, input shape, split sizes, samples per class of each split (``class_counts``:
        ``{"train": [n_0, ..., n_{K-1}], "val": [...], "test": [...]}``, after subsampling and the
        validation split, so that a run's ``config.json`` says whether its training set is
        balanced), source and config, as plain JSON types."""
        splits = {"train": self.y_train, "val": self.y_val, "test": self.y_test}
        return {
            "name": self.name,
            "num_classes": int(self.num_classes),
            "input_shape": [int(s) for s in self.input_shape],
            "sizes": {k: len(y) for k, y in splits.items()},
            "class_counts": {k: [int(c) for c in torch.bincount(y, minlength=self.num_classes)]
                             for k, y in splits.items()},
            "source": self.source,
            "config": dict(self.config),
        }

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, num_classes={self.num_classes}, input_shape={self.input_shape}, "
                f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})")


#: name -> loader. A loader is called as ``loader(data_dir=..., seed=..., download=...,
#: **options)`` and returns :class:`RawData`; its keyword-only parameters other than
#: those three are its options, with their defaults, and ``loader.constraints`` maps
#: each option to its constraint. Use :func:`~ufm.dnn.data.load_dataset`, which validates.
DATASETS: dict = {}

#: the arguments every loader takes; its other keyword-only parameters are its options
_CONTEXT = ("data_dir", "seed", "download")


def register(name: str, **constraints) -> Callable:
    """Decorator: register a loader under ``name``; ``constraints`` holds one constraint per option."""
    def decorate(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters
        fn.options = {k: p.default for k, p in params.items()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY and k not in _CONTEXT}
        if set(fn.options) != set(constraints):  # a declaration error, raised when the module is imported
            raise TypeError(f"register({name!r}): the options {sorted(fn.options)} and the constraints "
                            f"{sorted(constraints)} of {fn.__qualname__} differ")
        fn.constraints = constraints
        DATASETS[name] = fn
        return fn
    return decorate


#: the cache folder, the last place searched for data and the default of downloads and caches
CACHE_DIR = "~/.cache/ufm"


def data_root(data_dir=None) -> Path:
    """The data/cache folder: ``data_dir`` if given, else ``$UFM_DATA`` if set, else ``~/.cache/ufm``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("UFM_DATA")
    if env:
        return Path(env).expanduser()
    return Path(CACHE_DIR).expanduser()


def missing_package(package: str, extra: str, name: str) -> MissingPackageError:
    """The error of a loader whose optional package is not installed (it names the extra)."""
    return MissingPackageError(
        f"The dataset {name!r} needs the package {package!r}, which is not installed: "
        f"pip install 'ufm[{extra}]' (or pip install {package}).")
