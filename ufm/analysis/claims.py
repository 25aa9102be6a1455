"""Every claim of the paper as a verdict (``ufm claims``): the registry.

Guo et al., *Cross Entropy versus Label Smoothing: A Neural Collapse Perspective* (TMLR 2025).
Each claim (:data:`CLAIMS`) is a :class:`Claim`: a stable ``id``, the paper's statement in our
words, its operational definition (quantity, split, epochs, Hessian), the evidence it consumes,
its criterion (fixed in code, before any run was judged by it) and a function from the evidence
(``ufm.analysis.evidence.Evidence``) to a result. A result has a ``verdict``:

* ``holds`` / ``fails``: the criterion decided, one way or the other;
* ``inconclusive``: judged, but the evidence decides neither way (too few seeds, an interval
  that contains 0, parts that disagree);
* ``not-applicable``: a precondition of the claim is not met by the evidence (not in the
  terminal phase, classes unbalanced, too little overlap in NC1); the reason names it;
* ``not-evaluated``: there is no evidence for it (no runs given, records that do not exist yet);

and a ``reason`` (always a sentence), ``effect`` and ``interval`` where there is one, ``measured``
(the effect in words), ``evidence`` (where it came from) and ``parts`` (the verdict of each
part: per alpha, per quantity, per Hessian definition, per regime).

**Network claims** use the statistics rule of ``ufm.analysis.statistics`` (paired per-seed
effects, positive in the claimed direction; the sign test for 3-5 seeds, a bootstrap from 6,
inconclusive below 3). Runs are grouped as ``ufm validate`` groups them (everything but alpha and
seed equal; ``ufm.analysis.networks.group_runs``); in each group every alpha > 0 is judged
against alpha = 0 (CE) seed by seed, and the claim's verdict never says more than every part
supports (``ufm.analysis.statistics.combine``): ``holds`` only if it holds for every *judged*
alpha (and quantity, and group), ``fails`` only if it fails for every judged one,
``inconclusive`` otherwise, with the parts' verdicts in the reason. Parts that are
not-applicable or not evaluated are left out of the combination (their verdicts are in the
reason), so a ``holds`` covers the judged parts only. Preconditions:

* **terminal phase**: the claims about it (``nc-speed``, ``nc-strength``, ``nc2-at-nc1``, the
  geometry part of ``ufm-predictions``) are ``not-applicable`` for a group in which the final
  training error of any run is above ``TERMINAL_ERROR`` (1%);
* **balanced classes**: the closed-form checks on networks (UFM-style runs, p_off - alpha/K)
  assume balanced classes; on a training set whose per-class counts
  (``config.json``: ``dataset.class_counts.train``) differ by more than ``BALANCE_RTOL`` (1% of
  the smallest) they are ``not-applicable`` with the range of counts. Without
  ``class_counts`` (runs written before it was recorded) n = N/K is assumed and the reason says
  that balance could not be checked.

Each check shared with ``ufm validate`` is one function of ``ufm.analysis.networks`` (the first
epoch reaching a level, p_off - alpha/K and its relative spread, the closed-form comparison of a
UFM-style run, the start of the terminal phase), applied here per seed and there to the means
over seeds. The operational definition of each claim is its ``definition`` below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ufm.analysis.evidence import Evidence, computed, gather
from ufm.analysis.networks import (AGREE_RTOL, UFM_RTOL, final_value, first_epoch, group_runs, p_off_excess,
                                   relative_spread, terminal_phase_start, ufm_run_checks)
from ufm.analysis.statistics import combine, judge

__all__ = ["Claim", "CLAIMS", "claim", "evaluate_claims", "TERMINAL_ERROR", "BALANCE_RTOL", "CLOSED_FORM_TOL",
           "MIN_OVERLAP_DECADES", "NOISE_LEVELS"]

#: a group is in the terminal phase when the final training error of each of its runs is at most this
TERMINAL_ERROR = 0.01
#: per-class training counts are balanced when max - min <= BALANCE_RTOL * min
BALANCE_RTOL = 0.01
#: the numerical minimizer "equals" the closed form when its worst error is at most this (README, Verification)
CLOSED_FORM_TOL = 1e-6
#: the least overlap, in decades of NC1, over which NC2 is compared at matched NC1
MIN_OVERLAP_DECADES = 0.5
#: the input-noise levels of the robustness records (``error_noise_<sigma>``)
NOISE_LEVELS = (0.1, 0.25, 0.5)
#: convergence quantities, in the order shown
_CONVERGENCE_NAMES = {"nc1": "NC1", "grad_norm": "||grad f||", "gap": "f - f*", "orbit": "orbit distance"}
_NO_RUNS = "no training runs given: pass experiment, run or demo folders"


@dataclass(frozen=True)
class Claim:
    """One claim: ``judge(evidence)`` returns its verdict; :meth:`evaluate` adds the claim's text."""

    id: str
    statement: str
    definition: str
    evidence: str
    criterion: str
    judge: Callable[[Evidence], dict]

    def evaluate(self, evidence: Evidence) -> dict:
        """The result of this claim on ``evidence`` (module docstring)."""
        out = {"id": self.id, "statement": self.statement, "definition": self.definition,
               "criterion": self.criterion, "effect": None, "interval": None, "method": None, "n": None,
               "measured": None, "parts": []}
        out.update(self.judge(evidence))
        return out


