"""The regime map of the conditioning claim: coverage, crossovers against independent roots and against
numerical Hessians at L-BFGS minimizers, the single-point lookup, and bad input."""
import math

import numpy as np
import pytest
from scipy.optimize import brentq

import ufm
from ufm import InvalidParameterError, UFMProblem
from ufm.analysis.conditioning import conditioning, summarize
from ufm.analysis.regimes import REGIME_VERDICTS, regime_map, regime_of, verdict_grid
from ufm.numerics.hessian import dense_hessian
from ufm.numerics.spectrum import numeric_spectrum, spectrum
from ufm.theory.conditioning import kappa

N = 2  # samples per class of the numerical problems (and the n of `full, b included`)


@pytest.fixture(scope="module")
def rmap():
    return regime_map(classes=(2, 3, 10, 100), lambda_ratios=(1, 10), per_class=N)


def _groups(regimes):
    out = {}
    for r in regimes:
        out.setdefault((r["definition"], r["K"], r["d_regime"], r["lambda_ratio"]), []).append(r)
    return out


def test_every_map_covers_0_1_without_gaps_or_overlaps(rmap):
    groups = _groups(rmap)
    assert len(groups) == 5 * 4 * 2 * 2
    for key, rs in groups.items():
        assert rs[0]["sK_from"] == 0 and rs[-1]["sK_to"] == 1, key
        assert all(a["sK_to"] == b["sK_from"] for a, b in zip(rs, rs[1:])), key
        assert all(r["sK_from"] < r["sK_to"] and r["verdict"] in REGIME_VERDICTS for r in rs), key
        assert all(a["verdict"] != b["verdict"] for a, b in zip(rs, rs[1:])), key
        assert rs[0]["boundary_from"] is None and rs[-1]["boundary_to"] is None
        assert all(a["boundary_to"] == b["boundary_from"] is not None for a, b in zip(rs, rs[1:]))
    keys = {"definition", "K", "d_regime", "lambda_ratio", "per_class", "alpha_max", "sK_from", "sK_to", "verdict",
            "boundary_from", "boundary_to"}
    assert all(set(r) == keys for r in rmap)


def _dense_verdict(r, sK, n=N):
    end = min(r["alpha_max"], (1 - sK) * (1 - 1e-4))
    alphas = end * np.concatenate([np.geomspace(1e-6, 1e-3, 20), np.linspace(1e-3, 1, 3000)])
    args = (r["definition"], r["K"], r["d_regime"])
    k0 = kappa(*args, 0.0, sK / r["K"], r["lambda_ratio"], n)
    g = (kappa(*args, alphas, sK / r["K"], r["lambda_ratio"], n) - k0) / k0
    tiny = np.abs(g) <= 1e-12
    return "equal" if tiny.all() else "lower" if (g < 0).all() else "higher" if (g > 0).all() else "mixed"


def test_each_regime_has_its_verdict_at_3000_alphas(rmap):
    """Inside every regime (midpoint), the verdict taken over 3020 alphas is the map's."""
    for r in rmap:
        if r["K"] == 2 and r["lambda_ratio"] == 1 and r["definition"] == "full":
            continue  # exact ties of eigenvalues there (derivations/conditioning.md): rounding decides
        assert _dense_verdict(r, (r["sK_from"] + r["sK_to"]) / 2) == r["verdict"], r


def test_logits_is_lower_everywhere_and_equal_at_k2(rmap):
    for r in rmap:
        if r["definition"] == "logits":
            assert (r["sK_from"], r["sK_to"], r["verdict"]) == (0, 1, "equal" if r["K"] == 2 else "lower")


def _F(p, K):
    return p * (1 - (K - 1) * p) * math.log((1 - (K - 1) * p) / p)


def _features(s, a, K, span):
    po = s + a / K
    pt = 1 - (K - 1) * po
    delta = math.log(pt / po)
    return (1 + delta * pt * po / s) / (1 + delta * po / (K * s)) if span else 1 + _F(po, K) / s


