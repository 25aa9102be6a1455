"""Plain-text renderings of what the API returns: the tables and lines the command line prints.

Each function takes a result (a closed form, ``solve_and_compare``'s dict, verify rows and their
summary, spectra and their verdicts, ``convergence``'s dict, a training summary, ...) and
returns lines (or one line); the command prints them. Nothing here computes a verdict: the
verdicts and counts come from ``ufm.analysis``; these functions only lay them out.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence

from ufm._core.io import to_jsonable

__all__ = ["json_text", "problem_text", "closed_form_lines", "solve_lines", "verify_lines", "conditioning_lines",
           "convergence_lines", "train_lines", "experiment_list_lines", "experiment_done_line", "plan_lines", "sweep_status_line",
           "sweep_done_line", "regime_map_lines", "regime_point_lines", "duration_text", "LOGITS_NOTE"]


def json_text(obj) -> str:
    """``obj`` as the indented JSON of ``--json`` (tensors and numpy values as lists, NaN as null)."""
    return json.dumps(to_jsonable(obj), indent=1)


def problem_text(p: Mapping) -> str:
    """``K=.. n=.. d=.. lambda_W=.. lambda_H=.. lambda_b=..`` of a problem's ``to_dict()``."""
    return (f"K={p['num_classes']} n={p['per_class']} d={p['dim']} lambda_W={p['lambda_w']:g} "
            f"lambda_H={p['lambda_h']:g} lambda_b={p['lambda_b']:g}")


# -- one problem -----------------------------------------------------------------------------

_CLOSED_FORM_KEYS = ("logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective", "bias_norm")


def closed_form_lines(cf, latex: Optional[Mapping[str, str]] = None) -> List[str]:
    """The closed form ``cf`` (a ``ClosedForm``) of ``ufm closed-form``; ``latex``: the LaTeX of
    each closed form, printed after the values."""
    p = cf.problem
    ce = ", cross-entropy" if p.alpha == 0 else ""
    lines = [f"UFM closed form, loss {p.loss} (alpha = {p.alpha:g}{ce}): {problem_text(p.to_dict())}"]
    lines += [f"  {k:<10} {getattr(cf, k):.12g}" for k in _CLOSED_FORM_KEYS]
    rel = "<" if not cf.trivial else ">="
    lines.append(f"  trivial    {'yes' if cf.trivial else 'no'} (s = sqrt(n lambda_W lambda_H) = "
                 f"{cf.reg_strength:.6g} {rel} threshold (1 - alpha)/K = {cf.threshold:.6g})")
    if not cf.applies:
        lines.append("  note: d < K-1, so these are the ETF-ansatz values, not the minimizer")
    if latex is not None:
        lines.append("LaTeX (s = \\sqrt{n \\lambda_W \\lambda_H} expanded; nonzero branch):")
        lines += [f"  {k} = {tex}" for k, tex in latex.items()]
    return lines


#: the columns of a closed-form table (``ufm closed-form`` with lists): the problem, then the values
CLOSED_FORM_COLUMNS = ("K", "n", "d", "lambda_w", "lambda_h", "lambda_b", "alpha") + _CLOSED_FORM_KEYS[:-1] + (
    "threshold", "reg_strength", "trivial", "applies")


def closed_form_rows(cfs) -> List[list]:
    """One row per ``ClosedForm``, the columns of CLOSED_FORM_COLUMNS (numbers as they are)."""
    return [[cf.problem.K, cf.problem.n, cf.problem.d, cf.problem.lambda_w, cf.problem.lambda_h, cf.problem.lambda_b,
             cf.problem.alpha, *[getattr(cf, k) for k in CLOSED_FORM_COLUMNS[7:]]] for cf in cfs]


def closed_form_table(cfs) -> List[str]:
    """Closed forms as an aligned text table, one problem a row (floats to 6 significant digits)."""
    cells = [[("yes" if v else "no") if isinstance(v, bool) else f"{v:.6g}" if isinstance(v, float) else str(v)
              for v in row] for row in closed_form_rows(cfs)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(CLOSED_FORM_COLUMNS)]
    return ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [list(CLOSED_FORM_COLUMNS), *cells]]