def _result(verdict: str, reason: str, evidence: str, **extra) -> dict:
    return {"verdict": verdict, "reason": reason, "evidence": evidence or "none", **extra}


def _overall(parts: List[dict], evidence: str, empty: str) -> dict:
    """The claim's result over its parts (``combine``); one part: its effect and interval."""
    if not parts:
        return _result("not-evaluated", empty, evidence)
    verdict = combine([p["verdict"] for p in parts])
    if len(parts) == 1:
        p = parts[0]
        return _result(verdict, p["reason"], evidence, effect=p.get("mean"), interval=p.get("interval"),
                       method=p.get("method"), n=p.get("n"), measured=p.get("measured"), parts=parts)
    return _result(verdict, _parts_reason(parts), evidence, parts=parts,
                   measured="parts: " + ", ".join(f"{sum(p['verdict'] == v for p in parts)} {v}"
                                                  for v in dict.fromkeys(p["verdict"] for p in parts)))


def _parts_reason(parts: List[dict]) -> str:
    """``VERDICT for PART, PART (REASON); ...``: the reason is given where the parts share it."""
    chunks = []
    for verdict in dict.fromkeys(p["verdict"] for p in parts):
        mine = [p for p in parts if p["verdict"] == verdict]
        reasons = {p["reason"] for p in mine}
        if len(reasons) == 1:
            chunks.append(f"{verdict} for {', '.join(p['label'] for p in mine)} ({reasons.pop()})")
        else:
            chunks.append(f"{verdict} for " + ", ".join(f"{p['label']} ({p['reason']})" for p in mine))
    return "; ".join(chunks)


# -- the UFM claims ------------------------------------------------------------------------------

def _closed_form(ev: Evidence) -> dict:
    rows = [r for r in ev.verify if r["closed_form_applies"]]
    if not rows:
        return _result("not-evaluated", "no verify rows in the given folders (a demo's records/verify.json or a "
                                        "sweep with the solve component); `ufm claims` with no folder computes "
                                        "them", ev.where("verify"))
    known = [r for r in rows if r["converged"] and r["max_error"] is not None and math.isfinite(r["max_error"])]
    bad = [r for r in known if r["max_error"] > CLOSED_FORM_TOL]
    unknown = len(rows) - len(known)
    worst = max((r["max_error"] for r in known), default=math.nan)
    reason = (f"{len(known) - len(bad)} of {len(rows)} points agree with the closed form to {CLOSED_FORM_TOL:g} "
              f"(worst error {worst:.2g})")
    if bad:
        reason += f"; {len(bad)} disagree, e.g. {max(bad, key=lambda r: r['max_error'])['label']}"
    if unknown:
        reason += f"; {unknown} did not converge"
    verdict = "fails" if bad else "inconclusive" if unknown else "holds"
    return _result(verdict, reason, ev.where("verify"), effect=worst, n=len(rows),
                   measured=f"worst error {worst:.2g} over {len(rows)} points")


