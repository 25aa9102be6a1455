"""The asymptotic rate of NC1 under gradient descent near a collapsed UFM minimizer (sympy).

NC1 sees only the within-class scatter inside the span S of the class means. To first order
that scatter contracts with the within-class eigenvalues mu_1, mu_2 in the span (hessian.md,
within-class moves), but at d >= K a second-order term feeds it: the within-class deviations
orthogonal to S (curvature lambda_H) times the zero-sum classifier component orthogonal to S
(curvature lambda_W + lambda_H, the non-null eigenvalue of the rotation block) is a within-class
logit perturbation, which the loss pushes back into S. The steps below derive this and the rate
it implies; one of them checks the mechanism on an explicit configuration (K = 3, d = 3).

``derivations/convergence.py`` prints the derivation and writes ``derivations/convergence.md``,
whose equations are cited as (Ck). ``ufm.analysis.convergence`` evaluates the rate (C7, C8).
"""
from __future__ import annotations

from functools import lru_cache
from typing import List

import sympy as sp

from ufm.theory.symbolic.codegen import generated_comment
from ufm.theory.symbolic.steps import Step, steps_markdown, steps_text
from ufm.theory.symbolic.symbols import K, lambda_H, lambda_W, n, rho_h, rho_w

__all__ = ["derive_nc1_rate", "convergence_to_markdown", "convergence_to_text", "CONVERGENCE_TITLE"]

CONVERGENCE_TITLE = "The rate of NC1 under gradient descent near the UFM minimizer"

lr = sp.Symbol("eta", positive=True)  # the step size
mu1, mu2 = sp.symbols("mu_1 mu_2", positive=True)  # the within-class eigenvalues in the span


def _linear_step() -> Step:
    e_par, e_perp, D_perp = sp.symbols(r"e_{\parallel} e_{\perp} D_{\perp}")
    return Step(
        "First order: four independent modes",
        "Write a point near a collapsed minimizer (W*, H*, b*) as W = W* + D, h_i = h*_k + e_i for a sample of "
        "class k, and split each part along S and its orthogonal complement: e_i = e_par,i + e_perp,i (within-class "
        "deviations, zero sum per class), D = D_par + D_perp (rows along S and orthogonal to it). The Hessian is "
        "block diagonal over these pieces (hessian.md), so gradient descent with step eta contracts each by its "
        "own factor per step: e_par by max |1 - eta mu_j| over the two in-span within-class eigenvalues, e_perp by "
        "|1 - eta lambda_H| (the loss does not see it: W* e_perp = 0), and the zero-sum part of D_perp by "
        "|1 - eta (lambda_W + lambda_H)| (the rotation block of hessian.md; its other eigenvalue, 0, is a rotation "
        "of the minimizer, which moves the point along the orbit and is absorbed in the limit).",
        [(r"r_{\parallel}", sp.Max(sp.Abs(1 - lr * mu1), sp.Abs(1 - lr * mu2))),
         (r"r_{e_\perp}", sp.Abs(1 - lr * lambda_H)), (r"r_{D_\perp}", sp.Abs(1 - lr * (lambda_W + lambda_H)))])


def _second_order_step() -> Step:
    return Step(
        "Second order: the logits of one sample",
        "D_perp h*_k = 0 (the rows of D_perp are orthogonal to S, where h*_k lies), so the logits of sample i "
        "change by dz_i = W* e_par,i + D_perp e_perp,i + O(3). The product D_perp e_perp,i differs between the "
        "samples of one class (e_perp,i does), so it is a within-class logit perturbation. Its all-ones part (a "
        "component 1 c^T of D_perp) shifts every logit of the sample equally, which the softmax ignores "
        "(A_k 1 = 0); the zero-sum part does not. The in-span part of the gradient in h_i, projected on S, is then",
        [(r"P_S \nabla_{h_i} f", sp.Symbol(r"\left(\tfrac{1}{N} W^{\star\top} A_k W^\star + \lambda_H\right) "
                                           r"e_{\parallel,i} + \tfrac{1}{N} W^{\star\top} A_k D_\perp e_{\perp,i}"))])


