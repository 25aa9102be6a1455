"""Convergence of gradient descent on the UFM under CE and label smoothing (``ufm convergence``).

Plain gradient descent x <- x - lr grad f from seeded random initial points (entries of
W, H, b ~ N(0, init_scale^2 / d), as ``ufm.solve``), one batched run per step-size rule,
in float64. Every ``record_every`` steps it records, per run (README, "Conditioning"):

* ``nc1`` (normalized, ``ufm.metrics.nc``), ``grad_norm`` = ||grad f||,
* ``gap`` = f - f* with f* the closed-form optimum,
* ``orbit`` = distance of (W, H, b) to the orbit of exact minimizers relative to
  ||(W*, H*)|| (Procrustes; ``ufm.metrics.orbit``).

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
log ||grad f|| over the recorded steps where FLOOR_MARGIN * (its float64 floor) < ||grad f|| <
``fit_below`` (the floor: ||grad f|| at the exact minimizer, rounding alone) and compared with
the rate each condition number predicts for gradient descent on the quadratic model,
max_i |1 - lr mu_i| over the nonzero eigenvalues mu_i of an operator; for lr = 1/L this is
1 - 1/kappa. NC1 sees only the within-class scatter inside the span of the class means
(Sigma_B^+ projects the rest out). Near the minimum it contracts by max |1 - lr mu|^2 over the
within-class eigenvalues in the span (hessian.md, within-class moves: lambda_H + rho_w^2 p_off /
((K-1) n) and lambda_H + rho_w^2 K p_true p_off / ((K-1) n)), or, at d >= K, by the square of
the product mode |1 - lr lambda_H| |1 - lr (lambda_W + lambda_H)| when that is slower: the
within-class deviations orthogonal to the span times the zero-sum classifier component
orthogonal to it drive the in-span scatter at second order (derivations/convergence.md, C7, C8).
Both parts are reported (``rate_in_span_nc1``, ``rate_product_mode_nc1``) beside their maximum
``rate_predicted_nc1``. The measured NC1 rate is fitted where FLOOR_MARGIN * (the NC1 floor) <
NC1 < ``fit_below``, with the floor measured at every record (``ufm.metrics.nc.nc1_rounding_floor``).

The runs use the solver's one loop (``ufm.numerics.solve.iterate``) with plain gradient
descent, no tolerance (every run goes on until all quantities are below min(eps)), no stall
test, and diverged runs frozen at their last finite point and reported (``diverged_at``).

:func:`summarize` reduces the rows to what the command line and the report show: the mean
over seeds of the steps to each eps (None when a run did not reach it), and the agreement of
the measured rates with the predictions, judged with the tolerances RATE_RTOL and NC1_BAND
(fixed before any run; stated with every verdict).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ufm._core.validation import (Interval, ListOf, Options, check_alphas, require_closed_form, validate_params,
                                  InstanceOf)
from ufm.analysis.series import first_reached, mean_or_none
from ufm.metrics.nc import class_statistics_balanced, nc1 as nc1_measure, nc1_rounding_floor
from ufm.metrics.orbit import orbit_distances
from ufm.numerics.hessian import parts_for
from ufm.numerics.methods import GradientDescent
from ufm.numerics.objective import UFMObjective
from ufm.numerics.solve import iterate
from ufm.numerics.spectrum import top_eigenvalues
from ufm.problem import UFMProblem
from ufm.records.schema import steps_column as steps_key
from ufm.theory.closed_form import closed_form, explicit_minimizer
from ufm.theory.keys import DEFINITIONS
from ufm.theory.spectra import symbolic_spectrum

__all__ = ["convergence", "summarize", "RULES", "QUANTITIES", "RATE_RTOL", "NC1_BAND", "predicted_rate", "fit_rate",
           "steps_key"]

RULES = ("local", "common")
QUANTITIES = ("nc1", "grad_norm", "gap", "orbit")
#: the measured rates "match" their predictions when |measured - predicted| < RATE_RTOL (1 - predicted)
RATE_RTOL = 0.05
#: a fitted value must exceed its measured float64 floor by this factor (the floors: NC1 of the same
#: point with its in-span within-class scatter removed, and ||grad f|| at the exact minimizer)
FLOOR_MARGIN = 100.0
#: the measured NC1 rate "agrees" with its prediction within NC1_BAND of (1 - predicted); outside
#: the band NC1 contracts more slowly (measured nearer 1) or faster than predicted
NC1_BAND = 0.02


def predicted_rate(eigenvalues: Sequence[float], multiplicities: Sequence[int], lr: float) -> float:
    """max |1 - lr mu| over the nonzero eigenvalues mu: the contraction per step of gradient
    descent with step ``lr`` on a quadratic with this spectrum (off its null space)."""
    mu = np.asarray([v for v, m in zip(eigenvalues, multiplicities) if v != 0 and m > 0], dtype=float)
    return float(np.max(np.abs(1 - lr * mu))) if mu.size else math.nan


def fit_rate(steps: np.ndarray, values: np.ndarray, below: float, floor=1e-11) -> Optional[float]:
    """exp(slope) of a least-squares line through log(values) where floor < values < below
    (at least 3 points; else None): the measured contraction per step. ``floor`` is a number or
    one value per record (a measured float64 floor times FLOOR_MARGIN)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = (values < below) & (values > np.asarray(floor, dtype=float)) & np.isfinite(values)
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