@pytest.mark.parametrize("K", [3, 10, 100])
@pytest.mark.parametrize("span", [True, False])
def test_features_crossovers_are_the_roots_of_the_closed_forms(rmap, K, span):
    """higher below the root of kappa(0.3) = kappa(0), mixed up to the root of the slope at CE, lower above;
    found independently by brentq on the formulas (K = 3 at d = K-1 has two more boundaries near 0)."""
    slope = brentq(lambda u: _features(u / K, 1e-7, K, span) - _features(u / K, 0, K, span), 0.05, 0.69)
    end = brentq(lambda u: _features(u / K, 0.3, K, span) - _features(u / K, 0, K, span), 0.02, slope)
    rs = _groups(rmap)[("features", K, "K-1" if span else ">=K", 1.0)]
    tail = [(r["verdict"], r["sK_from"]) for r in rs][-3:]
    assert [v for v, _ in tail] == ["higher", "mixed", "lower"]
    assert tail[1][1] == pytest.approx(end, abs=1e-6) and tail[2][1] == pytest.approx(slope, abs=1e-6)
    if K == 10:  # the expected figures: 0.142 and 0.302 at d = K-1, 0.224 and 0.365 at d >= K
        assert (end, slope) == pytest.approx((0.142, 0.302) if span else (0.224, 0.365), abs=1e-3)


