import math

import pytest
import torch

from ufm import UFMProblem, default_grid, explicit_minimizer, solve, verify
from ufm.analysis.verify import compare, measure, orbit_distance


def test_orbit_distance_is_zero_on_the_orbit_and_positive_off_it():
    p = UFMProblem(4, 3, 6, 5e-3, 5e-3, 0.0, 0.1)
    W, H, b = explicit_minimizer(p, rotation_seed=3)
    assert orbit_distance(p, W, H, b + 0.7) < 1e-12  # lambda_b = 0: constant shifts of b are optimal
    assert orbit_distance(p, 1.01 * W, H, b) == pytest.approx(0.01 * float(W.norm()) / math.sqrt(
        float(W.norm() ** 2 + H.norm() ** 2)), rel=1e-3)
    assert orbit_distance(p.replace(lambda_b=1e-2), W, H, b + 0.7) > 0.1


def test_compare_detects_a_wrong_solution():
    p = UFMProblem(4, 3, 4, 1e-2, 1e-2, 0.0, 0.1)
    res = solve(p, seeds=0)
    res.W *= 1.01
    err = compare(p, measure(res, 0))
    assert err["w_norm"] == pytest.approx(0.01, rel=1e-6)


def test_default_grid_matches_the_documented_grid():
    grid = default_grid()
    assert len(grid) == 3 * 3 * 5 * 3 * 2
    assert {p.K for p, _ in grid} == {3, 5, 10}
    assert {(p.K, p.d) for p, _ in grid} >= {(3, 2), (3, 3), (3, 6), (10, 9), (10, 20)}
    assert {p.alpha for p, _ in grid} == {0.0, 0.05, 0.1, 0.2, 0.3}


def test_verify_small_grid_including_trivial_points():
    grid = [pt for pt in default_grid(per_class=10, seeds=[0]) if pt[0].K == 10 and pt[0].d == 9]
    rows = verify(grid, tol=1e-6)
    assert len(rows) == 15 and all(r["ok"] for r in rows)
    trivial = [r for r in rows if r["trivial"]]
    assert trivial and all(math.isnan(r["err_nc1"]) for r in trivial)
    assert max(r["max_error"] for r in rows) < 1e-6
    assert all(r["num_converged"] for r in rows)


def test_verify_reports_failures_instead_of_passing_them():
    grid = [(UFMProblem(3, 4, 3, 5e-3, 5e-3, 0.0, 0.0), 0)]
    rows = verify(grid, tol=1e-6, solver_tol=1e-2)  # a sloppy solve must not pass
    assert not rows[0]["ok"] and rows[0]["max_error"] > 1e-6


def test_point_exactly_at_the_threshold_is_reported_not_hidden():
    """At s = s_crit the objective is quartic around W = H = 0: a small gradient does not
    mean a small error, and verify must say so (n = 4, lambda = 0.04, K = 10, alpha = 0.2).
    The solver tolerance is one it reaches there: on this flat objective the gradient norm
    wanders between about 1e-10 and 1e-7 for hundreds of steps, so whether the default 1e-11
    is reached before the stall test depends on rounding."""
    p = UFMProblem(10, 4, 9, 0.04, 0.04, 0.0, 0.2)
    rows = verify([(p, 0)], tol=1e-6, solver_tol=1e-8)
    assert rows[0]["num_converged"] and not rows[0]["ok"]


def test_verify_validates_its_arguments():
    from ufm import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'points'"):
        verify([])
    with pytest.raises(InvalidParameterError, match=r"'tol' parameter of verify must be a float in the range \(0, inf\)"):
        verify(default_grid(classes=[3])[:1], tol=0.0)


def test_default_grid_classes_subset():
    grid = default_grid(seeds=[0], classes=[4])
    assert len(grid) == 3 * 5 * 3 and {p.d for p, _ in grid} == {3, 4, 8}


def test_orbit_distance_is_enforced():
    """Zero-mean within-class noise of relative size 1e-3 leaves f and the mean norms almost
    unchanged (second order) but must fail through the orbit distance (first order)."""
    from ufm.analysis.verify import worst_error

    p = UFMProblem(4, 5, 4, 1e-2, 1e-2, 0.0, 0.1)
    res = solve(p, seeds=0)
    W, H, b = explicit_minimizer(p)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(H.shape, generator=g, dtype=torch.float64)
    noise -= noise.reshape(p.d, p.K, p.n).mean(-1).repeat_interleave(p.n, dim=1)  # zero class means
    res.W[0], res.H[0], res.b[0] = W, H + 1e-3 * noise * float(H.norm() / noise.norm()), b
    err = compare(p, measure(res, 0))
    assert max(err[k] for k in ("logit_gap", "w_norm", "h_norm", "objective")) < 1e-5
    assert err["orbit"] > 1e-4 and worst_error(err) == err["orbit"]
