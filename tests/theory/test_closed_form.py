"""Closed forms against an independent minimization (scipy + torch's own cross-entropy)."""
import math
import warnings

import numpy as np
import pytest
import torch

from problems import ETF_SHAPES, reference_minimize, reference_objective, reg_strength, threshold
from ufm import InvalidParameterError, UFMProblem, closed_form, closed_form_arrays, closed_forms, explicit_minimizer, simplex_etf

REFERENCE_CASES = [
    UFMProblem(3, 4, 2, 1e-2, 1e-2, 0.0, 0.0),  # CE, d = K - 1
    UFMProblem(4, 3, 5, 5e-3, 2e-2, 1e-3, 0.2),  # LS, d > K, regularized bias
    UFMProblem(5, 2, 4, 1e-2, 1e-2, 0.0, 0.1),  # LS, d = K - 1
    UFMProblem(4, 3, 3, 0.15, 0.15, 0.0, 0.3),  # past the threshold: W = H = 0
]


@pytest.mark.parametrize("p", REFERENCE_CASES, ids=lambda p: f"K{p.K}-d{p.d}-a{p.alpha}")
def test_closed_form_equals_independent_minimum(p):
    f, W, H, b = reference_minimize(p, seed=3)
    cf = closed_form(p)
    assert cf.trivial == (reg_strength(p) >= threshold(p))
    assert f == pytest.approx(cf.objective, rel=1e-12)
    assert float(torch.linalg.vector_norm(W, dim=1).mean()) == pytest.approx(cf.w_norm, rel=1e-6, abs=1e-6)
    assert float(torch.linalg.vector_norm(H, dim=0).mean()) == pytest.approx(cf.h_norm, rel=1e-6, abs=1e-6)
    Z = W @ H + b[:, None]
    y = torch.arange(p.N) // p.n
    P = torch.softmax(Z, dim=0)
    assert float(P[y, torch.arange(p.N)].mean()) == pytest.approx(cf.p_true, rel=1e-6)


def test_trivial_solution_values():
    p = REFERENCE_CASES[-1]
    cf = closed_form(p)
    assert cf.trivial and cf.w_norm == cf.h_norm == cf.logit_gap == 0.0
    assert cf.p_true == pytest.approx(1 / p.K) and cf.objective == pytest.approx(math.log(p.K), rel=1e-15)


@pytest.mark.parametrize("K, d", ETF_SHAPES)
@pytest.mark.parametrize("alpha, lambda_b", [(0.0, 0.0), (0.1, 1e-2)])
def test_explicit_minimizer_is_stationary(K, d, alpha, lambda_b):
    p = UFMProblem(K, 3, d, 5e-3, 5e-3, lambda_b, alpha)
    for seed in (None, 7):
        W, H, b = explicit_minimizer(p, rotation_seed=seed)
        x = [t.clone().requires_grad_(True) for t in (W, H, b)]
        f = reference_objective(p, *x)
        grads = torch.autograd.grad(f, x)
        gnorm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        assert gnorm < 1e-10
        assert float(f.detach()) == pytest.approx(closed_form(p).objective, rel=1e-14)


def test_explicit_minimizer_geometry():
    p = UFMProblem(5, 4, 8, 2e-3, 7e-3, 0.0, 0.05)
    cf = closed_form(p)
    W, H, b = explicit_minimizer(p, rotation_seed=1)
    assert torch.allclose(torch.linalg.vector_norm(W, dim=1), torch.full((5,), cf.w_norm, dtype=torch.float64))
    assert torch.allclose(torch.linalg.vector_norm(H, dim=0), torch.full((20,), cf.h_norm, dtype=torch.float64))
    G = W @ W.T / cf.w_norm ** 2
    assert torch.allclose(G, (torch.eye(5) * 5 / 4 - 1 / 4).double(), atol=1e-14)
    assert torch.equal(b, torch.zeros(5, dtype=torch.float64))
    assert W.dtype == torch.float64
    W32, _, _ = explicit_minimizer(p, dtype=torch.float32)
    assert W32.dtype == torch.float32


