"""Solves that record neural collapse along the way: the public ``ufm.solve`` and GD trajectories.

The solver loop (``ufm.numerics.solve``) measures nothing but the objective and the gradient
norm; this module passes it a recorder with the NC measures of ``ufm.metrics.nc``, so that
numerics and metrics never import each other.
"""
from __future__ import annotations

import functools
from typing import Dict, Sequence

import torch

from ufm.analysis.series import first_reached, mean_or_none
from ufm.metrics.nc import class_statistics_balanced, nc1, nc2, nc3
from ufm.numerics import solve as _numerics
from ufm.problem import UFMProblem
from ufm.theory.closed_form import closed_form

__all__ = ["solve", "nc_recorder", "gd_trajectories", "summarize_trajectories"]


def nc_recorder(W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> Dict[str, torch.Tensor]:
    """NC1 (normalized), NC2 of the class means and NC3 of a batch of UFM points W (B, K, d),
    H (B, d, N) with column i in class i // n: each (B,), float64."""
    K, N = W.shape[-2], H.shape[-1]
    _, centered, sigma_w, sigma_b = class_statistics_balanced(H, N // K)
    return {"nc1": nc1(sigma_w, sigma_b, K, centered_means=centered), "nc2_h": nc2(centered),
            "nc3": nc3(W, centered)}


@functools.wraps(_numerics.solve, assigned=("__doc__", "__annotations__"))
def solve(problems, **options) -> _numerics.SolveResult:
    if options.get("record_every") and options.get("recorder") is None:
        options["recorder"] = nc_recorder
    return _numerics.solve(problems, **options)


solve.__doc__ = (_numerics.solve.__doc__ or "").replace(
    "recorder: maps (W, H, b) to named (B,) tensors recorded beside the objective.",
    "recorder: maps (W, H, b) to named (B,) tensors recorded beside the objective; by default\n"
    "            (when record_every > 0) :func:`nc_recorder`: ``nc1``, ``nc2_h`` and ``nc3``.")
solve.constraints = _numerics.solve.constraints


def gd_trajectories(problem: UFMProblem, alphas: Sequence[float], seeds: Sequence[int], *, method: str = "gd",
                    lr: float = 0.5, tol: float = 1e-10, max_steps: int = 30000, record_every: int = 25,
                    on_step=None) -> dict:
    """One batched solve of every (alpha, seed) from random starts, recording f, ||grad f|| and the NC
    measures every ``record_every`` steps: ``{"runs": [...]}``, one dict per run with its alpha,
    seed, f* (closed form), steps, whether it converged and its recorded series (lists of floats).
    ``on_step``: the solver's progress hook (:func:`solve`)."""
    pts = [(problem.replace(alpha=a), s) for a in alphas for s in seeds]
    res = solve([p for p, _ in pts], seeds=[s for _, s in pts], method=method, lr=lr, tol=tol,
                max_steps=max_steps, record_every=record_every, on_step=on_step)
    tr = res.trajectory
    runs = []
    for i, (p, s) in enumerate(pts):
        runs.append({"alpha": p.alpha, "seed": s, "f_star": closed_form(p).objective,
                     "steps": int(res.steps[i]), "converged": bool(res.converged[i]), "step": tr["step"].tolist(),
                     **{k: tr[k][:, i].tolist() for k in ("objective", "grad_norm", "nc1", "nc2_h", "nc3")}})
    return {"runs": runs}


#: the levels :func:`summarize_trajectories` reads off the records
GAP_LEVEL, NC1_LEVEL = 1e-8, 1e-6


def summarize_trajectories(runs: Sequence[dict]) -> dict:
    """Per alpha (in order): runs, how many converged, the mean steps to the solver's tolerance
    (None unless all converged), the mean first recorded step with f - f* < GAP_LEVEL and with
    NC1 < NC1_LEVEL (None unless every run reached it); and per alpha > 0 against alpha = 0,
    whether label smoothing took ``fewer``, ``more`` or ``as many`` steps, with the ratio CE/LS."""
    by_alpha: Dict[float, list] = {}
    for run in runs:
        by_alpha.setdefault(run["alpha"], []).append(run)
    rows = []
    for a, group in by_alpha.items():
        conv = sum(bool(r["converged"]) for r in group)
        rows.append({"alpha": a, "runs": len(group), "converged": conv,
                     "mean_steps": mean_or_none([r["steps"] for r in group]) if conv == len(group) else None,
                     "mean_steps_gap": mean_or_none([first_reached(r["step"], [f - r["f_star"] for f in r["objective"]],
                                                                   GAP_LEVEL) for r in group]),
                     "mean_steps_nc1": mean_or_none([first_reached(r["step"], r["nc1"], NC1_LEVEL) for r in group])})
    ce = next((r["mean_steps"] for r in rows if r["alpha"] == 0.0), None)
    comparisons = []
    for r in rows:
        v = r["mean_steps"]
        if r["alpha"] == 0.0 or ce is None or v is None:
            continue
        comparisons.append({"alpha": r["alpha"], "steps_ce": ce, "steps_ls": v, "ratio_ce_ls": ce / v,
                            "label_smoothing_took": "fewer" if v < ce else ("more" if v > ce else "as many")})
    return {"alphas": rows, "ce_vs_ls": comparisons,
            "all_converged": all(r["converged"] == r["runs"] for r in rows),
            "gap_level": GAP_LEVEL, "nc1_level": NC1_LEVEL}
