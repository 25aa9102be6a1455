"""Assemble the demo report (Markdown + PNG) from the records in ``OUT/records/``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List

from ufm._core.io import atomic_write_text, read_json, writable_folder
from ufm.report import figures

__all__ = ["build_report", "RECORDS"]

#: the records a report is built from, in OUT/records/NAME.json
RECORDS = ("derivation", "verify", "alpha_sweep", "trajectory", "conditioning", "regimes", "convergence", "sweep",
           "experiment", "claims")


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


def _level(x: float) -> str:
    """A tolerance as the report writes it: 1e-8, not 1e-08."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _verify_section(rec: dict) -> List[str]:
    rows, cfg, summ = rec["rows"], rec["config"], rec["summary"]
    ks = sorted({r["num_classes"] for r in rows})
    lines = ["## 2. Verification: numerical solutions against the closed form", "",
             f"{summ['total']} points (K in {ks}, d in {{K-1, K, 2K}}, alpha in {{0, 0.05, 0.1, 0.2, 0.3}}, "
             f"three lambda settings, seeds {cfg['seeds']}, n = {cfg['per_class']}), solved by batched "
             f"{cfg['method']} to ||grad f|| < {cfg['solver_tol']:g} in float64; {summ['trivial']} of them lie past the "
             f"threshold (trivial solution W = H = 0).", "",
             f"**{summ['passed']} of {summ['total']} points agree with the closed form to {cfg['tol']:g}** "
             f"(relative error; NC metrics and bias as defined in the README).", "",
             "| quantity | worst error | median error |", "|---|---|---|"]
    lines += [f"| {q} | {e['worst']:.2e} | {e['median']:.2e} |" for q, e in summ["errors"].items()]
    if summ["failed"]:
        lines += ["", "Points that failed:", "", "| K | d | alpha | lambda_w | lambda_h | lambda_b | seed | max error | converged |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in summ["failed"]:
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
             "| alpha | trivial | logit gap (numeric) | logit gap (closed form) | p_true (numeric) | norm of w_k (numeric) | "
             "norm of h_i (numeric) |",
             "|---|---|---|---|---|---|---|"]
    for num, cf in zip(rec["numeric"], rec["closed_form_points"]):
        lines.append(f"| {num['alpha']} | {_fmt(cf['trivial'])} | {num['logit_gap']:.6f} | {cf['logit_gap']:.6f} | "
                     f"{num['p_true']:.6f} | {num['w_norm']:.6f} | {num['h_norm']:.6f} |")
    return lines + [""]


def _trajectory_section(rec: dict) -> List[str]:
    c, summ = rec["config"], rec["summary"]
    lines = ["## 4. Gradient descent: cross-entropy against label smoothing", "",
             f"Plain gradient descent, the same step size lr = {c['lr']} for every run, from random starts "
             f"(seeds {c['seeds']}), K = {c['num_classes']}, d = {c['dim']}, n = {c['per_class']}, "
             f"lambda_W = {c['lambda_w']}, lambda_H = {c['lambda_h']}; stopped at ||grad f|| < {c['tol']:g} or "
             f"{c['max_steps']} steps. Crossings below are read off the records, taken every {c['record_every']} steps.",
             "", "![trajectory](fig_trajectory.png)", "",
             "| alpha | seeds | converged | mean steps to gradient norm < tol | mean first step with f - f* < "
             f"{_level(summ['gap_level'])} | mean first step with NC1 < {_level(summ['nc1_level'])} |",
             "|---|---|---|---|---|---|"]

    def reached(v):
        return "not reached" if v is None else _fmt(v)

    for a in summ["alphas"]:
        lines.append(f"| {a['alpha']} | {a['runs']} | {a['converged']}/{a['runs']} | "
                     f"{_fmt(a['mean_steps']) if a['mean_steps'] else 'n/a'} | {reached(a['mean_steps_gap'])} | "
                     f"{reached(a['mean_steps_nc1'])} |")
    lines.append("")
    for v in summ["ce_vs_ls"]:
        lines.append(f"Measured: label smoothing (alpha = {v['alpha']}) took {v['label_smoothing_took']} gradient-descent "
                     f"steps than cross-entropy to reach ||grad f|| < {c['tol']:g} ({v['steps_ls']:.0f} against "
                     f"{v['steps_ce']:.0f} on average, ratio CE/LS = {v['ratio_ce_ls']:.2f}) in this configuration. One "
                     "configuration says nothing general; the conditioning analysis and sweeps are where the claim is "
                     "tested.")
    if not summ["all_converged"]:
        lines.append("Not every run converged within the step cap, so no step counts are compared.")
    return lines + [""]


