"""Hessian of the UFM objective in (W, H, b): dense spectra, Lanczos, the symmetry null space.

The numerical side of the conditioning analysis (README, "Conditioning"): Hessians of f in
any of W, H, b (``parts``), flattened in the solver's layout (``UFMObjective.pack``: W
row-major, then H, then b), in float64; :func:`numeric_spectrum` gives the spectrum of each
operator of ``ufm.theory.spectra`` at a numerical point, dense or (past the memory limit) by
Lanczos.

At a collapsed minimizer the Hessian has an exact null space from the rotational
symmetry W -> W Q^T, H -> Q H (Q orthogonal d x d): its dimension is that of the orbit,
dim O(d) - dim O(d - K + 1) = d(d-1)/2 - (d-K+1)(d-K)/2, since rotations that fix the
(K-1)-dimensional span of the ETF leave the point unchanged; with lambda_b = 0 the
constant shift b -> b + t 1 adds one more direction. At the trivial minimizer W = H = 0
the orbit is a point. :func:`symmetry_null_dim` gives this count;
:func:`spectrum` counts eigenvalues below a stated tolerance, so the two can be compared.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .._validation import Interval, InvalidParameterError, Options, UFMWarning, check_param
from ..losses import label_smoothing_cross_entropy, smoothed_targets
from ..problem import UFMProblem
from ..theory.spectra import DEFINITIONS, Spectrum, distinct, rotation_null_dim
from .solver import UFMObjective

__all__ = ["objective_single", "dense_hessian", "DenseSpectrum", "spectrum", "symmetry_null_dim", "top_eigenvalues",
           "hessian_bytes", "dense_peak_bytes", "DENSE_LIMIT_BYTES", "logit_hessians", "feature_hessian_blocks", "numeric_spectrum",
           "LanczosFallbackWarning"]

#: default cap on the memory of a dense Hessian (P^2 float64 entries)
DENSE_LIMIT_BYTES = 4 * 1024**3
#: peak memory of building and decomposing a dense Hessian, in units of the matrix itself
#: (chunked reverse-over-reverse build, the symmetrized copy, eigvalsh's workspace): 2.0-2.1
#: measured at P = 4,110 and 10,010 (benchmarks/README.md); 3 leaves a margin
DENSE_PEAK_FACTOR = 3
#: working memory of one chunk (of Hessian rows, or of per-sample Hessians)
_CHUNK_BYTES = 64 * 1024**2


def _layout(problem: UFMProblem, device=None) -> UFMObjective:
    """The solver's flat parameter layout for one problem (``pack``, ``unpack``, ``num_params``)."""
    return UFMObjective([problem], dtype=torch.float64, device=device or "cpu")


def objective_single(problem: UFMProblem, x: torch.Tensor, layout: UFMObjective = None) -> torch.Tensor:
    """f at the flat parameter vector ``x (P,)``, written with ``ufm.losses`` (autograd-friendly).

    ``layout`` (from the solver, for this problem) may be passed to avoid rebuilding it per call.
    """
    p = problem
    layout = layout or _layout(p, x.device)
    W, H, b = (t[0] for t in layout.unpack(x[None]))  # (K, d), (d, N), (K,)
    y = layout.labels  # (N,)
    data = label_smoothing_cross_entropy((W @ H + b[:, None]).T, y, p.alpha)
    return data + p.lambda_w / 2 * (W * W).sum() + p.lambda_h / 2 * (H * H).sum() + p.lambda_b / 2 * (b * b).sum()


PARTS = ("W", "H", "b")


def _parts_for(problem: UFMProblem, definition: str):
    """The variables of an operator: ``classifier`` W, ``features`` H, ``full`` (W, H) and b
    when lambda_b > 0 (README, "Conditioning")."""
    return {"classifier": ("W",), "features": ("H",),
            "full": ("W", "H", "b") if problem.lambda_b > 0 else ("W", "H"), "all": PARTS}[definition]


def _restricted(problem: UFMProblem, W, H, b, parts):
    """(x0, f) with x0 the flat vector of the selected ``parts`` of (W, H, b) (in the
    solver's order) and f(x) the objective with the other parts held at their values."""
    layout = _layout(problem, W.device)
    full = layout.pack(W[None], H[None], b[None])[0].to(torch.float64)
    a, m, _ = layout.sizes
    slices = {"W": slice(0, a), "H": slice(a, a + m), "b": slice(a + m, layout.num_params)}
    index = torch.cat([torch.arange(layout.num_params)[slices[p]] for p in PARTS if p in parts]).to(full.device)

    def f(x):
        return objective_single(problem, full.index_copy(0, index, x), layout)

    return full[index].clone(), f


