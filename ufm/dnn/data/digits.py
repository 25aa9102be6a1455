"""``digits``: scikit-learn's bundled 8x8 digits, split into train and test."""
from __future__ import annotations

import numpy as np

from ufm._core.validation import Interval
from ufm.dnn.data.registry import RawData, missing_package, register
from ufm.dnn.data.splits import rng, stratified_split

__all__ = ["digits"]


@register("digits", test_fraction=Interval("float", 0, 1, "neither"), split_seed=Interval("int", 0, None, "left"))
def digits(*, data_dir=None, seed: int = 0, download: bool = False, test_fraction: float = 0.2,
           split_seed: int = 0) -> RawData:
    """scikit-learn's bundled 8x8 digits (1797 samples, 10 classes, values 0..16) as images
    (1, 8, 8), split stratified: ``round(test_fraction * n_k)`` of each class k go to test,
    chosen from ``split_seed`` (not ``seed``, so that the test set stays fixed across seeds)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise missing_package("scikit-learn", "data", "digits") from None
    bunch = load_digits()
    x = bunch.data.reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)  # (1797,)
    train, test = stratified_split(y, 10, test_fraction, rng(split_seed, "generate"))
    source = f"sklearn.datasets.load_digits, stratified test_fraction={test_fraction}, split_seed={split_seed}"
    return RawData(x[train], y[train], x[test], y[test], 10, (1, 8, 8), source)