def _kappa_table(rec: dict) -> List[str]:
    """The demo's points: per definition and K, the summarized verdict and the kappas compared."""
    lines = ["| definition | " + " | ".join(f"K = {k}" for k in rec["summary"]) + " |",
             "|---|" + "---|" * len(rec["summary"])]
    for dfn in ("logits", "features", "classifier", "full", "full, b included"):
        cells = []
        for summ in rec["summary"].values():
            v = summ.get(dfn)
            if v is None:
                cells.append("n/a")
            elif max(v["alphas"]) > 0 and min(v["alphas"]) == 0:
                kappa = dict(zip(v["alphas"], v["kappa"]))
                hi = max(kappa)
                cells.append(f"{v['verdict']} (CE {_fmt(kappa[0.0])}, alpha={hi:g}: {_fmt(kappa[hi])})")
            else:
                cells.append(v["verdict"])
        if any(c != "n/a" for c in cells):
            lines.append(f"| {dfn} | " + " | ".join(cells) + " |")
    return lines


def _regime_cells(regimes: List[dict]) -> str:
    """A run of regimes along s K: ``higher below 0.224, mixed to 0.365, lower above``."""
    parts = []
    for i, r in enumerate(regimes):
        if len(regimes) == 1:
            parts.append(f"{r['verdict']} everywhere")
        elif i == 0:
            parts.append(f"{r['verdict']} below {r['sK_to']:.3f}")
        elif i == len(regimes) - 1:
            parts.append(f"{r['verdict']} above {r['sK_from']:.3f}")
        else:
            parts.append(f"{r['verdict']} to {r['sK_to']:.3f}")
    return ", ".join(parts)


def _map_table(rec: dict, ratio: float) -> List[str]:
    """The regime map at lambda_W / lambda_H = ``ratio``: per definition and d-regime, the verdict
    along s K for each K."""
    regimes = rec["map"]
    Ks = sorted({r["K"] for r in regimes})
    lines = ["| definition | d | " + " | ".join(f"K = {K}" for K in Ks) + " |", "|---|---|" + "---|" * len(Ks)]
    for dfn in dict.fromkeys(r["definition"] for r in regimes):
        for d_regime in ("K-1", ">=K"):
            cells = [_regime_cells([r for r in regimes if (r["definition"], r["d_regime"], r["K"]) == (dfn, d_regime, K)
                                    and r["lambda_ratio"] == ratio]) for K in Ks]
            lines.append(f"| {dfn} | {'K-1' if d_regime == 'K-1' else '>= K'} | " + " | ".join(cells) + " |")
    return lines


def _point_lines(rec: dict) -> List[str]:
    """Where the demo's points lie on the map."""
    lines = []
    for K, defs in rec["points"].items():
        first = next(iter(defs.values()))
        cells = []
        for dfn, pt in defs.items():
            r = pt["regime"]
            cells.append(f"`{dfn}` {r['verdict']} (s K in [{r['sK_from']:.3f}, {r['sK_to']:.3f}))" if r else
                         f"`{dfn}`: {pt['note']}")
        lines.append(f"- K = {K}: s K = {first['sK']:.3f}, d {first['d_regime'].replace('>=K', '>= K')}, "
                     f"lambda_W/lambda_H = {first['lambda_ratio']:g}, alphas {first['alphas']}: " + "; ".join(cells))
    return lines