def _num_params(problem: UFMProblem, parts) -> int:
    sizes = dict(zip(PARTS, _layout(problem).sizes))
    return sum(sizes[p] for p in parts)


def hessian_bytes(problem: UFMProblem, parts=PARTS) -> int:
    """Memory of the dense float64 Hessian in ``parts``: P^2 * 8 bytes (P = Kd + dN + K for all)."""
    P = _num_params(problem, parts)
    return P * P * 8


def dense_peak_bytes(problem: UFMProblem, parts=PARTS) -> int:
    """Estimated peak memory of :func:`dense_hessian` and its eigendecomposition:
    DENSE_PEAK_FACTOR times the matrix."""
    return DENSE_PEAK_FACTOR * hessian_bytes(problem, parts)


def _too_large(problem: UFMProblem, parts, max_bytes: int) -> Optional[str]:
    """None if a dense Hessian fits in ``max_bytes``, else a sentence naming the sizes."""
    need = dense_peak_bytes(problem, parts)
    if need <= max_bytes:
        return None
    return (f"has P = {_num_params(problem, parts)} parameters and would need about {need / 2**30:.2f} GiB "
            f"(the matrix, {hessian_bytes(problem, parts) / 2**30:.2f} GiB, and working copies; > max_bytes = "
            f"{max_bytes / 2**30:.2f} GiB)")


