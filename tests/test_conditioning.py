"""Conditioning (CE vs LS per definition) and gradient-descent convergence measurements."""
import math

import numpy as np
import pytest

from ufm import InvalidParameterError, UFMProblem
from ufm.conditioning import conditioning, summarize
from ufm.convergence import convergence, fit_rate, predicted_rate
from ufm.theory.spectra import Spectrum


def _sp(alpha, dfn, kappa):
    return Spectrum(problem=UFMProblem(3, 2, 3, alpha=alpha), definition=dfn, source="symbolic", eigenvalues=[1.0],
                    multiplicities=[1], null_dim=0, condition_number=kappa)


def test_summarize_verdicts():
    spectra = [_sp(0.0, "logits", 5.0), _sp(0.1, "logits", 4.0), _sp(0.2, "logits", 3.0),
               _sp(0.0, "full", 5.0), _sp(0.1, "full", 6.0), _sp(0.2, "full", 7.0),
               _sp(0.0, "features", 5.0), _sp(0.1, "features", 4.0), _sp(0.2, "features", 6.0),
               _sp(0.1, "classifier", 2.0)]
    s = summarize(spectra)
    assert s["logits"]["verdict"] == "lower with LS" and s["full"]["verdict"] == "higher with LS"
    assert s["features"]["verdict"] == "mixed" and s["classifier"]["verdict"] == "no CE baseline"
    assert s["logits"]["kappa_ce"] == 5.0 and s["logits"]["kappa_ls"] == {0.1: 4.0, 0.2: 3.0}


def test_conditioning_symbolic_and_numeric_sources():
    p = UFMProblem(3, 2, 4, 1e-2, 1e-2)
    out = conditioning(p, alphas=[0.0, 0.2], numeric=True)
    assert [(s.alpha, s.source) for s in out].count((0.2, "numeric")) == 4
    for s in out:
        if s.source == "numeric":
            twin = next(x for x in out if x.source == "symbolic" and x.alpha == s.alpha
                        and x.definition == s.definition)
            assert math.isclose(s.condition_number, twin.condition_number, rel_tol=1e-6)
            assert s.details["solver_status"] == "converged" and s.details["grad_norm"] < 1e-12


@pytest.mark.parametrize("kwargs, match", [
    (dict(alphas=[]), "'alphas' parameter of conditioning must hold at least one value"),
    (dict(alphas=[0.0, 1.0]), "'alphas' parameter of conditioning must be a float in the range \\[0, 1\\)"),
    (dict(definitions=["hessian"]), "'definitions'"),
    (dict(null_rtol=0.0), "'null_rtol'"),
])
def test_conditioning_bad_input(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        conditioning(UFMProblem(3, 2, 3), **kwargs)


def test_fit_and_predicted_rates():
    steps = np.arange(0, 200, 10)
    values = 1e-2 * 0.97 ** steps
    assert math.isclose(fit_rate(steps, values, below=1e-3), 0.97, rel_tol=1e-12)
    assert fit_rate(steps[:3], values[:3], below=1e-3) is None  # too few points in the window
    # 1 - lr mu over nonzero eigenvalues; the zero (null space) is skipped
    assert math.isclose(predicted_rate([0.0, 1.0, 4.0], [3, 1, 1], lr=0.25), 0.75)
    assert math.isclose(predicted_rate([1.0, 4.0], [1, 1], lr=0.45), 0.8)  # |1 - 0.45 * 4| = 0.8


def test_convergence_is_deterministic_and_rates_match_the_spectrum():
    p = UFMProblem(3, 3, 3, 1e-2, 1e-2)
    kw = dict(alphas=[0.0, 0.1], seeds=[0, 1], eps=[1e-3, 1e-7], rules=["local"], max_steps=20000)
    a, b = convergence(p, **kw), convergence(p, **kw)
    assert a["rows"] == b["rows"] and a["predictions"] == b["predictions"]
    for row in a["rows"]:
        assert row["diverged_at"] is None and row["steps_grad_norm_1e-07"] is not None
        assert row["final_orbit"] < 1e-7 and row["final_gap"] < 1e-7  # it did reach the minimizer
    for pred in a["predictions"]:
        # the measured local rate agrees with max|1 - lr mu| over the full spectrum
        assert abs(pred["rate_measured_mean"] - pred["rate_predicted_full"]) < 1e-3 * (1 - pred["rate_predicted_full"])
        assert pred["lr"] == pytest.approx(1 / max(pred["L_minimizer"], pred["L_initial"]))


def test_common_rule_uses_one_step_for_all():
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2)
    out = convergence(p, alphas=[0.0, 0.2], seeds=[0], eps=[1e-4], rules=["local", "common"], max_steps=5000)
    local = {r["alpha"]: r["lr"] for r in out["rows"] if r["rule"] == "local"}
    common = {r["lr"] for r in out["rows"] if r["rule"] == "common"}
    assert common == {min(local.values())}


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=[0.0]), "'eps'"), (dict(rules=["fast"]), "'rules'"), (dict(seeds=[]), "'seeds'"),
    (dict(max_steps=0), "'max_steps'"),
])
def test_convergence_bad_input(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        convergence(UFMProblem(3, 2, 3), **kwargs)


def test_nc1_rate_follows_the_in_span_within_class_eigenvalues():
    """d = K - 1: NC1 contracts by max|1 - lr mu|^2 over the within-class eigenvalues (hessian.md)."""
    p = UFMProblem(3, 4, 2, 5e-3, 5e-3)
    out = convergence(p, alphas=[0.0, 0.1], seeds=[0], eps=[1e-9], rules=["local"])
    for pred in out["predictions"]:
        rel = abs(pred["rate_measured_nc1_mean"] - pred["rate_predicted_nc1"]) / (1 - pred["rate_predicted_nc1"])
        assert rel < 0.02, pred


def test_convergence_stops_at_max_steps_between_records():
    out = convergence(UFMProblem(3, 2, 3, 1e-2, 1e-2), alphas=[0.0], seeds=[0], max_steps=15, record_every=10,
                      rules=["local"])
    assert out["rows"][0]["steps_recorded"] == 15
    assert out["trajectories"]["local"]["step"]["alpha=0, seed=0"] == [0, 10, 15]


def test_summarize_full_with_bias_and_undefined():
    p0, p1 = UFMProblem(10, 10, 10), UFMProblem(10, 10, 10, alpha=0.1)
    s = summarize(conditioning(p0, alphas=[0.0, 0.1]))
    assert s["full, b included"]["verdict"] == "higher with LS"
    assert s["full, b included"]["kappa_ce"] > s["full"]["kappa_ce"]
    assert summarize([_sp(0.0, "logits", float("nan")), _sp(0.1, "logits", 2.0)])["logits"]["verdict"] == "undefined"
