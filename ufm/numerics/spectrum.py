"""Spectra of the UFM Hessians at numerical points: dense eigenvalues, Lanczos, the symmetry null space.

:func:`numeric_spectrum` gives the spectrum of each operator of ``ufm.theory.spectra``
(``logits``, ``features``, ``classifier``, ``full``) at a numerical point, from the dense
matrices of ``ufm.numerics.hessian`` or, past the memory limit, from Lanczos on exact
Hessian-vector products.

At a collapsed minimizer the Hessian has an exact null space from the rotational
symmetry W -> W Q^T, H -> Q H (Q orthogonal d x d): its dimension is that of the orbit,
dim O(d) - dim O(d - K + 1) = d(d-1)/2 - (d-K+1)(d-K)/2, since rotations that fix the
(K-1)-dimensional span of the ETF leave the point unchanged; with lambda_b = 0 the
constant shift b -> b + t 1 adds one more direction. At the trivial minimizer W = H = 0
the orbit is a point. :func:`symmetry_null_dim` gives this count;
:func:`spectrum` counts eigenvalues below a stated tolerance, so the two can be compared.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ufm._core.validation import Interval, InvalidParameterError, Options, UFMWarning, check_param
from ufm.numerics.hessian import (DENSE_LIMIT_BYTES, PARTS, _CHUNK_BYTES, _logit_hessians_rows, _too_large,
                                  dense_hessian, feature_hessian_blocks, hessian_vector_product, num_params,
                                  parts_for)
from ufm.problem import UFMProblem
from ufm.theory.keys import DEFINITIONS
from ufm.theory.spectra import Spectrum, condition_number, distinct, rotation_null_dim

__all__ = ["DenseSpectrum", "spectrum", "null_space", "symmetry_null_dim", "top_eigenvalues", "numeric_spectrum",
           "LanczosFallbackWarning"]


@dataclass
class DenseSpectrum:
    """Eigenvalues (ascending) and the split into a null space and its complement.

    ``null_dim`` counts eigenvalues with |lambda| <= ``tol``; ``condition_number`` is
    lambda_max / (smallest eigenvalue above ``tol``) on the complement of the null space;
    ``negative`` counts eigenvalues below -tol (0 at a minimizer).
    """

    eigenvalues: np.ndarray
    tol: float
    null_dim: int
    negative: int
    condition_number: float


def spectrum(matrix: torch.Tensor, rtol: Optional[float] = None) -> DenseSpectrum:
    """Eigen-decomposition of a symmetric matrix with a stated null-space tolerance.

    ``tol = rtol * max|lambda|``; the default ``rtol`` is 1e-10 for float64 and 1e-5
    for float32 (the thresholds scikit-learn uses to call an eigenvalue zero).
    """
    if rtol is None:
        rtol = 1e-10 if matrix.dtype == torch.float64 else 1e-5
    check_param("rtol", rtol, Interval("float", 0, 1, "neither"), "spectrum")
    ev = torch.linalg.eigvalsh(matrix).cpu().numpy()
    tol, null = null_space(ev, rtol)
    return DenseSpectrum(eigenvalues=ev, tol=tol, null_dim=int(null.sum()), negative=int((ev < -tol).sum()),
                         condition_number=condition_number(ev[~null]))


def null_space(ev: np.ndarray, rtol: float, scale: Optional[float] = None):
    """(tol, mask): the eigenvalues with |lambda| <= tol = rtol * max|lambda| (``scale`` instead of
    max|lambda| when given) form the null space. The one rule for numerical spectra."""
    scale = (float(np.abs(ev).max()) if ev.size else 0.0) if scale is None else scale
    tol = float(rtol * scale)
    return tol, np.abs(ev) <= tol


def symmetry_null_dim(problem: UFMProblem, trivial: bool) -> int:
    """Dimension of the exact null space of the full Hessian at a minimizer (module docstring).

    d(d-1)/2 - (d-K+1)(d-K)/2 for the rotation orbit of a collapsed minimizer (d >= K - 1),
    0 at W = H = 0, plus 1 when lambda_b = 0 (shift of b along the all-ones vector).
    """
    K, d = problem.K, problem.d
    if not trivial and d < K - 1:
        raise InvalidParameterError(f"The 'dim' parameter of symmetry_null_dim must be an int in the range "
                                    f"[K-1, inf) = [{K - 1}, inf) for a collapsed minimizer. Got {d} instead.")
    rot = 0 if trivial else rotation_null_dim(K, d)
    return rot + (1 if problem.lambda_b == 0 else 0)


def top_eigenvalues(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, k: int = 20,
                    tol: float = 0.0, parts=PARTS) -> np.ndarray:
    """The ``k`` largest eigenvalues (ascending) of the Hessian in ``parts`` by Lanczos
    (scipy ``eigsh``) on exact Hessian-vector products (forward-over-reverse autodiff);
    memory O(P). The Lanczos start vector is fixed (seeded), so results are reproducible."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    P = num_params(problem, parts)
    check_param("k", k, Interval("int", 1, P - 1, "both"), "top_eigenvalues")
    op = LinearOperator((P, P), matvec=hessian_vector_product(problem, W, H, b, parts), dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(P)  # a fixed start: the same eigenvalues bit for bit
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(vals)


class LanczosFallbackWarning(UFMWarning):
    """A dense Hessian would exceed the memory limit; only the top of the spectrum was computed."""


def _logit_eigenvalues(problem: UFMProblem, W, H, b):
    """Mean over samples of the sorted per-sample logit-Hessian eigenvalues, and the largest
    deviation of a sample from that mean; per-sample eigenvalues in chunks (bounded memory)."""
    total, lo, hi = 0.0, None, None
    rows = max(1, _CHUNK_BYTES // (8 * problem.K**2 * 4))
    for i in range(0, problem.N, rows):
        ev = torch.linalg.eigvalsh(_logit_hessians_rows(problem, W, H, b, i, i + rows))  # (rows, K), ascending
        total = total + ev.sum(0)
        lo = ev.amin(0) if lo is None else torch.minimum(lo, ev.amin(0))
        hi = ev.amax(0) if hi is None else torch.maximum(hi, ev.amax(0))
    mean = total / problem.N
    return mean.cpu().numpy(), float(torch.maximum(hi - mean, mean - lo).max())


def _too_large_for(problem: UFMProblem, definition: str, parts, max_bytes: int) -> Optional[str]:
    """None if the operator's dense eigenproblem fits in ``max_bytes``, else the reason (sizes named)."""
    if definition != "features":
        return _too_large(problem, parts, max_bytes)
    need = problem.N * problem.d**2 * 8 * 2  # the N blocks of d x d and their eigenvalue workspace
    if need <= max_bytes:
        return None
    return (f"has P = {problem.N * problem.d} parameters in {problem.N} blocks and would need about "
            f"{need / 2**30:.2f} GiB (> max_bytes = {max_bytes / 2**30:.2f} GiB)")


def _lanczos_spectrum(problem, W, H, b, definition, parts, reason, top_k, group_rtol) -> Spectrum:
    P = num_params(problem, parts)
    k = min(top_k, P - 1)
    warnings.warn(f"the dense {definition} Hessian {reason}: computing its top {k} eigenvalues by "
                  "Lanczos instead", LanczosFallbackWarning, stacklevel=3)
    values, mults = distinct(top_eigenvalues(problem, W, H, b, k=k, parts=parts), group_rtol)
    return Spectrum(problem=problem, definition=definition, source="numeric", eigenvalues=values,
                    multiplicities=mults, null_dim=None, condition_number=None, complete=False,
                    details={"method": "lanczos", "num_params": P})


def _split_null(problem, definition, ev: np.ndarray, null_rtol, group_rtol, details) -> Spectrum:
    """The Spectrum of all eigenvalues ``ev``: |lambda| <= null_rtol max|lambda| is the null space."""
    ev = np.sort(ev)
    tol, null = null_space(ev, null_rtol)
    rest = ev[~null]
    details["negative"] = int((ev < -tol).sum())
    values, mults = distinct(rest, group_rtol, scale=float(np.abs(ev).max()))
    if null.any():
        values, mults = [0.0] + values, [int(null.sum())] + mults
    return Spectrum(problem=problem, definition=definition, source="numeric", eigenvalues=values,
                    multiplicities=mults, null_dim=int(null.sum()), condition_number=condition_number(rest),
                    null_tol=tol, details=details)


def numeric_spectrum(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, definition: str,
                     null_rtol: float = 1e-7, group_rtol: float = 1e-6, max_bytes: int = DENSE_LIMIT_BYTES,
                     top_k: int = 20) -> Spectrum:
    """The spectrum of one operator (``ufm.theory.spectra``) at a numerical point (W, H, b).

    Eigenvalues come from dense matrices built by autodiff (``torch.func``) and
    ``eigvalsh``. ``logits``: the per-sample Hessians are equal at a collapsed point, so the
    eigenvalues reported are their mean over samples (sorted), with the largest deviation of
    a sample in ``details["sample_spread"]``. ``features``: the N per-sample blocks.
    ``classifier``, ``full``: the dense Hessian in W, or in (W, H[, b]). When the matrix (for
    ``features``, its N blocks) would need more than ``max_bytes``, the ``top_k`` largest
    eigenvalues come from Lanczos instead
    (a LanczosFallbackWarning says so; the spectrum is then partial: no null space, no
    condition number; and single-vector Lanczos may report a repeated eigenvalue fewer times
    than its multiplicity, which at an exactly symmetric minimizer is large).

    Null space: |lambda| <= null_tol = ``null_rtol`` * max|lambda| (reported). Distinct values:
    sorted eigenvalues closer than ``group_rtol`` * max|lambda| are grouped.
    """
    check_param("definition", definition, Options(DEFINITIONS), "numeric_spectrum")
    check_param("null_rtol", null_rtol, Interval("float", 0, 1, "neither"), "numeric_spectrum")
    check_param("group_rtol", group_rtol, Interval("float", 0, 1, "neither"), "numeric_spectrum")
    details = {}
    if definition == "logits":
        ev, details["sample_spread"] = _logit_eigenvalues(problem, W, H, b)
        return _split_null(problem, definition, ev, null_rtol, group_rtol, details)
    parts = parts_for(problem, definition)
    reason = _too_large_for(problem, definition, parts, max_bytes)
    if reason:
        return _lanczos_spectrum(problem, W, H, b, definition, parts, reason, top_k, group_rtol)
    if definition == "features":
        ev = torch.linalg.eigvalsh(feature_hessian_blocks(problem, W, H, b)).reshape(-1).cpu().numpy()
    else:
        ev = torch.linalg.eigvalsh(dense_hessian(problem, W, H, b, max_bytes=max_bytes, parts=parts)).cpu().numpy()
    return _split_null(problem, definition, ev, null_rtol, group_rtol, details)
