"""Numerical solutions measured and confronted with the closed form (``ufm solve``, ``ufm verify``).

Error conventions (README, "Verification"):

* ``logit_gap``, ``p_true``, ``w_norm``, ``h_norm``, ``objective``: relative error
  |numeric - closed| / |closed| (absolute error where the closed value is 0, i.e. the
  norms and the gap of a trivial solution);
* ``bias``: distance of b to the set of optimal biases ({0} if lambda_b > 0, else
  {b0 1}), divided by max(1, Delta*) since b adds to the logits;
* ``nc1``, ``nc2_h``, ``nc2_w``, ``nc3``, ``nc4``: the closed form has all of them 0, so
  the error is the measured value itself; they are undefined (NaN) at the trivial
  solution W = H = 0 and not checked there;
* ``orbit``: min over orthogonal Q of ||(W - W* Q^T, H - Q H*, b - b*)|| / ||(W*, H*)||
  (Procrustes), the distance to the orbit of minimizers.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterable, List, Optional, Sequence, Tuple

import torch

from ._validation import Interval, InvalidParameterError, check_param
from .metrics.nc import nc_metrics
from .numerics.solver import SolveResult, solve
from .problem import UFMProblem
from .theory.closed_form import ClosedForm, closed_form, explicit_minimizer

__all__ = ["measure", "compare", "worst_error", "orbit_distance", "orbit_distances", "default_grid", "verify", "group_by_shape",
           "CHECKED", "NC_CHECKED"]

CHECKED = ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "bias")
NC_CHECKED = ("nc1", "nc2_h", "nc2_w", "nc3", "nc4")


def measure(result: SolveResult, i: int, nc1_variant: str = "normalized") -> dict:
    """Quantities of configuration ``i`` of a solve, comparable with :class:`ClosedForm`
    (NC metrics as :func:`ufm.nc_metrics`, with ``nc1_variant``)."""
    p = result.problems[i]
    W, H, b = result.W[i].double(), result.H[i].double(), result.b[i].double()  # (K, d), (d, N), (K,)
    y = torch.arange(p.N, device=H.device) // p.n  # (N,)
    Z = W @ H + b[:, None]  # (K, N)
    idx = torch.arange(p.N, device=H.device)
    z_true = Z[y, idx]  # (N,)
    z_off = (Z.sum(0) - z_true) / (p.K - 1)  # (N,)
    P = torch.softmax(Z, dim=0)  # (K, N)
    p_true = P[y, idx]
    bias_dist = torch.linalg.vector_norm(b if p.lambda_b > 0 else b - b.mean())
    out = {
        "logit_gap": float((z_true - z_off).mean()),
        "p_true": float(p_true.mean()),
        "p_off": float(((1 - p_true) / (p.K - 1)).mean()),
        "w_norm": float(torch.linalg.vector_norm(W, dim=1).mean()),
        "h_norm": float(torch.linalg.vector_norm(H, dim=0).mean()),
        "objective": float(result.objective[i]),
        "bias_distance": float(bias_dist),
        "grad_norm": float(result.grad_norm[i]),
        "steps": int(result.steps[i]),
        "converged": bool(result.converged[i]),
        "status": result.status[i],
    }
    out.update(nc_metrics(H.T, y, W, b, num_classes=p.K, nc1_variant=nc1_variant))
    if p.closed_form_applies:
        out["orbit"] = orbit_distance(p, W, H, b)
    return out


def orbit_distance(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> float:
    """Relative distance of (W, H, b) to the orbit {(W* Q^T, Q H*, b*)} of exact minimizers."""
    Ws, Hs, _ = explicit_minimizer(problem, dtype=torch.float64, device=W.device)
    lambda_b = torch.tensor([problem.lambda_b], dtype=torch.float64, device=W.device)
    return float(orbit_distances(Ws[None], Hs[None], W[None], H[None], b[None], lambda_b)[0])


def orbit_distances(Ws: torch.Tensor, Hs: torch.Tensor, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor,
                    lambda_b: torch.Tensor) -> torch.Tensor:
    """Batched :func:`orbit_distance`: (B,) distances of (W, H, b) (B, K, d), (B, d, N), (B, K) to
    the orbits of (Ws, Hs, b*), relative to ||(Ws, Hs)|| (absolute where that is 0); b* = 0 where
    lambda_b (B,) > 0, else the line b0 1. Procrustes: the optimal Q maximizes <Q, W^T Ws + H Hs^T>."""
    A = W.transpose(1, 2) @ Ws + H @ Hs.transpose(1, 2)  # (B, d, d)
    U, _, Vh = torch.linalg.svd(A)
    Q = U @ Vh
    bias = torch.where(lambda_b[:, None] > 0, b, b - b.mean(1, keepdim=True))
    dist2 = ((W - Ws @ Q.transpose(1, 2)) ** 2).sum((1, 2)) + ((H - Q @ Hs) ** 2).sum((1, 2)) + (bias ** 2).sum(1)
    scale = torch.sqrt((Ws ** 2).sum((1, 2)) + (Hs ** 2).sum((1, 2)))
    return torch.sqrt(dist2) / torch.where(scale > 0, scale, torch.ones_like(scale))


def compare(problem: UFMProblem, measured: dict, cf: Optional[ClosedForm] = None) -> dict:
    """Errors of ``measured`` (from :func:`measure`) against the closed form ``cf`` of
    ``problem`` (computed if not given); definitions in the module docstring."""
    cf = closed_form(problem) if cf is None else cf
    err = {}
    for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective"):
        ref = getattr(cf, k)
        err[k] = abs(measured[k] - ref) / abs(ref) if ref != 0 else abs(measured[k])
    err["bias"] = measured["bias_distance"] / max(1.0, cf.logit_gap)
    for k in NC_CHECKED:
        err[k] = float("nan") if cf.trivial else abs(measured[k])
    if "orbit" in measured:
        err["orbit"] = measured["orbit"]
    return err


def worst_error(errors: dict) -> float:
    """The largest checked error: CHECKED, the NC metrics where defined, and the orbit distance."""
    return max(errors[k] for k in CHECKED + NC_CHECKED + ("orbit",) if k in errors and not math.isnan(errors[k]))


def default_grid(per_class: int = 10, seeds: Sequence[int] = (0, 1),
                 classes: Sequence[int] = (3, 5, 10)) -> List[Tuple[UFMProblem, int]]:
    """The grid of ``ufm verify``: K in ``classes`` (default {3, 5, 10}), d in {K-1, K, 2K},
    alpha in {0, 0.05, 0.1, 0.2, 0.3}, three (lambda_W, lambda_H, lambda_b) settings,
    ``seeds`` (default two).

    With n = 10 the setting (0.04, 0.04, 0) is past the threshold for K = 10, so the
    grid holds trivial points too.
    """
    lambdas = [(5e-3, 5e-3, 0.0), (1e-2, 1e-3, 1e-2), (4e-2, 4e-2, 0.0)]
    out = []
    for K in classes:
        for d, a, (lw, lh, lb), s in itertools.product((K - 1, K, 2 * K), (0.0, 0.05, 0.1, 0.2, 0.3), lambdas, seeds):
            out.append((UFMProblem(K, per_class, d, lw, lh, lb, a), s))
    return out


def group_by_shape(points: Iterable[Tuple[UFMProblem, int]]):
    """{(K, d, n, loss): [(index, problem, seed), ...]}, preserving order within a group."""
    groups = {}
    for i, (p, s) in enumerate(points):
        groups.setdefault(p.shape, []).append((i, p, s))
    return groups


def verify(points: Sequence[Tuple[UFMProblem, int]], *, tol: float = 1e-6, method: str = "lbfgs",
           solver_tol: float = 1e-11, max_steps: Optional[int] = None, dtype=torch.float64,
           device=None, progress: bool = False) -> List[dict]:
    """Solve every (problem, seed) numerically (batched by shape) and compare with the closed form.

    Returns one row per point: the configuration, the closed-form and measured values,
    the errors (``err_*``), ``max_error`` over the checked quantities (CHECKED, the NC
    metrics where defined, and the orbit distance) and ``ok`` (max_error <= tol and the
    solver converged). ``progress`` shows a bar over the
    groups of same-shape points (each group is one batched solve).
    """
    from tqdm import tqdm

    check_param("tol", tol, Interval("float", 0, None, "neither"), "verify")
    if not points:
        raise InvalidParameterError("The 'points' parameter of verify must be a non-empty sequence of "
                                    "(UFMProblem, seed) pairs. Got an empty sequence instead.")
    rows: List[Optional[dict]] = [None] * len(points)
    groups = group_by_shape(points)
    for shape, members in tqdm(groups.items(), total=len(groups), disable=not progress, unit="group",
                               desc="verify"):
        result = solve([p for _, p, _ in members], seeds=[s for _, _, s in members], method=method,
                       tol=solver_tol, max_steps=max_steps, dtype=dtype, device=device)
        for j, (i, p, s) in enumerate(members):
            m = measure(result, j)
            cf = closed_form(p)
            err = compare(p, m, cf)
            max_error = worst_error(err)
            rows[i] = {
                **p.to_dict(), "seed": s, "trivial": cf.trivial,
                **{f"cf_{k}": getattr(cf, k) for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective")},
                **{f"num_{k}": v for k, v in m.items()},
                **{f"err_{k}": v for k, v in err.items()},
                "max_error": max_error,
                "ok": bool(max_error <= tol and m["converged"]),
            }
    return rows
