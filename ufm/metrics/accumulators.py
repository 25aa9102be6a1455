"""Streaming passes over labelled features: the accumulators behind NC1-NC4, and :func:`nc_metrics`.

The conventions are those of ``ufm.metrics.nc`` (the pure measures these passes feed). All
statistics are accumulated in float64 whatever the feature dtype.
"""
from __future__ import annotations

from typing import Optional

import torch

from ufm._core.validation import InvalidParameterError, Interval, Options, check_param
from ufm.metrics.nc import (NC1_VARIANTS, ClassStatistics, between, between_span, fingerprint, measures,
                            nc1_from_span)

__all__ = ["NCAccumulator", "NC4Accumulator", "TwoPassNC", "nc_metrics"]


class NCAccumulator:
    """One pass over batches: class sums, counts and within-class scatter, in float64.

    Uses the shifted-data algorithm: each class is centred on a reference point (its
    mean in the first batch where it appears) before the second moment is
    accumulated, so strongly collapsed features lose no precision to cancellation.
    State O(d^2 + K d); working memory a few float64 copies of one (B, d) batch; cost
    per batch one (B x d)^T (B x d) product in float64.
    """

    def __init__(self, num_classes: int, dim: int, *, dtype=torch.float64, device=None):
        check_param("num_classes", num_classes, Interval("int", 2, None, "left"), "NCAccumulator")
        check_param("dim", dim, Interval("int", 1, None, "left"), "NCAccumulator")
        self.num_classes, self.dim, self.dtype = num_classes, dim, dtype
        self.device = torch.device(device) if device is not None else None
        self._shift = None  # (K, d)
        self._sums = None  # (K, d) sums of shifted features
        self._scatter = None  # (d, d) sum of shifted outer products
        self._counts = None  # (K,)

    def _init(self, device):
        K, d = self.num_classes, self.dim
        self.device = device
        self._shift = torch.zeros(K, d, dtype=self.dtype, device=device)
        self._sums = torch.zeros(K, d, dtype=self.dtype, device=device)
        self._scatter = torch.zeros(d, d, dtype=self.dtype, device=device)
        self._counts = torch.zeros(K, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``features (B, d)``, integer ``labels (B,)`` in [0, K)."""
        X, y = _check_batch(features, labels, self.num_classes, self.dim, "NCAccumulator.update")
        if self._sums is None:
            self._init(self.device if self.device is not None else X.device)
        X = X.to(dtype=self.dtype, device=self.device)  # (B, d)
        y = y.to(self.device)
        batch_counts = torch.bincount(y, minlength=self.num_classes)  # (K,)
        new = (self._counts == 0) & (batch_counts > 0)
        if bool(new.any()):
            batch_sums = torch.zeros_like(self._sums).index_add_(0, y, X)  # (K, d)
            ref = batch_sums / batch_counts.clamp(min=1).unsqueeze(1).to(self.dtype)
            self._shift[new] = ref[new]
        D = X - self._shift[y]  # (B, d)
        self._sums.index_add_(0, y, D)
        self._scatter += D.T @ D
        self._counts += batch_counts

    def statistics(self) -> ClassStatistics:
        if self._counts is None:
            raise ValueError("NCAccumulator.statistics: no batch has been added")
        empty = (self._counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"NCAccumulator.statistics: classes {empty} have no samples; "
                             "every class in [0, num_classes) needs at least one")
        counts = self._counts.to(self.dtype)  # (K,)
        N = counts.sum()
        delta = self._sums / counts.unsqueeze(1)  # (K, d) mean offset from the shift
        means = self._shift + delta  # (K, d)
        sigma_w = (self._scatter - (self._sums.T * (1 / counts)) @ self._sums) / N  # (d, d)
        sigma_w = (sigma_w + sigma_w.T) / 2
        global_mean, _, sigma_b = between(means)
        return ClassStatistics(means, self._counts.clone(), global_mean, sigma_w, sigma_b)


class NC4Accumulator:
    """Second pass: agreement of the nearest-class-center and classifier decisions.

    NC4 needs the final class means, so it cannot share the first pass; the means'
    fingerprint is kept so that :meth:`value` can check they match ``statistics``.
    """

    def __init__(self, means: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None):
        self.means = means.to(torch.float64)  # (K, d)
        self.weight = weight.to(dtype=torch.float64, device=means.device)  # (K, d)
        self.bias = (torch.zeros(means.shape[0], dtype=torch.float64, device=means.device) if bias is None
                     else bias.to(dtype=torch.float64, device=means.device))  # (K,)
        self._fingerprint = fingerprint(means)
        # Distances are taken about the mean of the class means, so a large common offset
        # does not swamp the expansion ||h - mu||^2 = ||mu||^2 - 2 h.mu + ||h||^2.
        self._center = self.means.mean(0)  # (d,)
        self._centered_means = self.means - self._center  # (K, d)
        self._sq = (self._centered_means**2).sum(1)  # (K,)
        self.mismatches = 0
        self.total = 0

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: Optional[torch.Tensor] = None) -> None:
        X = features.to(dtype=torch.float64, device=self.means.device)  # (B, d)
        ncc = torch.argmin(self._sq - 2 * (X - self._center) @ self._centered_means.T, dim=1)  # (B,)
        clf = torch.argmax(X @ self.weight.T + self.bias, dim=1)  # (B,)
        self.mismatches += int((ncc != clf).sum())
        self.total += X.shape[0]

    def value(self, statistics: Optional[ClassStatistics] = None) -> float:
        if statistics is not None and statistics.fingerprint() != self._fingerprint:
            raise ValueError("NC4Accumulator: the class means changed between passes; "
                             "build the accumulator from the statistics of the same features")
        return self.mismatches / self.total if self.total else float("nan")


class TwoPassNC:
    """NC1-NC4 from two passes over the same features, without the d x d within-class scatter.

    NC1 needs Sigma_W only through v_j^T Sigma_W v_j on the r = min(K-1, d) eigen-directions
    v_j of Sigma_B that it inverts (:func:`between_span`), so:

    * pass 1 (:meth:`update_means`): class sums and counts, in float64, then
      :meth:`finish_means`: the class means mu_k, Sigma_B and its directions V (d, r);
    * pass 2 (:meth:`update_span`): sum_i ((h_i - mu_{y_i}) . v_j)^2 for each j, and the NC4
      decisions (:class:`NC4Accumulator`); :meth:`measures` then gives the same dict as
      :func:`nc_metrics` (same conventions, same measure functions).

    Cost per sample O(d r) instead of the O(d^2) of the full scatter (the one-pass
    :class:`NCAccumulator`), and the deviations are taken from the exact means, so nothing is
    lost to cancellation. Every state is a plain sum, so per-process states merge exactly with
    an ``all_reduce(tensor)`` that sums in place (e.g. ``torch.distributed.all_reduce``), passed
    to :meth:`finish_means` and :meth:`measures`. The training loop evaluates through this class.
    """

    def __init__(self, num_classes: int, dim: int, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                 *, device=None):
        check_param("num_classes", num_classes, Interval("int", 2, None, "left"), "TwoPassNC")
        check_param("dim", dim, Interval("int", 1, None, "left"), "TwoPassNC")
        self.num_classes, self.dim = num_classes, dim
        self.weight, self.bias = weight, bias
        self._sums = torch.zeros(num_classes, dim, dtype=torch.float64, device=device)  # (K, d)
        self._counts = torch.zeros(num_classes, dtype=torch.float64, device=device)  # (K,)
        self._stats = None

    @torch.no_grad()
    def update_means(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        X, y = _check_batch(features, labels, self.num_classes, self.dim, "TwoPassNC.update_means")
        self._sums.index_add_(0, y, X.to(torch.float64))
        self._counts += torch.bincount(y, minlength=self.num_classes).to(torch.float64)

    @torch.no_grad()
    def finish_means(self, all_reduce=None) -> ClassStatistics:
        """End pass 1 (merging processes with ``all_reduce``); returns the statistics (sigma_w None)."""
        if all_reduce is not None:
            all_reduce(self._sums)
            all_reduce(self._counts)
        empty = (self._counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"TwoPassNC: classes {empty} have no samples; every class in [0, num_classes) "
                             "needs at least one")
        means = self._sums / self._counts.unsqueeze(1)  # (K, d)
        global_mean, centered, sigma_b = between(means)
        self._lam, self._V, self._keep = between_span(sigma_b, self.num_classes, centered)  # (r,), (d, r), (r,)
        self._proj = torch.zeros_like(self._lam)  # (r,)
        self._mean_proj = means @ self._V  # (K, r)
        self._stats = ClassStatistics(means, self._counts.round().to(torch.int64), global_mean, None, sigma_b)
        self._nc4 = NC4Accumulator(means, self.weight, self.bias) if self.weight is not None else None
        return self._stats

    @torch.no_grad()
    def update_span(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if self._stats is None:
            raise ValueError("TwoPassNC.update_span: call finish_means after the first pass")
        X, y = _check_batch(features, labels, self.num_classes, self.dim, "TwoPassNC.update_span")
        X = X.to(torch.float64)  # (B, d)
        # (h - mu_y) . v_j = h . v_j - mu_y . v_j: float64 leaves ~1e-16 |mu| of cancellation, far
        # below the resolution of float32 features
        self._proj += ((X @ self._V - self._mean_proj[y]) ** 2).sum(0)  # (r,)
        if self._nc4 is not None:
            self._nc4.update(X)

    @torch.no_grad()
    def measures(self, all_reduce=None, nc1_variant: str = "normalized") -> dict:
        """The measures of :func:`nc_metrics` (keys and conventions), after both passes."""
        check_param("nc1_variant", nc1_variant, Options(NC1_VARIANTS), "TwoPassNC.measures")
        proj = self._proj.clone()
        nc4 = None
        if self._nc4 is not None:
            counts = torch.tensor([self._nc4.mismatches, self._nc4.total], dtype=torch.float64,
                                  device=proj.device)
            if all_reduce is not None:
                all_reduce(counts)
            nc4 = float(counts[0] / counts[1])
        if all_reduce is not None:
            all_reduce(proj)
        N = self._counts.sum()
        value = nc1_from_span(proj / N, self._lam, self._keep, self.num_classes, nc1_variant)
        return measures(self._stats, self.weight, nc4=nc4, nc1_value=float(value))


def _check_batch(features, labels, K, d, caller):
    """Types and shapes of a batch; label range [0, K) unless K is None; returns long labels."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise InvalidParameterError(f"The 'features' parameter of {caller} must be a 2-D tensor (N, d). "
                                    f"Got {getattr(features, 'shape', type(features).__name__)} instead.")
    if d is not None and features.shape[1] != d:
        raise InvalidParameterError(f"The 'features' parameter of {caller} must have {d} columns. "
                                    f"Got {features.shape[1]} instead.")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != features.shape[0] \
            or labels.is_floating_point():
        raise InvalidParameterError(f"The 'labels' parameter of {caller} must be an integer tensor (N,) with "
                                    f"N = {features.shape[0]}. Got {getattr(labels, 'shape', labels)} instead.")
    if K is not None and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise InvalidParameterError(f"The 'labels' parameter of {caller} must hold ints in the range [0, {K}). "
                                    f"Got values in [{int(labels.min())}, {int(labels.max())}] instead.")
    return features, labels.long()