def closed_form_csv(cfs) -> str:
    """Closed forms as CSV: a header of CLOSED_FORM_COLUMNS, one problem a row (full precision)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CLOSED_FORM_COLUMNS)
    writer.writerows(closed_form_rows(cfs))
    return buf.getvalue()


_SOLVE_KEYS = ("logit_gap", "p_true", "w_norm", "h_norm", "objective")
_NC_KEYS = ("nc1", "nc2_h", "nc2_w", "nc3", "nc4")


def solve_lines(out: Mapping, nc1_variant: str = "normalized", convention: str = "ufm") -> List[str]:
    """``solve_and_compare``'s result: the solver's outcome, numeric against closed-form values,
    and the NC metrics (``nc1_variant`` as measured)."""
    m, solver = out["numeric"], out["solver"]
    converged = "yes" if m["converged"] else "no (" + m["status"] + ")"
    lines = [f"solved with {solver['method']} in {m['steps']} steps ({solver['seconds']:.2f} s): "
             f"||grad f|| = {m['grad_norm']:.3g}, converged: {converged}"]
    cf = out.get("closed_form")
    lines.append(f"  {'quantity':<10} {'numeric':>16} {'closed form':>16} {'error':>10}")
    for k in _SOLVE_KEYS:
        ref = f"{cf[k]:16.10g}" if cf else f"{'n/a':>16}"
        err = f"{out['errors'][k]:10.2e}" if cf else f"{'n/a':>10}"
        lines.append(f"  {k:<10} {m[k]:16.10g} {ref} {err}")
    if cf:
        lines.append(f"  {'bias':<10} {m['bias_distance']:16.3g} {'(distance to the optimal set)':>27}")
    if "orbit" in m:
        lines.append(f"  distance to the minimizer orbit (relative): {m['orbit']:.3g}")
    variant = ("tr/K" if nc1_variant == "normalized" else "tr, no 1/K") if convention == "ufm" else \
        f"convention {convention}"
    lines.append(f"  NC metrics ({variant}): " + ", ".join(f"{k}={m[k]:.3g}" for k in _NC_KEYS))
    return lines


def solve_seeds_lines(out: Mapping) -> List[str]:
    """``solve_seeds``' result: the solver's outcome over the seeds, then per quantity the spread
    (mean, std, min, max) over the seeds, the closed form and the worst error over the seeds."""
    solver, seeds = out["solver"], out["solver"]["seeds"]
    lines = [f"solved from {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}) with {solver['method']} in "
             f"{solver['seconds']:.2f} s: {out['converged']}/{len(seeds)} converged"]
    cf = out.get("closed_form")
    lines.append(f"  {'quantity':<10} {'mean':>14} {'std':>10} {'min':>14} {'max':>14} {'closed form':>14} "
                 f"{'worst error':>11}")
    for k, s in out["spread"].items():
        ref = f"{cf[k]:14.10g}" if cf and k in cf else f"{'':>14}"
        err = f"{max(e[k] for e in out['errors']):11.2e}" if cf and k in out["errors"][0] else f"{'':>11}"
        lines.append(f"  {k:<10} {s['mean']:14.10g} {s['std']:10.3g} {s['min']:14.10g} {s['max']:14.10g} {ref} {err}")
    if cf:
        lines.append(f"  worst error over the seeds and the checked quantities: {out['worst_error']:.3g}")
    return lines


# -- a grid of problems ----------------------------------------------------------------------

def verify_lines(rows: Sequence[Mapping], summary: Mapping, tol: float, seconds: float) -> List[str]:
    """``verify``'s rows, one line each, then how many agree (``summary``: ``summarize_rows``)."""
    lines = [f"{'K':>3} {'d':>3} {'alpha':>5} {'lambda_w':>8} {'lambda_h':>8} {'lambda_b':>8} {'seed':>4} "
             f"{'trivial':>7} {'steps':>5} {'max error':>9}  ok"]
    for r in rows:
        lines.append(f"{r['num_classes']:>3} {r['dim']:>3} {r['alpha']:>5g} {r['lambda_w']:>8g} {r['lambda_h']:>8g} "
                     f"{r['lambda_b']:>8g} {r['seed']:>4} {'yes' if r['trivial'] else 'no':>7} {r['num_steps']:>5} "
                     f"{r['max_error']:>9.2e}  {'ok' if r['ok'] else 'FAIL'}")
    lines.append(f"{summary['passed']}/{summary['total']} points agree with the closed form to {tol:g} "
                 f"({seconds:.1f} s)")
    return lines


