"""``gaussian``: a synthetic K-class Gaussian mixture, drawn from the seed."""
from __future__ import annotations

import numpy as np

from ufm._core.validation import Interval
from ufm.dnn.data.registry import RawData, register
from ufm.dnn.data.splits import rng

__all__ = ["gaussian"]


@register("gaussian",
          num_classes=Interval("int", 2, None, "left"), dim=Interval("int", 1, None, "left"),
          train_size_per_class=Interval("int", 1, None, "left"),
          test_size_per_class=Interval("int", 1, None, "left"),
          separation=Interval("float", 0, None, "left"), noise=Interval("float", 0, None, "neither"))
def gaussian(*, data_dir=None, seed: int = 0, download: bool = False, num_classes: int = 10, dim: int = 32,
             train_size_per_class: int = 200, test_size_per_class: int = 200, separation: float = 3.0,
             noise: float = 1.0) -> RawData:
    """K Gaussian classes N(mu_k, noise^2 I) in R^dim, mu_k = separation * u_k with u_k
    independent uniform random unit vectors; train and test drawn from the same mixture,
    balanced by construction, in random order. Everything is drawn from ``seed``."""
    K, n_tr, n_te = num_classes, train_size_per_class, test_size_per_class
    gen = rng(seed, "generate")
    u = gen.standard_normal((K, dim))  # (K, dim)
    mu = separation * u / np.linalg.norm(u, axis=1, keepdims=True)  # (K, dim)

    def draw(n):
        y = gen.permutation(np.repeat(np.arange(K), n))  # (K n,)
        x = mu[y] + noise * gen.standard_normal((K * n, dim))  # (K n, dim)
        return x, y

    x_train, y_train = draw(n_tr)
    x_test, y_test = draw(n_te)
    source = (f"gaussian mixture: num_classes={K}, dim={dim}, train_size_per_class={n_tr}, "
              f"test_size_per_class={n_te}, separation={separation}, noise={noise}, seed={seed}")
    return RawData(x_train, y_train, x_test, y_test, K, (dim,), source)
