"""Hessians of the UFM objective in (W, H, b) by autodiff, within a memory budget.

The numerical side of the conditioning analysis (README, "Conditioning"): Hessians of f in
any of W, H, b (``parts``), flattened in the solver's layout (``UFMObjective.pack``: W
row-major, then H, then b), in float64: dense (chunked reverse-over-reverse), per-sample
blocks (the H-Hessian and the logit Hessians), and exact Hessian-vector products for Lanczos.
Their spectra are in ``ufm.numerics.spectrum``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ufm._core.validation import InvalidParameterError
from ufm.losses import label_smoothing_cross_entropy, smoothed_targets
from ufm.numerics.objective import UFMObjective
from ufm.problem import UFMProblem

__all__ = ["objective_single", "dense_hessian", "hessian_vector_product", "hessian_bytes", "dense_peak_bytes",
           "DENSE_LIMIT_BYTES", "PARTS", "parts_for", "num_params", "logit_hessians", "feature_hessian_blocks"]

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


def parts_for(problem: UFMProblem, definition: str):
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


def num_params(problem: UFMProblem, parts) -> int:
    sizes = dict(zip(PARTS, _layout(problem).sizes))
    return sum(sizes[p] for p in parts)


def hessian_bytes(problem: UFMProblem, parts=PARTS) -> int:
    """Memory of the dense float64 Hessian in ``parts``: P^2 * 8 bytes (P = Kd + dN + K for all)."""
    P = num_params(problem, parts)
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
    return (f"has P = {num_params(problem, parts)} parameters and would need about {need / 2**30:.2f} GiB "
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


def hessian_vector_product(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, parts=PARTS):
    """``hvp(v)``: the exact product of the Hessian in ``parts`` at (W, H, b) with a vector ``v (P,)``
    (numpy in, numpy out), by forward-over-reverse autodiff; memory O(P)."""
    x, f = _restricted(problem, W, H, b, parts)
    grad = torch.func.grad(f)

    def hvp(v):
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=torch.float64, device=x.device)
        return torch.func.jvp(grad, (x,), (t,))[1].cpu().numpy()

    return hvp
