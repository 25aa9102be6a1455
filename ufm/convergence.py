"""Convergence of gradient descent on the UFM under CE and label smoothing (``ufm convergence``).

Plain gradient descent x <- x - lr grad f from seeded random initial points (entries of
W, H, b ~ N(0, init_scale^2 / d), as ``ufm.solve``), one batched run per step-size rule,
in float64. Every ``record_every`` steps it records, per run (README, "Conditioning"):

* ``nc1`` (normalized, ``ufm.metrics.nc``), ``grad_norm`` = ||grad f||,
* ``gap`` = f - f* with f* the closed-form optimum,
* ``orbit`` = distance of (W, H, b) to the orbit of exact minimizers relative to
  ||(W*, H*)|| (Procrustes; ``ufm.verify.orbit_distance``).

The variables are those of the ``full`` operator: (W, H), and b when lambda_b > 0; with
lambda_b = 0 the bias stays at 0 (its minimizers are b0 1 for any b0, so this changes no
minimizer of W, H).

Step-size rules (one per run set, stated in every record). With L* the largest eigenvalue
of the full Hessian at the minimizer (symbolic) and L0 the largest at the initial points
(Lanczos, max over seeds) -- far larger than L* from a random start, where lr = 1/L*
diverges:

* ``local``: lr = 1 / max(L*(alpha), L0(alpha)) -- each loss gets its own step;
* ``common``: lr = min over alpha of the local step -- the same step for every run (the check).

Steps to reach each tolerance eps are the first recorded step at which the quantity is
below eps (None if never). The *local linear rate* is fitted by least squares to
log ||grad f|| over the recorded steps where 1e-11 < ||grad f|| < ``fit_below`` and
compared with the rate each condition number predicts for gradient descent on the
quadratic model, max_i |1 - lr mu_i| over the nonzero eigenvalues mu_i of an operator;
for lr = 1/L this is 1 - 1/kappa. NC1 sees only the within-class scatter inside the span of
the class means (Sigma_B^+ projects the rest out), so near the minimum it contracts by
max |1 - lr mu|^2 over the within-class eigenvalues in the span (hessian.md, within-class
moves: lambda_H + rho_w^2 p_off / ((K-1) n) and lambda_H + rho_w^2 K p_true p_off / ((K-1) n));
its measured rate is fitted to log NC1 where 1e-24 < NC1 < ``fit_below``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ._validation import Interval, InvalidParameterError, Options, check_alphas, check_param, require_closed_form
from .metrics.nc import class_statistics_balanced, nc1 as nc1_measure
from .numerics.solver import UFMObjective
from .problem import UFMProblem
from .theory.closed_form import closed_form, explicit_minimizer
from .theory.spectra import DEFINITIONS, symbolic_spectrum
from .verify import orbit_distances

__all__ = ["convergence", "RULES", "QUANTITIES", "predicted_rate", "fit_rate"]

RULES = ("local", "common")
QUANTITIES = ("nc1", "grad_norm", "gap", "orbit")


def predicted_rate(eigenvalues: Sequence[float], multiplicities: Sequence[int], lr: float) -> float:
    """max |1 - lr mu| over the nonzero eigenvalues mu: the contraction per step of gradient
    descent with step ``lr`` on a quadratic with this spectrum (off its null space)."""
    mu = np.asarray([v for v, m in zip(eigenvalues, multiplicities) if v != 0 and m > 0], dtype=float)
    return float(np.max(np.abs(1 - lr * mu))) if mu.size else math.nan


def fit_rate(steps: np.ndarray, values: np.ndarray, below: float, floor: float = 1e-11) -> Optional[float]:
    """exp(slope) of a least-squares line through log(values) where floor < values < below
    (at least 3 points; else None): the measured contraction per step."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = (values < below) & (values > floor) & np.isfinite(values)
    if keep.sum() < 3:
        return None
    slope = np.polyfit(steps[keep], np.log(values[keep]), 1)[0]
    return float(math.exp(slope))


@dataclass
class _Run:
    alpha: float
    seed: int
    rule: str
    lr: float


def _initial_points(obj: UFMObjective, seeds, init_scale) -> torch.Tensor:
    x = obj.initial_point(seeds, init_scale)
    W, H, b = obj.unpack(x)
    b.mul_((obj.lambda_b > 0).to(b.dtype)[:, None])  # b stays 0 where lambda_b = 0 (module docstring)
    return x


