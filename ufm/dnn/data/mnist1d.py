"""``mnist1d``: MNIST-1D (Greydanus, Scaling down deep learning, 2020), generated offline by the
``mnist1d`` package and cached as ``.npz``."""
from __future__ import annotations

import random

import numpy as np

from ufm._core.validation import Interval
from ufm.dnn.data.cache import read_npz, save_cache
from ufm.dnn.data.registry import RawData, data_root, missing_package, register

__all__ = ["mnist1d"]


@register("mnist1d", num_samples=Interval("int", 100, None, "left"))
def mnist1d(*, data_dir=None, seed: int = 0, download: bool = False, num_samples: int = 5000) -> RawData:
    """MNIST-1D generated offline by ``mnist1d.data.make_dataset`` with its default arguments
    (generator seed 42, 80/20 train/test, length 40; the standard dataset at num_samples=5000),
    cached in ``data_root(data_dir)/mnist1d-<num_samples>-42.npz``. ``seed`` does not
    change the data (only the later steps). mnist1d's downloading ``get_dataset`` is never used."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise missing_package("mnist1d", "data", "mnist1d") from None
    args = get_dataset_args()
    args.num_samples = int(num_samples)
    path = data_root(data_dir) / f"mnist1d-{args.num_samples}-{args.seed}.npz"
    arrays = read_npz(path, ("x", "y", "x_test", "y_test"))
    if arrays is None:
        np_state, py_state = np.random.get_state(), random.getstate()
        try:  # make_dataset seeds numpy's and Python's global generators: restore them
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
        save_cache(path, arrays)
    source = f"mnist1d.data.make_dataset(num_samples={args.num_samples}, seed={args.seed}), cached at {path}"
    return RawData(arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], 10,
                   (int(args.final_seq_length),), source)
