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
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ufm._core.validation import Interval, InvalidParameterError, validate_params
from ufm.metrics.accumulators import nc_metrics
from ufm.metrics.logits import logit_statistics
from ufm.metrics.orbit import orbit_distances
from ufm.numerics.solve import SolveResult, solve
from ufm.problem import UFMProblem, group_by_shape
from ufm.theory.closed_form import ClosedForm, closed_form, explicit_minimizer

__all__ = ["measure", "compare", "worst_error", "orbit_distance", "default_grid", "verify", "solve_and_compare", "solve_seeds",
           "alpha_sweep", "summarize_rows", "CHECKED", "NC_CHECKED"]

CHECKED = ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "bias")
NC_CHECKED = ("nc1", "nc2_h", "nc2_w", "nc3", "nc4")


def measure(result: SolveResult, i: int, nc1_variant: str = "normalized", convention: str = "ufm") -> dict:
    """Quantities of configuration ``i`` of a solve, comparable with :class:`ClosedForm`
    (NC metrics as :func:`ufm.nc_metrics`, with ``nc1_variant`` and ``convention``)."""
    p = result.problems[i]
    W, H, b = result.W[i].double(), result.H[i].double(), result.b[i].double()  # (K, d), (d, N), (K,)
    y = torch.arange(p.N, device=H.device) // p.n  # (N,)
    Z = (W @ H + b[:, None]).T  # (N, K)
    bias_dist = torch.linalg.vector_norm(b if p.lambda_b > 0 else b - b.mean())
    out = {
        **logit_statistics(Z, y),
        "w_norm": float(torch.linalg.vector_norm(W, dim=1).mean()),
        "h_norm": float(torch.linalg.vector_norm(H, dim=0).mean()),
        "objective": float(result.objective[i]),
        "bias_distance": float(bias_dist),
        "grad_norm": float(result.grad_norm[i]),
        "steps": int(result.steps[i]),
        "converged": bool(result.converged[i]),
        "status": result.status[i],
    }
    out.update(nc_metrics(H.T, y, W, b, num_classes=p.K, nc1_variant=nc1_variant, convention=convention))
    if p.closed_form_applies:
        out["orbit"] = orbit_distance(p, W, H, b)
    return out


def orbit_distance(problem: UFMProblem, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> float:
    """Relative distance of (W, H, b) to the orbit {(W* Q^T, Q H*, b*)} of exact minimizers."""
    Ws, Hs, _ = explicit_minimizer(problem, dtype=torch.float64, device=W.device)
    lambda_b = torch.tensor([problem.lambda_b], dtype=torch.float64, device=W.device)
    return float(orbit_distances(Ws[None], Hs[None], W[None], H[None], b[None], lambda_b)[0])


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


#: the smoothing factors of :func:`default_grid` (also those ``ufm verify`` takes when other grid flags are given)
DEFAULT_ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.3)


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
        for d, a, (lw, lh, lb), s in itertools.product((K - 1, K, 2 * K), DEFAULT_ALPHAS, lambdas, seeds):
            out.append((UFMProblem(K, per_class, d, lw, lh, lb, a), s))
    return out


def _row(p: UFMProblem, seed: int, m: dict, tol: float) -> dict:
    """One row of :func:`verify`: configuration, closed form, measurements, errors, verdict."""
    cf = closed_form(p)
    err = compare(p, m, cf)
    max_error = worst_error(err)
    return {
        **p.to_dict(), "seed": seed, "trivial": cf.trivial,
        **{f"cf_{k}": getattr(cf, k) for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective")},
        **{f"num_{k}": v for k, v in m.items()},
        **{f"err_{k}": v for k, v in err.items()},
        "max_error": max_error,
        "ok": bool(max_error <= tol and m["converged"]),
    }


@validate_params({"tol": Interval("float", 0, None, "neither"), "solver_tol": Interval("float", 0, None, "neither")})
def verify(points: Sequence[Tuple[UFMProblem, int]], *, tol: float = 1e-6, method: str = "lbfgs",
           solver_tol: float = 1e-11, max_steps: Optional[int] = None, dtype=torch.float64,
           device=None, progress: bool = False, on_step=None) -> List[dict]:
    """Solve every (problem, seed) numerically (batched by shape) and compare with the closed form.

    Returns one row per point: the configuration, the closed-form and measured values,
    the errors (``err_*``), ``max_error`` over the checked quantities (CHECKED, the NC
    metrics where defined, and the orbit distance) and ``ok`` (max_error <= tol and the
    solver converged). ``progress`` shows a bar over the
    groups of same-shape points (each group is one batched solve); ``on_step``, the solver's
    progress hook (:func:`ufm.solve`), sees each group's solve in turn.
    """
    from tqdm import tqdm

    if not points:
        raise InvalidParameterError("The 'points' parameter of verify must be a non-empty sequence of "
                                    "(UFMProblem, seed) pairs. Got an empty sequence instead.", param="points")
    rows: List[Optional[dict]] = [None] * len(points)
    groups = group_by_shape(points)
    for members in tqdm(groups.values(), total=len(groups), disable=not progress, unit="group", desc="verify"):
        result = solve([p for _, (p, _) in members], seeds=[s for _, (_, s) in members], method=method,
                       tol=solver_tol, max_steps=max_steps, dtype=dtype, device=device, on_step=on_step)
        for j, (i, (p, s)) in enumerate(members):
            rows[i] = _row(p, s, measure(result, j), tol)
    return rows


def solve_and_compare(problem: UFMProblem, *, seed: int = 0, nc1_variant: str = "normalized", convention: str = "ufm",
                      **solver) -> dict:
    """One numerical solve of ``problem`` (``solver``: the options of :func:`ufm.solve`), measured
    and, where the closed form applies, compared with it (``ufm solve``).

    Returns a dict with ``problem``, ``solver`` (method, seed, seconds and the resolved
    options), ``numeric`` (:func:`measure`) and, when d >= K - 1, ``closed_form`` and ``errors``
    (:func:`compare`).
    """
    import time

    t0 = time.perf_counter()
    res = solve(problem, seeds=seed, **solver)
    seconds = time.perf_counter() - t0
    m = measure(res, 0, nc1_variant=nc1_variant, convention=convention)
    out = {"problem": problem.to_dict(), "solver": {"method": res.method, "seed": seed, "seconds": seconds,
                                                     **res.options}, "numeric": m}
    if problem.closed_form_applies:
        exact = closed_form(problem)
        out["closed_form"] = exact.to_dict()
        out["errors"] = compare(problem, m, exact)
    return out


#: the measured quantities whose spread over seeds :func:`solve_seeds` reports
SPREAD_QUANTITIES = ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "grad_norm", "steps", "nc1", "nc2_h",
                     "nc3", "orbit")