def _objective(problems: List[UFMProblem], device) -> UFMObjective:
    """The objective of the runs, b held fixed (at 0) where lambda_b = 0."""
    return UFMObjective(problems, dtype=torch.float64, device=device, fixed_bias=[p.lambda_b == 0 for p in problems])


class _Recorder:
    """Records NC1, ||grad f||, f - f* and the orbit distance (NaN for diverged runs); asks the
    loop to stop once every run is below its stop level or diverged."""

    def __init__(self, obj: UFMObjective, problems: List[UFMProblem], stop_below: Dict[str, float]):
        stars = [explicit_minimizer(p, device=obj.device) for p in problems]
        self.obj, self.stop_below = obj, stop_below
        self.Ws, self.Hs = torch.stack([s[0] for s in stars]), torch.stack([s[1] for s in stars])
        self.fstar = torch.tensor([closed_form(p).objective for p in problems], dtype=torch.float64,
                                  device=obj.device)
        self.traj = {q: [] for q in ("step", "nc1_floor") + QUANTITIES}
        # the float64 floor of ||grad f||: its value at the exact minimizer, where it is rounding alone
        bs = torch.zeros(len(problems), problems[0].K, dtype=torch.float64, device=obj.device)
        self.grad_floor = torch.linalg.vector_norm(obj.value_and_grad(obj.pack(self.Ws, self.Hs, bs))[1],
                                                   dim=1).cpu().numpy()

    def __call__(self, step, x, f, gnorm, diverged) -> bool:
        W, H, b = self.obj.unpack(x)
        _, centered, sw, sb = class_statistics_balanced(H, self.obj.n)
        rec = {"nc1": nc1_measure(sw, sb, self.obj.K, centered_means=centered), "grad_norm": gnorm,
               "gap": f - self.fstar, "orbit": orbit_distances(self.Ws, self.Hs, W, H, b, self.obj.lambda_b)}
        self.traj["step"].append(step)
        self.traj["nc1_floor"].append(nc1_rounding_floor(H, self.obj.n).cpu().numpy())
        for q in QUANTITIES:
            self.traj[q].append(torch.where(diverged, torch.full_like(rec[q], math.nan), rec[q]).cpu().numpy())
        return all(bool(((rec[q] < self.stop_below[q]) | diverged).all()) for q in QUANTITIES)


def _gd(problems: List[UFMProblem], seeds: List[int], lr: float, max_steps: int, record_every: int,
        init_scale: float, stop_below: Dict[str, float], device, on_step=None) -> dict:
    obj = _objective(problems, device)
    recorder = _Recorder(obj, problems, stop_below)
    end = iterate(obj, GradientDescent(obj, lr=lr), _initial_points(obj, seeds, init_scale), tol=0.0,
                  max_steps=max_steps, patience=None, record_every=record_every, on_record=recorder,
                  on_divergence="freeze", on_step=on_step)
    traj = recorder.traj
    return {"step": np.asarray(traj["step"]), "diverged_at": end.diverged_at, "grad_floor": recorder.grad_floor,
            "nc1_floor": np.stack(traj["nc1_floor"], axis=0), **{q: np.stack(traj[q], axis=0) for q in QUANTITIES}}


def _initial_curvature(problem: UFMProblem, seeds, init_scale, device) -> float:
    """Largest eigenvalue of the full Hessian at the seeded initial points (max over seeds)."""
    obj = UFMObjective([problem] * len(seeds), dtype=torch.float64, device=device)
    W, H, b = obj.unpack(_initial_points(obj, seeds, init_scale))
    parts = parts_for(problem, "full")
    # three or four digits are plenty for a step-size rule: Lanczos to 1e-8 relative
    return max(float(top_eigenvalues(problem, W[i], H[i], b[i], k=1, tol=1e-8, parts=parts)[0])
               for i in range(len(seeds)))