def _spectrum_cells(s) -> tuple:
    """(kappa, null, min nonzero, max, count) of a spectrum row; a partial (Lanczos) spectrum
    has only its top."""
    if not s.complete:
        return "partial", "-", "-", s.largest, "-"
    return f"{s.condition_number:.6g}", str(s.null_dim), f"{s.smallest_nonzero:.6g}", s.largest, str(len(s.eigenvalues))


def _verdict_lines(summary: Mapping[str, Mapping]) -> List[str]:
    """The verdict of each definition (``ufm.analysis.conditioning.summarize``); none without a CE
    baseline."""
    if all(v["verdict"] == "no CE baseline" for v in summary.values()):
        return []
    lines = ["Label smoothing vs CE (symbolic condition numbers):"]
    for dfn, v in summary.items():
        ce = [k for a, k in zip(v["alphas"], v["kappa"]) if a == 0]
        ls = ", ".join(f"kappa(alpha={a:g}) = {k:.6g}" for a, k in zip(v["alphas"], v["kappa"]) if a > 0)
        ce_text = f"kappa(CE) = {ce[0]:.6g}" if ce else "no CE baseline"
        lines.append(f"  {dfn + ':':<17} {v['verdict']}: {ce_text}; " + ls)
    return lines


def conditioning_lines(problem: Mapping, spectra: Iterable, summary: Mapping[str, Mapping],
                       where: Optional[Mapping[str, Mapping]] = None) -> List[str]:
    """The spectra of ``conditioning`` (one row per alpha, definition and source), where the point
    lies on the regime map (``where``: ``ufm.analysis.regimes.regime_of``, if given) and the verdicts
    of ``summarize``; ``problem``: the problem's ``to_dict()``."""
    lines = [f"Hessian spectra at the minimizer: {problem_text(problem)} (README, Conditioning)",
             f"  {'alpha':>6} {'definition':<10} {'source':<8} {'kappa':>12} {'null':>5} {'min nonzero':>12} "
             f"{'max':>12} {'distinct':>8}"]
    for s in spectra:
        kappa, null, low, top, count = _spectrum_cells(s)
        lines.append(f"  {s.alpha:>6g} {s.definition:<10} {s.source:<8} {kappa:>12} {null:>5} {low:>12} "
                     f"{top:>12.6g} {count:>8}")
    return lines + (regime_point_lines(where) if where else []) + _verdict_lines(summary)


def convergence_lines(out: Mapping) -> List[str]:
    """``convergence``'s predictions (rate predicted and measured per rule and alpha) and the mean
    steps to each eps (``out["summary"]["steps"]``)."""
    config = out["config"]
    lines = [f"Gradient descent, {problem_text(config['problem'])}, {len(config['seeds'])} seeds "
             "(README, Conditioning)",
             f"  {'rule':<7} {'alpha':>6} {'lr':>9} {'kappa_full':>10} {'rate predicted':>14} {'rate measured':>13}"]
    for r in out["predictions"]:
        meas = "n/a" if r["rate_measured_mean"] is None else f"{r['rate_measured_mean']:.6f}"
        lines.append(f"  {r['rule']:<7} {r['alpha']:>6g} {r['lr']:>9.4g} {r['kappa_full']:>10.4g} "
                     f"{r['rate_predicted_full']:>14.6f} {meas:>13}")
    lines.append("  mean steps over seeds to reach eps (None: not reached by every seed):")
    steps = out["summary"]["steps"]
    for rule in config["rules"]:
        for a in config["alphas"]:
            cells = [f"{s['quantity']}<{s['eps']:g}: {None if s['mean'] is None else round(s['mean'])}"
                     for s in steps if s["rule"] == rule and s["alpha"] == a]
            lines.append(f"  {rule:<7} alpha={a:g}: " + "; ".join(cells))
    return lines