def _check_step() -> Step:
    """The mechanism on an explicit point: K = 3 classes, d = 3, the ETF in the first two coordinates."""
    p_t, p_o, x1, x2, eps = sp.symbols("p_t p_o x_1 x_2 epsilon")
    U = sp.Matrix([[1, 0], [-sp.Rational(1, 2), sp.sqrt(3) / 2], [-sp.Rational(1, 2), -sp.sqrt(3) / 2]])
    W = rho_w * U.row_join(sp.zeros(3, 1))  # (3, 3): rows a simplex ETF in span(e_1, e_2), 0 along e_3
    e3 = sp.Matrix([0, 0, 1])
    D = sp.Matrix([x1, x2, -x1 - x2]) * e3.T  # zero-sum classifier component orthogonal to the span
    h = W.row(0).T * rho_h / rho_w  # h*_1
    if (D * h) != sp.zeros(3, 1):
        raise RuntimeError("D_perp h* should vanish")
    p = sp.Matrix([p_t, p_o, p_o])
    A = sp.diag(*p) - p * p.T  # the logit Hessian of a class-1 sample
    dz = D * (eps * e3)  # the second-order logit perturbation of a sample deviating by eps e_3
    force = sp.simplify((W.T * A * dz).subs(p_t, 1 - 2 * p_o))
    if force[:2, 0] == sp.zeros(2, 1):
        raise RuntimeError("the second-order term should push the in-span deviation")
    ones = sp.simplify((A * sp.Matrix([1, 1, 1])).subs(p_t, 1 - 2 * p_o))
    return Step(
        "Check on an explicit point",
        "K = 3, d = 3, the ETF rows rho_w u_k in span(e_1, e_2), a zero-sum classifier component D_perp = x e_3^T "
        "(x_3 = -x_1 - x_2) and a deviation eps e_3 of one class-1 sample, with p_t = 1 - 2 p_o: D_perp h*_1 = 0, "
        "the softmax ignores an equal shift (A_1 1 = 0), and the in-span force W*^T A_1 D_perp e_perp is nonzero "
        "(its third coordinate, along e_3, is 0):",
        [(r"A_1 \mathbf{1}", ones), (r"W^{\star\top} A_1 D_\perp (\epsilon e_3)", force)])


def _rate_step() -> Step:
    r_par = sp.Max(sp.Abs(1 - lr * mu1), sp.Abs(1 - lr * mu2))
    r_prod = sp.Abs(1 - lr * lambda_H) * sp.Abs(1 - lr * (lambda_W + lambda_H))
    return Step(
        "The rate of NC1",
        "So e_par follows a linear recursion with its own factor r_par, driven by a force that decays like "
        "r_e_perp r_D_perp. Its asymptotic factor is the larger of the two, and NC1 = tr(Sigma_W Sigma_B^+)/K, "
        "quadratic in e_par, contracts by its square. At d = K - 1 there is no direction orthogonal to S, "
        "hence no product mode. The in-span eigenvalues are mu_1 = lambda_H + rho_w^2 p_off / ((K-1) n) and "
        "mu_2 = lambda_H + rho_w^2 K p_true p_off / ((K-1) n). (The deviations orthogonal to S are themselves "
        "invisible to NC1, which projects them out; computed NC1 still carries their rounding, about machine "
        "epsilon times their size, so a fit of the rate must stay above that floor.)",
        [(r"\rho_{\mathrm{NC1}}\ (d \geq K)", sp.Max(r_par, r_prod) ** 2),
         (r"\rho_{\mathrm{NC1}}\ (d = K - 1)", r_par ** 2),
         (r"\mu_1", lambda_H + rho_w ** 2 * sp.Symbol("p_o") / ((K - 1) * n)),
         (r"\mu_2", lambda_H + rho_w ** 2 * K * sp.Symbol("p_t") * sp.Symbol("p_o") / ((K - 1) * n))])


@lru_cache(maxsize=None)
def derive_nc1_rate() -> List[Step]:
    """The steps of the derivation (module docstring)."""
    return [_linear_step(), _second_order_step(), _check_step(), _rate_step()]


def convergence_to_text(steps: List[Step]) -> str:
    return "\n".join(steps_text(steps)) + "\n"


def convergence_to_markdown(steps: List[Step]) -> str:
    lines = [f"# {CONVERGENCE_TITLE}", "", generated_comment("convergence.py"), "",
             "Symbols: eta = the step size, S = the span of the class means, A_k = diag(p_k) - p_k p_k^T the logit "
             "Hessian of a class-k sample, p_t = p_true*, p_o = p_off*, rho_w = ||w_k*||, rho_h = ||h_k*||. "
             "Conventions: see the README, \"Convergence\".", ""]
    lines += steps_markdown(steps, "C")
    return "\n".join(lines).rstrip() + "\n"
