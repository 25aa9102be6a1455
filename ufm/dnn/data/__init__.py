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
* ``mnist``, ``fashion-mnist``: the four IDX files (LeCun et al. 1998; Xiao et al.,
  Fashion-MNIST, 2017); Fashion-MNIST also from the Debian package ``dataset-fashion-mnist``;
* ``cifar10``, ``cifar100``: the published "python version" pickles, read with a
  restricted unpickler that runs no code (:mod:`ufm.dnn.data.pickles`);
* ``stl10``: the published binary files;
* ``tinyimagenet``: the ``tiny-imagenet-200`` image folder, read with Pillow.

None needs torchvision. Files are searched in ``data_dir``, ``$UFM_DATA`` and ``~/.cache/ufm``
(:mod:`ufm.dnn.data.files`); a dataset that is not there is an error saying where ufm looked
and how to get it, and ``download=True`` (``ufm data download NAME``) fetches the official
archive into :func:`data_root` (``data_dir``, else ``$UFM_DATA``, else ``~/.cache/ufm``), checked
against its published checksum (:mod:`ufm.dnn.data.download`). A truncated or corrupted file is a
``DataFileError`` naming it. Optional packages (mnist1d, scikit-learn, Pillow) are imported only
by the loader that needs them.

Modules:

    registry          RawData, Dataset, DatasetNotFoundError, the registry DATASETS and ``register``
    load              load_dataset: validation, then the three steps
    splits            the random streams, subsampling, the stratified split, standardization
    cache             the ``.npz`` cache
    files             where files are searched; shared checks of labels and byte counts
    pickles           the restricted unpickler
    download          the official archives, their checksums, download and safe extraction
    synthetic         gaussian
    mnist1d, digits   one loader each
    idx               read_idx, mnist and fashion-mnist
    cifar             cifar10, cifar100
    stl10             stl10
    tinyimagenet      tinyimagenet

A new loader is a function decorated with ``register(name, **option_constraints)`` in a
module imported below. :data:`FASHION_MNIST_DIRS` is read from ``ufm.dnn.data.idx`` at each
load: change it there (the name here is a copy).
"""
from ufm.dnn.data.registry import DATASETS, Dataset, DatasetNotFoundError, RawData, data_root
# importing a loader's module registers it, in this order
from ufm.dnn.data import synthetic, mnist1d, digits, idx, cifar, stl10, tinyimagenet  # noqa: F401
from ufm.dnn.data.idx import FASHION_MNIST_DIRS, read_idx
from ufm.dnn.data.load import load_dataset

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
