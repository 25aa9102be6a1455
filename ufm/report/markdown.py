"""Assemble the demo report (Markdown + PNG) from the records in ``OUT/records/``."""
from __future__ import annotations

import math
from pathlib import Path
from statistics import mean
from typing import List, Optional

from .._io import atomic_write_text, read_json
from . import figures

__all__ = ["build_report", "first_crossing", "RECORDS"]

#: the records a report is built from, in OUT/records/NAME.json
RECORDS = ("derivation", "verify", "alpha_sweep", "trajectory")

_QUANTITIES = ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "bias", "nc1", "nc2_h", "nc2_w", "nc3",
               "nc4", "orbit")


def first_crossing(steps: List[int], values: List[Optional[float]], eps: float) -> Optional[int]:
    """First recorded step whose value is below ``eps`` (None if never)."""
    for s, v in zip(steps, values):
        if v is not None and v < eps:
            return s
    return None


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if abs(x) >= 100:  # step counts and the like
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _verify_section(rec: dict) -> List[str]:
    rows, cfg = rec["rows"], rec["config"]
    ok = sum(r["ok"] for r in rows)
    trivial = sum(r["trivial"] for r in rows)
    ks = sorted({r["num_classes"] for r in rows})
    lines = ["## 2. Verification: numerical solutions against the closed form", "",
             f"{len(rows)} points (K in {ks}, d in {{K-1, K, 2K}}, alpha in {{0, 0.05, 0.1, 0.2, 0.3}}, "
             f"three lambda settings, seeds {cfg['seeds']}, n = {cfg['per_class']}), solved by batched "
             f"{cfg['method']} to ||grad f|| < {cfg['solver_tol']:g} in float64; {trivial} of them lie past the "
             f"threshold (trivial solution W = H = 0).", "",
             f"**{ok} of {len(rows)} points agree with the closed form to {cfg['tol']:g}** "
             f"(relative error; NC metrics and bias as defined in the README).", "",
             "| quantity | worst error | median error |", "|---|---|---|"]
    for q in _QUANTITIES:
        vals = [r.get(f"err_{q}") for r in rows]
        vals = sorted(v for v in vals if v is not None and not math.isnan(v))
        if vals:
            lines.append(f"| {q} | {vals[-1]:.2e} | {vals[len(vals) // 2]:.2e} |")
    bad = [r for r in rows if not r["ok"]]
    if bad:
        lines += ["", "Points that failed:", "", "| K | d | alpha | lambda_w | lambda_h | lambda_b | seed | max error | converged |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in bad:
            lines.append(f"| {r['num_classes']} | {r['dim']} | {r['alpha']} | {r['lambda_w']} | {r['lambda_h']} | "
                         f"{r['lambda_b']} | {r['seed']} | {_fmt(r['max_error'])} | {_fmt(r['num_converged'])} |")
    lines += ["", "![errors](fig_verify.png)", ""]
    return lines


def _alpha_section(rec: dict) -> List[str]:
    c = rec["config"]
    lines = ["## 3. Minimizer against the smoothing factor", "",
             f"K = {c['num_classes']}, d = {c['dim']}, n = {c['per_class']}, lambda_W = {c['lambda_w']}, "
             f"lambda_H = {c['lambda_h']}, lambda_b = {c['lambda_b']}. Lines: closed form; markers: {c['method']} "
             f"from a random start (seed {c['seed']}). Past alpha = {rec['closed_form_curve']['alpha_threshold']:.4g} the only minimizer is "
             "W = H = 0.", "", "![alpha](fig_alpha.png)", "",
             "| alpha | trivial | logit gap (numeric) | logit gap (closed form) | p_true (numeric) | ||w|| (numeric) | ||h|| (numeric) |",
             "|---|---|---|---|---|---|---|"]
    for num, cf in zip(rec["numeric"], rec["closed_form_points"]):
        lines.append(f"| {num['alpha']} | {_fmt(cf['trivial'])} | {num['logit_gap']:.6f} | {cf['logit_gap']:.6f} | "
                     f"{num['p_true']:.6f} | {num['w_norm']:.6f} | {num['h_norm']:.6f} |")
    return lines + [""]


def _trajectory_section(rec: dict) -> List[str]:
    c = rec["config"]
    lines = ["## 4. Gradient descent: cross-entropy against label smoothing", "",
             f"Plain gradient descent, the same step size lr = {c['lr']} for every run, from random starts "
             f"(seeds {c['seeds']}), K = {c['num_classes']}, d = {c['dim']}, n = {c['per_class']}, "
             f"lambda_W = {c['lambda_w']}, lambda_H = {c['lambda_h']}; stopped at ||grad f|| < {c['tol']:g} or "
             f"{c['max_steps']} steps. Crossings below are read off the records, taken every {c['record_every']} steps.",
             "", "![trajectory](fig_trajectory.png)", "",
             "| alpha | seeds | converged | mean steps to ||grad f|| < tol | mean first step with f - f* < 1e-8 | "
             "mean first step with NC1 < 1e-6 |", "|---|---|---|---|---|---|"]
    by_alpha = {}
    for run in rec["runs"]:
        by_alpha.setdefault(run["alpha"], []).append(run)
    means = {}
    for a, runs in by_alpha.items():
        gaps = [first_crossing(r["step"], [f - r["f_star"] for f in r["objective"]], 1e-8) for r in runs]
        nc1s = [first_crossing(r["step"], r["nc1"], 1e-6) for r in runs]
        steps = [r["steps"] for r in runs if r["converged"]]
        conv = sum(r["converged"] for r in runs)
        means[a] = mean(steps) if conv == len(runs) else None

        def m(v):
            return _fmt(mean(v)) if all(x is not None for x in v) else "not reached"

        lines.append(f"| {a} | {len(runs)} | {conv}/{len(runs)} | {_fmt(means[a]) if means[a] else 'n/a'} | "
                     f"{m(gaps)} | {m(nc1s)} |")
    lines.append("")
    ce = means.get(0.0)
    for a, v in means.items():
        if a == 0.0 or ce is None or v is None:
            continue
        verdict = "fewer" if v < ce else ("more" if v > ce else "as many")
        lines.append(f"Measured: label smoothing (alpha = {a}) took {verdict} gradient-descent steps than "
                     f"cross-entropy to reach ||grad f|| < {c['tol']:g} ({v:.0f} against {ce:.0f} on average, "
                     f"ratio CE/LS = {ce / v:.2f}) in this configuration. One configuration says nothing general; "
                     "the conditioning analysis and sweeps are where the claim is tested.")
    if ce is None:
        lines.append("Not every run converged within the step cap, so no step counts are compared.")
    return lines + [""]


def build_report(out) -> Path:
    """Build the figures and ``report.md`` in ``out`` from ``out/records/*.json``."""
    out = Path(out)
    rec = {name: read_json(out / "records" / f"{name}.json")
           for name in RECORDS}
    figures.plot_verify(rec["verify"], out / "fig_verify.png")
    figures.plot_alpha_sweep(rec["alpha_sweep"], out / "fig_alpha.png")
    figures.plot_trajectory(rec["trajectory"], out / "fig_trajectory.png")
    env = rec["verify"]["environment"]
    d = rec["derivation"]
    lines = ["# ufm demo report", "",
             f"Built from `records/*.json` alone (rebuild with `ufm report {out}`). ufm {env['ufm']}, "
             f"torch {env['torch']}, Python {env['python']}, {env['platform']}"
             + (f", GPU {env['cuda']}" if env.get("cuda") else ", CPU") + ".", "",
             "Conventions: f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + (lambda_W/2)||W||_F^2 + "
             "(lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2 with the label-smoothed target (1 - alpha) e_y + "
             "(alpha/K) 1 (alpha = 0: cross-entropy); NC1 = tr(Sigma_W Sigma_B^+)/K with the global mean taken "
             "as the mean of the class means.", "",
             "## 1. The closed-form minimizer", "",
             "Derived symbolically under the neural-collapse ansatz (full derivation: [derivation.md](derivation.md)), "
             "with s = sqrt(n lambda_W lambda_H):", "",
             "$$\\Delta^\\star = " + d["latex"]["logit_gap"] + "$$", "",
             "$$p_{\\mathrm{true}}^\\star = " + d["latex"]["p_true"] + ", \\quad p_{\\mathrm{off}}^\\star = "
             + d["latex"]["p_off"] + "$$", "",
             "The nonzero minimizer exists iff $s < " + d["latex"]["threshold"] + "$. For cross-entropy "
             "(alpha = 0): $\\Delta^\\star = " + d["latex_ce"]["logit_gap"] + "$, threshold $s < "
             + d["latex_ce"]["threshold"] + "$.", ""]
    lines += _verify_section(rec["verify"])
    lines += _alpha_section(rec["alpha_sweep"])
    lines += _trajectory_section(rec["trajectory"])
    lines += ["## Run time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v['seconds']:.1f} |" for k, v in rec.items()]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