def _row(run: _Run, traj: dict, j: int, eps: Sequence[float], fit_below: float) -> dict:
    row = {"rule": run.rule, "alpha": run.alpha, "seed": run.seed, "lr": run.lr,
           "diverged_at": traj["diverged_at"][j],
           "rate_measured": fit_rate(traj["step"], traj["grad_norm"][:, j], fit_below,
                                     floor=FLOOR_MARGIN * traj["grad_floor"][j]),
           "rate_measured_nc1": fit_rate(traj["step"], traj["nc1"][:, j], fit_below,
                                         floor=FLOOR_MARGIN * traj["nc1_floor"][:, j]),
           "grad_floor": float(traj["grad_floor"][j]),
           "steps_recorded": int(traj["step"][-1])}
    for q in QUANTITIES:
        series = traj[q][:, j]
        row[f"final_{q}"] = float(series[-1])
        for e in eps:
            hit = first_reached(traj["step"], series, e)
            row[steps_key(q, e)] = None if hit is None else int(hit)
    return row


def _prediction(rule: str, alpha: float, lr: float, L: float, L0: float, spectra: dict, rows: List[dict]) -> dict:
    """What the spectra predict for the runs of (rule, alpha), beside the mean measured rates."""
    pred = {"rule": rule, "alpha": alpha, "lr": lr, "L_minimizer": L, "L_initial": L0}
    for dfn in DEFINITIONS:
        pred[f"kappa_{dfn}"] = spectra[dfn].condition_number
        pred[f"rate_1-1/kappa_{dfn}"] = 1 - 1 / spectra[dfn].condition_number  # what kappa alone predicts at lr = 1/L*
    full = spectra["full"]
    pred["rate_predicted_full"] = predicted_rate(full.eigenvalues, full.multiplicities, lr)
    within = [v for name, m, vals in spectra["features"].details["components"]
              if "span of the ETF" in name and m > 0 for v in vals]
    pred["rate_in_span_nc1"] = predicted_rate(within, [1] * len(within), lr) ** 2
    pred["rate_product_mode_nc1"] = _product_mode(spectra["features"].problem, lr)
    pred["rate_predicted_nc1"] = max(pred["rate_in_span_nc1"], pred["rate_product_mode_nc1"] or 0.0)
    mine = [r for r in rows if r["rule"] == rule and r["alpha"] == alpha]
    for key, col in (("rate_measured_mean", "rate_measured"), ("rate_measured_nc1_mean", "rate_measured_nc1")):
        measured = [r[col] for r in mine if r[col] is not None]
        pred[key] = float(np.mean(measured)) if measured else None
    return pred


def _product_mode(p: UFMProblem, lr: float) -> Optional[float]:
    """The NC1 rate of the product mode (derivations/convergence.md, C7), (|1 - lr lambda_H| |1 - lr
    (lambda_W + lambda_H)|)^2; None at d = K - 1, where there is no direction orthogonal to the span (C8)."""
    if p.d < p.K:
        return None
    return (abs(1 - lr * p.lambda_h) * abs(1 - lr * (p.lambda_w + p.lambda_h))) ** 2


def _trajectories(runs: List[_Run], traj: dict, into: dict) -> None:
    for j, r in enumerate(runs):
        key = f"alpha={r.alpha:g}, seed={r.seed}"
        into["runs"].append(key)
        into["step"][key] = traj["step"].tolist()
        for q in QUANTITIES:
            into[q][key] = traj[q][:, j].tolist()
        into["nc1_floor"][key] = traj["nc1_floor"][:, j].tolist()


@validate_params({
    "problem": InstanceOf(UFMProblem),
    "seeds": ListOf(Interval("int", None, None, "neither")),
    "eps": ListOf(Interval("float", 0, 1, "neither")),
    "rules": ListOf(Options(RULES)),
    "max_steps": Interval("int", 1, None, "left"),
    "record_every": Interval("int", 1, None, "left"),
    "init_scale": Interval("float", 0, None, "neither"),
    "fit_below": Interval("float", 0, None, "neither"),
})
def convergence(problem: UFMProblem, alphas: Sequence[float] = (0.0, 0.1), seeds: Sequence[int] = (0, 1, 2),
                eps: Sequence[float] = (1e-3, 1e-6, 1e-9), rules: Sequence[str] = RULES, max_steps: int = 50_000,
                record_every: int = 10, init_scale: float = 1.0, fit_below: float = 1e-4,
                device=None, on_step=None) -> dict:
    """Gradient descent from ``seeds`` for each alpha (module docstring), under each rule.

    Returns a dict with ``config``, ``rows`` (one per rule, alpha and seed: lr, steps to each
    eps per quantity, measured rate, final values), ``predictions`` (per rule and alpha: L,
    the condition number and predicted rate of each definition), ``trajectories`` (per rule:
    steps and each quantity as a (T, runs) list, with the run order of ``rows``) and
    ``summary`` (:func:`summarize`). Runs stop when every quantity is below min(eps) or at
    ``max_steps``. Deterministic for fixed seeds on a given device. ``on_step``: the solver loop's
    progress hook (``ufm.numerics.solve.OnStep``), seeing each batch of runs (one per rule and
    step size) in turn; its tolerance is 0 (the runs stop on the recorded quantities).
    """
    alphas = check_alphas(alphas, "convergence")
    seeds, eps, rules = [int(s) for s in seeds], sorted((float(e) for e in eps), reverse=True), list(rules)
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
        trajectories[rule] = {"runs": [], "step": {}, "nc1_floor": {}, **{q: {} for q in QUANTITIES}}
        for lr, group in groups.items():
            runs = [_Run(a, s, rule, lr) for a in group for s in seeds]
            traj = _gd([problems[r.alpha] for r in runs], [r.seed for r in runs], lr, max_steps, record_every,
                       init_scale, stop_below, device, on_step)
            rows += [_row(r, traj, j, eps, fit_below) for j, r in enumerate(runs)]
            _trajectories(runs, traj, trajectories[rule])
        predictions += [_prediction(rule, a, lrs[rule][a], L[a], L0[a], spectra[a], rows) for a in alphas]
    config = {"problem": problem.to_dict(), "alphas": alphas, "seeds": seeds, "eps": eps, "rules": rules,
              "max_steps": max_steps, "record_every": record_every, "init_scale": init_scale,
              "fit_below": fit_below}
    out = {"config": config, "rows": rows, "predictions": predictions, "trajectories": trajectories}
    out["summary"] = summarize(out)
    return out