def _gd(problems: List[UFMProblem], seeds: List[int], lr: float, max_steps: int, record_every: int,
        init_scale: float, stop_below: Dict[str, float], device) -> dict:
    obj = UFMObjective(problems, dtype=torch.float64, device=device)
    x = _initial_points(obj, seeds, init_scale)
    mask = torch.ones_like(x)
    obj.unpack(mask)[2].mul_((obj.lambda_b > 0).to(x.dtype)[:, None])  # no step in b where lambda_b = 0
    stars = [explicit_minimizer(p, device=obj.device) for p in problems]
    Ws = torch.stack([s[0] for s in stars])
    Hs = torch.stack([s[1] for s in stars])
    fstar = torch.tensor([closed_form(p).objective for p in problems], dtype=torch.float64, device=obj.device)
    traj = {q: [] for q in ("step",) + QUANTITIES}
    f, g = obj.value_and_grad(x)
    g = g * mask
    f0 = f.abs().clamp(min=1.0)
    diverged = torch.zeros(obj.B, dtype=torch.bool, device=obj.device)
    diverged_at = [None] * obj.B
    step = 0
    while True:
        if step % record_every == 0:
            W, H, b = obj.unpack(x)
            _, centered, sw, sb = class_statistics_balanced(H, obj.n)
            gn = torch.linalg.vector_norm(g, dim=1)
            rec = {"nc1": nc1_measure(sw, sb, obj.K, centered_means=centered), "grad_norm": gn,
                   "gap": f - fstar, "orbit": orbit_distances(Ws, Hs, W, H, b, obj.lambda_b)}
            traj["step"].append(step)
            for q in QUANTITIES:
                traj[q].append(torch.where(diverged, torch.full_like(rec[q], math.nan), rec[q]).cpu().numpy())
            done = all(bool(((rec[q] < stop_below[q]) | diverged).all()) for q in QUANTITIES)
            if done or step >= max_steps:
                break
        elif step >= max_steps:  # the cap between two records: record the last step, then stop
            record_every = 1
            continue
        x_new = x - lr * g
        f_new, g_new = obj.value_and_grad(x_new)
        step += 1
        bad = ~diverged & (~torch.isfinite(f_new) | (f_new > 1e8 * f0))
        for i in bad.nonzero().flatten().tolist():
            diverged_at[i] = step
        diverged = diverged | bad
        keep = diverged[:, None]  # a diverged run is frozen at its last finite point and reported as such
        x = torch.where(keep, x, x_new)
        f = torch.where(diverged, f, f_new)
        g = torch.where(keep, g, g_new * mask)
    return {"step": np.asarray(traj["step"]), "diverged_at": diverged_at,
            **{q: np.stack(traj[q], axis=0) for q in QUANTITIES}}


def _initial_curvature(problem: UFMProblem, seeds, init_scale, device) -> float:
    """Largest eigenvalue of the full Hessian at the seeded initial points (max over seeds)."""
    from .numerics.hessian import _parts_for, top_eigenvalues

    obj = UFMObjective([problem] * len(seeds), dtype=torch.float64, device=device)
    W, H, b = obj.unpack(_initial_points(obj, seeds, init_scale))
    parts = _parts_for(problem, "full")
    # three or four digits are plenty for a step-size rule: Lanczos to 1e-8 relative
    return max(float(top_eigenvalues(problem, W[i], H[i], b[i], k=1, tol=1e-8, parts=parts)[0])
               for i in range(len(seeds)))


