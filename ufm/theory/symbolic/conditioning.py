"""Condition numbers at the collapsed minimizer as functions of (K, alpha, s, d-regime, lambda_W/lambda_H) (sympy).

The spectra of ``ufm.theory.symbolic.hessian`` (``derivations/hessian.md``, (Hk)) are written at the
closed-form minimizer of ``derivations/minimizer.md`` (Mk). On the collapsed branch
s = sqrt(n lambda_W lambda_H) < (1 - alpha)/K, and with r = lambda_W / lambda_H:

* lambda_W = s sqrt(r/n), lambda_H = s / sqrt(r n), and the norms rho_w, rho_h of the minimizer
  follow from (M17), (M18); p_off = s + alpha/K, p_true = 1 - (K-1) p_off, Delta = log(p_true/p_off);
* every eigenvalue of the ``features`` Hessian is lambda_H times a function of (K, alpha, s), every
  one of the ``classifier`` Hessian lambda_W times one, and every one of the ``full`` Hessian (b not a
  variable) sqrt(lambda_W lambda_H) = s/sqrt(n) times a function of (K, alpha, s, r): the derivation
  checks that n cancels. With b as a variable (lambda_b = 0) it does not: the bias entries carry
  sqrt(n) in these units, so that condition number depends on n as well.

Which eigenvalue is the largest and which the smallest is decided symbolically for ``logits``,
``features`` and ``classifier`` (each difference of two eigenvalues is a product of positive factors
on the collapsed branch, written with p_off = 1/(K(1+w)), w > 0) and checked on a grid; the
condition numbers follow in closed form, with their derivative in alpha. For ``full`` the largest
and smallest pieces are found on a grid (one block has no closed-form eigenvalues).

``derivations/conditioning.py`` prints this derivation and writes ``derivations/conditioning.md``
and ``ufm/theory/_generated/conditioning.py``, which ``ufm.theory.conditioning`` evaluates at run
time without sympy. Equations are cited there as (Ck).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import sympy as sp

from ufm.theory.keys import D_REGIMES, WITH_BIAS, conditioning_key, spectrum_key
from ufm.theory.symbolic.codegen import generated_comment, generated_header, pycode
from ufm.theory.symbolic.hessian import Component, collapsed_spectra, d, p_o, p_t, x
from ufm.theory.symbolic.minimizer import derive_minimizer
from ufm.theory.symbolic.steps import Step, steps_markdown, steps_text
from ufm.theory.symbolic.symbols import K, Delta, alpha, lambda_b, lambda_H, lambda_W, n, rho_h, rho_w, s

__all__ = ["ConditioningDerivation", "ClosedKappa", "derive_conditioning", "CONDITIONING_TITLE", "r",
           "conditioning_to_markdown", "conditioning_to_python", "conditioning_to_text"]

CONDITIONING_TITLE = "Condition numbers at the collapsed minimizer, and where label smoothing lowers them"

r = sp.Symbol("r", positive=True)  # lambda_W / lambda_H
_w = sp.Symbol("w", positive=True)  # p_off = 1/(K (1 + w)): 0 < p_off < 1/K on the collapsed branch
_k = sp.Symbol("k", positive=True, integer=True)  # K = k + 2 >= 3
_e = sp.Symbol("e", nonnegative=True, integer=True)  # d = K + e
_m = sp.Symbol("m", nonnegative=True, integer=True)  # n = m + 2 (within-class moves exist)

#: the collapsed branch in the units of this derivation (step 1): the norms of (M17), (M18)
_C = (K - 1) * Delta / K  # rho_w rho_h (H5)
UNITS = {lambda_W: s * sp.sqrt(r) / sp.sqrt(n), lambda_H: s / (sp.sqrt(r) * sp.sqrt(n)), lambda_b: sp.S.Zero,
         rho_w: sp.sqrt(_C) * (n / r) ** sp.Rational(1, 4), rho_h: sp.sqrt(_C) * (r / n) ** sp.Rational(1, 4)}
#: the unit each operator's eigenvalues are measured in
_UNIT = {"logits": sp.S.One, "features": lambda_H, "classifier": lambda_W, "full": sp.sqrt(lambda_W * lambda_H)}
_TEX_UNIT = {"logits": "1", "features": r"\lambda_H", "classifier": r"\lambda_W", "full": r"\sqrt{\lambda_W \lambda_H}"}


@dataclass
class ClosedKappa:
    """The condition number of one operator in one d-regime, in closed form.

    ``eigenvalues``: (piece, eigenvalue in the operator's unit) present in this regime;
    ``largest`` and ``smallest``: the indices of the extremes among them (decided symbolically);
    ``kappa`` and ``slope`` (d kappa / d alpha) in p_o, p_t, Delta, s, K.
    """

    key: str
    unit: str
    eigenvalues: List[Tuple[str, sp.Expr]]
    largest: int
    smallest: int
    kappa: sp.Expr
    slope: sp.Expr


@dataclass
class ConditioningDerivation:
    """Steps (for the Markdown), the closed forms per :func:`conditioning_key`, the normalized pieces
    of the full Hessian per key, and the result of the grid checks (lines of text)."""

    steps: List[Step]
    closed: Dict[str, ClosedKappa]
    full: Dict[str, List[Component]]
    checks: List[str]


@lru_cache(maxsize=None)
def _simplify(expr):
    """sp.simplify, cached: the same entries recur across d-regimes, K kinds and the two full Hessians."""
    return sp.simplify(expr)


@lru_cache(maxsize=None)
def _positive_form(expr, binary: bool):
    """``expr`` on the collapsed branch, written in positive symbols: p_off = 1/(K(1+w)), K = k + 2
    (or 2), Delta > 0, s > 0, r > 0."""
    e = expr.subs(p_t, 1 - (K - 1) * p_o).subs(p_o, 1 / (K * (1 + _w)))
    return sp.factor(_simplify(e.subs(K, 2 if binary else _k + 2)))


def _sign(expr, binary: bool) -> int:
    """The sign of ``expr`` everywhere on the collapsed branch (RuntimeError if sympy cannot tell)."""
    e = _positive_form(expr, binary)
    if e == 0:
        return 0
    if e.is_positive:
        return 1
    if e.is_negative:
        return -1
    raise RuntimeError(f"the sign of {expr} on the collapsed branch is not decided: {e}")


def _present(multiplicity, d_regime: str, binary: bool) -> Optional[bool]:
    """Whether a piece of this multiplicity exists in the d-regime (n >= 2), for every K of its kind
    (True), for none (False) or for some only (None: e.g. K(K-3)/2 vanishes at K = 3)."""
    Kv = sp.Integer(2) if binary else _k + 2
    dv = Kv - 1 if d_regime == "K-1" else Kv + _e
    v = sp.simplify(sp.sympify(multiplicity).subs({K: Kv, d: dv, n: _m + 2}, simultaneous=True))
    if v == 0:
        return False
    if v.is_positive:
        return True
    if v.is_nonnegative:
        return None
    raise RuntimeError(f"multiplicity {multiplicity} is negative in the regime d {d_regime}")


def _normalized(value, definition: str):
    return _simplify(sp.sympify(value).subs(UNITS) / _UNIT[definition].subs(UNITS))


def _alpha_derivative(expr):
    """d/d alpha at fixed s of an expression in p_o, p_t, Delta: dp_o = 1/K, dp_t = -(K-1)/K and
    dDelta = -1/(K p_o p_t) (step 1)."""
    return sp.simplify((sp.diff(expr, p_o) - (K - 1) * sp.diff(expr, p_t) - sp.diff(expr, Delta) / (p_o * p_t)) / K)


@lru_cache(maxsize=None)
def _pretty(expr, binary: bool = False):
    """A readable form: the shortest of ``expr``, its factored form and 1 + the factored ``expr - 1``,
    with 1 - (K-1) p_o written p_t where it occurs."""
    def tidy(e):
        if binary:
            return sp.factor(_simplify(e.subs(p_t, 1 - p_o))).subs(p_o - 1, -p_t)
        return sp.factor(_simplify(e.subs(p_t, 1 - (K - 1) * p_o))).subs(K * p_o - p_o - 1, -p_t)
    forms = [_simplify(expr), tidy(expr), 1 + tidy(expr - 1)]
    return min(forms, key=sp.count_ops)


def _closed(definition: str, d_regime: str, binary: bool, spectra) -> ClosedKappa:
    """The closed-form condition number of ``definition`` (not ``full``) in one regime."""
    comps = spectra[spectrum_key(definition, False, False, binary)]
    eig, always = [], []  # the pieces present for some K of this kind; whether present for every one
    for c in comps:
        present = _present(c.multiplicity, d_regime, binary)
        if present is not False:
            eig += [(c.name, _pretty(_normalized(v, definition).subs(K, 2), True) if binary else
                     _pretty(_normalized(v, definition))) for v in c.values if v != 0]
            always += [present is True for v in c.values if v != 0]

    def extreme(sign):  # a piece present for every K that is at least (at most) every other one
        for i, (_, v) in enumerate(eig):
            if always[i] and all(_sign(sign * (v - u), binary) >= 0 for _, u in eig):
                return i
        raise RuntimeError(f"{definition}: no eigenvalue is the {'largest' if sign > 0 else 'smallest'}")
    hi, lo = extreme(1), extreme(-1)
    kappa = _pretty(eig[hi][1] / eig[lo][1], binary)
    slope = _alpha_derivative(kappa)
    slope = _pretty(slope.subs(K, 2) if binary else slope, binary)
    key = conditioning_key(definition, d_regime, binary)
    return ClosedKappa(key, _TEX_UNIT[definition], eig, hi, lo, kappa, slope)


def _full_components(key_full: str, bias: bool, spectra) -> List[Component]:
    """The pieces of the full Hessian in units of sqrt(lambda_W lambda_H); the blocks in coordinates
    whose metric is free of n (the class-mean rows scaled by 1/sqrt(n))."""
    unit = _UNIT["full"].subs(UNITS)
    out = []
    for c in spectra[key_full]:
        if c.values is not None:
            out.append(Component(c.name, c.multiplicity, values=[_normalized(v, "full") for v in c.values]))
        elif c.quadratic is not None:
            c2, c1, c0 = [q.subs(UNITS) for q in c.quadratic]
            out.append(Component(c.name, c.multiplicity, quadratic=(
                sp.S.One, _simplify(c1 / (c2 * unit)), _simplify(c0 / (c2 * unit**2)))))
        else:
            Hr, Gr = [M.subs(UNITS) for M in c.block]
            D = sp.diag(*[sp.sqrt(sp.simplify(Gr[i, i].subs(n, 1) / Gr[i, i])) for i in range(Gr.rows)])
            out.append(Component(c.name, c.multiplicity, block=(
                (D * Hr * D / unit).applyfunc(_simplify), (D * Gr * D).applyfunc(_simplify))))
    payload = [e for c in out for e in (c.values or c.quadratic or list(c.block[0]) + list(c.block[1]))]
    if not bias and any(sp.sympify(e).has(n) for e in payload):
        raise RuntimeError(f"{key_full}: n does not cancel in units of sqrt(lambda_W lambda_H)")
    return out


def _units_step(steps: List[Step]) -> None:
    """Step 1: the collapsed branch in (K, alpha, s, r), from the minimizer's results."""
    mz = derive_minimizer("label_smoothing")
    at = {lambda_W: UNITS[lambda_W], lambda_H: UNITS[lambda_H]}
    gap = mz.results_in_s["logit_gap"]
    for name, mine in (("w_norm", UNITS[rho_w]), ("h_norm", UNITS[rho_h])):
        if sp.simplify((mz.results[name].subs(at) - mine.subs(Delta, gap)) / mine.subs(Delta, gap)) != 0:
            raise RuntimeError(f"units: {name} of the minimizer is not {mine}")
    po, pt = mz.results_in_s["p_off"], mz.results_in_s["p_true"]
    if sp.simplify(sp.exp(gap) - pt / po) != 0 or sp.simplify(pt - 1 + (K - 1) * po) != 0:
        raise RuntimeError("units: the logit gap is not log(p_true/p_off)")
    dgap = sp.simplify(sp.diff(sp.log((1 - (K - 1) * p_o) / p_o), p_o) + 1 / (p_o * (1 - (K - 1) * p_o)))
    if dgap != 0:
        raise RuntimeError(f"units: dDelta/dp_o is not -1/(p_o p_t): residual {dgap}")
    steps.append(Step(
        "The collapsed branch in (K, alpha, s, r)",
        "With s = sqrt(n lambda_W lambda_H) and r = lambda_W / lambda_H, the weight decays are "
        "lambda_W = s sqrt(r/n) and lambda_H = s/sqrt(r n), and the norms of the minimizer (M17, M18) "
        "are as below (checked against the minimizer's results). On the collapsed branch s < (1 - alpha)/K "
        "the probabilities and the logit gap depend on (K, alpha, s) alone (M14-M16); d/d alpha at fixed s "
        "moves p_o by 1/K, p_t by -(K-1)/K and Delta by -1/(K p_o p_t).",
        [(r"\lambda_W", UNITS[lambda_W]), (r"\lambda_H", UNITS[lambda_H]), (r"\rho_w^2", UNITS[rho_w]**2),
         (r"\rho_h^2", UNITS[rho_h]**2), (r"p_o", po), (r"p_t", pt), (r"\Delta", sp.log(p_t / p_o)),
         (r"\frac{\partial \Delta}{\partial p_o}", -1 / (p_o * p_t))]))


_TEXT = {
    "logits": "The eigenvalues of diag(p) - p p^T off its null vector (H6-H8) involve no lambda, W, H or d: the "
              "condition number is K p_t for K >= 3 and 1 for K = 2 (one nonzero eigenvalue), in every d-regime. "
              "It says nothing about gradient descent on (W, H), whose Hessians are the other operators.",
    "features": "Per sample, in units of lambda_H (H22-H24 with the norms of step 1): the span of the ETF carries "
                "1 + Delta p_o/(K s) (K-2 times) and 1 + Delta p_t p_o/s (once), the d-K+1 directions orthogonal to "
                "it carry 1, which exist only for d >= K. So kappa = 1 + F(p_o)/s at d >= K, with "
                "F(p) = p (1 - (K-1) p) log((1 - (K-1) p)/p), and a ratio of the two span values at d = K-1.",
    "classifier": "In units of lambda_W (the span blocks of derivations/hessian.md, step 4, Y directions only): the "
                  "standard representation always carries lambda_W (Y = 1 v^T, which the loss does not see), so the "
                  "smallest eigenvalue is lambda_W for every d, and kappa equals the features kappa at d >= K.",
}


def _closed_step(definition: str, closed: Dict[str, ClosedKappa], steps: List[Step]) -> None:
    eqs = []
    for d_regime in D_REGIMES[:1] if definition == "logits" else D_REGIMES:  # logits: no d in it
        for binary in (False, True):
            c = closed[conditioning_key(definition, d_regime, binary)]
            where = (r"\text{every } d" if definition == "logits" else r"d = K-1" if d_regime == "K-1" else r"d \geq K")
            tag = rf"K = 2,\ {where}" if binary else rf"K \geq 3,\ {where}"
            unit = "" if c.unit == "1" else f"/{c.unit}"
            eqs += [(rf"\mu_{{\max}}{unit}\ [{tag}]", c.eigenvalues[c.largest][1]),
                    (rf"\mu_{{\min}}{unit}\ [{tag}]", c.eigenvalues[c.smallest][1]),
                    (rf"\kappa_{{\mathrm{{{definition}}}}}\ [{tag}]", c.kappa),
                    (rf"\partial_\alpha \kappa_{{\mathrm{{{definition}}}}}\ [{tag}]", c.slope)]
    steps.append(Step(f"{definition}: the largest and the smallest eigenvalue, and kappa", _TEXT[definition]
                      + " Every difference of two eigenvalues has a sign fixed on the collapsed branch (decided "
                        "with p_o = 1/(K(1+w)), w > 0, for symbolic K >= 3 and for K = 2), which gives:", eqs))


def _closing_steps(full: Dict[str, List[Component]], checks: List[str], steps: List[Step]) -> None:
    std = next(c for c in full["full/multiclass"] if c.block is not None)
    steps.append(Step(
        "full: the pieces in units of sqrt(lambda_W lambda_H)",
        "Every eigenvalue of the full Hessian (b not a variable) is sqrt(lambda_W lambda_H) = s/sqrt(n) times a "
        "function of (K, alpha, s, r): n cancels in every piece (checked), so kappa_full is a function of (K, "
        "alpha, s, d-regime, r). The standard block, with its class-mean rows scaled by 1/sqrt(n), is the pair "
        "below; its eigenvalues are found numerically. With b as a variable (lambda_b = 0) the bias row of that "
        "block carries n^(1/4) and sqrt(n) in these units: that condition number depends on n too.",
        [(r"H_r / \sqrt{\lambda_W \lambda_H}\ [\text{standard}]", std.block[0]),
         (r"G_r\ [\text{standard}]", std.block[1])]))
    steps.append(Step(
        "Checks on a grid",
        "The closed forms against every eigenvalue present, and the pieces of the full Hessian that reach the "
        "extremes, on the grid K in {2, 3, 4, 5, 10, 100}, s K in 24 values of (0, 1), alpha in {0, 0.05, 0.1, "
        "0.2, 0.3, 0.5, 0.8} below the threshold, r in {0.01, 0.1, 1, 10, 100}:\n\n" + "\n".join(checks), []))
    steps.append(Step(
        "Where label smoothing lowers kappa: the verdict over alpha and its crossovers",
        "At fixed (K, d-regime, r) and s, compare kappa(alpha) with kappa(0) (CE) over every alpha in (0, "
        "alpha_max] below the threshold, alpha < 1 - s K: 'lower' if every one is lower, 'higher' if every one "
        "is higher, 'equal' if every one is equal, 'mixed' otherwise. The verdict changes with s K only where "
        "(i) the slope at alpha = 0+ changes sign, (ii) kappa(alpha_end) - kappa(0) changes sign, alpha_end the "
        "end of the alpha range, or (iii) an interior extremum of kappa(alpha) - kappa(0) crosses 0; "
        "``ufm.analysis.regimes`` finds these by root-finding on the expressions above. For features at d >= K, "
        "kappa = 1 + F(p_o)/s with F(p) = p (1 - (K-1) p) log((1 - (K-1) p)/p): the slope at CE has the sign of "
        "F'(s), i.e. of Delta_0 (1 - 2 (K-1) s) - 1 with Delta_0 = log((1 - (K-1) s)/s), and F -> 0 at the "
        "threshold, where kappa -> 1.", []))


_GRID_ARGS = (K, s, p_o, p_t, Delta, r, n)


def _grid():
    """The check grid (step "Checks on a grid") as arrays of (K, s, p_o, p_t, Delta, r, n), n = 2."""
    import numpy as np

    rows = []
    for Kv, sK, a, rv in itertools.product((2, 3, 4, 5, 10, 100), np.linspace(0.02, 0.98, 24),
                                           (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8), (0.01, 0.1, 1.0, 10.0, 100.0)):
        if sK < 1 - a:
            pov = sK / Kv + a / Kv
            ptv = 1 - (Kv - 1) * pov
            rows.append((Kv, sK / Kv, pov, ptv, np.log(ptv / pov), rv, 2.0))
    return np.array(rows).T


def _on(expr, cols):
    """``expr`` evaluated over the grid columns (a constant broadcast to their shape)."""
    import numpy as np

    value = sp.lambdify(_GRID_ARGS, expr, "numpy")(*cols)
    return np.broadcast_to(np.asarray(value, dtype=float), cols[0].shape)


def _pieces_on(comps, cols):
    """(name, eigenvalues over the grid) of every nonzero eigenvalue of the pieces ``comps``."""
    import numpy as np

    out = []
    for c in comps:
        if c.values is not None:
            out += [(c.name, _on(v, cols)) for v in c.values if v != 0]
        elif c.quadratic is not None:
            c1, c0 = _on(c.quadratic[1], cols), _on(c.quadratic[2], cols)
            root = np.sqrt(np.maximum(c1 * c1 - 4 * c0, 0))
            out += [(c.name, (-c1 - root) / 2), (c.name, (-c1 + root) / 2)]
        else:
            Hr, Gr = [np.stack([np.stack([_on(M[i, j], cols) for j in range(M.cols)], -1) for i in range(M.rows)], -2)
                      for M in c.block]
            L = np.linalg.inv(np.linalg.cholesky(Gr))
            ev = np.linalg.eigvalsh(L @ Hr @ np.swapaxes(L, -1, -2))
            out += [(c.name, ev[:, i]) for i in range(ev.shape[1])]
    return out


def _grid_checks(closed: Dict[str, ClosedKappa], full: Dict[str, List[Component]]) -> List[str]:
    """Numerical checks of the symbolic claims (lines for the Markdown); RuntimeError if one fails."""
    import numpy as np

    grid = _grid()
    count = 0
    for c in closed.values():
        cols = grid[:, (grid[0] == 2) == c.key.endswith("binary")]
        vals = np.stack([_on(v, cols) for _, v in c.eigenvalues])
        kappa = _on(c.kappa, cols)
        if (np.abs(kappa - vals.max(0) / vals.min(0)) > 1e-10 * kappa).any() or \
                (vals[c.largest] != vals.max(0)).any() or (vals[c.smallest] != vals.min(0)).any():
            raise RuntimeError(f"{c.key}: the closed form is not the largest over the smallest eigenvalue on the grid")
        count += kappa.size
    lines = [f"- logits, features, classifier: each closed form equals the largest over the smallest eigenvalue "
             f"present, and the pieces named are the extremes, at all {count} (key, point) pairs."]
    for key, comps in full.items():
        cols = grid[:, (grid[0] == 2) == key.endswith("binary")]
        lines.append(f"- `{key}`: " + "; ".join(_extreme_pieces(comps, cols, key.endswith("binary"), d_regime)
                                                for d_regime in D_REGIMES) + ".")
    return lines


def _extreme_pieces(comps, cols, binary: bool, d_regime: str) -> str:
    """Which pieces of the full Hessian reach the largest and the smallest eigenvalue on the grid."""
    import numpy as np

    vals = _pieces_on([c for c in comps if _present(c.multiplicity, d_regime, binary) is not False], cols)
    V = np.stack([v for _, v in vals])
    V = np.where(np.abs(V) > 1e-12 * np.abs(V).max(0), V, np.nan)  # zeros of the null space are not counted
    hi = V >= np.nanmax(V, 0) * (1 - 1e-9)  # (piece, point): reaches the largest (ties included)
    lo = V <= np.nanmin(V, 0) * (1 + 1e-9)
    top = {vals[i][0] for i in range(len(vals)) if hi[i].any()}
    low = {vals[i][0] for i in range(len(vals)) if lo[i].any()}
    within = np.array([name.startswith("within") for name, _ in vals])[:, None]
    alone = ((hi & ~within).sum(0) == 0) | ((lo & ~within).sum(0) == 0)  # only a within-class piece is extreme
    text = (f"d {'= K-1' if d_regime == 'K-1' else '>= K'}: largest {', '.join(sorted(top))}; smallest "
            f"{', '.join(sorted(low))}")
    return text + (" (a within-class piece alone is extreme at some points, so kappa differs at n = 1)" if alone.any()
                   else " (never a within-class piece alone, so kappa is the same at n = 1, where those are absent)")


@lru_cache(maxsize=None)
def derive_conditioning() -> ConditioningDerivation:
    """Derive the condition numbers on the collapsed branch (module docstring)."""
    spectra = collapsed_spectra()
    steps: List[Step] = []
    _units_step(steps)
    closed = {}
    for definition in ("logits", "features", "classifier"):
        for d_regime in D_REGIMES:
            for binary in (False, True):
                c = _closed(definition, d_regime, binary, spectra)
                closed[c.key] = c
        _closed_step(definition, closed, steps)
    full = {}
    for name, bias in (("full", False), (WITH_BIAS, True)):
        for binary in (False, True):
            full[conditioning_key(name, "K-1", binary)] = _full_components(
                spectrum_key("full", False, bias, binary), bias, spectra)
    checks = _grid_checks(closed, full)
    _closing_steps(full, checks, steps)
    return ConditioningDerivation(steps=steps, closed=closed, full=full, checks=checks)


# ---------------------------------------------------------------------------
# Export.

def conditioning_to_text(derivation: ConditioningDerivation) -> str:
    lines = steps_text(derivation.steps)
    lines += ["", "== Condition numbers"]
    for key, c in derivation.closed.items():
        (nh, vh), (nl, vl) = c.eigenvalues[c.largest], c.eigenvalues[c.smallest]
        lines.append(f"  {key}: kappa = {sp.sstr(c.kappa)}   (largest: {nh}, {sp.sstr(vh)} {c.unit}; smallest: "
                     f"{nl}, {sp.sstr(vl)} {c.unit})")
    return "\n".join(lines) + "\n"


def _piece_cell(c: Component) -> str:
    if c.values is not None:
        return ", ".join(f"${sp.latex(v)}$" for v in c.values)
    if c.quadratic is not None:
        return "roots of $" + sp.latex(x**2 + c.quadratic[1] * x + c.quadratic[2]) + "$"
    return f"{c.block[0].rows} x {c.block[0].rows} block (generalized eigenvalues; the pair is in the generated code)"


def conditioning_to_markdown(derivation: ConditioningDerivation) -> str:
    lines = [f"# {CONDITIONING_TITLE}", "", generated_comment("conditioning.py"), "",
             "Symbols: s = sqrt(n lambda_W lambda_H), r = lambda_W / lambda_H, p_o = p_off*, p_t = p_true*, "
             "Delta = the logit gap (derivations/minimizer.md, M14-M16); the operators and their pieces are those of "
             "derivations/hessian.md (README, \"Conditioning\"). Everything here is on the collapsed branch "
             "s < (1 - alpha)/K.", ""]
    lines += steps_markdown(derivation.steps, "C")
    lines += ["## Condition numbers", "", "| key | largest | smallest | kappa |", "|---|---|---|---|"]
    for key, c in derivation.closed.items():
        (nh, vh), (nl, vl) = c.eigenvalues[c.largest], c.eigenvalues[c.smallest]
        lines.append(f"| `{key}` | {nh}: ${sp.latex(vh)}$ | {nl}: ${sp.latex(vl)}$ | ${sp.latex(c.kappa)}$ |")
    lines += ["", "## Pieces of the full Hessian in units of sqrt(lambda_W lambda_H)", ""]
    for key, comps in derivation.full.items():
        lines += [f"### `{key}`", "", "| piece | multiplicity | eigenvalues |", "|---|---|---|"]
        lines += [f"| {c.name} | ${sp.latex(c.multiplicity)}$ | {_piece_cell(c)} |" for c in comps]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_PY_ARGS = {K: "K", n: "n", d: "d", alpha: "alpha", s: "s", r: "r", p_o: "p_o", p_t: "p_t", Delta: "Delta"}


def _py(expr) -> str:
    return pycode(expr, _PY_ARGS)


def _point_lines() -> List[str]:
    mz = derive_minimizer("label_smoothing").results_in_s
    return ["def _point(K, alpha, s, xp):",
            '    """p_off, p_true and the logit gap at the collapsed minimizer (M14-M16)."""',
            f"    p_o = {_py(mz['p_off'])}", f"    p_t = {_py(mz['p_true'])}", f"    Delta = {_py(mz['logit_gap'])}",
            "    return p_o, p_t, Delta", "", ""]


def _payload(c: Component) -> Tuple[str, str]:
    if c.values is not None:
        return "values", "[" + ", ".join(_py(v) for v in c.values) + "]"
    if c.quadratic is not None:
        return "quadratic", "(" + ", ".join(_py(v) for v in c.quadratic) + ")"
    mats = ["[" + ", ".join("[" + ", ".join(_py(M[i, j]) for j in range(M.cols)) + "]" for i in range(M.rows)) + "]"
            for M in c.block]
    return "block", "(" + ", ".join(mats) + ")"


def conditioning_to_python(derivation: ConditioningDerivation) -> str:
    """Python source: ``KAPPA[key](K, alpha, s, r, xp)`` and ``SLOPE[key]`` (d kappa/d alpha) for the
    closed forms; ``FULL[key](K, n, d, alpha, s, r, xp)`` the pieces of the full Hessian in units of
    sqrt(lambda_W lambda_H), as ``[(name, multiplicity, kind, payload), ...]`` like the Hessian spectra."""
    lines = generated_header("Compiled condition numbers at the collapsed minimizer.", "conditioning.py",
                             "Evaluated by ufm.theory.conditioning; see derivations/conditioning.md.")
    lines += _point_lines()
    names: Dict[str, Dict[str, str]] = {"KAPPA": {}, "SLOPE": {}, "FULL": {}}
    for key, c in derivation.closed.items():
        base = key.replace("/", "_").replace(">=", "ge_").replace("=", "eq_").replace("-", "m")
        for table, expr in (("KAPPA", c.kappa), ("SLOPE", c.slope)):
            fname = f"_{table.lower()}_{base}"
            names[table][key] = fname
            lines += [f"def {fname}(K, alpha, s, r, xp):", "    p_o, p_t, Delta = _point(K, alpha, s, xp)",
                      f"    return {_py(expr)}", "", ""]
    for key, comps in derivation.full.items():
        fname = "_pieces_" + key.replace(", ", "_").replace(" ", "_").replace("/", "_")
        names["FULL"][key] = fname
        lines += [f"def {fname}(K, n, d, alpha, s, r, xp):", "    p_o, p_t, Delta = _point(K, alpha, s, xp)",
                  "    return ["]
        for c in comps:
            kind, payload = _payload(c)
            lines.append(f"        ({c.name!r}, {_py(c.multiplicity)}, {kind!r}, {payload}),")
        lines += ["    ]", "", ""]
    for table, entries in names.items():
        lines.append(f"{table} = {{" + ", ".join(f"{k!r}: {v}" for k, v in entries.items()) + "}")
    lines += ["", "#: (largest, smallest) eigenvalue of each closed form, as named in derivations/conditioning.md",
              "EXTREMES = {"]
    for key, c in derivation.closed.items():
        hi, lo = [f"{name}: {sp.sstr(v)}" for name, v in (c.eigenvalues[c.largest], c.eigenvalues[c.smallest])]
        lines.append(f"    {key!r}: ({hi!r}, {lo!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"
