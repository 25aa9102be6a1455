"""Hessian of the UFM objective in (W, H, b): dense spectra, Lanczos, the symmetry null space.

Groundwork for the conditioning analysis: the full Hessian of f (README, "Conventions")
with respect to all parameters, flattened in the solver's layout (``UFMObjective.pack``:
W row-major, then H, then b), in float64.

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
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .._validation import Interval, InvalidParameterError, check_param
from ..losses import label_smoothing_cross_entropy
from ..problem import UFMProblem
from .solver import UFMObjective

__all__ = ["objective_single", "dense_hessian", "Spectrum", "spectrum", "symmetry_null_dim", "top_eigenvalues",
           "hessian_bytes", "DENSE_LIMIT_BYTES"]

#: default cap on the memory of a dense Hessian (P^2 float64 entries)
DENSE_LIMIT_BYTES = 2 * 1024**3


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


def _flat(problem: UFMProblem, W, H, b) -> torch.Tensor:
    return _layout(problem, W.device).pack(W[None], H[None], b[None])[0].to(torch.float64)


def hessian_bytes(problem: UFMProblem) -> int:
    """Memory of the dense float64 Hessian: P^2 * 8 bytes with P = Kd + dN + K."""
    P = _layout(problem).num_params
    return P * P * 8


def dense_hessian(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor,
                  max_bytes: int = DENSE_LIMIT_BYTES) -> torch.Tensor:
    """The full (P, P) Hessian of f at (W, H, b) in float64 (torch.func.hessian).

    Raises:
        InvalidParameterError: if the matrix would exceed ``max_bytes``, naming its size,
            before anything is allocated; use :func:`top_eigenvalues` (Lanczos) instead.
    """
    need = hessian_bytes(problem)
    if need > max_bytes:
        P = _layout(problem).num_params
        raise InvalidParameterError(
            f"The dense Hessian of this problem has P = {P} parameters and needs {need / 2**30:.2f} GiB "
            f"(> max_bytes = {max_bytes / 2**30:.2f} GiB); use top_eigenvalues (Lanczos) or raise max_bytes.")
    x = _flat(problem, W, H, b)
    layout = _layout(problem, x.device)
    Hess = torch.func.hessian(lambda v: objective_single(problem, v, layout))(x)  # (P, P)
    return (Hess + Hess.T) / 2


@dataclass
class Spectrum:
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


def spectrum(matrix: torch.Tensor, rtol: Optional[float] = None) -> Spectrum:
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
    return Spectrum(eigenvalues=ev, tol=tol, null_dim=int((np.abs(ev) <= tol).sum()),
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
    rot = 0 if trivial else d * (d - 1) // 2 - (d - K + 1) * (d - K) // 2
    return rot + (1 if problem.lambda_b == 0 else 0)


def top_eigenvalues(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, k: int = 20,
                    tol: float = 0.0) -> np.ndarray:
    """The ``k`` largest eigenvalues (ascending) by Lanczos (scipy ``eigsh``) on exact
    Hessian-vector products (forward-over-reverse autodiff); memory O(P)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    P = _layout(problem).num_params
    check_param("k", k, Interval("int", 1, P - 1, "both"), "top_eigenvalues")
    x = _flat(problem, W, H, b)
    layout = _layout(problem, x.device)
    grad = torch.func.grad(lambda v: objective_single(problem, v, layout))

    def hvp(v):
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=torch.float64, device=x.device)
        return torch.func.jvp(grad, (x,), (t,))[1].cpu().numpy()

    op = LinearOperator((P, P), matvec=hvp, dtype=np.float64)
    vals = eigsh(op, k=k, which="LA", tol=tol, return_eigenvectors=False)
    return np.sort(vals)