def _chosen_alphas(r, sK):
    """Alphas at which a regime's verdict shows with margin (|relative gap| > 1e-5): for lower and higher
    the smallest gap, the middle and the end of the range (at most 0.9 of the way to the threshold, where
    the solver still converges); for mixed the most negative and the most positive."""
    end = min(r["alpha_max"], 0.9 * (1 - sK))
    alphas = np.linspace(1e-3, 1, 600) * end
    args = (r["definition"], r["K"], r["d_regime"])
    k0 = kappa(*args, 0.0, sK / r["K"], r["lambda_ratio"], N)
    g = (kappa(*args, alphas, sK / r["K"], r["lambda_ratio"], N) - k0) / k0
    ok = np.abs(g) > 1e-5
    if r["verdict"] == "mixed":
        return [float(alphas[np.argmin(g)]), float(alphas[np.argmax(g)])]
    pick = alphas[ok]
    return [float(pick[np.argmin(np.abs(g[ok]))]), float(pick[len(pick) // 2]), float(pick[-1])]


def _numeric_kappa(p, W, H, b, definition):
    if definition == "full, b included":  # b a variable at lambda_b = 0: its shift is in the null space
        return spectrum(dense_hessian(p, W, H, b, parts=("W", "H", "b")), rtol=1e-7).condition_number
    return numeric_spectrum(p, W, H, b, definition).condition_number


def _cases(rmap):
    """(regime, s K inside it, alphas): every regime wider than 0.004 of K = 3, 10, at d = K-1 and K,
    ratio 1, and ratio 10 for the full Hessians: both sides of every crossover."""
    for r in rmap:
        if r["K"] in (3, 10) and (r["lambda_ratio"] == 1 or r["definition"].startswith("full")) \
                and r["sK_to"] - r["sK_from"] > 0.004 and not (r["definition"] == "logits" and r["K"] == 3):
            sK = (r["sK_from"] + r["sK_to"]) / 2
            yield r, sK, _chosen_alphas(r, sK)


def test_crossovers_against_numerical_hessians(rmap):
    """At a point inside each regime, the condition numbers of dense autodiff Hessians at L-BFGS minimizers
    (||grad f|| < 1e-12, n = 2, d = K - 1 and d = K) give the map's verdict at the chosen alphas."""
    cases = list(_cases(rmap))
    assert len(cases) > 40
    by_shape = {}
    for r, sK, alphas in cases:
        d = r["K"] - 1 if r["d_regime"] == "K-1" else r["K"]
        s = sK / r["K"]
        lw, lh = s * math.sqrt(r["lambda_ratio"] / N), s / math.sqrt(r["lambda_ratio"] * N)
        problems = [UFMProblem(r["K"], N, d, lw, lh, alpha=a) for a in [0.0] + alphas]
        by_shape.setdefault((r["K"], d), []).append((r, problems))
    for (K, d), items in by_shape.items():
        flat = [p for _, ps in items for p in ps]
        res = ufm.solve(flat, method="lbfgs", tol=1e-12, seeds=0)
        assert all(st == "converged" for st in res.status), (K, d)
        i = 0
        for r, problems in items:
            ks = [_numeric_kappa(p, res.W[i + j], res.H[i + j], res.b[i + j], r["definition"])
                  for j, p in enumerate(problems)]
            i += len(problems)
            signs = {np.sign(k - ks[0]) for k in ks[1:]}
            want = {"lower": {-1.0}, "higher": {1.0}, "mixed": {-1.0, 1.0}}[r["verdict"]]
            assert signs == want, (r, ks)


def test_regime_of_a_point_and_the_alphas_of_its_verdict():
    p = UFMProblem(10, 10, 10, 5e-3, 5e-3)  # s K = 0.158, the README's configuration
    where = regime_of(p, alphas=[0.0, 0.05, 0.1, 0.2, 0.9])
    assert set(where) == {"logits", "features", "classifier", "full", "full, b included"}
    w = where["features"]
    assert w["sK"] == pytest.approx(10 * math.sqrt(10 * 2.5e-5)) and w["d_regime"] == ">=K"
    assert w["alphas"] == [0.05, 0.1, 0.2] and w["alphas_past_threshold"] == [0.9] and w["alpha_max"] == 0.2
    assert w["regime"]["verdict"] == "higher" and w["regime"]["sK_from"] <= w["sK"] < w["regime"]["sK_to"]
    assert where["logits"]["regime"]["verdict"] == "lower"
    summary = summarize(conditioning(p, alphas=[0.0, 0.05, 0.1, 0.2]))
    assert summary["features"]["verdict"] == "higher with LS"
    # the map's verdict is over every alpha in (0, 0.2]; the discrete one over three alphas only
    assert where["full, b included"]["regime"]["verdict"] == "mixed"
    assert summary["full, b included"]["verdict"] == "higher with LS"
    assert regime_of(p.replace(lambda_b=1e-3), alphas=[0.0, 0.1])["full"]["note"].startswith("lambda_b > 0")
    assert regime_of(p, alphas=[0.0])["full"]["regime"] is None
    assert "s K >= 1" in regime_of(UFMProblem(3, 10, 3, 0.2, 0.2), alphas=[0.0, 0.1])["logits"]["note"]


def test_summarize_says_equal_when_kappa_does_not_move():
    s = summarize(conditioning(UFMProblem(2, 5, 2), alphas=[0.0, 0.1, 0.2]))
    assert s["logits"]["verdict"] == "equal" and s["logits"]["kappa"][0] == 1.0


def test_verdict_grid():
    g = verdict_grid("features", 10, ">=K", [0.1, 0.5, 0.95], [0.01, 0.1, 0.2])
    assert g.shape == (3, 3)
    assert (g[:, 0] == 1).all() and (g[:, 1] == -1).all() and np.isnan(g[1:, 2]).all()
    assert (verdict_grid("logits", 2, "K-1", [0.3], [0.1]) == 0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha_max=1.0), "'alpha_max' parameter of regime_map must be a float in the range \\(0, 1\\)"),
    (dict(alpha_max=0.0), "'alpha_max'"),
    (dict(classes=[1, 3]), "'classes' parameter of regime_map must be an int in the range \\[2, inf\\). Got 1"),
    (dict(classes=[3.5]), "'classes'"),
    (dict(lambda_ratios=[1, 0]), "'lambda_ratios' parameter of regime_map must be a float in the range \\(0, inf\\)"),
    (dict(definitions=["hessian"]), "'definitions'"),
])
def test_regime_map_bad_input(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        regime_map(**kwargs)
