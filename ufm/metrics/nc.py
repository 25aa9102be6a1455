"""Neural-collapse metrics NC1-NC4: streaming accumulators and pure measure functions.

One definition of each metric, used on UFM solutions and on network features alike.

Conventions (also in the README):

* class means mu_k; global mean mu_G = mean of the class means (not of the samples;
  the two agree for balanced classes);
* Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,
  Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T;
* ``nc1`` = tr(Sigma_W Sigma_B^+) / K (Papyan, Han and Donoho, Prevalence of neural
  collapse during the terminal phase of deep learning training, 2020, as used by
  Zhu et al. 2021); the variant ``"unnormalized"`` = tr(Sigma_W Sigma_B^+) without
  the 1/K, as some published code reports it. The pseudo-inverse is taken in
  float64 on the top min(K-1, d) eigen-directions of Sigma_B, dropping eigenvalues
  below max(K, d) * eps * lambda_max; each term v^T Sigma_W v is clipped at 0, so
  nc1 is never negative;
* ``nc2_h`` / ``nc2_w`` = || G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F with G the Gram
  matrix of the centered class means / of the classifier rows (uncentered), Zhu et
  al., A Geometric Analysis of Neural Collapse with Unconstrained Features, 2021;
  ``*_equinorm`` = std_k ||v_k|| / mean_k ||v_k||, ``*_equiangular`` =
  mean_{j != k} |cos(v_j, v_k) + 1/(K-1)| (Papyan et al. 2020);
* ``nc3`` = || W/||W||_F - M/||M||_F ||_F with M the centered class means (Zhu et al.);
* ``nc4`` = fraction of samples whose nearest-class-center decision
  argmin_k ||h - mu_k|| differs from the classifier's argmax_k (W h + b)_k (ties go
  to the lowest class index in both).

All statistics are accumulated in float64 whatever the feature dtype. Metrics that
are undefined (e.g. Sigma_B = 0 at the trivial solution W = H = 0) are NaN.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import torch

from .._validation import InvalidParameterError, Interval, Options, check_param

__all__ = [
    "ClassStatistics",
    "NCAccumulator",
    "TwoPassNC",
    "between_span",
    "nc1_from_span",
    "NC4Accumulator",
    "nc_metrics",
    "measures",
    "nc1",
    "nc2",
    "nc3",
    "equinorm",
    "equiangularity",
    "class_statistics_balanced",
    "NC1_VARIANTS",
]

NC1_VARIANTS = ("normalized", "unnormalized")


@dataclass
class ClassStatistics:
    """Sufficient statistics of labelled features, float64.

    Attributes:
        means: (K, d) class means mu_k.
        counts: (K,) samples per class.
        global_mean: (d,) mean of the class means.
        sigma_w: (d, d) within-class covariance (1/N normalization).
        sigma_b: (d, d) between-class covariance of the class means (1/K).
    """

    means: torch.Tensor
    counts: torch.Tensor
    global_mean: torch.Tensor
    sigma_w: torch.Tensor
    sigma_b: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.means.shape[-2]

    def fingerprint(self) -> str:
        return _fingerprint(self.means)


def _fingerprint(means: torch.Tensor) -> str:
    """Hash of the class means (as float64 bytes), to check that two passes agree."""
    return hashlib.sha1(means.detach().to(torch.float64).cpu().contiguous().numpy().tobytes()).hexdigest()


def _between(means: torch.Tensor):
    global_mean = means.mean(-2)  # (..., d)
    centered = means - global_mean.unsqueeze(-2)  # (..., K, d)
    sigma_b = centered.transpose(-1, -2) @ centered / means.shape[-2]  # (..., d, d)
    return global_mean, centered, sigma_b


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
        global_mean, _, sigma_b = _between(means)
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
        self._fingerprint = _fingerprint(means)
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
        global_mean, centered, sigma_b = _between(means)
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


# ---------------------------------------------------------------------------
# Measure functions: pure, batched over leading dimensions, float64 in and out.

def nc1(sigma_w: torch.Tensor, sigma_b: torch.Tensor, num_classes: int, variant: str = "normalized",
        centered_means: Optional[torch.Tensor] = None) -> torch.Tensor:
    """tr(Sigma_W Sigma_B^+) / K (``variant="normalized"``) or without 1/K (``"unnormalized"``).

    Sigma_B^+ is the pseudo-inverse on the top min(K-1, d) eigen-directions of Sigma_B
    (eigenvalues below max(K, d) * eps * lambda_max dropped). NaN where Sigma_B = 0.
    With ``centered_means`` M (..., K, d) and K < d, those directions come from the K x K
    Gram matrix M M^T / K (same nonzero eigenvalues, v = M^T u / sqrt(K lambda)) instead of
    the d x d eigenproblem.
    """
    check_param("variant", variant, Options(NC1_VARIANTS), "nc1")
    lam, V, keep = between_span(sigma_b, num_classes, centered_means)
    proj = ((sigma_w.to(torch.float64) @ V) * V).sum(-2).clamp(min=0)  # v_j^T Sigma_W v_j, (..., r)
    return nc1_from_span(proj, lam, keep, num_classes, variant)


def between_span(sigma_b: torch.Tensor, num_classes: int, centered_means: Optional[torch.Tensor] = None):
    """The top r = min(K-1, d) eigenpairs of Sigma_B that NC1 inverts: (lam (..., r), V (..., d, r), keep).

    ``keep`` marks eigenvalues above max(K, d) * eps * lambda_max (the others are dropped
    from the pseudo-inverse). With ``centered_means`` M (..., K, d) and K < d, computed from
    the K x K Gram matrix M M^T / K (same nonzero eigenvalues, v = M^T u / sqrt(K lambda)).
    """
    d = sigma_b.shape[-1]
    r = min(num_classes - 1, d)
    if centered_means is not None and num_classes < d:
        M = centered_means.to(torch.float64)  # (..., K, d)
        evals, U = torch.linalg.eigh(M @ M.transpose(-1, -2) / num_classes)  # (..., K), (..., K, K)
        lam, U = evals[..., num_classes - r:], U[..., num_classes - r:]  # top r
        V = M.transpose(-1, -2) @ U  # (..., d, r), columns of norm sqrt(K lambda)
        V = V / torch.linalg.vector_norm(V, dim=-2, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny)
    else:
        evals, evecs = torch.linalg.eigh(sigma_b.to(torch.float64))  # ascending, (..., d), (..., d, d)
        lam, V = evals[..., d - r:], evecs[..., d - r:]  # top r
    lam_max = lam[..., -1:].clamp(min=0)
    keep = lam > max(num_classes, d) * torch.finfo(torch.float64).eps * lam_max
    return lam, V, keep


def nc1_from_span(proj: torch.Tensor, lam: torch.Tensor, keep: torch.Tensor, num_classes: int,
                  variant: str = "normalized") -> torch.Tensor:
    """sum_j v_j^T Sigma_W v_j / lambda_j over the kept directions (``proj`` (..., r) >= 0), / K if normalized."""
    terms = torch.where(keep, proj / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    value = terms.sum(-1)
    value = torch.where(lam[..., -1].clamp(min=0) > 0, value, torch.full_like(value, float("nan")))
    return value / num_classes if variant == "normalized" else value


def _etf_gram(K: int, dtype=torch.float64, device=None) -> torch.Tensor:
    return (torch.eye(K, dtype=dtype, device=device) - 1.0 / K) / (K - 1) ** 0.5  # unit Frobenius norm


def nc2(vectors: torch.Tensor) -> torch.Tensor:
    """|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F, G = V V^T for ``vectors (..., K, d)`` (Zhu et al.)."""
    V = vectors.to(torch.float64)
    G = V @ V.transpose(-1, -2)  # (..., K, K)
    G = G / torch.linalg.matrix_norm(G).unsqueeze(-1).unsqueeze(-1)
    return torch.linalg.matrix_norm(G - _etf_gram(V.shape[-2], device=V.device))


def equinorm(vectors: torch.Tensor) -> torch.Tensor:
    """std_k ||v_k|| / mean_k ||v_k|| (population std; Papyan et al. 2020)."""
    norms = torch.linalg.vector_norm(vectors.to(torch.float64), dim=-1)  # (..., K)
    return norms.std(-1, correction=0) / norms.mean(-1)


def equiangularity(vectors: torch.Tensor) -> torch.Tensor:
    """mean over j != k of |cos(v_j, v_k) + 1/(K-1)| (Papyan et al. 2020)."""
    V = vectors.to(torch.float64)
    K = V.shape[-2]
    U = V / torch.linalg.vector_norm(V, dim=-1, keepdim=True)
    C = U @ U.transpose(-1, -2) + 1.0 / (K - 1)  # (..., K, K)
    off = ~torch.eye(K, dtype=torch.bool, device=V.device)
    return C.abs()[..., off].mean(-1)


def nc3(weight: torch.Tensor, centered_means: torch.Tensor) -> torch.Tensor:
    """|| W/||W||_F - M/||M||_F ||_F, ``weight`` and ``centered_means`` (..., K, d) (Zhu et al.)."""
    W = weight.to(torch.float64)
    M = centered_means.to(torch.float64)
    Wn = W / torch.linalg.matrix_norm(W).unsqueeze(-1).unsqueeze(-1)
    Mn = M / torch.linalg.matrix_norm(M).unsqueeze(-1).unsqueeze(-1)
    return torch.linalg.matrix_norm(Wn - Mn)


def class_statistics_balanced(H: torch.Tensor, per_class: int):
    """Batched class statistics of UFM features ``H (..., d, N)`` with column i in class i // n.

    Returns (means (..., K, d), centered means, sigma_w (..., d, d), sigma_b (..., d, d)),
    the same quantities as :class:`NCAccumulator` (direct two-pass form, float64).
    """
    H = H.to(torch.float64)
    d, N = H.shape[-2], H.shape[-1]
    K = N // per_class
    Hk = H.reshape(*H.shape[:-1], K, per_class)  # (..., d, K, n)
    means = Hk.mean(-1).transpose(-1, -2)  # (..., K, d)
    R = (Hk - means.transpose(-1, -2).unsqueeze(-1)).reshape(*H.shape[:-1], N)  # (..., d, N)
    sigma_w = R @ R.transpose(-1, -2) / N  # (..., d, d)
    _, centered, sigma_b = _between(means)
    return means, centered, sigma_w, sigma_b


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


def measures(statistics: ClassStatistics, weight: Optional[torch.Tensor] = None, *, nc4: Optional[float] = None,
             nc1_variant: str = "normalized", nc1_value: Optional[float] = None) -> dict:
    """The NC measures of accumulated ``statistics`` (and classifier ``weight (K, d)``).

    The one assembly of the measures behind :func:`nc_metrics`, shared by the training loop's
    streaming evaluation. ``nc4`` is the value of an :class:`NC4Accumulator` pass (it needs
    the features again); it is reported as given, as is ``nc1_value`` (from :class:`TwoPassNC`,
    whose statistics carry no sigma_w). Returns a dict of Python floats, keys as in
    :func:`nc_metrics`.
    """
    st = statistics
    K = st.num_classes
    centered = st.means - st.global_mean  # (K, d)
    out = {
        "nc1": nc1_value if nc1_value is not None else nc1(st.sigma_w, st.sigma_b, K, nc1_variant,
                                                            centered_means=centered),
        "nc2_h": nc2(centered),
        "nc2_h_equinorm": equinorm(centered),
        "nc2_h_equiangular": equiangularity(centered),
    }
    if weight is not None:
        W = weight.to(dtype=torch.float64, device=centered.device)  # (K, d)
        out.update({
            "nc2_w": nc2(W),
            "nc2_w_equinorm": equinorm(W),
            "nc2_w_equiangular": equiangularity(W),
            "nc3": nc3(W, centered),
        })
        if nc4 is not None:
            out["nc4"] = nc4
    return {k: float(v) for k, v in out.items()}
