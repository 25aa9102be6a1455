"""Datasets for the deep-network experiments: a registry of loaders behind one entry point.

:func:`load_dataset` validates its arguments, calls the named loader of
:data:`DATASETS`, then applies the same three steps to every dataset:

1. balanced subsampling (``train_per_class`` / ``test_per_class``): a seeded
   random subset of n samples of each class, kept in the original order;
2. a stratified validation split carved from the (subsampled) training set:
   ``round(val_fraction * n_k)`` samples of each class k go to validation,
   chosen at random from ``seed``;
3. standardization with statistics of the training part only (after the split):
   per-feature mean and std for vectors ``(L,)``, per-channel for images
   ``(C, H, W)``; the population std (divisor N), computed in float64. A feature
   or channel whose training std is below ``1e-6`` is only centred (scale 1),
   as in scikit-learn's ``StandardScaler``, so that no division by ~0 occurs.

Results are CPU tensors: inputs float32, labels int64 in ``[0, K)``. The same
arguments give bit-identical tensors. Each random step draws from its own stream
``numpy.random.default_rng([seed, stream])``, so e.g. changing ``val_fraction``
does not change which samples subsampling keeps.

Loaders and where their data comes from:

* ``gaussian``: a synthetic K-class Gaussian mixture drawn from ``seed``;
* ``mnist1d``: MNIST-1D (Greydanus, Scaling down deep learning, 2020), generated
  offline by the ``mnist1d`` package and cached as ``.npz``;
* ``digits``: scikit-learn's bundled 8x8 digits, split into train/test;
* ``fashion-mnist``: the four IDX files (Xiao et al., Fashion-MNIST, 2017), read
  from ``data_dir``, ``$UFM_DATA`` or the Debian package ``dataset-fashion-mnist``;
* ``mnist``, ``cifar10``, ``cifar100``, ``stl10``: through ``torchvision``
  (optional, ``pip install 'ufm[vision]'``), downloaded only with ``download=True``;
* ``tinyimagenet``: the ``tiny-imagenet-200`` image folder, read with Pillow.

The cache/data folder is ``data_dir`` if given, else ``$UFM_DATA`` if set, else
``~/.cache/ufm`` (:func:`data_root`). Optional packages (mnist1d, scikit-learn,
torchvision, Pillow) are imported only by the loader that needs them.
"""
from __future__ import annotations

import gzip
import inspect
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch

from .._io import atomic_write
from .._validation import Boolean, Interval, InvalidParameterError, Options, UFMWarning, check_param

__all__ = [
    "Dataset",
    "RawData",
    "DatasetNotFoundError",
    "DATASETS",
    "FASHION_MNIST_DIRS",
    "load_dataset",
    "data_root",
    "read_idx",
]

#: Folders searched for Fashion-MNIST after ``data_dir`` and ``$UFM_DATA`` (tests
#: monkeypatch this). The Debian package ``dataset-fashion-mnist`` installs here.
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
    "folder and pass --data-dir (or set UFM_DATA)"
)
_TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

#: one independent random stream per purpose: rng = default_rng([seed, stream])
_STREAMS = {"generate": 0, "subsample_train": 1, "subsample_test": 2, "validation": 3}
_STD_FLOOR = 1e-6
_CHUNK = 4096  # samples per chunk when computing statistics in float64


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
        config: the resolved arguments of :func:`load_dataset` (defaults filled
            in), enough to load the same dataset again.
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

    def describe(self) -> dict:
        """Name, K, input shape, split sizes, source and config, as plain JSON types."""
        return {
            "name": self.name,
            "num_classes": int(self.num_classes),
            "input_shape": [int(s) for s in self.input_shape],
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "source": self.source,
            "config": dict(self.config),
        }

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, num_classes={self.num_classes}, input_shape={self.input_shape}, "
                f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})")


# ---------------------------------------------------------------------------------------------
# constraints and the registry

class _PathOrNone:
    def describe(self) -> str:
        return "a path (str or os.PathLike) or None"

    def contains(self, value: Any) -> bool:
        return value is None or isinstance(value, (str, os.PathLike))


#: name -> loader. A loader is called as ``loader(data_dir=..., seed=..., download=...,
#: **options)`` and returns :class:`RawData`; its keyword-only parameters other than
#: those three are its options, with their defaults, and ``loader.constraints`` maps
#: each option to its constraint. Use :func:`load_dataset`, which validates.
DATASETS: dict = {}