_REGIME_WORDS = {"lower": "LS lowers it", "higher": "LS raises it", "mixed": "mixed", "equal": "unchanged"}


def _regime_text(regimes: List[dict]) -> str:
    """``LS lowers it at K=3 d=K-1 lambda ratio 1: sK in (0, 0.5) (0.6, 1); LS raises it at ...``."""
    chunks = []
    for verdict, words in _REGIME_WORDS.items():
        keyed: Dict[tuple, List[str]] = {}
        for r in regimes:
            if r["verdict"] == verdict:
                keyed.setdefault((r["K"], r["d_regime"], r["lambda_ratio"]), []).append(
                    f"({r['sK_from']:.3g}, {r['sK_to']:.3g})")
        if keyed:
            chunks.append(f"{words} at " + ", ".join(f"K={K} d={d} lambda ratio {lr:g}: sK in {' '.join(ranges)}"
                                                   for (K, d, lr), ranges in keyed.items()))
    return "; ".join(chunks)


def _conditioning(ev: Evidence) -> dict:
    if not ev.regimes:
        reason = ev.missing.get("regimes") or ("no regime map in the given folders (a demo's records/regimes.json); "
                                               "`ufm claims` with no folder computes one")
        return _result("not-evaluated", reason, ev.where("regimes"))
    by_definition: Dict[str, List[dict]] = {}
    for r in ev.regimes:
        by_definition.setdefault(r["definition"], []).append(r)
    parts = []
    for definition, regimes in by_definition.items():
        seen = {r["verdict"] for r in regimes}
        verdict = "holds" if seen == {"lower"} else "fails" if seen & {"higher", "mixed"} else "inconclusive"
        lower = sum(r["verdict"] == "lower" for r in regimes)
        parts.append({"label": definition, "verdict": verdict, "reason": _regime_text(regimes),
                      "measured": f"lower in {lower} of {len(regimes)} regimes", "regimes": regimes})
    return _overall(parts, ev.where("regimes"), "the regime map is empty")


def _part(label: str, effects: Dict, note: str = "", unit: str = "seeds") -> dict:
    """A judged part from ``{seed (or pair): effect}``; a precondition unmet for some seed makes it
    not-applicable, a record missing for some seed not-evaluated."""
    for marker, verdict in ((_Unmet, "not-applicable"), (_Missing, "not-evaluated")):
        hit = {k: v for k, v in effects.items() if isinstance(v, marker)}
        if hit:
            first = next(iter(hit.values()))
            return {"label": label, "verdict": verdict, "reason": f"{first} ({unit} {', '.join(map(str, hit))})"}
    if not effects:
        return {"label": label, "verdict": "not-evaluated", "reason": f"no {unit} with both a CE and an LS run"}
    j = judge(list(effects.values()))
    keys = [k for k, v in effects.items() if v is not None and math.isfinite(v)]
    return {"label": label, **j, "reason": j["reason"] + note, unit: keys}


def _steps_effect(ce: dict, ls: dict, key: tuple) -> Optional[float]:
    """steps_CE - steps_LS to ``key`` = (quantity, eps); a run that never reached it counts as
    reaching it at the end of the longer of the two runs (so that it never gains by it)."""
    if key not in ce["steps"] or key not in ls["steps"]:
        return None
    sc, sl = ce["steps"][key], ls["steps"][key]
    if sc is None and sl is None:
        return 0.0
    ends = [v for v in (ce["steps_recorded"], ls["steps_recorded"]) if v is not None]
    if not ends:
        return None
    cap = max(ends + [v for v in (sc, sl) if v is not None])
    return float((cap if sc is None else sc) - (cap if sl is None else sl))


