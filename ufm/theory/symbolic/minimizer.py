"""Symbolic derivation of the UFM global minimizer under CE and label smoothing (sympy).

The derivation is generic in the loss *evaluated at the simplex-ETF configuration*:
a loss is one sympy expression ``ell(Delta, K, alpha)``, the loss of a sample whose
true-class logit exceeds each of the K - 1 other logits by the logit gap Delta.
Everything else (reduced objective, stationarity, minimizer, norms, threshold,
optimal value) is derived from it. Cross-entropy is label smoothing at alpha = 0
and comes out of the same derivation.

Steps (printed and exported by ``derivations/minimizer.py`` to
``derivations/minimizer.md``; equation numbers there are cited as (M1)..):

1. Neural-collapse ansatz: h_{k,i} = h_k (NC1), rows of W form a simplex ETF with
   norm rho_w (NC2), h_k = (rho_h / rho_w) w_k (NC3, self-duality), b = 0; the logits
   and the logit gap Delta = rho_w rho_h K / (K - 1).
2. Objective under the ansatz: ell(Delta) + (lambda_W K rho_w^2 + lambda_H n K rho_h^2) / 2.
3. Norm balance at fixed product P = rho_w rho_h (AM-GM, derived by stationarity).
4. Reduced scalar problem g(Delta) = ell(Delta) + (K - 1) s Delta, s = sqrt(n lambda_W lambda_H).
5. Stationarity g'(Delta) = 0 and its closed-form solution Delta*.
6. p_true, p_off, ||w_k||, ||h_k||, f*.
7. Bias: the class-summed loss gradient vanishes at the ETF, so b* = 0 (lambda_b > 0)
   or b* = b0 1 for any b0 (lambda_b = 0).
8. Threshold: the nonzero solution exists iff g'(0) < 0, i.e. s < s_crit; beyond it
   the minimum is W = H = 0.

The derivation optimizes within the ansatz. That the ansatz contains the global
minimizer (for d >= K - 1), and that W = H = 0 is the only one past the threshold, are
theorems of Zhu et al. (CE) and Guo et al. (LS); ufm checks both numerically
(``ufm verify``), it does not prove them.

Reference: Zhu et al., A Geometric Analysis of Neural Collapse with Unconstrained
Features, NeurIPS 2021; Guo et al., Cross Entropy versus Label Smoothing: A Neural
Collapse Perspective, TMLR 2025.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List

import sympy as sp

from ufm.theory.symbolic.codegen import generated_comment, generated_header, pycode
from ufm.theory.symbolic.steps import Step, steps_markdown, steps_text
from ufm.theory.symbolic.symbols import SYMBOLS, K, P, Delta, alpha, lambda_H, lambda_W, n, rho_h, rho_w, s

__all__ = [
    "SYMBOLS",
    "ETF_LOSSES",
    "Step",
    "Derivation",
    "derive_minimizer",
    "RESULT_NAMES",
    "NoClosedFormError",
    "to_markdown",
    "to_python",
    "to_text",
    "MINIMIZER_TITLE",
]


#: Names of the results, in the order the derivation produces them.
RESULT_NAMES = ("logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective",
                "threshold", "trivial_objective")


def _etf_label_smoothing(gap, num_classes, smoothing):
    """Label-smoothed CE of one sample at the ETF: true logit = gap, the K-1 others = 0.

    Target (1 - alpha) e_y + (alpha/K) 1; the loss is shift-invariant, so the
    off-class logits may be set to 0.
    """
    Z = sp.exp(gap) + num_classes - 1  # softmax normalizer
    t_true = 1 - smoothing + smoothing / num_classes
    t_off = smoothing / num_classes
    log_p_true = gap - sp.log(Z)
    log_p_off = -sp.log(Z)
    return -(t_true * log_p_true + (num_classes - 1) * t_off * log_p_off)


#: loss name -> ell(Delta, K, alpha): one expression per loss.
ETF_LOSSES: Dict[str, Callable] = {"label_smoothing": _etf_label_smoothing}


class NoClosedFormError(ValueError):
    """sympy finds no unique closed-form solution of the stationarity condition for a loss."""


@dataclass
class Derivation:
    """A derivation: its steps and its named results (sympy expressions).

    ``results[name]`` is expressed in the primary symbols alpha, K, n, lambda_W,
    lambda_H; ``results_in_s`` in alpha, K, n, s with s = sqrt(n lambda_W lambda_H).
    Results hold for the nonzero (collapsed) branch, i.e. for s < threshold.
    """

    loss: str
    steps: List[Step]
    results: Dict[str, sp.Expr]
    results_in_s: Dict[str, sp.Expr]

    def latex(self, name: str, in_s: bool = False) -> str:
        """The LaTeX of a result (``in_s``: written in s = sqrt(n lambda_W lambda_H))."""
        return sp.latex((self.results_in_s if in_s else self.results)[name])

    def special_case_latex(self, name: str, **subs) -> str:
        """The LaTeX of :meth:`special_case` (e.g. the CE logit gap with ``alpha=0``)."""
        return sp.latex(self.special_case(name, **subs))

    def special_case(self, name: str, **subs) -> sp.Expr:
        """A result with symbols substituted, simplified (e.g. ``alpha=0`` for CE)."""
        return sp.simplify(self.results_in_s[name].subs({SYMBOLS[k]: v for k, v in subs.items()}))


def _solve_for_gap(equation):
    """Solve a stationarity equation for Delta > 0; tries u = exp(Delta) first."""
    u = sp.Symbol("u", positive=True)
    rational = sp.together(equation.subs(sp.exp(Delta), u))
    if not rational.has(Delta):
        sols = [sp.log(r) for r in sp.solve(sp.numer(rational), u)]
    else:
        sols = sp.solve(equation, Delta)
    sols = [sp.simplify(x) for x in sols]
    if len(sols) != 1:
        raise NoClosedFormError(
            f"stationarity has {len(sols)} closed-form solutions for the logit gap; a loss without a "
            "unique closed-form gap needs a numerical reduction of g(Delta) instead")
    return sols[0]


def _ansatz(steps: List[Step]):
    """Steps 1-2: the neural-collapse ansatz and the logit gap in terms of rho_w, rho_h."""
    ratio = rho_h / rho_w  # h_k = ratio * w_k
    wk_wk = rho_w**2  # <w_k, w_k>
    wk_wj = -rho_w**2 / (K - 1)  # <w_j, w_k>, j != k (simplex ETF)
    z_true = ratio * wk_wk  # logit of the true class: <w_k, h_k>
    z_off = ratio * wk_wj
    gap = sp.simplify(z_true - z_off)
    steps.append(Step(
        "Neural-collapse ansatz and the logit gap",
        "All features of class k equal h_k (NC1); the rows w_k of W form a simplex ETF of norm "
        "rho_w, <w_j, w_k> = -rho_w^2/(K-1) for j != k (NC2); h_k = (rho_h/rho_w) w_k "
        "(NC3, self-duality); b = 0 (justified in the bias step). The logits of a class-k sample are then:",
        [(r"z_k", sp.simplify(z_true)), (r"z_j\ (j \neq k)", sp.simplify(z_off)),
         (r"\Delta = z_k - z_j", gap)]))
    return gap


def _balance(ell, gap, steps: List[Step]):
    """Steps 3-4: the objective under the ansatz, and the balance of the norms at a fixed product."""
    F = ell + lambda_W * K * rho_w**2 / 2 + lambda_H * n * K * rho_h**2 / 2
    steps.append(Step(
        "Loss at the ETF and the objective under the ansatz",
        "Every sample has the same loss ell(Delta), so the data term (1/N) sum_i L equals ell. "
        "||W||_F^2 = K rho_w^2 and ||H||_F^2 = N rho_h^2 = n K rho_h^2:",
        [(r"\ell(\Delta)", ell), (r"f(\rho_w, \rho_h)", F.subs(Delta, gap))]))
    R = lambda_W * K * rho_w**2 / 2 + lambda_H * n * K * (P / rho_w)**2 / 2
    rho_w_sol = sp.solve(sp.diff(R, rho_w), rho_w)
    if len(rho_w_sol) != 1:
        raise RuntimeError(f"norm balance: expected one positive solution, got {rho_w_sol}")
    rho_w_of_P = sp.simplify(rho_w_sol[0])
    rho_h_of_P = sp.simplify(P / rho_w_of_P)
    R_min = sp.simplify(R.subs(rho_w, rho_w_of_P))
    steps.append(Step(
        "Balance of the norms at a fixed product",
        "The loss depends on rho_w and rho_h only through P = rho_w rho_h. Minimizing the "
        "regularizer over rho_w at fixed P (stationarity in rho_w) gives:",
        [(r"\rho_w(P)", rho_w_of_P), (r"\rho_h(P)", rho_h_of_P),
         (r"\min_{\rho_w \rho_h = P} \tfrac{\lambda_W}{2}\|W\|_F^2 + \tfrac{\lambda_H}{2}\|H\|_F^2", R_min)]))
    return rho_w_of_P, rho_h_of_P, R_min


def _reduced(ell, gap, R_min, steps: List[Step]):
    """Steps 5-6: the reduced scalar problem g(Delta), its stationarity and the optimal gap."""
    P_of_gap = sp.solve(sp.Eq(gap.subs(rho_w * rho_h, P), Delta), P)
    P_of_gap = sp.simplify(P_of_gap[0]) if P_of_gap else sp.simplify(Delta * (K - 1) / K)
    s_def = sp.sqrt(n * lambda_W * lambda_H)
    g = ell + sp.simplify(R_min.subs(P, P_of_gap)).subs(s_def, s)
    g = sp.expand(g, deep=False)
    g2 = sp.simplify(sp.diff(ell, Delta, 2))
    steps.append(Step(
        "Reduced scalar problem in the logit gap",
        "With P = (K-1) Delta / K and s = sqrt(n lambda_W lambda_H), the objective becomes a "
        "function of Delta alone; it is convex because ell'' > 0:",
        [(r"P(\Delta)", P_of_gap), (r"s", s_def), (r"g(\Delta)", g), (r"\ell''(\Delta)", g2)]))
    dg = sp.simplify(sp.diff(g, Delta))
    gap_star = _solve_for_gap(dg)
    steps.append(Step(
        "Stationarity and the optimal logit gap",
        "Setting g'(Delta) = 0 and solving in closed form:",
        [(r"g'(\Delta)", dg), (r"\Delta^\star", gap_star)]))
    return P_of_gap, g, dg, gap_star, s_def


def _minimizer(g, gap_star, P_of_gap, rho_w_of_P, rho_h_of_P, steps: List[Step]) -> dict:
    """Step 7: p_true, p_off, the norms and f* at the optimal gap."""
    p_true_of_gap = sp.exp(Delta) / (sp.exp(Delta) + K - 1)
    p_off_of_gap = 1 / (sp.exp(Delta) + K - 1)
    p_true = sp.simplify(p_true_of_gap.subs(Delta, gap_star))
    p_off = sp.simplify(p_off_of_gap.subs(Delta, gap_star))
    P_star = P_of_gap.subs(Delta, gap_star)
    w_norm = rho_w_of_P.subs(P, P_star)
    h_norm = rho_h_of_P.subs(P, P_star)
    # Expanded logs keep the value finite for large K (no K**(alpha (K-1)) terms);
    # force=True is valid because every log argument is positive on the nonzero branch.
    objective = sp.expand_log(sp.simplify(g.subs(Delta, gap_star)), force=True)
    objective = sp.expand(objective)
    objective = sp.collect(objective, sorted(objective.atoms(sp.log), key=sp.default_sort_key))
    steps.append(Step(
        "The minimizer",
        "Substituting Delta* into the softmax and into the norm balance:",
        [(r"p_{\mathrm{true}}^\star", p_true), (r"p_{\mathrm{off}}^\star", p_off),
         (r"\|w_k^\star\|", w_norm), (r"\|h_k^\star\|", h_norm), (r"f^\star", objective)]))
    return {"p_true": p_true, "p_off": p_off, "w_norm": w_norm, "h_norm": h_norm, "objective": objective,
            "p_true_of_gap": p_true_of_gap, "p_off_of_gap": p_off_of_gap}


def _bias(p_true_of_gap, p_off_of_gap, steps: List[Step]) -> None:
    """Step 8: the class-summed loss gradient vanishes at the ETF, so b* = 0 (or b0 1)."""
    t_true = 1 - alpha + alpha / K
    t_off = alpha / K
    bias_residual = sp.simplify(p_true_of_gap + (K - 1) * p_off_of_gap - (t_true + (K - 1) * t_off))
    if bias_residual != 0:
        raise RuntimeError(f"bias step: the class-summed gradient should vanish, got {bias_residual}")
    steps.append(Step(
        "The bias",
        "The gradient of the data term with respect to b is (1/N) sum_i (p_i - t_i). Summed over "
        "the K classes at the ETF, each coordinate collects one true-class and K-1 off-class "
        "entries, so the gradient is this scalar times the all-ones vector; it vanishes "
        "identically in Delta. Hence b* = 0 when lambda_b > 0, and when lambda_b = 0 the "
        "minimizers are b* = b0 1 for any b0 (the loss is invariant to adding b0 1). ufm reports "
        "b* = 0 and compares a numerical bias by its distance to this set.",
        [(r"p_{\mathrm{true}} + (K-1) p_{\mathrm{off}} - (t_{\mathrm{true}} + (K-1) t_{\mathrm{off}})",
          bias_residual)]))


def _threshold(ell, dg, steps: List[Step]):
    """Step 9: the nonzero solution exists iff g'(0) < 0, i.e. s < s_crit."""
    dg0 = sp.simplify(dg.subs(Delta, 0))
    s_crit = sp.solve(sp.Eq(dg0, 0), s)
    if len(s_crit) != 1:
        raise RuntimeError(f"threshold: expected one solution, got {s_crit}")
    s_crit = sp.factor(sp.simplify(s_crit[0]))
    trivial_objective = sp.simplify(ell.subs(Delta, 0))
    steps.append(Step(
        "The threshold",
        "g is convex, so the nonzero solution Delta* > 0 exists iff g'(0) < 0, i.e. iff "
        "s = sqrt(n lambda_W lambda_H) < s_crit. For s >= s_crit "
        "the minimum over Delta >= 0 is at Delta = 0, i.e. W = H = 0 (the trivial solution), "
        "with objective ell(0):",
        [(r"g'(0)", dg0), (r"s_{\mathrm{crit}}", s_crit),
         (r"f^\star_{\mathrm{trivial}}", trivial_objective)]))
    return s_crit, trivial_objective