_CONTEXT = ("data_dir", "seed", "download")


def _register(name: str, **constraints) -> Callable:
    def decorate(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters
        fn.options = {k: p.default for k, p in params.items()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY and k not in _CONTEXT}
        assert set(fn.options) == set(constraints), name  # a declaration error, not a user error
        fn.constraints = constraints
        DATASETS[name] = fn
        return fn
    return decorate


def data_root(data_dir=None) -> Path:
    """The data/cache folder: ``data_dir`` if given, else ``$UFM_DATA`` if set, else ``~/.cache/ufm``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("UFM_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/ufm").expanduser()


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[stream]])


def _missing(package: str, extra: str, name: str) -> ImportError:
    return ImportError(
        f"The dataset {name!r} needs the package {package!r}, which is not installed: "
        f"pip install 'ufm[{extra}]' (or pip install {package}).")


# ---------------------------------------------------------------------------------------------
# the entry point

def load_dataset(name: str, *, data_dir=None, val_fraction: float = 0.1, seed: int = 0,
                 train_per_class: Optional[int] = None, test_per_class: Optional[int] = None,
                 download: bool = False, **options) -> Dataset:
    """Load a dataset of :data:`DATASETS` by name: subsampled, split and standardized.

    Args:
        name: one of ``DATASETS``: ``'gaussian'``, ``'mnist1d'``, ``'digits'``,
            ``'fashion-mnist'``, ``'mnist'``, ``'cifar10'``, ``'cifar100'``,
            ``'stl10'``, ``'tinyimagenet'``.
        data_dir: where to look for (and cache) data; default ``$UFM_DATA`` or
            ``~/.cache/ufm`` (see :func:`data_root`).
        val_fraction: in [0, 1); ``round(val_fraction * n_k)`` training samples of
            each class k form the validation split.
        seed: int >= 0; drives subsampling, the validation split and synthetic data.
        train_per_class: keep n random training samples of each class (before the
            validation split is carved out of them); None keeps all.
        test_per_class: keep n random test samples of each class; None keeps all.
        download: let torchvision download missing files (``mnist``, ``cifar10``,
            ``cifar100``, ``stl10``); otherwise nothing is downloaded.
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
        ImportError: an optional package is missing (the message names the extra).

    Example::

        >>> ds = load_dataset("gaussian", num_classes=4, dim=8, val_fraction=0.25, seed=1)
        >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape
        (torch.Size([600, 8]), torch.Size([200, 8]), torch.Size([800, 8]))
    """
    caller = "load_dataset"
    check_param("name", name, Options(tuple(DATASETS)), caller)
    check_param("data_dir", data_dir, _PathOrNone(), caller)
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

    raw = loader(data_dir=data_dir, seed=int(seed), download=download, **options)
    K = int(raw.num_classes)
    y_train = _labels(raw.y_train, K, name)  # (N_train,)
    y_test = _labels(raw.y_test, K, name)  # (N_test,)

    idx_train = np.arange(len(y_train))
    if train_per_class is not None:
        idx_train = _per_class(y_train, K, train_per_class, _rng(seed, "subsample_train"),
                               "train_per_class", "training", name)
    idx_test = np.arange(len(y_test))
    if test_per_class is not None:
        idx_test = _per_class(y_test, K, test_per_class, _rng(seed, "subsample_test"),
                              "test_per_class", "test", name)
    absent = np.flatnonzero(np.bincount(y_train[idx_train], minlength=K) == 0)
    if len(absent):
        raise InvalidParameterError(
            f"The training set of {name!r} holds no sample of class {int(absent[0])} with these options "
            f"({options or 'defaults'}); every class needs at least one.",
            param="options", value=options, expected="options giving every class a training sample")
    fit, val = _stratified_split(y_train[idx_train], K, val_fraction, _rng(seed, "validation"))
    fit_empty = [k for k in range(K) if not np.any(y_train[idx_train[fit]] == k)]
    if fit_empty:
        raise InvalidParameterError(
            f"The 'val_fraction' parameter of load_dataset must leave at least one training sample "
            f"of each class; {val_fraction!r} leaves none of class {fit_empty[0]} of {name!r}. "
            "Use a smaller val_fraction or a larger train_per_class.",
            param="val_fraction", value=val_fraction, expected="a fraction leaving every class a sample")
    i_fit, i_val = idx_train[fit], idx_train[val]

    x_train = _as_float(raw.x_train, i_fit, raw.scale)  # (N_fit, *input_shape)
    x_val = _as_float(raw.x_train, i_val, raw.scale)  # (N_val, *input_shape)
    x_test = _as_float(raw.x_test, idx_test, raw.scale)  # (N_test, *input_shape)
    shape = tuple(int(s) for s in raw.input_shape)
    mean, std = _statistics(x_train, shape)
    for x in (x_train, x_val, x_test):
        x.sub_(mean).div_(std)

    config = {"name": name, "data_dir": None if data_dir is None else str(data_dir),
              "val_fraction": float(val_fraction), "seed": int(seed), "train_per_class": train_per_class,
              "test_per_class": test_per_class, **loader.options, **options}
    return Dataset(
        name=name, num_classes=K, input_shape=shape,
        x_train=x_train, y_train=torch.from_numpy(y_train[i_fit]),
        x_val=x_val, y_val=torch.from_numpy(y_train[i_val]),
        x_test=x_test, y_test=torch.from_numpy(y_test[idx_test]),
        source=raw.source, mean=mean.float(), std=std.float(), config=config)


def _labels(y, K: int, name: str) -> np.ndarray:
    y = np.ascontiguousarray(y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
    if y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= K)):
        raise ValueError(f"The loader of {name!r} returned labels outside [0, {K}) or not of shape (N,).")
    return y


def _per_class(y: np.ndarray, K: int, n: int, rng: np.random.Generator, param: str, split: str,
               name: str) -> np.ndarray:
    """Indices of n random samples of each class (a random permutation of each class, cut
    at n), in increasing order. Raises naming ``param`` if a class has fewer than n."""
    counts = np.bincount(y, minlength=K)  # (K,)
    if counts.min() < n:
        k = int(counts.argmin())
        raise InvalidParameterError(
            f"The {param!r} parameter of load_dataset must be an int in the range [1, {int(counts.min())}] "
            f"for {name!r}, whose class {k} has {int(counts.min())} {split} samples. Got {n!r} instead.",
            param=param, value=n, expected=f"an int in the range [1, {int(counts.min())}]")
    keep = [np.flatnonzero(y == k)[rng.permutation(int(counts[k]))[:n]] for k in range(K)]
    return np.sort(np.concatenate(keep))


def _stratified_split(y: np.ndarray, K: int, fraction: float, rng: np.random.Generator):
    """Positions (into ``y``) of the kept and the held-out parts: of each class k with n_k
    samples, ``round(fraction * n_k)`` random ones are held out. Both sorted."""
    held = []
    for k in range(K):
        members = np.flatnonzero(y == k)
        n_out = int(round(fraction * len(members)))
        held.append(members[rng.permutation(len(members))[:n_out]])
    held = np.sort(np.concatenate(held)).astype(np.int64)
    kept = np.setdiff1d(np.arange(len(y)), held, assume_unique=True).astype(np.int64)
    return kept, held


def _as_float(x, idx: np.ndarray, scale: float) -> torch.Tensor:
    """Rows ``idx`` of x as a float32 tensor, times ``scale``. Indexing copies, so the
    result never aliases the loader's arrays and may be modified in place."""
    rows = x[torch.from_numpy(idx)] if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)[idx])
    out = rows.to(torch.float32)
    if scale != 1.0:
        out.mul_(scale)
    return out