def _convergence(ev: Evidence) -> dict:
    ce = {(r["config"], r["seed"]): r for r in ev.convergence if r["alpha"] == 0}
    pairs = [(ce[(r["config"], r["seed"])], r) for r in ev.convergence
             if r["alpha"] > 0 and (r["config"], r["seed"]) in ce]
    keys = sorted({k for _, r in pairs for k in r["steps"]}, key=lambda k: (list(_CONVERGENCE_NAMES).index(k[0])
                                                                           if k[0] in _CONVERGENCE_NAMES else 9, -k[1]))
    parts = []
    for regime in ("K-1", ">=K"):
        mine = [(c, l) for c, l in pairs if l["regime"] == regime]
        for q, eps in keys if mine else ():
            effects = {f"{i}": _steps_effect(c, l, (q, eps)) for i, (c, l) in enumerate(mine)}
            parts.append(_part(f"d{'=' if regime == 'K-1' else ''}{regime} {_CONVERGENCE_NAMES.get(q, q)} to {eps:g}",
                               effects, unit="pairs"))
    empty = ("no convergence runs with both alpha = 0 and alpha > 0 in the given folders (a demo's "
             "records/convergence.json or a sweep with the convergence component)")
    return _overall(parts, ev.where("convergence"), empty)


# -- networks: groups, preconditions, parts ------------------------------------------------------

class _Unmet(str):
    """A precondition one seed does not meet (the part is not-applicable)."""


class _Missing(str):
    """A record one seed does not have (the part is not-evaluated)."""


def _groups(ev: Evidence) -> List[dict]:
    out = []
    for runs in group_runs(ev.runs):
        cfg = runs[0]["config"]
        by_alpha: Dict[float, Dict[int, dict]] = {}
        for r in runs:
            by_alpha.setdefault(r["config"]["alpha"], {}).setdefault(r["config"]["seed"], r)
        label = f"{cfg['dataset']} {cfg['model']}" + (" UFM-style" if cfg["mode"] == "ufm" else "")
        out.append({"runs": runs, "by_alpha": dict(sorted(by_alpha.items())), "mode": cfg["mode"],
                    "K": runs[0]["meta"]["model"]["num_classes"],
                    "label": f"{label} [{', '.join(dict.fromkeys(r['source'] for r in runs))}]"})
    return out


def _terminal(group: dict) -> Optional[str]:
    """Why the group is not in the terminal phase (None when it is)."""
    errors = [(final_value(r, "error"), Path(r["run"]).name) for r in group["runs"]]
    unknown = [name for e, name in errors if not math.isfinite(e)]
    if unknown:
        return f"training error unknown at the last epoch in {unknown[0]}: not known to be in the terminal phase"
    worst, name = max(errors)
    if worst > TERMINAL_ERROR:
        return f"training error {worst:.2g} at the last epoch in {name}: not in the terminal phase"
    return None


def _balance(group: dict) -> tuple:
    """(why the closed-form checks do not apply: classes unbalanced in any run, or None; a note for
    the reason when some run does not record its class counts)."""
    note = ""
    for r in group["runs"]:
        counts = (r["meta"]["dataset"].get("class_counts") or {}).get("train")
        if not counts:
            n = r["meta"]["dataset"]["sizes"]["train"] / group["K"]
            note = note or (f"; balance could not be checked (no dataset.class_counts in config.json), "
                            f"n = N/K = {n:g} assumed")
            continue
        lo, hi = min(counts), max(counts)
        if hi - lo > BALANCE_RTOL * lo:
            return f"classes unbalanced, {lo}-{hi} per class", ""
    return None, note


def _preconditions(group: dict, terminal: bool, balanced: bool) -> tuple:
    unmet, note = (_terminal(group) if terminal else None), ""
    if balanced and unmet is None:
        unmet, note = _balance(group)
    return unmet, note


