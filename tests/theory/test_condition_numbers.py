"""The vectorized condition numbers (derivations/conditioning.md) against the derived spectra, and their claims."""
import math

import numpy as np
import pytest

from ufm import InvalidParameterError, UFMProblem, symbolic_spectrum
from ufm.theory.conditioning import MAP_DEFINITIONS, kappa, kappa_of_problem, kappa_slope, map_point


def _problem(K, n, d, sK, ratio, alpha):
    s = sK / K
    return UFMProblem(K, n, d, s * math.sqrt(ratio / n), s / math.sqrt(ratio * n), alpha=alpha)


def _points():
    """Seeded (K, n, d, s K, ratio, alpha): every K kind, both d-regimes, n = 1 and more, alpha up to
    1e-3 of the threshold."""
    rng = np.random.default_rng(0)
    out = []
    for K in (2, 3, 4, 5, 10, 100):
        for d in sorted({max(K - 1, 1), K, K + 2}):
            for _ in range(6):
                sK = float(rng.uniform(0.005, 0.995))
                alpha = float(rng.choice([0.0, rng.uniform(0, 1 - sK), (1 - sK) * (1 - 1e-3)]))
                out.append((K, int(rng.choice([1, 2, 7])), d, sK, float(10 ** rng.uniform(-2, 2)), alpha))
    return out


def test_kappa_equals_the_derived_spectra_to_1e_10():
    """Every definition at 216 points, near the threshold included: the same numbers as symbolic_spectrum."""
    worst = 0.0
    for K, n, d, sK, ratio, alpha in _points():
        p = _problem(K, n, d, sK, ratio, alpha)
        for dfn in ("logits", "features", "classifier", "full"):
            sp = symbolic_spectrum(p, dfn)
            refs = [(dfn, sp.condition_number)] + ([("full, b included", sp.details["condition_number_with_bias"])]
                                                   if dfn == "full" else [])
            for name, ref in refs:
                got = kappa_of_problem(p, name)
                worst = max(worst, abs(got / ref - 1))
                assert got == pytest.approx(ref, rel=1e-10), (name, K, n, d, sK, ratio, alpha)
    assert worst < 1e-10


def test_kappa_is_vectorized_over_alpha_and_s():
    alpha, s = np.meshgrid(np.linspace(0, 0.3, 7), np.linspace(0.005, 0.09, 5))
    for dfn in MAP_DEFINITIONS:
        grid = kappa(dfn, 10, ">=K", alpha, s, 10.0)
        assert grid.shape == alpha.shape
        one = kappa(dfn, 10, ">=K", alpha[2, 3], s[2, 3], 10.0)
        assert one.shape == () and float(one) == pytest.approx(grid[2, 3], rel=1e-13)


def test_off_the_collapsed_branch_is_nan():
    k = kappa("features", 10, "K-1", np.array([0.0, 0.5, 0.9]), 0.06)  # s K = 0.6 >= 1 - alpha at 0.5, 0.9
    assert np.isfinite(k[0]) and np.isnan(k[1:]).all()


def test_closed_forms_and_the_expected_figures():
    """kappa_logits = K p_true (no lambda, W, H or d); features at d >= K and classifier = 1 + F(p_off)/s with
    F(p) = p (1 - (K-1) p) log((1 - (K-1) p)/p); the paper's CIFAR-10 scale (K = 10, n = 5000, lambda_W = 5e-4,
    lambda_H = 5e-5): kappa_full 42.78 -> 38.55 at d = 9 and 51.33 -> 77.26 at d = 10 for alpha = 0 -> 0.3."""
    K, s, a = 10, 0.02, 0.1
    po = s + a / K
    pt = 1 - (K - 1) * po
    F = po * pt * math.log(pt / po)
    assert kappa("logits", K, "K-1", a, s) == pytest.approx(K * pt, rel=1e-14)
    assert kappa("logits", K, ">=K", a, s, 100.0) == pytest.approx(K * pt, rel=1e-14)
    for dfn, reg in (("features", ">=K"), ("classifier", "K-1"), ("classifier", ">=K")):
        assert kappa(dfn, K, reg, a, s) == pytest.approx(1 + F / s, rel=1e-13)
    delta = math.log(pt / po)
    assert kappa("features", K, "K-1", a, s) == pytest.approx((1 + delta * pt * po / s) / (1 + delta * po / (K * s)),
                                                              rel=1e-13)
    for d, (ce, ls) in ((9, (42.78, 38.55)), (10, (51.33, 77.26))):
        got = [symbolic_spectrum(UFMProblem(10, 5000, d, 5e-4, 5e-5, alpha=x), "full").condition_number
               for x in (0.0, 0.3)]
        assert [round(g, 2) for g in got] == [ce, ls]
        assert [kappa_of_problem(UFMProblem(10, 5000, d, 5e-4, 5e-5, alpha=x), "full") for x in (0.0, 0.3)] == \
            pytest.approx(got, rel=1e-10)


def test_full_depends_on_n_only_with_b_included():
    """At fixed s and lambda_W/lambda_H, kappa_full is the same for every n (n = 1 too: no within-class
    moves); with b as a variable it is not (its bias row carries sqrt(n) in units of sqrt(lambda_W lambda_H))."""
    for d in (9, 10):
        full = [kappa_of_problem(_problem(10, n, d, 0.3, 3.0, 0.1), "full") for n in (1, 2, 50, 5000)]
        assert full == pytest.approx([full[0]] * 4, rel=1e-12)
        with_b = [kappa_of_problem(_problem(10, n, d, 0.3, 3.0, 0.1), "full, b included") for n in (2, 50, 5000)]
        assert with_b[0] < with_b[1] < with_b[2]


@pytest.mark.parametrize("dfn", MAP_DEFINITIONS)
@pytest.mark.parametrize("K, reg", [(3, "K-1"), (10, ">=K"), (2, ">=K")])
def test_the_slope_at_ce_is_the_derivative(dfn, K, reg):
    s = np.array([0.05, 0.2, 0.5]) / K
    h = 1e-7
    numeric = (kappa(dfn, K, reg, h, s, 10.0) - kappa(dfn, K, reg, 0.0, s, 10.0)) / h  # forward: the right derivative
    slope = kappa_slope(dfn, K, reg, 0.0, s, 10.0)
    assert slope == pytest.approx(numeric, rel=2e-5, abs=1e-6)


def test_map_point_and_bad_arguments():
    p = UFMProblem(10, 5000, 9, 5e-4, 5e-5)
    assert map_point(p) == {"K": 10, "d_regime": "K-1", "sK": pytest.approx(10 * math.sqrt(5000 * 2.5e-8)),
                            "lambda_ratio": pytest.approx(10.0), "per_class": 5000, "lambda_b": 0.0}
    assert kappa_of_problem(p.replace(lambda_b=1e-3), "full") is None
    for kwargs, match in ((dict(definition="hessian"), "'definition'"), (dict(K=1), "'K' parameter"),
                          (dict(d_regime="K"), "'d_regime'"), (dict(lambda_ratio=0.0), "'lambda_ratio'"),
                          (dict(lambda_ratio=np.array([1.0, -1.0])), "Got -1.0 instead"),
                          (dict(per_class=0), "'per_class'")):
        args = dict(definition="full", K=10, d_regime="K-1", alpha=0.1, s=0.01, lambda_ratio=1.0, per_class=10)
        args.update(kwargs)
        with pytest.raises(InvalidParameterError, match=match):
            kappa(**args)