def _statistics(x: torch.Tensor, shape: tuple):
    """Mean and population std of x ``(N, *shape)`` per feature (vectors) or per channel
    (images), in float64, shaped ``(L,)`` or ``(C, 1, 1)``; stds below the floor become 1."""
    image = len(shape) > 1
    dims = (0, 2, 3) if image else (0,)
    count = x.numel() // shape[0]  # N for vectors, N H W for images
    mean = sum(c.double().sum(dims) for c in x.split(_CHUNK)) / count  # (L,) or (C,)
    if image:
        mean = mean[:, None, None]  # (C, 1, 1)
    var = sum(((c.double() - mean) ** 2).sum(dims) for c in x.split(_CHUNK)) / count  # (L,) or (C,)
    std = var.sqrt()[:, None, None] if image else var.sqrt()
    std = torch.where(std > _STD_FLOOR, std, torch.ones_like(std))
    return mean.float(), std.float()


# ---------------------------------------------------------------------------------------------
# loaders

@_register("gaussian",
           num_classes=Interval("int", 2, None, "left"), dim=Interval("int", 1, None, "left"),
           train_size_per_class=Interval("int", 1, None, "left"),
           test_size_per_class=Interval("int", 1, None, "left"),
           separation=Interval("float", 0, None, "left"), noise=Interval("float", 0, None, "neither"))