def _conditioning_section(rec: dict, regimes: dict, hessian_link: str) -> List[str]:
    c, m = rec["config"], regimes["config"]
    ratio = m["figure"]["lambda_ratio"]
    lines = ["## 5. Conditioning: Hessian spectra at the minimizers", "",
             "The claim under test: at the global minimizer, label smoothing gives a lower condition number than "
             "cross-entropy. The condition number depends on which Hessian is meant, so four are computed (README, "
             "Conditioning): `logits` (per-sample loss in the logits), `features` (f in H at W*), `classifier` "
             "(f in W at H*) and `full` (f in (W, H), b too when lambda_b > 0; condition number off the rotation "
             "null space; `full, b included` keeps b as a variable when lambda_b = 0). Spectra are the symbolic "
             "ones of " + hessian_link + ". The answer depends on where a configuration lies: the regime map "
             "below gives, for each definition, the verdict along s K = K sqrt(n lambda_W lambda_H) over every "
             f"alpha in (0, {m['alpha_max']:g}] below the threshold (`ufm conditioning --map`; crossovers by "
             "root-finding on the derived condition numbers). At lambda_W / lambda_H = "
             f"{ratio:g} (n = {m['per_class']}, which only `full, b included` depends on):", ""]
    lines += _map_table(regimes, ratio)
    lines += ["", "![regime map](fig_regimes.png)", "",
              "The logits condition number is K p_true: it involves no W, H or d, so it says nothing about gradient "
              "descent on (W, H). The map for the other ratios (" + ", ".join(f"{r:g}" for r in m["lambda_ratios"])
              + ") is in `records/regimes.json`; the claims table at the top judges the claim on the whole map.", "",
              f"The demo's own points (d = K, n = {c['per_class']}, lambda_W = {c['lambda_w']}, lambda_H = "
              f"{c['lambda_h']}, lambda_b = {c['lambda_b']}, alpha in {c['alphas']}) lie in these regimes, and at "
              "them the condition numbers compare as follows; one point per K says nothing beyond its regime:", ""]
    lines += _point_lines(regimes) + ["", "![conditioning](fig_conditioning.png)", ""] + _kappa_table(rec)
    chk, nc, agree = rec["numeric_check"], c["numeric_check"], rec["agreement"]
    lines += ["", f"Symbolic against numeric spectra (K = {nc['num_classes']}, d = {nc['dim']}, n = {nc['per_class']}, "
              f"alpha in {nc['alphas']}, minimizer by L-BFGS, dense Hessians by autodiff): the largest eigenvalue "
              f"difference, relative to the largest eigenvalue, is {_fmt(agree['max_eigenvalue_error'])}; null-space "
              f"dimensions {'agree' if agree['null_dims_agree'] else 'DISAGREE'}.", "",
              "| alpha | definition | kappa symbolic | kappa numeric | null symbolic | null numeric (tol) |",
              "|---|---|---|---|---|---|"]
    for r in chk:
        lines.append(f"| {r['alpha']} | {r['definition']} | {r['kappa_symbolic']:.8g} | {r['kappa_numeric']:.8g} | "
                     f"{r['null_symbolic']} | {r['null_numeric']} ({r['null_tol']:.1e}) |")
    return lines + [""]


def _steps_sentence(summ: dict) -> str:
    """CE against each LS alpha: mean steps to the middle tolerance of NC1 and of the orbit distance."""
    names = {"nc1": "NC1", "orbit": "the orbit distance"}
    out = [f"{names[v['quantity']]} < {v['eps']:g}: {v['steps_ls']:.0f} steps with LS (alpha = {v['alpha']:g}) against "
           f"{v['steps_ce']:.0f} with CE (ratio CE/LS {v['ratio_ce_ls']:.2f})"
           for v in summ["ce_vs_ls"] if v["steps_ce"] is not None and v["steps_ls"] is not None]
    if not out:
        return "Not every run reached the tolerances, so no step counts are compared."
    return (f"Under the {summ['ce_vs_ls'][0]['rule']} rule, mean over seeds: " + "; ".join(out) + ". One configuration; "
            "the sweeps are where this is mapped.")