def _parts(ev: Evidence, quantities: Sequence[tuple], effects: Callable, *, paired: bool = True,
           terminal: bool = False, balanced: bool = False, modes: Optional[Sequence[str]] = None) -> List[dict]:
    """One part per (group, alpha, quantity): ``effects(group, alpha, key)`` -> {seed: effect}.
    ``paired``: alphas > 0, each against alpha = 0, in the groups that hold a CE run (a group
    without one has nothing to pair: it gives no part); else every alpha on its own."""
    groups = [g for g in _groups(ev) if (modes is None or g["mode"] in modes)
              and (not paired or 0.0 in g["by_alpha"])]
    parts = []
    for g in groups:
        unmet, note = _preconditions(g, terminal, balanced)
        for a in [a for a in g["by_alpha"] if a > 0 or not paired]:
            for key, name in quantities:
                label = (f"{g['label']} " if len(groups) > 1 else "") + f"alpha={a:g} {name}"
                if unmet:
                    parts.append({"label": label, "verdict": "not-applicable", "reason": unmet})
                else:
                    parts.append(_part(label, effects(g, a, key), note))
    return parts


def _pairwise(effect: Callable) -> Callable:
    """``effects`` for :func:`_parts` from ``effect(ce_run, ls_run, key, alpha, group)``, seed by seed."""
    def effects(g: dict, a: float, key: str) -> dict:
        ce, ls = g["by_alpha"][0.0], g["by_alpha"][a]
        return {s: effect(ce[s], ls[s], key, a, g) for s in sorted(set(ce) & set(ls))}
    return effects


def _network_claim(ev: Evidence, parts: List[dict]) -> dict:
    empty = _NO_RUNS if not ev.runs else "no group of runs holds both alpha = 0 and an alpha > 0"
    return _overall(parts, ev.where("runs"), empty)


# -- the network claims --------------------------------------------------------------------------

def _speed(ce: dict, ls: dict, key: str, alpha: float, g: dict) -> Optional[float]:
    target = max(final_value(ce, key), final_value(ls, key))  # both runs reach it
    if not math.isfinite(target):
        return None
    return first_epoch(ce["train"], target, key) - first_epoch(ls["train"], target, key)


def _nc_speed(ev: Evidence) -> dict:
    return _network_claim(ev, _parts(ev, [("nc1", "NC1"), ("nc2_h", "NC2 (means)")], _pairwise(_speed),
                                     terminal=True))


def _strength(ce: dict, ls: dict, key: str, alpha: float, g: dict) -> Optional[float]:
    a, b = final_value(ce, key), final_value(ls, key)
    if key == "nc1":
        return math.log10(a / b) if a > 0 and b > 0 else None
    return a - b


def _nc_strength(ev: Evidence) -> dict:
    quantities = [("nc1", "NC1"), ("nc2_h", "NC2 (means)"), ("nc3", "NC3")]
    return _network_claim(ev, _parts(ev, quantities, _pairwise(_strength), terminal=True))


def _envelope(records: list, key: str) -> tuple:
    """(log10 NC1 ascending, NC2) at the records that set a new minimum of NC1 (with a finite NC2)."""
    xs, ys, best = [], [], math.inf
    for rec in records:
        n, v = rec.get("nc1"), rec.get(key)
        if n is not None and v is not None and 0 < n < best and math.isfinite(v):
            best = n
            xs.append(math.log10(n))
            ys.append(float(v))
    return np.asarray(xs[::-1]), np.asarray(ys[::-1])


def matched_nc2(ce_records: list, ls_records: list, key: str = "nc2_h"):
    """Mean of NC2_CE - NC2_LS over the range of log10 NC1 both running-minimum envelopes cover,
    NC2 interpolated linearly in log10 NC1 (the mean of a piecewise-linear difference, exact);
    an ``_Unmet`` reason when the range is shorter than MIN_OVERLAP_DECADES."""
    (xc, yc), (xl, yl) = _envelope(ce_records, key), _envelope(ls_records, key)
    if len(xc) < 2 or len(xl) < 2:
        return _Unmet("fewer than two records set a new NC1 minimum")
    lo, hi = max(xc[0], xl[0]), min(xc[-1], xl[-1])
    if hi - lo < MIN_OVERLAP_DECADES:
        return _Unmet(f"the NC1 ranges overlap by {max(hi - lo, 0.0):.2f} decades, less than {MIN_OVERLAP_DECADES:g}")
    xs = np.unique(np.concatenate([[lo, hi], xc[(xc > lo) & (xc < hi)], xl[(xl > lo) & (xl < hi)]]))
    d = np.interp(xs, xc, yc) - np.interp(xs, xl, yl)
    return float(np.sum((d[1:] + d[:-1]) / 2 * np.diff(xs)) / (hi - lo))