def sweep_status_line(status: Mapping) -> str:
    """``sweep_status``: points done, computations, errors, remaining (and the grids, when several)."""
    grids = f" over {status['grids']} grids" if status.get("grids", 1) > 1 else ""
    return (f"{status['done']}/{status['total']} points done{grids} ({', '.join(status['what'])}), {status['errors']} "
            f"with errors, {status['remaining']} remaining")


def sweep_done_line(summary: Mapping, out) -> str:
    """``run_sweep``'s summary and where its table is."""
    return (f"{summary['total']} points ({summary['computed']} computed now, {summary['errors']} with errors) "
            f"in {summary['seconds']:.1f} s -> {Path(out) / 'results.csv'}")


# -- networks ---------------------------------------------------------------------------------

_TRAIN_KEYS = ("loss", "error", "nc1", "nc2_h", "nc3", "ece")


def train_lines(summary: Mapping, out) -> List[str]:
    """The last record of each split of a finished run and where the records are; none on the
    ranks of a distributed run other than 0 (their summary has no ``final``)."""
    if not summary["final"]:
        return []
    lines = []
    for split in ("train", "val", "test"):
        r = summary["final"].get(split)
        if r:
            v = {k: float("nan") if r.get(k) is None else r[k] for k in _TRAIN_KEYS}
            lines.append(f"{split:>5}: epoch {r['epoch']}  loss {v['loss']:.4f}  error {v['error']:.4f}  "
                         f"NC1 {v['nc1']:.4g}  NC2_h {v['nc2_h']:.3f}  NC3 {v['nc3']:.3f}  ECE {v['ece']:.4f}")
    return lines + [f"records: {Path(out) / 'metrics.jsonl'}"]


def experiment_list_lines(experiments: Iterable[tuple]) -> List[str]:
    """(name, description) of each bundled experiment, one a line."""
    return [f"{name:20s} {description}" for name, description in experiments]


def duration_text(seconds: float) -> str:
    """A duration as the plans and progress lines print it: ``2.5 h``, ``3.0 min``, ``12.0 s``, ``80 ms``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def plan_lines(plan: Mapping) -> List[str]:
    """``plan_experiment``'s result: the datasets (where found, or the message saying how to get
    them), the timings, then one line per run with its estimate."""
    lines = [f"experiment {plan['name']}: {len(plan['runs'])} runs"]
    for d in plan["datasets"]:
        found = f"found: {d['where']}" if d["found"] else f"{d['problem'].upper()}: {d['message']}"
        lines.append(f"  dataset {d['dataset']}: {found}")
    for t in plan["timings"]:
        how = "a whole epoch" if t["whole_epoch"] else f"{t['steps_timed']} of {t['steps_per_epoch']} steps"
        lines.append(f"  timed on {t['device']} ({how}): {t['step_seconds'] * 1e3:.1f} ms per step, epoch "
                     f"{duration_text(t['epoch_seconds'])}, record {duration_text(t['record_seconds'])} (its forward passes)")
    for r in plan["runs"]:
        est = "not estimated" if r["estimate_seconds"] is None else f"about {duration_text(r['estimate_seconds'])}"
        lines.append(f"  run {r['name']}: {r['epochs']} epochs, {r['records']} records, {est}")
    if plan["total_seconds"] is not None:
        lines.append(f"total, one run at a time: about {duration_text(plan['total_seconds'])} "
                     "(an estimate from timed steps; parallel workers on separate devices divide it)")
    else:
        why = "a dataset is missing or unreadable" if plan.get("timed", True) else "timing was not asked for"
        lines.append(f"total: not estimated ({why})")
    return lines


def experiment_done_line(result: Mapping, out) -> str:
    """``run_experiment``'s result and where its report is."""
    return f"{len(result['runs'])} runs in {result['seconds']:.1f} s -> {Path(out) / 'report.md'}"