def _steps_cells(summ: dict, rule: str, alpha: float, eps) -> List[str]:
    cells = []
    for q in ("nc1", "orbit"):
        for e in eps:
            s = next(x for x in summ["steps"] if (x["rule"], x["alpha"], x["quantity"], x["eps"]) == (rule, alpha, q, e))
            cells.append("not reached" if s["mean"] is None else _fmt(s["mean"]))
    return cells


def _rates_paragraphs(summ: dict) -> List[str]:
    lines = []
    r = summ["rates"]
    if r["worst_deviation"] is not None:
        verb = "match" if r["matches"] else "do NOT match"
        text = (f"**In plain words.** The measured local rates {verb} the full-spectrum prediction "
                f"max abs(1 - lr mu): the largest difference is {r['worst_deviation']:.2g} of 1 - rate (relative; "
                f"the criterion is {r['tolerance']:g}). ")
        lo, hi = summ["lr_times_L"]["min"], summ["lr_times_L"]["max"]
        if hi < 0.5:
            text += (f"The step sizes are below 1/L* (lr L* is {lo:.2g} to {hi:.2g}), because the "
                     "curvature at the random starts is larger than at the minimizer; the local rate is then "
                     "1 - lr mu_min, set by the smallest nonzero eigenvalue, not 1 - 1/kappa, so a lower "
                     "condition number alone does not predict faster local convergence here. ")
        lines.append(text + _steps_sentence(summ))
    if summ["nc1"]:
        band = summ["nc1_band"]
        which = {k: [f"alpha = {v['alpha']:g} ({v['rule']})" for v in summ["nc1"] if v["verdict"] == k]
                 for k in ("agrees", "slower", "faster")}
        lines += ["", "NC1 sees only the within-class scatter inside the span of the class means. Its predicted "
                  "rate is the square of the slower of the in-span within-class mode (hessian.md) and, at d >= K, "
                  "the product mode abs(1 - lr lambda_H) abs(1 - lr (lambda_W + lambda_H)) "
                  "(derivations/convergence.md). "
                  + (f"The measured NC1 rate agrees with it to {band:.0%} of 1 - rate for {', '.join(which['agrees'])}. "
                     if which["agrees"] else "")
                  + (f"NC1 contracts more slowly than predicted for {', '.join(which['slower'])}: a mode slower than "
                     "both is at work there. " if which["slower"] else "")
                  + (f"NC1 contracts faster than predicted for {', '.join(which['faster'])}. " if which["faster"] else "")]
    return lines


def _convergence_section(rec: dict) -> List[str]:
    c, summ = rec["settings"], rec["summary"]
    p = c["problem"]
    lines = ["## 6. Convergence of gradient descent and the predicted rates", "",
             f"Gradient descent from random starts (seeds {c['seeds']}), K = {p['num_classes']}, d = {p['dim']}, "
             f"n = {p['per_class']}, lambda_W = {p['lambda_w']}, lambda_H = {p['lambda_h']}. Step-size rules "
             "(README, Conditioning): `local` lr = 1/max(L*, L0) per alpha, `common` the smallest of these for "
             "every run; L* and L0 are the largest Hessian eigenvalues at the minimizer and at the starts. "
             "The measured rate is fitted to log ||grad f|| where it is below "
             f"{c['fit_below']:g}.", "", "![convergence](fig_convergence.png)", "",
             "| rule | alpha | lr | lr L* | kappa (full) | 1 - 1/kappa | predicted max abs(1 - lr mu) | measured (mean) | "
             "NC1 rate predicted | NC1 rate measured | "
             + " | ".join(f"steps {q} < {e:g}" for q in ("nc1", "orbit") for e in c["eps"]) + " |",
             "|---|---|---|---|---|---|---|---|---|---|" + "---|" * (2 * len(c["eps"]))]
    for pr in rec["predictions"]:
        m = pr["rate_measured_mean"]
        lines.append(f"| {pr['rule']} | {pr['alpha']} | {pr['lr']:.4g} | {pr['lr'] * pr['L_minimizer']:.3g} | "
                     f"{_fmt(pr['kappa_full'])} | {pr['rate_1-1/kappa_full']:.4f} | {pr['rate_predicted_full']:.6f} | "
                     f"{'n/a' if m is None else f'{m:.6f}'} | {pr['rate_predicted_nc1']:.6f} | "
                     f"{_fmt(pr.get('rate_measured_nc1_mean'), 6)} | "
                     + " | ".join(_steps_cells(summ, pr["rule"], pr["alpha"], c["eps"])) + " |")
    return lines + ["", "![rates](fig_rates.png)", ""] + _rates_paragraphs(summ) + [""]


