"""Conditioning of the UFM minimizers under CE and label smoothing (``ufm conditioning``).

For each smoothing factor alpha, the Hessian spectrum of each operator of
``ufm.theory.spectra`` (``logits``, ``features``, ``classifier``, ``full``; README,
"Conditioning") at the closed-form minimizer (``source="symbolic"``) and, on request, at
a numerically found minimizer (``source="numeric"``), with its null space and condition
number. :func:`summarize` states per definition whether label smoothing lowers the
condition number relative to CE (alpha = 0): the claim put to the test.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Sequence


from ufm._core.validation import (InstanceOf, Interval, InvalidParameterError, ListOf, Options, UFMWarning, check_alphas,
                                  require_closed_form, validate_params)
from ufm.numerics.hessian import DENSE_LIMIT_BYTES
from ufm.numerics.solve import solve
from ufm.numerics.spectrum import numeric_spectrum
from ufm.problem import UFMProblem
from ufm.theory.keys import DEFINITIONS, WITH_BIAS
from ufm.theory.spectra import Spectrum, symbolic_spectrum

__all__ = ["conditioning", "numeric_minimizers", "summarize", "verdicts_across", "compare_sources", "agreement",
           "DEFINITIONS",
           "VERDICTS", "EQUAL_RTOL"]

#: the verdicts of :func:`summarize`, per definition
VERDICTS = ("lower with LS", "higher with LS", "equal", "mixed", "no CE baseline", "undefined")
#: condition numbers closer than this (relative) count as equal: they differ by rounding only
EQUAL_RTOL = 1e-12


def numeric_minimizers(problems: Sequence[UFMProblem], seed: int = 0, tol: float = 1e-12, device=None,
                       on_step=None):
    """Solve same-shape problems in one batched L-BFGS solve (float64) to ``tol``.

    Returns the SolveResult; each configuration's ``status`` says whether it converged.
    ``on_step``: the solver's progress hook (``ufm.numerics.solve.OnStep``).
    """
    return solve(list(problems), method="lbfgs", seeds=seed, tol=tol, device=device, on_step=on_step)


@validate_params({
    "problem": InstanceOf(UFMProblem),
    "definitions": ListOf(Options(DEFINITIONS)),
    "solver_tol": Interval("float", 0, None, "neither"),
    "null_rtol": Interval("float", 0, 1, "neither"),
    "max_bytes": Interval("float", 2**10, 2**60, "both"),  # 1 KiB .. 1 EiB
})
def conditioning(problem: UFMProblem, alphas: Optional[Sequence[float]] = None,
                 definitions: Sequence[str] = DEFINITIONS, numeric: bool = False, seed: int = 0,
                 solver_tol: float = 1e-12, null_rtol: float = 1e-7, max_bytes: int = DENSE_LIMIT_BYTES,
                 device=None, on_step=None, on_spectrum=None) -> List[Spectrum]:
    """Spectra and condition numbers of ``problem`` for each alpha in ``alphas`` (default
    ``[problem.alpha]``) and each definition: symbolic, then numeric if ``numeric``.

    ``alphas`` replaces ``problem.alpha``: a problem whose alpha is neither 0 (the default) nor
    among ``alphas`` is refused (``InvalidParameterError``), so a conflicting alpha is never
    dropped silently.

    The numeric minimizers of all alphas are found in one batched L-BFGS solve from
    ``seed``; each numeric spectrum records the solver's final gradient norm and status
    in ``details``. Eigenvalues of the two sources agree to about 1e-10 relative to the
    largest (tests assert 1e-6). Progress hooks (they change no result): ``on_step``, the
    solver's (``ufm.numerics.solve.OnStep``); ``on_spectrum(done, total)``, called before the
    numeric spectra (``done = 0``) and after each (``total`` = alphas x definitions).
    """
    alphas = check_alphas([problem.alpha] if alphas is None else alphas, "conditioning")
    if problem.alpha != 0 and problem.alpha not in alphas:
        raise InvalidParameterError(f"The 'alphas' parameter of conditioning replaces problem.alpha = "
                                    f"{problem.alpha:g}, which is not among them; pass a problem with alpha 0 or "
                                    f"include {problem.alpha:g} in alphas. Got {list(alphas)} instead.",
                                    param="alphas", value=list(alphas))
    definitions = list(definitions)
    require_closed_form(problem.K, problem.d, "conditioning")
    problems = [problem.replace(alpha=a) for a in alphas]
    out: List[Spectrum] = []
    for p in problems:
        out += [symbolic_spectrum(p, dfn) for dfn in definitions]
    if numeric:
        result = numeric_minimizers(problems, seed=seed, tol=solver_tol, device=device, on_step=on_step)
        total = len(problems) * len(definitions)
        if on_spectrum is not None:
            on_spectrum(0, total)
        for i, p in enumerate(problems):
            if result.status[i] != "converged":
                warnings.warn(f"the numerical minimizer for alpha = {p.alpha:g} did not reach ||grad f|| < "
                              f"{solver_tol:g} (status {result.status[i]}, ||grad f|| = "
                              f"{float(result.grad_norm[i]):.2g}); its numeric spectra are less accurate",
                              UFMWarning, stacklevel=2)
            for k, dfn in enumerate(definitions):
                sp = numeric_spectrum(p, result.W[i], result.H[i], result.b[i], dfn, null_rtol=null_rtol,
                                      max_bytes=max_bytes)
                sp.details.update(grad_norm=float(result.grad_norm[i]), solver_status=result.status[i], seed=seed)
                out.append(sp)
                if on_spectrum is not None:
                    on_spectrum(i * len(definitions) + k + 1, total)
    return out


def summarize(spectra: Sequence[Spectrum], source: str = "symbolic") -> Dict[str, dict]:
    """Per definition: ``alphas`` (ascending) and ``kappa`` (the condition number at each, CE being
    the entry at alpha = 0: lists of one shape for CE and LS, stable through JSON), and a verdict.

    ``verdict`` is ``"lower with LS"`` when every alpha > 0 gives a lower condition number
    than alpha = 0, ``"higher with LS"`` when every one gives a higher one, ``"equal"`` when every
    one gives the same (to ``EQUAL_RTOL``, e.g. ``logits`` at K = 2, whose kappa is 1), ``"mixed"``
    otherwise, ``"no CE baseline"`` when alpha = 0 or no alpha > 0 is among the spectra, and
    ``"undefined"`` when a condition number is NaN. For ``full`` with lambda_b = 0 the entry
    ``"full, b included"`` gives the same with the bias as a variable (``details``).
    """
    out: Dict[str, dict] = {}
    for name in DEFINITIONS + (WITH_BIAS,):
        dfn = "full" if name == WITH_BIAS else name
        rows = []
        for s in spectra:
            if s.definition != dfn or s.source != source:
                continue
            kappa = s.details.get("condition_number_with_bias") if name != dfn else s.condition_number
            if kappa is not None:
                rows.append((s.alpha, kappa))
        if not rows:
            continue
        kappa = dict(sorted(rows))
        base = kappa.get(0.0)
        ls = {a: k for a, k in kappa.items() if a > 0}
        if base is None or not ls:
            verdict = "no CE baseline"
        elif math.isnan(base) or any(math.isnan(k) for k in ls.values()):
            verdict = "undefined"
        elif all(abs(k - base) <= EQUAL_RTOL * abs(base) for k in ls.values()):
            verdict = "equal"
        elif all(k < base for k in ls.values()):
            verdict = "lower with LS"
        elif all(k > base for k in ls.values()):
            verdict = "higher with LS"
        else:
            verdict = "mixed"
        out[name] = {"alphas": list(kappa), "kappa": list(kappa.values()), "verdict": verdict}
    return out


def verdicts_across(summaries: Dict[str, Dict[str, dict]]) -> Dict[str, List[str]]:
    """Across several :func:`summarize` results (e.g. one per K): the definitions whose verdict is
    ``lower with LS`` in every one (``support``), ``higher with LS`` in every one (``against``),
    ``undefined`` or ``no CE baseline`` in some (``unknown``), and the rest (``mixed``: the answer
    depends on alpha or on the configuration)."""
    seen: Dict[str, set] = {}
    for summary in summaries.values():
        for dfn, v in summary.items():
            seen.setdefault(dfn, set()).add(v["verdict"])
    support = [d for d, v in seen.items() if v == {"lower with LS"}]
    against = [d for d, v in seen.items() if v == {"higher with LS"}]
    equal = [d for d, v in seen.items() if v == {"equal"}]
    unknown = [d for d, v in seen.items() if v & {"undefined", "no CE baseline"}]
    mixed = [d for d in seen if d not in support + against + equal + unknown]
    return {"support": support, "against": against, "equal": equal, "mixed": mixed, "unknown": unknown}


def agreement(pairs: Sequence[dict]) -> dict:
    """Over the rows of :func:`compare_sources`: the largest eigenvalue difference (relative to the
    largest eigenvalue; None if no pair could be compared) and whether every null-space dimension
    agrees."""
    errors = [r["max_eigenvalue_error"] for r in pairs if r["max_eigenvalue_error"] is not None]
    return {"max_eigenvalue_error": max(errors) if errors else None,
            "null_dims_agree": all(r["null_symbolic"] == r["null_numeric"] for r in pairs)}


def compare_sources(spectra: Sequence[Spectrum]) -> List[dict]:
    """Symbolic against numeric: for each symbolic spectrum with a complete numeric twin (same
    alpha and definition), both condition numbers and null dimensions, the numeric null
    tolerance, and the largest eigenvalue difference relative to the largest eigenvalue (None
    if the counts differ)."""
    import numpy as np

    rows = []
    for s in spectra:
        if s.source != "symbolic":
            continue
        twin = next((x for x in spectra if x.source == "numeric" and x.complete and x.alpha == s.alpha
                     and x.definition == s.definition), None)
        if twin is None:
            continue
        a, b = s.expanded(), twin.expanded()
        err = float(np.max(np.abs(a - b)) / np.abs(a).max()) if a.size == b.size else None
        rows.append({"alpha": s.alpha, "definition": s.definition, "kappa_symbolic": s.condition_number,
                     "kappa_numeric": twin.condition_number, "null_symbolic": s.null_dim,
                     "null_numeric": twin.null_dim, "null_tol": twin.null_tol, "max_eigenvalue_error": err,
                     "grad_norm": twin.details.get("grad_norm")})
    return rows