def convergence(problem: UFMProblem, alphas: Sequence[float] = (0.0, 0.1), seeds: Sequence[int] = (0, 1, 2),
                eps: Sequence[float] = (1e-3, 1e-6, 1e-9), rules: Sequence[str] = RULES, max_steps: int = 50_000,
                record_every: int = 10, init_scale: float = 1.0, fit_below: float = 1e-4,
                device=None) -> dict:
    """Gradient descent from ``seeds`` for each alpha (module docstring), under each rule.

    Returns a dict with ``config``, ``rows`` (one per rule, alpha and seed: lr, steps to each
    eps per quantity, measured rate, final values), ``predictions`` (per rule and alpha: L,
    the condition number and predicted rate of each definition) and ``trajectories`` (per
    rule: steps and each quantity as a (T, runs) list, with the run order of ``rows``).
    Runs stop when every quantity is below min(eps) or at ``max_steps``. Deterministic for
    fixed seeds on a given device.
    """
    if not isinstance(problem, UFMProblem):
        raise InvalidParameterError(f"The 'problem' parameter of convergence must be a UFMProblem. "
                                    f"Got {type(problem).__name__} instead.")
    alphas = check_alphas(alphas, "convergence")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter of convergence must hold at least one seed. "
                                    "Got an empty list instead.", param="seeds", value=[], expected="at least one seed")
    eps = sorted((float(e) for e in eps), reverse=True)
    if not eps:
        raise InvalidParameterError("The 'eps' parameter of convergence must hold at least one tolerance. "
                                    "Got an empty list instead.", param="eps", value=[], expected="values in (0, 1)")
    for e in eps:
        check_param("eps", e, Interval("float", 0, 1, "neither"), "convergence")
    rules = list(rules)
    for r in rules:
        check_param("rules", r, Options(RULES), "convergence")
    check_param("max_steps", max_steps, Interval("int", 1, None, "left"), "convergence")
    check_param("record_every", record_every, Interval("int", 1, None, "left"), "convergence")
    check_param("fit_below", fit_below, Interval("float", 0, None, "neither"), "convergence")
    check_param("init_scale", init_scale, Interval("float", 0, None, "neither"), "convergence")
    require_closed_form(problem.K, problem.d, "convergence")

    problems = {a: problem.replace(alpha=a) for a in alphas}
    spectra = {a: {dfn: symbolic_spectrum(p, dfn) for dfn in DEFINITIONS} for a, p in problems.items()}
    L = {a: max(spectra[a]["full"].eigenvalues) for a in alphas}
    L0 = {a: _initial_curvature(p, seeds, init_scale, device) for a, p in problems.items()}
    local = {a: 1.0 / max(L[a], L0[a]) for a in alphas}
    lrs = {"local": local, "common": {a: min(local.values()) for a in alphas}}
    stop_below = {q: min(eps) for q in QUANTITIES}
    rows, predictions, trajectories = [], [], {}
    for rule in rules:
        groups = {}  # runs sharing one lr go in one batch
        for a in alphas:
            groups.setdefault(lrs[rule][a], []).append(a)
        traj_rule = {"runs": [], "step": {}, **{q: {} for q in QUANTITIES}}
        for lr, group in groups.items():
            runs = [_Run(a, s, rule, lr) for a in group for s in seeds]
            traj = _gd([problems[r.alpha] for r in runs], [r.seed for r in runs], lr, max_steps, record_every,
                       init_scale, stop_below, device)
            for j, r in enumerate(runs):
                row = {"rule": rule, "alpha": r.alpha, "seed": r.seed, "lr": lr,
                       "diverged_at": traj["diverged_at"][j],
                       "rate_measured": fit_rate(traj["step"], traj["grad_norm"][:, j], fit_below),
                       "rate_measured_nc1": fit_rate(traj["step"], traj["nc1"][:, j], fit_below, floor=1e-24),
                       "steps_recorded": int(traj["step"][-1])}
                for q in QUANTITIES:
                    series = traj[q][:, j]
                    row[f"final_{q}"] = float(series[-1])
                    for e in eps:
                        hit = np.nonzero(series < e)[0]
                        row[f"steps_{q}_{e:g}"] = int(traj["step"][hit[0]]) if hit.size else None
                rows.append(row)
                key = f"alpha={r.alpha:g}, seed={r.seed}"
                traj_rule["runs"].append(key)
                traj_rule["step"][key] = traj["step"].tolist()
                for q in QUANTITIES:
                    traj_rule[q][key] = traj[q][:, j].tolist()
        trajectories[rule] = traj_rule
        for a in alphas:
            pred = {"rule": rule, "alpha": a, "lr": lrs[rule][a], "L_minimizer": L[a], "L_initial": L0[a]}
            for dfn in DEFINITIONS:
                sp = spectra[a][dfn]
                pred[f"kappa_{dfn}"] = sp.condition_number
                pred[f"rate_1-1/kappa_{dfn}"] = 1 - 1 / sp.condition_number  # what kappa alone predicts at lr = 1/L*
            sp = spectra[a]["full"]
            pred["rate_predicted_full"] = predicted_rate(sp.eigenvalues, sp.multiplicities, lrs[rule][a])
            within = [v for name, m, vals in spectra[a]["features"].details["components"]
                      if "span of the ETF" in name and m > 0 for v in vals]
            pred["rate_predicted_nc1"] = predicted_rate(within, [1] * len(within), lrs[rule][a]) ** 2
            for key, col in (("rate_measured_mean", "rate_measured"), ("rate_measured_nc1_mean", "rate_measured_nc1")):
                measured = [r[col] for r in rows if r["rule"] == rule and r["alpha"] == a and r[col] is not None]
                pred[key] = float(np.mean(measured)) if measured else None
            predictions.append(pred)
    config = {"problem": problem.to_dict(), "alphas": alphas, "seeds": seeds, "eps": eps, "rules": rules,
              "max_steps": max_steps, "record_every": record_every, "init_scale": init_scale,
              "fit_below": fit_below}
    return {"config": config, "rows": rows, "predictions": predictions, "trajectories": trajectories}