@lru_cache(maxsize=None)
def derive_minimizer(loss: str = "label_smoothing") -> Derivation:
    """Derive the UFM global minimizer for ``loss`` (see the module docstring)."""
    if loss not in ETF_LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; valid names: {', '.join(sorted(ETF_LOSSES))}.")
    ell = ETF_LOSSES[loss](Delta, K, alpha)
    steps: List[Step] = []
    gap = _ansatz(steps)
    rho_w_of_P, rho_h_of_P, R_min = _balance(ell, gap, steps)
    P_of_gap, g, dg, gap_star, s_def = _reduced(ell, gap, R_min, steps)
    m = _minimizer(g, gap_star, P_of_gap, rho_w_of_P, rho_h_of_P, steps)
    _bias(m["p_true_of_gap"], m["p_off_of_gap"], steps)
    s_crit, trivial_objective = _threshold(ell, dg, steps)
    results_in_s = {
        "logit_gap": gap_star, "p_true": m["p_true"], "p_off": m["p_off"],
        "w_norm": m["w_norm"], "h_norm": m["h_norm"], "objective": m["objective"],
        "threshold": s_crit, "trivial_objective": trivial_objective,
    }
    results = {k: v.subs(s, s_def) for k, v in results_in_s.items()}
    return Derivation(loss=loss, steps=steps, results=results, results_in_s=results_in_s)