def _steps_table(rows: List[dict], config: dict) -> List[dict]:
    """Mean over seeds of the steps to each eps, per (rule, alpha, quantity, eps)."""
    out = []
    for rule in config["rules"]:
        for a in config["alphas"]:
            mine = [r for r in rows if r["rule"] == rule and r["alpha"] == a]
            for q in QUANTITIES:
                for e in config["eps"]:
                    vals = [r[steps_key(q, e)] for r in mine]
                    out.append({"rule": rule, "alpha": a, "quantity": q, "eps": e, "mean": mean_or_none(vals),
                                "reached": sum(v is not None for v in vals), "runs": len(vals)})
    return out


def _ce_vs_ls(steps: List[dict], config: dict) -> List[dict]:
    """CE against each LS alpha: mean steps to the middle eps of NC1 and of the orbit distance,
    under the first rule (None where a run did not reach it)."""
    rule, e = config["rules"][0], config["eps"][len(config["eps"]) // 2]
    out = []
    for q in ("nc1", "orbit"):
        means = {s["alpha"]: s["mean"] for s in steps if s["rule"] == rule and s["quantity"] == q and s["eps"] == e}
        ce = means.get(0.0)
        for a, v in means.items():
            if a != 0.0:
                out.append({"rule": rule, "quantity": q, "eps": e, "alpha": a, "steps_ce": ce, "steps_ls": v,
                            "ratio_ce_ls": ce / v if ce is not None and v else None})
    return out


def _nc1_verdict(pred: dict) -> Optional[dict]:
    measured = pred.get("rate_measured_nc1_mean")
    if measured is None:
        return None
    rel = (measured - pred["rate_predicted_nc1"]) / (1 - pred["rate_predicted_nc1"])
    # rel > 0: the measured rate is nearer 1 than predicted, i.e. NC1 contracts more slowly
    verdict = "agrees" if abs(rel) <= NC1_BAND else ("slower" if rel > 0 else "faster")
    return {"rule": pred["rule"], "alpha": pred["alpha"], "deviation": rel, "verdict": verdict}


def summarize(result: dict) -> dict:
    """What :func:`convergence` found, reduced once for every reader: ``steps`` (mean over seeds
    of the steps to each eps), ``ce_vs_ls``, ``rates`` (the largest |measured - predicted| /
    (1 - predicted) over (rule, alpha) and whether it is within RATE_RTOL), ``lr_times_L`` (the
    range of lr L* over the predictions) and ``nc1`` (per (rule, alpha), the NC1 rate against its
    prediction, within NC1_BAND or not)."""
    config, rows, preds = result["config"], result["rows"], result["predictions"]
    steps = _steps_table(rows, config)
    agree = [abs(p["rate_measured_mean"] - p["rate_predicted_full"]) / (1 - p["rate_predicted_full"])
             for p in preds if p["rate_measured_mean"] is not None]
    lr_l = [p["lr"] * p["L_minimizer"] for p in preds]
    return {"steps": steps, "ce_vs_ls": _ce_vs_ls(steps, config),
            "rates": {"worst_deviation": max(agree) if agree else None, "tolerance": RATE_RTOL,
                      "matches": (max(agree) < RATE_RTOL) if agree else None},
            "lr_times_L": {"min": min(lr_l), "max": max(lr_l)},
            "nc1": [v for v in map(_nc1_verdict, preds) if v is not None], "nc1_band": NC1_BAND}