def _gaussian(*, data_dir=None, seed: int = 0, download: bool = False, num_classes: int = 10, dim: int = 32,
              train_size_per_class: int = 200, test_size_per_class: int = 200, separation: float = 3.0,
              noise: float = 1.0) -> RawData:
    """K Gaussian classes N(mu_k, noise^2 I) in R^dim, mu_k = separation * u_k with u_k
    independent uniform random unit vectors; train and test drawn from the same mixture,
    balanced by construction, in random order. Everything is drawn from ``seed``."""
    K, n_tr, n_te = num_classes, train_size_per_class, test_size_per_class
    rng = _rng(seed, "generate")
    u = rng.standard_normal((K, dim))  # (K, dim)
    mu = separation * u / np.linalg.norm(u, axis=1, keepdims=True)  # (K, dim)

    def draw(n):
        y = rng.permutation(np.repeat(np.arange(K), n))  # (K n,)
        x = mu[y] + noise * rng.standard_normal((K * n, dim))  # (K n, dim)
        return x, y

    x_train, y_train = draw(n_tr)
    x_test, y_test = draw(n_te)
    source = (f"gaussian mixture: num_classes={K}, dim={dim}, train_size_per_class={n_tr}, "
              f"test_size_per_class={n_te}, separation={separation}, noise={noise}, seed={seed}")
    return RawData(x_train, y_train, x_test, y_test, K, (dim,), source)


@_register("mnist1d", num_samples=Interval("int", 100, None, "left"))
def _mnist1d(*, data_dir=None, seed: int = 0, download: bool = False, num_samples: int = 5000) -> RawData:
    """MNIST-1D generated offline by ``mnist1d.data.make_dataset`` with its default arguments
    (generator seed 42, 80/20 train/test, length 40; the standard dataset at num_samples=5000),
    cached in ``data_root(data_dir)/mnist1d-<num_samples>-42.npz``. ``seed`` does not
    change the data (only the later steps). mnist1d's downloading ``get_dataset`` is never used."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise _missing("mnist1d", "data", "mnist1d") from None
    args = get_dataset_args()
    args.num_samples = int(num_samples)
    path = data_root(data_dir) / f"mnist1d-{args.num_samples}-{args.seed}.npz"
    arrays = _read_npz(path, ("x", "y", "x_test", "y_test"))
    if arrays is None:
        np_state, py_state = np.random.get_state(), random.getstate()
        try:  # make_dataset seeds numpy's and Python's global generators: restore them
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
        _save_cache(path, arrays)
    source = f"mnist1d.data.make_dataset(num_samples={args.num_samples}, seed={args.seed}), cached at {path}"
    return RawData(arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], 10,
                   (int(args.final_seq_length),), source)


@_register("digits", test_fraction=Interval("float", 0, 1, "neither"),
           split_seed=Interval("int", 0, None, "left"))
def _digits(*, data_dir=None, seed: int = 0, download: bool = False, test_fraction: float = 0.2,
            split_seed: int = 0) -> RawData:
    """scikit-learn's bundled 8x8 digits (1797 samples, 10 classes, values 0..16) as images
    (1, 8, 8), split stratified: ``round(test_fraction * n_k)`` of each class k go to test,
    chosen from ``split_seed`` (not ``seed``, so that the test set stays fixed across seeds)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise _missing("scikit-learn", "data", "digits") from None
    bunch = load_digits()
    x = bunch.data.reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)  # (1797,)
    train, test = _stratified_split(y, 10, test_fraction, _rng(split_seed, "generate"))
    source = f"sklearn.datasets.load_digits, stratified test_fraction={test_fraction}, split_seed={split_seed}"
    return RawData(x[train], y[train], x[test], y[test], 10, (1, 8, 8), source)


@_register("fashion-mnist")
def _fashion_mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
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


def _torchvision(name: str):
    try:
        import torchvision
    except ImportError:
        raise _missing("torchvision", "vision", name) from None
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
            "there, or point data_dir (--data-dir, or UFM_DATA) at the folder that holds them.",
            [root]) from None