def dense_hessian(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor,
                  max_bytes: int = DENSE_LIMIT_BYTES, parts=PARTS) -> torch.Tensor:
    """The (P, P) Hessian of f in ``parts`` (default all of W, H, b) at (W, H, b), float64:
    reverse-over-reverse autodiff (``torch.func.jacrev`` of the gradient) in chunks of rows,
    symmetrized.

    Raises:
        InvalidParameterError: if the estimated peak memory (:func:`dense_peak_bytes`) exceeds
            ``max_bytes``, naming the sizes, before anything is allocated; use
            :func:`top_eigenvalues` (Lanczos) instead.
    """
    reason = _too_large(problem, parts, max_bytes)
    if reason:
        raise InvalidParameterError(f"The dense Hessian of this problem {reason}; use top_eigenvalues "
                                    "(Lanczos) or raise max_bytes.")
    x, f = _restricted(problem, W, H, b, parts)
    P = x.numel()
    chunk = max(1, min(P, _CHUNK_BYTES // (8 * 8 * P)))  # rows per reverse pass, bounded working memory
    Hess = torch.func.jacrev(torch.func.grad(f), chunk_size=chunk)(x)  # (P, P)
    sym = Hess.T.clone()
    return Hess.add_(sym).mul_(0.5)


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
    tol = float(rtol * np.abs(ev).max()) if ev.size else 0.0
    positive = ev[ev > tol]
    cond = float(positive[-1] / positive[0]) if positive.size else math.nan
    return DenseSpectrum(eigenvalues=ev, tol=tol, null_dim=int((np.abs(ev) <= tol).sum()),
                    negative=int((ev < -tol).sum()), condition_number=cond)


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

    P = _num_params(problem, parts)
    check_param("k", k, Interval("int", 1, P - 1, "both"), "top_eigenvalues")
    x, f = _restricted(problem, W, H, b, parts)
    grad = torch.func.grad(f)

    def hvp(v):
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=torch.float64, device=x.device)
        return torch.func.jvp(grad, (x,), (t,))[1].cpu().numpy()

    op = LinearOperator((P, P), matvec=hvp, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(P)  # a fixed start: the same eigenvalues bit for bit
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(vals)


class LanczosFallbackWarning(UFMWarning):
    """A dense Hessian would exceed the memory limit; only the top of the spectrum was computed."""


def logit_hessians(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Hessians of the loss in the logits at (W, H, b), ``(N, K, K)`` (torch.func)."""
    return _logit_hessians_rows(problem, W, H, b, 0, problem.N)


def _logit_hessians_rows(problem, W, H, b, start, stop) -> torch.Tensor:
    """Per-sample logit Hessians of samples start..stop-1, ``(rows, K, K)``."""
    Z = (W.double() @ H[:, start:stop].double() + b.double()[:, None]).T  # (rows, K)
    T = _targets(problem, Z.device)[start:stop]  # (rows, K)

    def loss(z, t):  # -sum_j t_j log softmax(z)_j, as ufm.losses (one_hot cannot run under vmap)
        return -(t * torch.log_softmax(z, dim=-1)).sum()

    return _chunked(torch.func.vmap(torch.func.hessian(loss)), Z, T, problem.K)



def _chunked(fn, X, T, dim):
    """fn over the rows of (X, T) in chunks of bounded memory (each row makes a dim x dim matrix)."""
    rows = max(1, _CHUNK_BYTES // (8 * dim * dim * 4))
    return torch.cat([fn(X[i:i + rows], T[i:i + rows]) for i in range(0, X.shape[0], rows)])


def _targets(problem: UFMProblem, device) -> torch.Tensor:
    y = torch.arange(problem.N, device=device) // problem.n
    return smoothed_targets(y, problem.K, problem.alpha, dtype=torch.float64)


def feature_hessian_blocks(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The Hessian of f in H, ``(N, d, d)``: f is a sum of one term per column h_i of H,
    so this Hessian is block diagonal with these N blocks (torch.func, per sample)."""
    W64, b64 = W.double(), b.double()
    T = _targets(problem, H.device)  # (N, K)
    N, lh = problem.N, problem.lambda_h

    def term(h, t):
        return -(t * torch.log_softmax(W64 @ h + b64, dim=-1)).sum() / N + lh / 2 * (h * h).sum()

    return _chunked(torch.func.vmap(torch.func.hessian(term)), H.double().T, T, problem.d)


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
        total, lo, hi = 0.0, None, None
        rows = max(1, _CHUNK_BYTES // (8 * problem.K**2 * 4))
        for i in range(0, problem.N, rows):  # bounded memory: per-sample eigenvalues, chunk by chunk
            ev = torch.linalg.eigvalsh(_logit_hessians_rows(problem, W, H, b, i, i + rows))  # (rows, K), ascending
            total = total + ev.sum(0)
            lo = ev.amin(0) if lo is None else torch.minimum(lo, ev.amin(0))
            hi = ev.amax(0) if hi is None else torch.maximum(hi, ev.amax(0))
        mean = total / problem.N
        details["sample_spread"] = float(torch.maximum(hi - mean, mean - lo).max())
        ev = mean.cpu().numpy()
    else:
        parts = _parts_for(problem, definition)
        # features: N blocks of d x d (the H-Hessian is block diagonal), others: one dense matrix
        if definition == "features":
            need = problem.N * problem.d**2 * 8 * 2  # the blocks and their eigenvalue workspace
            reason = None if need <= max_bytes else (
                f"has P = {problem.N * problem.d} parameters in {problem.N} blocks and would need about "
                f"{need / 2**30:.2f} GiB (> max_bytes = {max_bytes / 2**30:.2f} GiB)")
        else:
            reason = _too_large(problem, parts, max_bytes)
        if reason:
            P = _num_params(problem, parts)
            k = min(top_k, P - 1)
            warnings.warn(f"the dense {definition} Hessian {reason}: computing its top {k} eigenvalues by "
                          "Lanczos instead", LanczosFallbackWarning, stacklevel=2)
            top = top_eigenvalues(problem, W, H, b, k=k, parts=parts)
            values, mults = distinct(top, group_rtol)
            return Spectrum(problem=problem, definition=definition, source="numeric", eigenvalues=values,
                            multiplicities=mults, null_dim=None, condition_number=None, complete=False,
                            details={"method": "lanczos", "num_params": P})
        if definition == "features":
            ev = torch.linalg.eigvalsh(feature_hessian_blocks(problem, W, H, b)).reshape(-1).cpu().numpy()
        else:
            ev = torch.linalg.eigvalsh(dense_hessian(problem, W, H, b, max_bytes=max_bytes, parts=parts)).cpu().numpy()
    ev = np.sort(ev)
    scale = float(np.abs(ev).max())
    tol = null_rtol * scale
    null = np.abs(ev) <= tol
    rest = ev[~null]
    details["negative"] = int((ev < -tol).sum())
    values, mults = distinct(rest, group_rtol, scale=scale)
    if null.any():
        values, mults = [0.0] + values, [int(null.sum())] + mults
    cond = float(rest.max() / rest.min()) if rest.size and rest.min() > 0 else math.nan
    return Spectrum(problem=problem, definition=definition, source="numeric", eigenvalues=values,
                    multiplicities=mults, null_dim=int(null.sum()), condition_number=cond, null_tol=tol,
                    details=details)