def _sweep_section(rec: dict, figures: List[Path], out: Path) -> List[str]:
    c, s = rec["config"], rec["summary"]
    lines = ["## 7. A small sweep", "",
             f"`ufm sweep` over K in {c['classes']}, alpha in {c['alphas']}, lambda_W in {c['lambda_w']}, "
             f"lambda_H in {c['lambda_h']}, n = {c['per_class']}, d = K, computing {', '.join(c['what'])}: "
             f"{s['total']} points, {s['errors']} with errors. The store is `{rec['folder']}/sweep.sqlite`, the table "
             f"`{rec['folder']}/results.csv`; `ufm plot {out / rec['folder']}` redraws these figures from the store.", ""]
    lines += [f"![{p.stem}]({rec['folder']}/{p.name})" for p in figures]
    return lines + [""]


def _experiment_section(rec: dict, out: Path, to: Path) -> List[str]:
    from ufm.report.experiment import load_runs, render_experiment, summary_table
    from ufm.report.validation import validation_markdown

    c = rec["config"]
    folder = out / rec["folder"]
    render_experiment(folder, to=to / rec["folder"])  # figures and report.md, from the run records alone

    lines = ["## 8. Networks: CE vs LS (the mnist1d-mlp experiment, short form)", "",
             f"`ufm experiment mnist1d-mlp` shortened to {c['epochs']} epochs, alpha in {c['alphas']}, seeds "
             f"{c['seeds']}: an MLP on MNIST-1D trained with SGD, NC metrics and calibration recorded every "
             f"{c['eval_every']} epochs on the train, val and test splits (raw records: `{rec['folder']}/runs/*/"
             f"metrics.jsonl`; full report: [{rec['folder']}/report.md]({rec['folder']}/report.md)). Last records, "
             "train-split NC metrics, test-split calibration before and after temperature scaling (fitted on val):", ""]
    lines += summary_table(load_runs(folder)) + ["", "What the UFM predicts, against what the networks did (criteria stated in "
                                     "`ufm.analysis.networks`):", ""]
    lines += validation_markdown(rec["validation"]).rstrip().split("\n") + [""]
    lines += [f"![{n}]({rec['folder']}/{n})" for n in ("nc_vs_epoch.png", "calibration_vs_alpha.png",
                                                         "ufm_predictions.png")]
    u = c["ufm_run"]
    lines += ["", f"A UFM-style run (`{rec['ufm_folder']}/`): {u['dataset']} data, MLP whose last hidden layer is "
              f"linear, explicit penalties lambda_W = {u['lambda_w']}, lambda_H = {u['lambda_h']} (full-data scale), "
              f"alpha = {u['alpha']}, full-batch SGD with momentum for {u['epochs']} epochs. The closed form for its "
              "K, n = N/K and lambdas against the last record:", ""]
    lines += validation_markdown(rec["ufm_validation"]).rstrip().split("\n")[2:] + [""]
    return lines


def _claims_section(rec: dict) -> List[str]:
    from ufm.report.claims import claims_markdown

    return ["## Claims of the paper, judged on this demo's records", "",
            "Each claim is judged by `ufm.analysis.claims` on the records below (`ufm claims` prints the same). "
            "The network claims need 5 seeds or more (the fewest with which the exact sign test can reach a "
            "verdict) and runs in the terminal phase; the demo's short experiment has neither, so they come out "
            "inconclusive or not applicable here, with the reason. `ufm experiment mnist1d-mlp` (5 seeds, 200 "
            "epochs) and then `ufm claims ufm-experiments/mnist1d-mlp` judge them on full evidence.", "",
            claims_markdown(rec["results"]), ""]


