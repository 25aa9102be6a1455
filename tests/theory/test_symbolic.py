"""The symbolic derivation, checked numerically against independently written formulas."""
import math

import pytest
import scipy.optimize
import sympy as sp

from ufm.theory.symbolic import minimizer as symbolic
from ufm.theory.symbolic.minimizer import SYMBOLS, derive_minimizer

S = SYMBOLS


@pytest.fixture(scope="module")
def deriv():
    return derive_minimizer("label_smoothing")


def _scalar_objective(gap, K, alpha, s):
    """g(Delta) written by hand: LS cross-entropy at the ETF plus (K-1) s Delta."""
    lse = math.log(math.exp(gap) + K - 1)
    loss = -(1 - alpha + alpha / K) * (gap - lse) + (K - 1) * (alpha / K) * lse
    return loss + (K - 1) * s * gap


@pytest.mark.parametrize("K, alpha, s", [(2, 0.0, 0.1), (3, 0.1, 0.05), (10, 0.0, 0.01), (10, 0.3, 0.02),
                                         (100, 0.05, 1e-3)])
def test_logit_gap_minimizes_the_scalar_problem(deriv, K, alpha, s):
    gap = float(deriv.results_in_s["logit_gap"].subs({S["K"]: K, S["alpha"]: alpha, S["s"]: s}))
    ref = scipy.optimize.minimize_scalar(lambda t: _scalar_objective(t, K, alpha, s), bounds=(0, 50),
                                         method="bounded", options={"xatol": 1e-12})
    assert gap == pytest.approx(ref.x, rel=1e-6)
    f_star = float(deriv.results_in_s["objective"].subs({S["K"]: K, S["alpha"]: alpha, S["s"]: s}))
    assert f_star == pytest.approx(_scalar_objective(gap, K, alpha, s), rel=1e-13)


def test_closed_forms_match_hand_formulas(deriv):
    K, a, s = S["K"], S["alpha"], S["s"]
    R = deriv.results_in_s
    assert sp.simplify(R["p_off"] - (s + a / K)) == 0
    assert sp.simplify(R["p_true"] - (1 - a * (K - 1) / K - (K - 1) * s)) == 0
    assert sp.simplify(R["threshold"] - (1 - a) / K) == 0
    assert sp.simplify(R["trivial_objective"] - sp.log(K)) == 0
    # Cross-entropy comes out of the same derivation at alpha = 0: Delta* = log((1 - (K-1) s) / s).
    ce_gap = deriv.special_case("logit_gap", alpha=0)
    for Kv, sv in [(3, 0.1), (10, 0.01)]:
        assert float(ce_gap.subs({K: Kv, s: sv})) == pytest.approx(math.log((1 - (Kv - 1) * sv) / sv), rel=1e-14)


def test_norms_are_balanced_and_reproduce_the_gap(deriv):
    vals = {S["K"]: 7, S["alpha"]: 0.15, S["n"]: 5, S["lambda_W"]: 3e-3, S["lambda_H"]: 8e-3}
    R = {k: float(v.subs(vals)) for k, v in deriv.results.items()}
    K = 7
    # Delta = rho_w rho_h K / (K - 1) and lambda_W rho_w^2 = n lambda_H rho_h^2 (norm balance).
    assert R["w_norm"] * R["h_norm"] * K / (K - 1) == pytest.approx(R["logit_gap"], rel=1e-13)
    assert 3e-3 * R["w_norm"] ** 2 == pytest.approx(5 * 8e-3 * R["h_norm"] ** 2, rel=1e-13)


def test_latex_export(deriv):
    assert r"\log" in deriv.latex("logit_gap")
    assert r"\alpha" in deriv.latex("p_true")


def test_unknown_loss():
    with pytest.raises(ValueError, match="valid names: label_smoothing"):
        derive_minimizer("hinge")


def test_a_new_loss_is_one_expression(monkeypatch):
    """Genericity: a loss given only at the ETF flows through the same derivation."""
    monkeypatch.setitem(symbolic.ETF_LOSSES, "quadratic_gap", lambda gap, K, alpha: (gap - 2) ** 2 / 2)
    d = derive_minimizer.__wrapped__("quadratic_gap")
    K, s = S["K"], S["s"]
    assert sp.simplify(d.results_in_s["logit_gap"] - (2 - (K - 1) * s)) == 0
    assert sp.simplify(d.results_in_s["threshold"] - 2 / (K - 1)) == 0