@_register("mnist")
def _mnist(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
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


@_register("cifar10")
def _cifar10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``; images (3, 32, 32) scaled to [0, 1]."""
    return _cifar("cifar10", "CIFAR10", 10, data_dir, download)


@_register("cifar100")
def _cifar100(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """CIFAR-100 (fine labels) through ``torchvision.datasets.CIFAR100``; (3, 32, 32) in [0, 1]."""
    return _cifar("cifar100", "CIFAR100", 100, data_dir, download)


@_register("stl10")
def _stl10(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """STL-10's labelled train (5000) and test (8000) splits through ``torchvision.datasets.STL10``;
    images (3, 96, 96) scaled to [0, 1]. The unlabelled split is not used."""
    tv, root = _torchvision("stl10"), data_root(data_dir)
    tr, te = _torchvision_dataset(
        "stl10", lambda s: tv.datasets.STL10(str(root), split=s, download=download), root, download)
    return RawData(tr.data, tr.labels, te.data, te.labels, 10, (3, 96, 96),
                   f"torchvision.datasets.STL10 under {root}", scale=1 / 255)


@_register("tinyimagenet")
def _tinyimagenet(*, data_dir=None, seed: int = 0, download: bool = False) -> RawData:
    """Tiny ImageNet (200 classes, 64x64 RGB) from ``<root>/tiny-imagenet-200``: train from
    ``train/<wnid>/images/*.JPEG``, test from the labelled ``val`` split (``val/images`` and
    ``val/val_annotations.txt``; the official test split has no labels). Classes are the sorted
    wnids (as torchvision's ImageFolder orders them); images (3, 64, 64) scaled to [0, 1].
    The decoded arrays are cached as ``data_root(data_dir)/tinyimagenet-uint8.npz`` (delete it
    after changing the image folder)."""
    root = data_root(data_dir)
    searched = [root / "tiny-imagenet-200", root]
    folder = next((p for p in searched if (p / "train").is_dir() and (p / "val" / "val_annotations.txt").is_file()),
                  None)
    if folder is None:
        raise DatasetNotFoundError(
            f"Tiny ImageNet was not found: looked for train/ and val/val_annotations.txt in "
            f"{', '.join(str(p) for p in searched)}. Download {_TINYIMAGENET_URL} and unzip it into "
            "that folder (or into the folder given by --data-dir or UFM_DATA).", searched)
    cache = root / "tinyimagenet-uint8.npz"
    arrays = _read_npz(cache, ("x_train", "y_train", "x_test", "y_test", "num_classes"))
    if arrays is None:
        arrays = _read_tinyimagenet(folder)
        _save_cache(cache, arrays)
    return RawData(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   int(arrays["num_classes"]), (3, 64, 64), f"tiny-imagenet-200 image folder {folder}", scale=1 / 255)


def _read_tinyimagenet(folder: Path) -> dict:
    try:
        from PIL import Image
    except ImportError:
        raise _missing("Pillow", "vision", "tinyimagenet") from None

    def read(paths):
        x = np.empty((len(paths), 3, 64, 64), dtype=np.uint8)  # (N, 3, 64, 64)
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                x[i] = np.asarray(im.convert("RGB").resize((64, 64))).transpose(2, 0, 1)
        return x

    wnids = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    index = {w: k for k, w in enumerate(wnids)}
    train = [(p, index[w]) for w in wnids for p in sorted((folder / "train" / w / "images").glob("*.JPEG"))]
    test = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            test.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    return {"x_train": read([p for p, _ in train]), "y_train": np.array([k for _, k in train], dtype=np.int64),
            "x_test": read([p for p, _ in test]), "y_test": np.array([k for _, k in test], dtype=np.int64),
            "num_classes": np.array(len(wnids))}


# ---------------------------------------------------------------------------------------------
# the .npz cache

def _read_npz(path: Path, keys: tuple) -> Optional[dict]:
    """The arrays of a cache file, or None when it is absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _save_cache(path: Path, arrays: dict) -> None:
    """Write the cache, or warn (and go on without it) when its folder is not writable."""
    try:
        _atomic_savez(path, arrays)
    except OSError as err:
        warnings.warn(f"Could not write the dataset cache {path} ({err}); the data will be built "
                      "again on the next load. Pass a writable data_dir (or set UFM_DATA).", UFMWarning,
                      stacklevel=4)


def _atomic_savez(path: Path, arrays: dict) -> None:
    """``np.savez`` written atomically: a reader sees the old file or the new one."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays), binary=True)
