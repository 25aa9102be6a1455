"""Neural-collapse metrics NC1-NC4 as pure functions of class statistics (the passes over
features that gather them are in ``ufm.metrics.accumulators``).

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
* ``nc3`` = || W/||W||_F - M/||M||_F ||_F with M the centered class means: the self-duality
  distance of Papyan et al. 2020, who plot its square (Zhu et al. 2021 define NC3 otherwise, as
  || W M^T/||W M^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F: :func:`nc3_product`);
* ``nc4`` = fraction of samples whose nearest-class-center decision
  argmin_k ||h - mu_k|| differs from the classifier's argmax_k (W h + b)_k (ties go
  to the lowest class index in both).

These are the ``"ufm"`` convention. The numbers of other papers' code (the global mean over the
samples, no 1/K, the sample std, centred W, other NC3s) are named conventions, documented in
``ufm.metrics.conventions`` and chosen with ``convention=`` in :func:`measures`,
:func:`~ufm.metrics.accumulators.nc_metrics` and :class:`~ufm.metrics.accumulators.TwoPassNC`.

This module holds the pure measures: functions of class statistics (and of the classifier),
batched over leading dimensions, float64 in and out. The streaming passes that produce the
statistics from features, and :func:`~ufm.metrics.accumulators.nc_metrics`, are in
``ufm.metrics.accumulators``. Metrics that are undefined (e.g. Sigma_B = 0 at the trivial
solution W = H = 0) are NaN.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import torch

from ufm._core.validation import InvalidParameterError, Options, check_param
from ufm.metrics.conventions import NCConvention, get_convention

__all__ = [
    "ClassStatistics",
    "between",
    "between_span",
    "nc1_from_span",
    "measures",
    "nc1",
    "nc2",
    "nc3",
    "nc3_product",
    "nc1_variant_of",
    "equinorm",
    "equiangularity",
    "class_statistics_balanced",
    "nc1_rounding_floor",
    "fingerprint",
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
        return fingerprint(self.means)


def fingerprint(means: torch.Tensor) -> str:
    """Hash of the class means (as float64 bytes), to check that two passes agree."""
    return hashlib.sha1(means.detach().to(torch.float64).cpu().contiguous().numpy().tobytes()).hexdigest()


def between(means: torch.Tensor, counts: Optional[torch.Tensor] = None):
    """(global mean (..., d), centered means (..., K, d), Sigma_B (..., d, d)) of class means (..., K, d).

    The global mean is the mean of the class means, or with ``counts`` (..., K) the mean over the
    samples, sum_k n_k mu_k / N (conventions ``"samples"``, ``ufm.metrics.conventions``).
    """
    if counts is None:
        global_mean = means.mean(-2)  # (..., d)
    else:
        n = counts.to(means.dtype).unsqueeze(-1)  # (..., K, 1)
        global_mean = (n * means).sum(-2) / n.sum(-2)  # (..., d)
    centered = means - global_mean.unsqueeze(-2)  # (..., K, d)
    sigma_b = centered.transpose(-1, -2) @ centered / means.shape[-2]  # (..., d, d)
    return global_mean, centered, sigma_b


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


def equinorm(vectors: torch.Tensor, correction: int = 0) -> torch.Tensor:
    """std_k ||v_k|| / mean_k ||v_k|| (Papyan et al. 2020): the population std (``correction=0``)
    or the sample std (``correction=1``, sqrt(K/(K-1)) times larger, as ``torch.std``)."""
    norms = torch.linalg.vector_norm(vectors.to(torch.float64), dim=-1)  # (..., K)
    return norms.std(-1, correction=correction) / norms.mean(-1)


def equiangularity(vectors: torch.Tensor) -> torch.Tensor:
    """mean over j != k of |cos(v_j, v_k) + 1/(K-1)| (Papyan et al. 2020)."""
    V = vectors.to(torch.float64)
    K = V.shape[-2]
    U = V / torch.linalg.vector_norm(V, dim=-1, keepdim=True)
    C = U @ U.transpose(-1, -2) + 1.0 / (K - 1)  # (..., K, K)
    off = ~torch.eye(K, dtype=torch.bool, device=V.device)
    return C.abs()[..., off].mean(-1)


def nc3(weight: torch.Tensor, centered_means: torch.Tensor) -> torch.Tensor:
    """|| W/||W||_F - M/||M||_F ||_F, ``weight`` and ``centered_means`` (..., K, d).

    The self-duality distance of Papyan et al. 2020 (who report its square); not Zhu et al.'s
    NC3, which is :func:`nc3_product`."""
    W = weight.to(torch.float64)
    M = centered_means.to(torch.float64)
    Wn = W / torch.linalg.matrix_norm(W).unsqueeze(-1).unsqueeze(-1)
    Mn = M / torch.linalg.matrix_norm(M).unsqueeze(-1).unsqueeze(-1)
    return torch.linalg.matrix_norm(Wn - Mn)


def nc3_product(weight: torch.Tensor, centered_means: torch.Tensor) -> torch.Tensor:
    """|| W M^T/||W M^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F, ``weight`` and ``centered_means`` (..., K, d).

    NC3 as Zhu et al., A Geometric Analysis of Neural Collapse with Unconstrained Features, 2021
    define it (and Zhou et al. 2022, on centred W): conventions ``"zhu2021"``, ``"zhou2022"``."""
    W = weight.to(torch.float64)
    M = centered_means.to(torch.float64)
    P = W @ M.transpose(-1, -2)  # (..., K, K)
    P = P / torch.linalg.matrix_norm(P).unsqueeze(-1).unsqueeze(-1)
    return torch.linalg.matrix_norm(P - _etf_gram(W.shape[-2], device=W.device))


def class_statistics_balanced(H: torch.Tensor, per_class: int):
    """Batched class statistics of UFM features ``H (..., d, N)`` with column i in class i // n.

    Returns (means (..., K, d), centered means, sigma_w (..., d, d), sigma_b (..., d, d)),
    the same quantities as :class:`NCAccumulator` (direct two-pass form, float64).
    """
    H = H.to(torch.float64)
    N = H.shape[-1]
    K = N // per_class
    Hk = H.reshape(*H.shape[:-1], K, per_class)  # (..., d, K, n)
    means = Hk.mean(-1).transpose(-1, -2)  # (..., K, d)
    R = (Hk - means.transpose(-1, -2).unsqueeze(-1)).reshape(*H.shape[:-1], N)  # (..., d, N)
    sigma_w = R @ R.transpose(-1, -2) / N  # (..., d, d)
    _, centered, sigma_b = between(means)
    return means, centered, sigma_w, sigma_b


def nc1_rounding_floor(H: torch.Tensor, per_class: int) -> torch.Tensor:
    """The float64 floor of NC1 at UFM features ``H (..., d, N)`` (column i in class i // n).

    NC1 reads Sigma_W through v^T Sigma_W v on the eigen-directions v of Sigma_B, and two
    roundings bound how small a computed value can be: that of Sigma_W's entries, about machine
    epsilon times the within-class scatter orthogonal to the span of the class means (which NC1
    does not see, but which can be far larger than the scatter inside it), and that of the
    features themselves, whose deviations cannot resolve below eps times their spread about the
    global mean. The floor is both summed as NC1 sums them, (eps tr Sigma_W,perp + eps^2 tr
    Sigma_T) sum_j 1/lambda_j / K, with Sigma_T the scatter about the global mean. A measured NC1
    within a small factor of it is rounding, not collapse. Returns (...,)."""
    H = H.to(torch.float64)
    N = H.shape[-1]
    K = N // per_class
    Hk = H.reshape(*H.shape[:-1], K, per_class)  # (..., d, K, n)
    means = Hk.mean(-1).transpose(-1, -2)  # (..., K, d)
    R = (Hk - means.transpose(-1, -2).unsqueeze(-1)).reshape(*H.shape[:-1], N)  # (..., d, N)
    _, centered, sigma_b = between(means)
    lam, V, keep = between_span(sigma_b, K, centered)  # (..., r), (..., d, r), (..., r)
    R_perp = R - V @ (V.transpose(-1, -2) @ R)  # (..., d, N): the deviations orthogonal to the span
    perp = (R_perp ** 2).sum((-1, -2)) / N  # tr Sigma_W,perp, (...,)
    total = ((H - means.mean(-2).unsqueeze(-1)) ** 2).sum((-1, -2)) / N  # tr Sigma_T, (...,)
    inverse = torch.where(keep, 1 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam)).sum(-1)
    eps = torch.finfo(torch.float64).eps
    return (eps * perp + eps ** 2 * total) * inverse / K


def nc1_variant_of(convention: NCConvention, nc1_variant: str, caller: str) -> str:
    """The NC1 variant that ``convention`` computes: ``nc1_variant`` under ``"ufm"``; each other
    convention fixes its own 1/K, and ``nc1_variant="unnormalized"`` with one is refused."""
    check_param("nc1_variant", nc1_variant, Options(NC1_VARIANTS), caller)
    if convention.name == "ufm":
        return nc1_variant
    if nc1_variant != "normalized":
        raise InvalidParameterError(
            f"The 'nc1_variant' parameter of {caller} must be 'normalized' with convention "
            f"{convention.name!r}, which fixes its own NC1 factor; use convention='ufm' for "
            f"'unnormalized'. Got {nc1_variant!r} instead.", param="nc1_variant", value=nc1_variant,
            expected="'normalized'")
    return "normalized" if convention.nc1_per_class else "unnormalized"


def measures(statistics: ClassStatistics, weight: Optional[torch.Tensor] = None, *, nc4: Optional[float] = None,
             nc1_variant: str = "normalized", nc1_value: Optional[float] = None, convention: str = "ufm") -> dict:
    """The NC measures of accumulated ``statistics`` (and classifier ``weight (K, d)``).

    The one assembly of the measures behind :func:`nc_metrics`, shared by the training loop's
    streaming evaluation. ``nc4`` is the value of an :class:`NC4Accumulator` pass (it needs
    the features again); it is reported as given, as is ``nc1_value`` (from :class:`TwoPassNC`,
    whose statistics carry no sigma_w; it must then be of the same ``convention``). ``convention``
    names one of ``ufm.metrics.conventions.CONVENTIONS`` (the global mean, NC1's 1/K, the
    equinorm's std, centred W, the NC3; ``nc1_variant`` as :func:`nc1_variant_of`). Returns a dict
    of Python floats, keys as in :func:`nc_metrics`.
    """
    conv = get_convention(convention, "measures")
    variant = nc1_variant_of(conv, nc1_variant, "measures")
    st = statistics
    K = st.num_classes
    if conv.global_mean == "class means":
        centered, sigma_b = st.means - st.global_mean, st.sigma_b  # (K, d), (d, d)
    else:
        _, centered, sigma_b = between(st.means, st.counts)
    value = nc1_value if nc1_value is not None else nc1(st.sigma_w, sigma_b, K, variant, centered_means=centered)
    c = conv.equinorm_correction
    if weight is None:
        out = {"nc1": value, "nc2_h": nc2(centered), "nc2_h_equinorm": equinorm(centered, c),
               "nc2_h_equiangular": equiangularity(centered)}
    else:
        W = weight.to(dtype=torch.float64, device=centered.device)  # (K, d)
        both = torch.stack([centered, W])  # (2, K, d): the measures are batched over the leading dimension
        g, n, a = nc2(both), equinorm(both, c), equiangularity(both)  # (2,) each
        Wc = W - W.mean(0) if conv.center_w else W  # (K, d): the rows NC2 (Gram) and NC3 read
        out = {"nc1": value, "nc2_h": g[0], "nc2_h_equinorm": n[0], "nc2_h_equiangular": a[0],
               "nc2_w": g[1] if Wc is W else nc2(Wc), "nc2_w_equinorm": n[1], "nc2_w_equiangular": a[1],
               "nc3": _nc3_of(conv, Wc, centered)}
        if nc4 is not None:
            out["nc4"] = nc4
    return {k: float(v) for k, v in out.items()}


def _nc3_of(convention: NCConvention, W: torch.Tensor, centered: torch.Tensor) -> torch.Tensor:
    """The NC3 that ``convention`` names, of classifier rows ``W`` and centred means (K, d)."""
    if convention.nc3 == "product":
        return nc3_product(W, centered)
    value = nc3(W, centered)
    return value ** 2 if convention.nc3 == "squared difference" else value