# ---------------------------------------------------------------------------
# Export: Markdown with LaTeX, and Python source of the compiled closed forms.

#: primary symbol -> argument name of the compiled functions
_ARGS = {"alpha": alpha, "K": K, "n": n, "lambda_w": lambda_W, "lambda_h": lambda_H}


#: the title of the minimizer derivation's Markdown (derivations/minimizer.md, the demo, ``ufm derive``)
MINIMIZER_TITLE = "The UFM global minimizer under cross-entropy and label smoothing"


def to_text(derivation: Derivation) -> str:
    """The derivation as plain text, step by step, then the cross-entropy case (alpha = 0)."""
    lines = steps_text(derivation.steps)
    lines += ["", "== Cross-entropy (alpha = 0)"]
    lines += [f"    {name}  =  {sp.sstr(derivation.special_case(name, alpha=0))}"
              for name in ("logit_gap", "p_true", "threshold")]
    return "\n".join(lines) + "\n"


def to_markdown(derivation: Derivation, title: str = MINIMIZER_TITLE, tag: str = "M") -> str:
    """The derivation as Markdown with display LaTeX; equations numbered (tag1), (tag2), ..."""
    lines = [f"# {title}", "",
             generated_comment("minimizer.py"), "",
             f"Loss: `{derivation.loss}` (alpha = 0 is cross-entropy). Conventions: see the README.", ""]
    lines += steps_markdown(derivation.steps, tag)
    lines += ["## Results in the primary symbols", "",
              "Valid on the nonzero branch, sqrt(n lambda_W lambda_H) < threshold.", ""]
    for name, expr in derivation.results.items():
        lines += [f"**{name}**", "", "$$", sp.latex(expr), "$$", ""]
    lines += ["## Cross-entropy (alpha = 0)", ""]
    for name in ("logit_gap", "p_true", "threshold"):
        lines += [f"**{name}**", "", "$$", sp.latex(derivation.special_case(name, alpha=0)), "$$", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_python(derivation: Derivation) -> str:
    """Python source of one function per result, vectorized over array arguments.

    Each function takes ``(alpha, K, n, lambda_w, lambda_h, xp)`` where ``xp`` is
    ``numpy`` or ``torch``; values are those of the nonzero branch.
    """
    lines = generated_header(f"Compiled closed forms for loss {derivation.loss!r}.", "minimizer.py",
                             "Each function is valid on the nonzero branch sqrt(n lambda_w lambda_h) < threshold.")
    for name, expr in derivation.results.items():
        lines += [f"def {name}(alpha, K, n, lambda_w, lambda_h, xp):",
                  f"    return {pycode(expr, {sym: arg for arg, sym in _ARGS.items()})}", "", ""]
    lines += ["FUNCTIONS = {" + ", ".join(f"{n!r}: {n}" for n in derivation.results) + "}", "",
              "#: LaTeX of each result in the primary symbols (nonzero branch)", "LATEX = {"]
    lines += [f"    {name!r}: {sp.latex(expr)!r}," for name, expr in derivation.results.items()]
    lines += ["}"]
    return "\n".join(lines) + "\n"
