"""The steps every dataset goes through: balanced subsampling, a stratified split, standardization.

Each random step draws from its own stream ``numpy.random.default_rng([seed, stream])``
(:func:`rng`), so e.g. changing ``val_fraction`` does not change which samples subsampling
keeps. Standardization uses the population std (divisor N), computed in float64; a feature
or channel whose std is below ``1e-6`` is only centred (scale 1), as in scikit-learn's
``StandardScaler``, so that no division by ~0 occurs.
"""
from __future__ import annotations

import numpy as np
import torch

from ufm._core.validation import InvalidParameterError

__all__ = ["STREAMS", "rng", "per_class", "stratified_split", "as_float", "scaled", "standardize_", "statistics"]

#: one independent random stream per purpose: rng = default_rng([seed, stream]); ``input_noise`` is
#: the test split's input noise of the robustness records (``ufm.dnn.evaluate.input_noise``)
STREAMS = {"generate": 0, "subsample_train": 1, "subsample_test": 2, "validation": 3, "input_noise": 4}
_STD_FLOOR = 1e-6
_CHUNK = 4096  # samples per chunk when computing statistics in float64


def rng(seed: int, stream: str) -> np.random.Generator:
    """The generator of ``stream`` (a key of :data:`STREAMS`) for ``seed``."""
    return np.random.default_rng([int(seed), STREAMS[stream]])


def per_class(y: np.ndarray, K: int, n: int, gen: np.random.Generator, param: str, split: str,
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
    keep = [np.flatnonzero(y == k)[gen.permutation(int(counts[k]))[:n]] for k in range(K)]
    return np.sort(np.concatenate(keep))


def stratified_split(y: np.ndarray, K: int, fraction: float, gen: np.random.Generator):
    """Positions (into ``y``) of the kept and the held-out parts: of each class k with n_k
    samples, ``round(fraction * n_k)`` random ones are held out. Both sorted."""
    held = []
    for k in range(K):
        members = np.flatnonzero(y == k)
        n_out = int(round(fraction * len(members)))
        held.append(members[gen.permutation(len(members))[:n_out]])
    held = np.sort(np.concatenate(held)).astype(np.int64)
    kept = np.setdiff1d(np.arange(len(y)), held, assume_unique=True).astype(np.int64)
    return kept, held


def as_float(x, idx: np.ndarray, scale: float) -> torch.Tensor:
    """Rows ``idx`` of x as a float32 tensor, times ``scale``. Indexing copies, so the
    result never aliases the loader's arrays and may be modified in place."""
    rows = x[torch.from_numpy(idx)] if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x)[idx])
    return scaled(rows, scale)


def scaled(rows: torch.Tensor, scale: float) -> torch.Tensor:
    """``rows`` as float32 times ``scale``: the first half of every input's normalization."""
    out = rows.to(torch.float32)
    if scale != 1.0:
        out.mul_(scale)
    return out


def standardize_(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` in place (float32): the second half of every input's normalization."""
    return x.sub_(mean.to(x.device)).div_(std.to(x.device))


def statistics(x: torch.Tensor, shape: tuple):
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