# -- regime maps of the conditioning claim ------------------------------------------------------

#: what the logits condition number can and cannot say (derivations/conditioning.md, step 2)
LOGITS_NOTE = ("the logits kappa (K p_true) involves no W, H or d: it says nothing about gradient descent on "
               "(W, H), whose Hessians are features, classifier and full")


def _interval(r: Mapping) -> str:
    """``(0, 0.1419)``, ``[0.1419, 0.3015)``, ``[0.3015, 1)`` of a regime."""
    left = "(" if r["sK_from"] == 0 else "["
    return f"{left}{r['sK_from']:.4g}, {r['sK_to']:.4g})"


def _regime_dim(d_regime: str) -> str:
    return "d = K-1" if d_regime == "K-1" else "d >= K"


def regime_map_lines(regimes: Sequence[Mapping]) -> List[str]:
    """``regime_map``'s regimes, one a line: definition, K, d-regime, lambda_W/lambda_H, the interval of
    s K and the verdict, with what changes sign at its right end."""
    if not regimes:
        return []
    r0 = regimes[0]
    lines = [f"Regime map of the conditioning claim (derivations/conditioning.md): kappa(alpha) against kappa(0) "
             f"(CE) at every alpha in (0, {r0['alpha_max']:g}] below the threshold s K < 1 - alpha, "
             "s = sqrt(n lambda_W lambda_H)",
             "  lower / higher: LS lowers / raises kappa at every such alpha; mixed: lower at some, higher at "
             "others; equal: the same at every one; W/H: lambda_W/lambda_H; n: per class, where kappa depends on it",
             f"  {'definition':<17} {'K':>4}  {'d':<7} {'W/H':>5} {'n':>5}  {'s K':<18} {'verdict':<7}  "
             "boundary at the right end"]
    for r in regimes:
        n = "-" if r["per_class"] is None else str(r["per_class"])
        lines.append(f"  {r['definition']:<17} {r['K']:>4}  {r['d_regime']:<7} {r['lambda_ratio']:>5g} {n:>5}  "
                     f"{_interval(r):<18} {r['verdict']:<7}  {r['boundary_to'] or ''}".rstrip())
    if any(r["definition"] == "logits" for r in regimes):
        lines.append(f"  note: {LOGITS_NOTE}")
    return lines


def regime_point_lines(where: Mapping[str, Mapping]) -> List[str]:
    """Where one point lies on the regime map (``regime_of``): per definition its regime and the alphas
    the verdicts below were taken over."""
    if not where:
        return []
    w0 = next(iter(where.values()))
    alphas = ", ".join(f"{a:g}" for a in w0["alphas"]) or "none"
    lines = [f"Where this point lies on the regime map (ufm conditioning --map; derivations/conditioning.md): "
             f"s K = {w0['sK']:.6g}, {_regime_dim(w0['d_regime'])}, lambda_W/lambda_H = {w0['lambda_ratio']:g}. "
             f"The verdicts below compare CE with alpha = {alphas} only; a regime's verdict is over every alpha "
             "in its range below the threshold"]
    if w0["alphas_past_threshold"]:
        past = ", ".join(f"{a:g}" for a in w0["alphas_past_threshold"])
        lines.append(f"  alpha = {past}: past the threshold (W = H = 0), not on the map")
    for dfn, w in where.items():
        r = w["regime"]
        if r is None:
            lines.append(f"  {dfn + ':':<17} not on the map: {w['note']}")
            continue
        lines.append(f"  {dfn + ':':<17} s K in {_interval(r)}: {r['verdict']} over alpha in (0, {w['alpha_max']:g}]")
    if "logits" in where:
        lines.append(f"  note: {LOGITS_NOTE}")
    return lines