def _nc2_at_nc1(ev: Evidence) -> dict:
    effect = _pairwise(lambda ce, ls, key, a, g: matched_nc2(ce["train"], ls["train"], key))
    return _network_claim(ev, _parts(ev, [("nc2_h", "NC2 (means)"), ("nc2_w", "NC2 (classifier)")], effect,
                                     terminal=True))


def _test_value(run: dict, key: str):
    records = run["splits"].get("test")
    if not records:
        return _Missing("no test records")
    if key not in records[-1]:
        return _Missing(f"no {key} in the last test record, as in runs trained before it was recorded")
    v = records[-1][key]
    return math.nan if v is None else float(v)


def _test_difference(ce: dict, ls: dict, key: str, alpha: float, g: dict):
    a, b = _test_value(ce, key), _test_value(ls, key)
    for v in (a, b):
        if isinstance(v, _Missing):
            return v
    return a - b


def _calibration(ev: Evidence) -> dict:
    parts = _parts(ev, [("ece", "test ECE")], _pairwise(_test_difference))
    scaled = _parts(ev, [("ece_ts", "test ECE after scaling")], _pairwise(_test_difference))
    for p, s in zip(parts, scaled):
        if "effects" in s:
            p["after_scaling"] = {k: s[k] for k in ("effects", "mean", "interval", "method", "n")}
    return _network_claim(ev, parts)


def _generalization(ev: Evidence) -> dict:
    return _network_claim(ev, _parts(ev, [("error", "test error")], _pairwise(_test_difference)))


def _robustness(ev: Evidence) -> dict:
    quantities = [(f"error_noise_{s:g}", f"test error, noise {s:g}") for s in NOISE_LEVELS]
    return _network_claim(ev, _parts(ev, quantities, _pairwise(_test_difference)))


def _p_off(ce: dict, ls: dict, key: str, alpha: float, g: dict) -> float:
    spread = relative_spread([p_off_excess(final_value(ce, "p_off"), 0.0, g["K"]),
                              p_off_excess(final_value(ls, "p_off"), alpha, g["K"])])
    return AGREE_RTOL - spread


def _ufm_runs(g: dict, a: float, key: str) -> dict:
    out = {}
    for seed, run in g["by_alpha"][a].items():
        c = ufm_run_checks(run)
        if not c["closed_form_applies"]:
            out[seed] = _Unmet(f"feature dimension {c['feature_dim']} < K - 1 = {c['num_classes'] - 1}: no closed form")
        elif c["trivial"]:
            out[seed] = _Unmet("past the threshold: the closed form is W = H = 0")
        else:
            errors = [q["rel_error"] for q in c["checks"]]
            out[seed] = None if None in errors else UFM_RTOL - max(errors)
    return out


def _geometry(g: dict, a: float, key: str) -> dict:
    """NC2 at the start of the terminal phase minus NC2 at the end, minus the range over seeds of the final NC2."""
    runs = g["by_alpha"][a]
    finals = [final_value(r, key) for r in runs.values()]
    spread = max(finals) - min(finals)
    out = {}
    for seed, run in runs.items():
        start = terminal_phase_start(run["train"], TERMINAL_ERROR)
        # only the last record in the terminal phase: it has not begun, nothing has fallen yet
        within = start["error"] is not None and start["error"] <= TERMINAL_ERROR
        start_value = start.get(key) if within else final_value(run, key)
        out[seed] = (math.nan if start_value is None else float(start_value)) - final_value(run, key) - spread
    return out