def nc_metrics(features: torch.Tensor, labels: torch.Tensor, weight: Optional[torch.Tensor] = None,
               bias: Optional[torch.Tensor] = None, *, num_classes: Optional[int] = None,
               nc1_variant: str = "normalized", batch_size: int = 8192) -> dict:
    """Neural-collapse metrics of features ``(N, d)`` with integer labels ``(N,)``.

    Conventions: see the module docstring. Statistics are accumulated in float64 in
    one streaming pass of ``batch_size`` rows (memory O(d^2 + K d) plus a few float64
    copies of one batch); NC4 takes a second pass, since it needs the final class means.

    Args:
        features: (N, d) tensor, any float dtype.
        labels: (N,) integer tensor in [0, K).
        weight: optional classifier (K, d); enables nc2_w*, nc3 and nc4.
        bias: optional classifier bias (K,), used by nc4 (zero if absent).
        num_classes: K (default: rows of ``weight``, else max label + 1).
        nc1_variant: "normalized" (tr(Sigma_W Sigma_B^+)/K) or "unnormalized".

    Returns:
        dict of Python floats: ``nc1``, ``nc2_h``, ``nc2_h_equinorm``,
        ``nc2_h_equiangular`` and, with ``weight``, ``nc2_w``, ``nc2_w_equinorm``,
        ``nc2_w_equiangular``, ``nc3``, ``nc4``.

    Example:
        >>> import torch
        >>> from ufm import nc_metrics
        >>> X = torch.randn(100, 8, dtype=torch.float64); y = torch.arange(100) % 4
        >>> sorted(nc_metrics(X, y))[:2]
        ['nc1', 'nc2_h']
    """
    check_param("nc1_variant", nc1_variant, Options(NC1_VARIANTS), "nc_metrics")
    check_param("batch_size", batch_size, Interval("int", 1, None, "left"), "nc_metrics")
    _check_batch(features, labels, None, None, "nc_metrics")  # types and shapes first; ranges below
    if num_classes is None and labels.numel():
        num_classes = int(labels.max()) + 1
        if weight is not None and getattr(weight, "ndim", 0) == 2 and weight.shape[0] > num_classes:
            num_classes = weight.shape[0]  # the last classes may have no samples: reported as such below
    check_param("num_classes", num_classes, Interval("int", 2, None, "left"), "nc_metrics")
    X, y = _check_batch(features, labels, num_classes, None, "nc_metrics")
    if weight is not None and (weight.ndim != 2 or tuple(weight.shape) != (num_classes, X.shape[1])):
        raise InvalidParameterError(f"The 'weight' parameter of nc_metrics must have shape "
                                    f"({num_classes}, {X.shape[1]}). Got {tuple(weight.shape)} instead.")
    if bias is not None and tuple(bias.shape) != (num_classes,):
        raise InvalidParameterError(f"The 'bias' parameter of nc_metrics must have shape ({num_classes},). "
                                    f"Got {tuple(bias.shape)} instead.")
    acc = NCAccumulator(num_classes, X.shape[1], device=X.device)
    for start in range(0, X.shape[0], batch_size):
        acc.update(X[start:start + batch_size], y[start:start + batch_size])
    st = acc.statistics()
    nc4 = None
    if weight is not None:
        dec = NC4Accumulator(st.means, weight, bias)
        for start in range(0, X.shape[0], batch_size):
            dec.update(X[start:start + batch_size])
        nc4 = dec.value(st)
    return measures(st, weight, nc4=nc4, nc1_variant=nc1_variant)