def solve_seeds(problem: UFMProblem, seeds: Sequence[int], *, nc1_variant: str = "normalized",
                convention: str = "ufm", **solver) -> dict:
    """One batched solve of ``problem`` from each of ``seeds`` (``solver``: the options of
    :func:`ufm.solve`), each measured (:func:`measure`) and, where the closed form applies, compared
    with it (``ufm solve --seeds N``).

    Returns a dict with ``problem``, ``solver`` (method, seeds, seconds, options), ``runs`` (one
    :func:`measure` per seed, with its ``seed``), ``converged`` (how many), ``spread`` (per
    quantity of SPREAD_QUANTITIES measured: ``mean``, ``std`` (population), ``min``, ``max`` over the
    seeds) and, when d >= K - 1, ``closed_form``, ``errors`` (one :func:`compare` per seed) and
    ``worst_error`` (over seeds and checked quantities).
    """
    import time

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter of solve_seeds must hold at least one seed. Got [] "
                                    "instead.", param="seeds", value=seeds)
    t0 = time.perf_counter()
    res = solve([problem] * len(seeds), seeds=seeds, **solver)
    seconds = time.perf_counter() - t0
    runs = [{"seed": s, **measure(res, i, nc1_variant=nc1_variant, convention=convention)} for i, s in enumerate(seeds)]
    spread = {}
    for q in SPREAD_QUANTITIES:
        if q in runs[0]:
            v = np.array([float(r[q]) for r in runs])
            spread[q] = {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
    out = {"problem": problem.to_dict(), "solver": {"method": res.method, "seeds": seeds, "seconds": seconds,
                                                     **res.options},
           "runs": runs, "converged": sum(bool(r["converged"]) for r in runs), "spread": spread}
    if problem.closed_form_applies:
        exact = closed_form(problem)
        out["closed_form"] = exact.to_dict()
        out["errors"] = [compare(problem, r, exact) for r in runs]
        out["worst_error"] = max(worst_error(e) for e in out["errors"])
    return out


def alpha_sweep(problem: UFMProblem, alphas: Sequence[float], *, method: str = "lbfgs", solver_tol: float = 1e-11,
                seed: int = 0, curve_points: int = 200, on_step=None) -> dict:
    """The minimizer against the smoothing factor: one batched numerical solve per alpha in
    ``alphas`` (measured as :func:`measure`), the closed form at the same alphas and on
    ``curve_points`` evenly spaced alphas from 0 to max(alphas), and ``alpha_threshold``, the
    alpha past which the only minimizer is W = H = 0 (``closed_form.alpha_threshold``). ``on_step``:
    the solver's progress hook (:func:`ufm.solve`)."""
    import numpy as np

    from ufm.theory.closed_form import alpha_threshold, closed_form_arrays

    p = problem
    problems = [p.replace(alpha=a) for a in alphas]
    res = solve(problems, method=method, tol=solver_tol, seeds=seed, on_step=on_step)
    numeric = [{"alpha": q.alpha, **measure(res, i)} for i, q in enumerate(problems)]
    grid = np.linspace(0.0, max(alphas), curve_points)
    cf = closed_form_arrays(grid, p.K, p.n, p.lambda_w, p.lambda_h)
    curve = {"alpha": grid, **{k: getattr(cf, k) for k in ("logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective")},
             "alpha_threshold": alpha_threshold(p.K, p.n, p.lambda_w, p.lambda_h)}
    return {"numeric": numeric, "closed_form_curve": curve,
            "closed_form_points": [closed_form(q).to_dict() for q in problems]}


#: the errors :func:`summarize_rows` reports, in order
SUMMARY_QUANTITIES = CHECKED + NC_CHECKED + ("orbit",)


def summarize_rows(rows: Sequence[dict]) -> dict:
    """What :func:`verify` found: ``passed`` and ``total`` points, ``trivial`` (past the threshold),
    per quantity the ``worst`` and ``median`` (the upper one) error over the points where it is
    defined, and the rows that ``failed``."""
    errors = {}
    for q in SUMMARY_QUANTITIES:
        vals = sorted(v for v in (r.get(f"err_{q}") for r in rows) if v is not None and not math.isnan(v))
        if vals:
            errors[q] = {"worst": vals[-1], "median": vals[len(vals) // 2]}
    return {"passed": sum(bool(r["ok"]) for r in rows), "total": len(rows),
            "trivial": sum(bool(r["trivial"]) for r in rows), "errors": errors, "failed": [r for r in rows if not r["ok"]]}
