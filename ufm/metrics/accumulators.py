"""Streaming passes over labelled features: the accumulators behind NC1-NC4, and :func:`nc_metrics`.

The conventions are those of ``ufm.metrics.nc`` (the pure measures these passes feed), or the
named ones of ``ufm.metrics.conventions`` (``convention=``). All statistics are accumulated in
float64 whatever the feature dtype.
"""
from __future__ import annotations

from typing import Optional

import torch

from ufm._core.validation import InvalidParameterError, Interval, Options, check_param, validate_params
from ufm.metrics.conventions import CONVENTION_NAMES, get_convention
from ufm.metrics.nc import (NC1_VARIANTS, ClassStatistics, between, between_span, fingerprint, measures,
                            nc1_from_span, nc1_variant_of)

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


#: bytes of one float64 working block of features (a few of them live at once), so that a block
#: converted from the features is still in cache when the next operation reads it
_BLOCK_BYTES = 2 ** 21


def _block_rows(dim: int, limit: Optional[int] = None) -> int:
    """Rows of a float64 working block of width ``dim`` (at most ``limit``)."""
    rows = max(1, _BLOCK_BYTES // (8 * max(dim, 1)))
    return rows if limit is None else max(1, min(rows, limit))


class TwoPassNC:
    """NC1-NC4 from two passes over the same features, without the d x d within-class scatter.

    NC1 needs Sigma_W only through v_j^T Sigma_W v_j on the r = min(K-1, d) eigen-directions
    v_j of Sigma_B that it inverts (:func:`between_span`), so:

    * pass 1 (:meth:`update_means`): class sums and counts, in float64, then
      :meth:`finish_means`: the class means mu_k, Sigma_B and its directions V (d, r);
    * pass 2 (:meth:`update_span`): sum_i ((h_i - mu_{y_i}) . v_j)^2 for each j, and the NC4
      decisions (those of :class:`NC4Accumulator`, with the same arithmetic, so ties go the same
      way); :meth:`measures` then gives the same dict as :func:`nc_metrics` (same conventions,
      same measure functions).

    Both passes work on float64 blocks of about 2 MiB (at most ``block_rows`` rows) converted from
    the batch, whatever its size and dtype, so a whole split or data set can be passed as one
    batch. Pass 2 takes the
    deviations d_i = h_i - mu_{y_i} in float64 (nothing is lost to cancellation, however strongly
    the features collapse) and one product d_i^T [V, M^T] (M (K, d) the centered class means):
    NC1's terms from the first r columns, the nearest-class-center scores
    ||mu_k - mu_G||^2 - 2 (h_i - mu_G) . (mu_k - mu_G) (those of :class:`NC4Accumulator`) from the
    last K, as d_i . m_k + m_{y_i} . m_k; the classifier's decision is argmax (W h_i + b) in
    float64. Cost per sample O(d (r + 2K)) instead of the O(d^2) of the full scatter (the one-pass
    :class:`NCAccumulator`). Every state is a plain sum, so per-process states merge exactly with
    an ``all_reduce(tensor)`` that sums in place (e.g. ``torch.distributed.all_reduce``), passed
    to :meth:`finish_means` and :meth:`measures`. :func:`nc_metrics` and the training loop
    evaluate through this class.

    ``convention`` (one of ``ufm.metrics.conventions.CONVENTIONS``, default ``"ufm"``) is fixed
    here because pass 2 projects on the directions of the convention's own Sigma_B (about its
    global mean); :meth:`measures` then reports that convention's numbers.
    """

    def __init__(self, num_classes: int, dim: int, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                 *, device=None, block_rows: Optional[int] = None, convention: str = "ufm"):
        check_param("num_classes", num_classes, Interval("int", 2, None, "left"), "TwoPassNC")
        check_param("dim", dim, Interval("int", 1, None, "left"), "TwoPassNC")
        self.convention = get_convention(convention, "TwoPassNC").name
        self.num_classes, self.dim = num_classes, dim
        self.weight, self.bias = weight, bias
        self._rows = _block_rows(dim, block_rows)
        self._sums = torch.zeros(num_classes, dim, dtype=torch.float64, device=device)  # (K, d)
        self._counts = torch.zeros(num_classes, dtype=torch.float64, device=device)  # (K,)
        self._stats = None

    @property
    def class_sums(self) -> torch.Tensor:
        """(K, d) float64 sums of this process's features per class (pass 1; merged by :meth:`finish_means`).

        Finite exactly when every feature added so far is, for features of lower precision than
        float64 (a sum of fewer than 2^53 of them cannot overflow; a NaN or an infinity reaches it)."""
        return self._sums

    @torch.no_grad()
    def update_means(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        X, y = _check_batch(features, labels, self.num_classes, self.dim, "TwoPassNC.update_means")
        sums, y = self._sums, y.to(self._sums.device)
        _add_rows(sums, X, y, self._rows)
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
        self._begin_span(self._sums / self._counts.unsqueeze(1))  # (K, d)
        return self._stats

    def _begin_span(self, means: torch.Tensor) -> None:
        """The state of pass 2 from the class means (K, d): Sigma_B's directions, the product's columns."""
        global_mean, centered, sigma_b = between(means)  # (d,), (K, d), (d, d)
        span_centered, span_sigma_b = centered, sigma_b  # NC1's Sigma_B: about the convention's global mean
        if get_convention(self.convention, "TwoPassNC").global_mean == "samples":
            _, span_centered, span_sigma_b = between(means, self._counts)
        self._lam, self._V, self._keep = between_span(span_sigma_b, self.num_classes,
                                                      span_centered)  # (r,), (d, r), (r,)
        self._means, self._Vt = means, self._V.T.contiguous()  # (K, d), (r, d)
        self._proj = torch.zeros_like(self._lam)  # (r,)
        self._stats = ClassStatistics(means, self._counts.round().to(torch.int64), global_mean, None, sigma_b)
        self._mismatches = torch.zeros((), dtype=torch.int64, device=means.device)
        self._total = 0
        if self.weight is None:
            return
        self._W = self.weight.to(dtype=torch.float64, device=means.device)  # (K, d)
        self._b = (torch.zeros(self.num_classes, dtype=torch.float64, device=means.device) if self.bias is None
                   else self.bias.to(dtype=torch.float64, device=means.device))  # (K,)
        self._center, self._centered = global_mean, centered  # (d,), (K, d)
        self._sq = (centered ** 2).sum(1)  # (K,)

    @torch.no_grad()
    def update_span(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if self._stats is None:
            raise ValueError("TwoPassNC.update_span: call finish_means after the first pass")
        X, y = _check_batch(features, labels, self.num_classes, self.dim, "TwoPassNC.update_span")
        y = y.to(self._means.device)
        n, rows = X.shape[0], self._rows
        buf = torch.empty(min(rows, n), self.dim, dtype=torch.float64, device=self._means.device)
        tmp = torch.empty_like(buf)
        for s in range(0, n, rows):
            Xd, T, yb = buf[:min(rows, n - s)], tmp[:min(rows, n - s)], y[s:s + rows]  # (B, d), (B, d), (B,)
            Xd.copy_(X[s:s + rows])
            if self.weight is not None:  # the decisions of NC4Accumulator, with the same arithmetic
                clf = torch.argmax(Xd @ self._W.T + self._b, dim=1)  # (B,)
                torch.sub(Xd, self._center, out=T)  # h - mu_G
                ncc = torch.argmin(self._sq - 2 * (T @ self._centered.T), dim=1)  # (B,)
                self._mismatches += (ncc != clf).sum()
            torch.index_select(self._means, 0, yb, out=T)
            Xd.sub_(T)  # h - mu_y, float64
            self._proj += ((Xd @ self._Vt.T) ** 2).sum(0)  # (r,); X @ A.T is MKL's faster form for few columns
        self._total += n

    @torch.no_grad()
    def measures(self, all_reduce=None, nc1_variant: str = "normalized") -> dict:
        """The measures of :func:`nc_metrics` (keys; the convention given to the constructor), after both passes."""
        nc1_variant = nc1_variant_of(get_convention(self.convention, "TwoPassNC"), nc1_variant, "TwoPassNC.measures")
        proj = self._proj.clone()
        nc4 = None
        if self.weight is not None:
            counts = torch.stack([self._mismatches.to(torch.float64),
                                  torch.tensor(float(self._total), dtype=torch.float64, device=proj.device)])
            if all_reduce is not None:
                all_reduce(counts)
            nc4 = float(counts[0] / counts[1])
        if all_reduce is not None:
            all_reduce(proj)
        N = self._counts.sum()
        value = nc1_from_span(proj / N, self._lam, self._keep, self.num_classes, nc1_variant)
        return measures(self._stats, self.weight, nc4=nc4, nc1_value=float(value), convention=self.convention)


def _add_rows(sums: torch.Tensor, X: torch.Tensor, y: torch.Tensor, rows: int, shift=None) -> None:
    """``sums (K, d)`` (float64) += the sums of the rows of ``X (B, d)`` per label ``y``, in row order
    (as one ``index_add_``), minus ``shift[y]`` (K, d) if given; X converted to float64 in blocks."""
    if X.dtype == sums.dtype and X.device == sums.device and shift is None:
        sums.index_add_(0, y, X)
        return
    buf = torch.empty(min(rows, X.shape[0]), X.shape[1], dtype=sums.dtype, device=sums.device)
    tmp = torch.empty_like(buf) if shift is not None else None
    for s in range(0, X.shape[0], rows):
        block, yb = buf[:min(rows, X.shape[0] - s)], y[s:s + rows]  # (B, d), (B,)
        block.copy_(X[s:s + rows])
        if shift is not None:
            block.sub_(torch.index_select(shift, 0, yb, out=tmp[:block.shape[0]]))
        sums.index_add_(0, yb, block)


def _shifted_means(X: torch.Tensor, y: torch.Tensor, K: int, batch_size: int, rows: int):
    """Class means (K, d) and counts (K,) of in-memory features, float64, with the arithmetic of
    :class:`NCAccumulator` fed ``batch_size`` rows at a time: each class centred on its mean in the
    first batch where it appears, so the means are those :func:`nc_metrics` has always given (bit
    for bit) and strongly collapsed or offset features keep their digits. Raises its messages."""
    d = X.shape[1]
    if X.shape[0] == 0:
        raise ValueError("NCAccumulator.statistics: no batch has been added")
    shift = torch.zeros(K, d, dtype=torch.float64, device=X.device)  # (K, d)
    sums = torch.zeros_like(shift)  # (K, d) sums of shifted features
    counts = torch.zeros(K, dtype=torch.int64, device=X.device)  # (K,)
    for start in range(0, X.shape[0], batch_size):
        Xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        batch_counts = torch.bincount(yb, minlength=K)  # (K,)
        new = (counts == 0) & (batch_counts > 0)
        if bool(new.any()):
            batch_sums = torch.zeros_like(sums)
            _add_rows(batch_sums, Xb, yb, rows)
            shift[new] = (batch_sums / batch_counts.clamp(min=1).unsqueeze(1).to(torch.float64))[new]
        _add_rows(sums, Xb, yb, rows, shift)
        counts += batch_counts
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"NCAccumulator.statistics: classes {empty} have no samples; "
                         "every class in [0, num_classes) needs at least one")
    return shift + sums / counts.to(torch.float64).unsqueeze(1), counts


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


@validate_params({"nc1_variant": Options(NC1_VARIANTS), "batch_size": Interval("int", 1, None, "left"),
                  "convention": Options(CONVENTION_NAMES)})
def nc_metrics(features: torch.Tensor, labels: torch.Tensor, weight: Optional[torch.Tensor] = None,
               bias: Optional[torch.Tensor] = None, *, num_classes: Optional[int] = None,
               nc1_variant: str = "normalized", batch_size: int = 8192, convention: str = "ufm") -> dict:
    """Neural-collapse metrics of features ``(N, d)`` with integer labels ``(N,)``.

    Conventions: see the module docstring. Two passes over the features held in memory
    (:class:`TwoPassNC`): the class sums in float64, then the within-class deviations in
    float64 projected on the r = min(K-1, d) directions of Sigma_B that NC1 inverts, with the
    NC4 decisions, in float64 blocks of at most ``batch_size`` rows (and about 2 MiB): O(N d K)
    work, and besides a few blocks the class statistics (Sigma_B is still formed, d x d, for its
    top directions; no d x d within-class scatter). For data that
    do not fit in memory, feed :class:`TwoPassNC` (or the one-pass :class:`NCAccumulator`) batch
    by batch: the same numbers up to float64 rounding.

    Args:
        features: (N, d) tensor, any float dtype.
        labels: (N,) integer tensor in [0, K).
        weight: optional classifier (K, d); enables nc2_w*, nc3 and nc4.
        bias: optional classifier bias (K,), used by nc4 (zero if absent).
        num_classes: K (default: rows of ``weight``, else max label + 1).
        nc1_variant: "normalized" (tr(Sigma_W Sigma_B^+)/K) or "unnormalized" (convention "ufm" only).
        convention: whose numbers: "ufm" (the module docstring of ``ufm.metrics.nc``), "guo2025",
            "zhu2021", "zhou2022" or "papyan2020", each documented with its reference in
            ``ufm.metrics.conventions`` (global mean over the class means or over the samples,
            NC1's 1/K, the equinorm's std, centred W, which NC3).

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
    nc1_variant_of(get_convention(convention, "nc_metrics"), nc1_variant, "nc_metrics")
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
    # the checks and messages of the one-pass accumulator that nc_metrics used before, kept as they were
    check_param("dim", X.shape[1], Interval("int", 1, None, "left"), "NCAccumulator")
    acc = TwoPassNC(num_classes, X.shape[1], weight, bias, device=X.device, block_rows=batch_size,
                    convention=convention)
    means, counts = _shifted_means(X, y, num_classes, batch_size, acc._rows)  # pass 1
    acc._counts = counts.to(torch.float64)
    acc._begin_span(means)
    acc.update_span(X, y)  # pass 2
    return acc.measures(nc1_variant=nc1_variant)
