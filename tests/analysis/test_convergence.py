"""Gradient-descent convergence from random starts: steps, measured rates and the rates the spectra predict."""
import math

import numpy as np
import pytest

from ufm import InvalidParameterError, UFMProblem
from ufm.analysis.convergence import NC1_BAND, convergence, fit_rate, predicted_rate


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


@pytest.mark.parametrize("K, n, d", [(3, 4, 3), (3, 4, 6), (4, 3, 8)])
def test_nc1_rate_at_d_at_least_K_includes_the_product_mode(K, n, d):
    """d = K and d = 2K, CE and LS: the measured NC1 rate is the prediction with the product mode
    (derivations/convergence.md); for LS the in-span prediction alone is too fast by far more than
    the band, so the product mode is what the agreement rests on."""
    out = convergence(UFMProblem(K, n, d, 5e-3, 5e-3), alphas=[0.0, 0.1], seeds=[0], eps=[1e-9], rules=["local"])
    for pred in out["predictions"]:
        lr = pred["lr"]
        product = (abs(1 - lr * 5e-3) * abs(1 - lr * 1e-2)) ** 2  # written from (C7): lambda_H, lambda_W + lambda_H
        assert pred["rate_product_mode_nc1"] == pytest.approx(product, rel=1e-12)
        assert pred["rate_predicted_nc1"] == max(pred["rate_in_span_nc1"], product)
        rel = (pred["rate_measured_nc1_mean"] - pred["rate_predicted_nc1"]) / (1 - pred["rate_predicted_nc1"])
        assert abs(rel) < NC1_BAND, pred
        if pred["alpha"] > 0:
            old = (pred["rate_measured_nc1_mean"] - pred["rate_in_span_nc1"]) / (1 - pred["rate_in_span_nc1"])
            assert old > 10 * NC1_BAND, pred


def test_no_product_mode_at_d_equal_K_minus_1():
    out = convergence(UFMProblem(3, 4, 2, 5e-3, 5e-3), alphas=[0.1], seeds=[0], eps=[1e-6], rules=["local"])
    pred = out["predictions"][0]
    assert pred["rate_product_mode_nc1"] is None and pred["rate_predicted_nc1"] == pred["rate_in_span_nc1"]


def test_fit_windows_stay_above_the_measured_floors():
    out = convergence(UFMProblem(3, 4, 6, 5e-3, 5e-3), alphas=[0.1], seeds=[0], eps=[1e-9], rules=["local"])
    row, traj = out["rows"][0], out["trajectories"]["local"]
    assert 0 < row["grad_floor"] < 1e-14  # ||grad f|| at the exact minimizer in float64: rounding
    key = traj["runs"][0]
    steps, nc1, floor = (np.array(traj[k][key]) for k in ("step", "nc1", "nc1_floor"))
    keep = (nc1 < 1e-4) & (nc1 > 100 * floor)  # the window, written out: fit_below and FLOOR_MARGIN
    assert 3 <= keep.sum() < len(nc1)
    slope = np.polyfit(steps[keep], np.log(nc1[keep]), 1)[0]
    assert row["rate_measured_nc1"] == pytest.approx(math.exp(slope), rel=1e-12)
