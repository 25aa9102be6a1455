"""``mnist``, ``cifar10``, ``cifar100``, ``stl10`` through ``torchvision`` (optional,
``pip install 'ufm[vision]'``), downloaded only with ``download=True``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ufm.dnn.data.registry import DatasetNotFoundError, RawData, data_root, missing_package, register

__all__ = ["mnist", "cifar10", "cifar100", "stl10"]


def _torchvision(name: str):
    try:
        import torchvision
    except ImportError:
        raise missing_package("torchvision", "vision", name) from None
    return torchvision


def _torchvision_dataset(name: str, make: Callable, root: Path, download: bool):
    """``make(split)`` for 'train' and 'test', turning a missing-files error into
    DatasetNotFoundError that says where it looked and how to get the files."""
    try:
        return make("train"), make("test")
    except RuntimeError as err:
        if download:
            raise
        raise DatasetNotFoundError(
            f"The dataset {name!r} was not found under {root} (torchvision said: {err}). Pass "
            "download=True (--download on the command line) to download it there, place its files "
            "there, or point data_dir (or UFM_DATA) at the folder that holds them.",
            [root]) from None


@register("mnist")
def mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """MNIST through ``torchvision.datasets.MNIST``; images (1, 28, 28) scaled to [0, 1]."""
    tv, root = _torchvision("mnist"), data_root(data_dir)
    tr, te = _torchvision_dataset(
        "mnist", lambda s: tv.datasets.MNIST(str(root), train=s == "train", download=download), root, download)
    return RawData(tr.data[:, None], tr.targets, te.data[:, None], te.targets, 10, (1, 28, 28),
                   f"torchvision.datasets.MNIST under {root}", scale=1 / 255)


def _cifar(name: str, cls_name: str, K: int, data_dir, download: bool) -> RawData:
    tv, root = _torchvision(name), data_root(data_dir)
    cls = getattr(tv.datasets, cls_name)
    tr, te = _torchvision_dataset(
        name, lambda s: cls(str(root), train=s == "train", download=download), root, download)
    # torchvision stores CIFAR as (N, H, W, C) uint8
    return RawData(np.ascontiguousarray(tr.data.transpose(0, 3, 1, 2)), np.asarray(tr.targets),
                   np.ascontiguousarray(te.data.transpose(0, 3, 1, 2)), np.asarray(te.targets), K,
                   (3, 32, 32), f"torchvision.datasets.{cls_name} under {root}", scale=1 / 255)


@register("cifar10")
def cifar10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``; images (3, 32, 32) scaled to [0, 1]."""
    return _cifar("cifar10", "CIFAR10", 10, data_dir, download)


@register("cifar100")
def cifar100(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-100 (fine labels) through ``torchvision.datasets.CIFAR100``; (3, 32, 32) in [0, 1]."""
    return _cifar("cifar100", "CIFAR100", 100, data_dir, download)


@register("stl10")
def stl10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """STL-10's labelled train (5000) and test (8000) splits through ``torchvision.datasets.STL10``;
    images (3, 96, 96) scaled to [0, 1]. The unlabelled split is not used."""
    tv, root = _torchvision("stl10"), data_root(data_dir)
    tr, te = _torchvision_dataset(
        "stl10", lambda s: tv.datasets.STL10(str(root), split=s, download=download), root, download)
    return RawData(tr.data, tr.labels, te.data, te.labels, 10, (3, 96, 96),
                   f"torchvision.datasets.STL10 under {root}", scale=1 / 255)