def _header(rec: dict, out: Path) -> List[str]:
    env, d = rec["verify"]["environment"], rec["derivation"]
    return ["# ufm demo report", "",
            f"Built from `records/*.json` alone (rebuild with `ufm report {out}`). ufm {env['ufm']}, "
            f"torch {env['torch']}, Python {env['python']}, {env['platform']}"
            + (f", GPU {env['cuda']}" if env.get("cuda") else ", CPU") + ".", "",
            "Conventions: f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + (lambda_W/2)||W||_F^2 + "
            "(lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2 with the label-smoothed target (1 - alpha) e_y + "
            "(alpha/K) 1 (alpha = 0: cross-entropy); NC1 = tr(Sigma_W Sigma_B^+)/K with the global mean taken "
            "as the mean of the class means.", ""] + _claims_section(rec["claims"]) + [
            "## 1. The closed-form minimizer", "",
            "Derived symbolically under the neural-collapse ansatz (full derivation: [derivation.md](derivation.md)), "
            "with s = sqrt(n lambda_W lambda_H):", "",
            "$$\\Delta^\\star = " + d["latex"]["logit_gap"] + "$$", "",
            "$$p_{\\mathrm{true}}^\\star = " + d["latex"]["p_true"] + ", \\quad p_{\\mathrm{off}}^\\star = "
            + d["latex"]["p_off"] + "$$", "",
            "The nonzero minimizer exists iff $s < " + d["latex"]["threshold"] + "$. For cross-entropy "
            "(alpha = 0): $\\Delta^\\star = " + d["latex_ce"]["logit_gap"] + "$, threshold $s < "
            + d["latex_ce"]["threshold"] + "$.", ""]


def _figures(rec: dict, out: Path, to: Path) -> List[Path]:
    """The demo's figures from the records in ``out``, drawn into ``to``; returns the sweep's."""
    from ufm.report.regime_figures import regime_figure
    from ufm.report.sweep_figures import plot_sweep

    figures.plot_verify(rec["verify"], to / "fig_verify.png")
    figures.plot_alpha_sweep(rec["alpha_sweep"], to / "fig_alpha.png")
    figures.plot_trajectory(rec["trajectory"], to / "fig_trajectory.png")
    figures.plot_conditioning(rec["conditioning"], to / "fig_conditioning.png")
    m = rec["regimes"]["config"]
    regime_figure(to / "fig_regimes.png", K=m["figure"]["K"], lambda_ratio=m["figure"]["lambda_ratio"],
                  per_class=m["per_class"], alpha_max=m["alpha_max"])
    figures.plot_convergence(rec["convergence"], to / "fig_convergence.png",
                             rule=rec["convergence"]["settings"]["rules"][0])
    figures.plot_rates(rec["convergence"], to / "fig_rates.png")
    return plot_sweep(out / rec["sweep"]["folder"], to=to / rec["sweep"]["folder"])


def build_report(out, to=None) -> Path:
    """Build the figures and ``report.md`` from ``out/records/*.json`` into ``to`` (None: ``out``,
    which is otherwise only read).

    Raises:
        NotWritableError: ``to`` cannot be written to; raised before any figure is drawn.
    """
    out = Path(out)
    rec = {name: read_json(out / "records" / f"{name}.json") for name in RECORDS}
    to = writable_folder(out if to is None else to)
    sweep_figs = _figures(rec, out, to)
    lines = _header(rec, out)
    lines += _verify_section(rec["verify"])
    lines += _alpha_section(rec["alpha_sweep"])
    lines += _trajectory_section(rec["trajectory"])
    link = ("[hessian.md](hessian.md)" if rec["derivation"].get("hessian_markdown") else
            "`derivations/hessian.md` (not written by the quick demo; `ufm derive --hessian --markdown` prints it)")
    lines += _conditioning_section(rec["conditioning"], rec["regimes"], link)
    lines += _convergence_section(rec["convergence"])
    lines += _sweep_section(rec["sweep"], sweep_figs, out)
    lines += _experiment_section(rec["experiment"], out, to)
    lines += ["## Run time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v['seconds']:.1f} |" for k, v in rec.items()]
    path = to / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