def _ufm_predictions(ev: Evidence) -> dict:
    parts = _parts(ev, [("p_off", "p_off - alpha/K agrees with CE")], _pairwise(_p_off), balanced=True,
                   modes=("standard",))
    parts += _parts(ev, [("closed_form", "UFM-style run at the closed form")], _ufm_runs, paired=False,
                    balanced=True, modes=("ufm",))
    parts += _parts(ev, [("nc2_h", "NC2 (means) falls beyond the seed range"),
                        ("nc2_w", "NC2 (classifier) falls beyond the seed range")], _geometry,
                    paired=False, terminal=True)
    return _overall(parts, ev.where("runs"), _NO_RUNS)


# -- the registry --------------------------------------------------------------------------------

_TERMINAL = (f"not-applicable for a group with a final training error above {TERMINAL_ERROR:g} in any run; "
             "otherwise ")
_RULE = ("the statistics rule (ufm.analysis.statistics) per part: holds when the one-sided 95% lower bound of the "
         "effect is > 0, fails when the upper bound is < 0; parts combined: holds (fails) only if every part does")
_RUNS = "training runs (train and test records): experiment, run or demo folders"

CLAIMS = (
    Claim("closed-form",
          "The UFM's global minimizer (LS and CE) is the derived closed form",
          "L-BFGS in float64 from a seeded start, for each point with d >= K-1 (ufm.analysis.verify); max_error = "
          "the worst of the relative errors of the logit gap, p_true, ||w||, ||h|| and f, the bias distance, NC1-NC4 "
          "and the orbit distance (README, Verification)",
          "verify rows: a demo's records/verify.json, a sweep's solve component, or computed now on "
          "default_grid(per_class=4, seeds=[0], classes=[3])",
          f"holds when every point converged with max_error <= {CLOSED_FORM_TOL:g}; fails when a converged point "
          f"has max_error > {CLOSED_FORM_TOL:g}; inconclusive when some point did not converge",
          _closed_form),
    Claim("conditioning",
          "LS lowers the Hessian's condition number at the minimizer",
          "per definition of the Hessian (logits, features, classifier, full, full with b) its condition number "
          "(largest eigenvalue over the smallest off the symmetry null space) at the closed-form minimizer, LS "
          "against CE, in each regime of the map (s K in (0, 1), d = K-1 or d >= K, K, lambda_W/lambda_H); the "
          "logits kappa = K p_true involves no W, H or d",
          "a regime map (ufm.analysis.regimes.regime_map; a demo's records/regimes.json)",
          "per definition: holds when LS lowers it in every regime, fails when a regime is 'higher' or 'mixed' "
          "(the claim as stated is not general), inconclusive when it is only 'equal' somewhere; overall: holds "
          "(fails) only if every definition does",
          _conditioning),
    Claim("ufm-convergence",
          "Gradient descent on the UFM converges faster under LS",
          "plain gradient descent (ufm.analysis.convergence, its step rule) from the same seeded start under CE "
          "and LS; steps until NC1, ||grad f||, f - f* and the orbit distance are below each eps; effect per "
          "(configuration, seed, alpha > 0) = steps_CE - steps_LS, a run that never reaches eps counted at the "
          "end of the longer of the two (with several alphas > 0, their pairs share the CE run); per d-regime "
          "(d = K-1, d >= K), quantity and eps",
          "convergence rows: a demo's records/convergence.json, a sweep's convergence component, or computed now "
          "(K = 3, n = 2, d = 2 and 3, alpha 0 and 0.1, 5 seeds)",
          _RULE, _convergence),
    Claim("nc-speed",
          "Networks reach a given NC1 and NC2 in fewer epochs under LS",
          "per seed and alpha > 0: target = the larger of the two runs' final train NC1 (both reach it); effect = "
          "first recorded epoch with NC1 <= target under CE minus that under LS; the same for NC2 of the class "
          "means (nc2_h)", _RUNS, _TERMINAL + _RULE, _nc_speed),
    Claim("nc-strength",
          "Networks end with lower NC1, NC2 and NC3 under LS",
          "final train record, per seed and alpha > 0: effect = log10(NC1_CE / NC1_LS); NC2 of the means (nc2_h) "
          "and NC3: CE - LS", _RUNS, _TERMINAL + _RULE, _nc_strength),
    Claim("nc2-at-nc1",
          "At matched NC1, NC2 is lower under LS",
          "per seed and alpha > 0: NC2 of the means (nc2_h) and of the classifier (nc2_w) as piecewise-linear "
          "functions of log10 NC1 along the running-minimum envelope of NC1 (the train records that set a new "
          "minimum: NC1 need not fall monotonically); effect = the mean of NC2_CE - NC2_LS over the log10 NC1 "
          "range both envelopes cover", _RUNS,
          _TERMINAL + f"not-applicable when a pair's ranges overlap by less than {MIN_OVERLAP_DECADES:g} decade of "
                      "NC1; otherwise " + _RULE, _nc2_at_nc1),
    Claim("calibration",
          "LS lowers the test ECE",
          "final test record, per seed and alpha > 0: effect = ECE_CE - ECE_LS (15 equal-width bins, before "
          "temperature scaling); the effect after temperature scaling (ece_ts) is reported beside it, not judged",
          _RUNS, _RULE, _calibration),
    Claim("generalization",
          "LS lowers the test error",
          "final test record, per seed and alpha > 0: effect = error_CE - error_LS", _RUNS, _RULE, _generalization),
    Claim("robustness",
          "LS lowers the test error under Gaussian input noise",
          "final test record, per seed and alpha > 0 and noise level sigma in 0.1, 0.25, 0.5: effect = "
          "error_noise_sigma under CE minus under LS; not-evaluated for runs without these records", _RUNS, _RULE,
          _robustness),
    Claim("ufm-predictions",
          "The UFM's predictions hold on trained networks",
          f"(a) ordinary runs, per seed and alpha > 0: effect = {AGREE_RTOL:g} - the relative spread "
          "(max - min)/max|v| of p_off - alpha/K between CE and LS (final train records); (b) UFM-style runs "
          f"(mode = ufm), per alpha and seed: effect = {UFM_RTOL:g} - the largest relative error of ||w_k||, "
          "||h_i||, the logit gap and p_true at the last epoch; (c) every run, per alpha and seed, for nc2_h and "
          "nc2_w: effect = NC2 at the first train record with training error <= 1% minus the final NC2, minus "
          "the spread, the range (max - min) of the final NC2 over the seeds of that alpha",
          _RUNS, f"(a) and (b) not-applicable on unbalanced classes (beyond {BALANCE_RTOL:.0%}); (c) "
                 + _TERMINAL + _RULE, _ufm_predictions),
)

_BY_ID = {c.id: c for c in CLAIMS}


def claim(claim_id: str) -> Claim:
    """The claim with this id; a ValueError naming the ids otherwise."""
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise ValueError(f"no claim {claim_id!r}; the claims are {', '.join(_BY_ID)}") from None


def evaluate_claims(folders: Sequence = (), *, evidence: Optional[Evidence] = None) -> List[dict]:
    """Every claim of :data:`CLAIMS` on the evidence in ``folders`` (``ufm.analysis.evidence.gather``),
    or on ``evidence``; with neither, the UFM claims on evidence computed now
    (``ufm.analysis.evidence.computed``, about half a minute) and the network claims not-evaluated.

    Returns:
        one result per claim, in registry order (module docstring): ``id``, ``statement``,
        ``definition``, ``criterion``, ``verdict``, ``reason``, ``effect``, ``interval``,
        ``method``, ``n``, ``measured``, ``evidence``, ``parts``.

    Raises:
        ufm.analysis.evidence.NoEvidenceError: a folder holds none of the expected records.
    """
    if evidence is None:
        evidence = gather(folders) if folders else computed()
    return [c.evaluate(evidence) for c in CLAIMS]