@pytest.mark.parametrize("K, d", ETF_SHAPES)
def test_simplex_etf(K, d):
    M = simplex_etf(K, d)
    G = M @ M.T
    expected = torch.full((K, K), -1 / (K - 1), dtype=torch.float64)
    expected.fill_diagonal_(1.0)
    assert torch.allclose(G, expected, atol=1e-14)
    assert torch.allclose(M.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-14)


def test_explicit_minimizer_needs_room_for_the_etf():
    with pytest.raises(InvalidParameterError, match="'dim'.*\\[3, inf\\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explicit_minimizer(UFMProblem(4, 2, 2))


def test_arrays_vectorized_numpy_and_torch_agree_with_scalar():
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0, 0.9, 500)
    K = rng.integers(2, 200, 500)
    lw, lh = 10 ** rng.uniform(-5, -1, 500), 10 ** rng.uniform(-5, -1, 500)
    out = closed_form_arrays(alpha, K, 10, lw, lh)
    out_t = closed_form_arrays(torch.tensor(alpha), torch.tensor(K), 10, torch.tensor(lw), torch.tensor(lh),
                               xp=torch)
    for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "threshold"):
        assert np.allclose(getattr(out, k), getattr(out_t, k).numpy(), rtol=1e-12, atol=0), k
        assert np.all(np.isfinite(getattr(out, k))), k
    assert out.trivial.any() and not out.trivial.all()
    assert set(out.to_dict()) == {"logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective", "threshold",
                                  "reg_strength", "trivial"}
    for i in range(0, 500, 50):
        cf = closed_form(UFMProblem(int(K[i]), 10, int(K[i]), float(lw[i]), float(lh[i]), 0.0, float(alpha[i])))
        assert out.objective[i] == pytest.approx(cf.objective, rel=1e-14)
        assert bool(out.trivial[i]) == cf.trivial


def test_large_class_count_stays_finite():
    cf = closed_form(UFMProblem(1000, 2, 1000, 1e-5, 1e-5, 0.0, 0.3))
    assert not cf.trivial and all(math.isfinite(v) for v in (cf.objective, cf.logit_gap, cf.w_norm))
    # f* below the value log K at W = H = 0
    assert cf.objective < math.log(1000)


def test_closed_form_rejects_non_problem():
    with pytest.raises(InvalidParameterError, match="'problem'"):
        closed_form({"num_classes": 3})


def test_arrays_take_the_dtype_of_the_first_float_tensor():
    out = closed_form_arrays(0.1, torch.tensor([3, 5]), 10, torch.tensor([1e-3, 2e-3], dtype=torch.float32), 1e-3,
                             xp=torch)
    assert out.logit_gap.dtype == torch.float32
    assert closed_form_arrays(0.1, torch.tensor([3, 5]), 10, 1e-3, 1e-3, xp=torch).w_norm.dtype == torch.float64


@pytest.mark.parametrize("K, d, pattern", [(1, 3, "'K'"), (2.5, 3, "'K'"), (3, 0, "'d'"), (4, 2, "'d'")])
def test_simplex_etf_validates(K, d, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        simplex_etf(K, d)


def test_closed_forms_is_the_product_of_the_lists_alpha_fastest():
    cfs = closed_forms([3, 4], 10, None, 5e-3, [5e-3, 1e-2], 0.0, [0.0, 0.1])
    keys = [(c.problem.K, c.problem.d, c.problem.lambda_h, c.problem.alpha) for c in cfs]
    assert keys == [(K, K, lh, a) for K in (3, 4) for lh in (5e-3, 1e-2) for a in (0.0, 0.1)]
    for c in cfs:  # softmax identities, independent of how the closed form is evaluated
        K = c.problem.K
        assert c.p_true + (K - 1) * c.p_off == pytest.approx(1.0, rel=1e-12)
        assert c.logit_gap == pytest.approx(math.log(c.p_true / c.p_off), rel=1e-10)
    with pytest.raises(InvalidParameterError, match="num_classes"):
        closed_forms([3, 1], 10, None, 5e-3, 5e-3, 0.0, 0.0)
