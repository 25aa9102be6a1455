"""Hessian spectra: the derived (symbolic) spectra against dense numeric ones at numerical minimizers."""
import itertools
import math

import numpy as np
import pytest
import torch

from ufm import InvalidParameterError, UFMProblem, closed_form, explicit_minimizer, solve
from ufm.numerics.hessian import dense_hessian, feature_hessian_blocks, logit_hessians
from ufm.numerics.spectrum import LanczosFallbackWarning, numeric_spectrum, top_eigenvalues
from ufm.theory.spectra import DEFINITIONS, distinct, rotation_null_dim, symbolic_spectrum

CASES = [  # K, d, n, alpha, lambda_w, lambda_h, lambda_b
    (3, 2, 1, 0.1, 5e-3, 5e-3, 0.0),  # d = K - 1
    (4, 5, 2, 0.0, 1e-2, 3e-3, 2e-2),  # d > K, CE, regularized bias
    (5, 6, 3, 0.2, 5e-3, 5e-3, 1e-2),
    (2, 3, 2, 0.1, 1e-2, 1e-2, 0.0),  # binary
    (6, 5, 1, 0.05, 1e-3, 2e-3, 1e-3),  # d = K - 1, n = 1
    (4, 3, 4, 0.3, 0.15, 0.15, 0.0),  # past the threshold: W = H = 0
    (4, 3, 4, 0.3, 0.15, 0.15, 0.01),
    (2, 3, 2, 0.1, 0.5, 0.5, 0.0),  # binary, past the threshold
    (2, 3, 2, 0.1, 0.5, 0.5, 0.1),
]


@pytest.fixture(scope="module")
def solved():
    out = {}
    for case in CASES:
        K, d, n, a, lw, lh, lb = case
        p = UFMProblem(K, n, d, lw, lh, lb, a)
        r = solve(p, method="lbfgs", tol=1e-12, seeds=0, device="cpu")
        assert r.status == ["converged"]
        out[case] = (p, r.W[0], r.H[0], r.b[0])
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: "K{}-d{}-n{}-a{}-lb{}".format(c[0], c[1], c[2], c[3], c[6]))
@pytest.mark.parametrize("definition", DEFINITIONS)
def test_symbolic_and_numeric_eigenvalues_agree(solved, case, definition):
    p, W, H, b = solved[case]
    sym = symbolic_spectrum(p, definition)
    num = numeric_spectrum(p, W, H, b, definition)
    se, ne = sym.expanded(), num.expanded()
    assert se.size == ne.size  # every eigenvalue accounted for, with its multiplicity
    scale = np.abs(se).max()
    # 1e-6 relative: each eigenvalue relative to itself, the zeros relative to the largest
    assert np.all(np.abs(se - ne) <= 1e-6 * np.maximum(np.abs(se), 1e-3 * scale))
    assert sym.null_dim == num.null_dim
    assert num.details["negative"] == 0  # a minimizer
    assert math.isclose(sym.condition_number, num.condition_number, rel_tol=1e-6)


@pytest.mark.parametrize("case", CASES[:5], ids=str)
def test_null_space_of_full_is_the_rotation_orbit(solved, case):
    p, W, H, b = solved[case]
    sym = symbolic_spectrum(p, "full")
    num = numeric_spectrum(p, W, H, b, "full")
    expected = (p.K - 1) * (2 * p.d - p.K) // 2  # dim O(d) - dim O(d - K + 1)
    assert sym.null_dim == num.null_dim == rotation_null_dim(p.K, p.d) == expected
    # a clear gap between the null space and the rest of the numeric spectrum
    assert min(v for v in num.eigenvalues if v > 0) > 1e4 * num.null_tol


def test_spectrum_counts_every_parameter():
    for K, d, n, lb, lam in itertools.product((2, 3, 5), (5, 7), (1, 3), (0.0, 1e-2), (5e-3, 0.5)):
        p = UFMProblem(K, n, d, lam, lam, lb, 0.1)  # lam = 0.5: past the threshold
        sizes = {"logits": K, "features": d * K * n, "classifier": K * d,
                 "full": K * d + d * K * n + (K if lb > 0 else 0)}
        for dfn in DEFINITIONS:
            assert sum(symbolic_spectrum(p, dfn).multiplicities) == sizes[dfn], (K, d, n, lb, dfn)


def test_logit_spectrum_closed_form():
    """diag(p) - p p^T: eigenvalues 0, p_off (K-2 times), K p_true p_off; kappa = K p_true."""
    for K, a in itertools.product((3, 6, 10), (0.0, 0.1, 0.3)):
        p = UFMProblem(K, 10, K, 5e-3, 5e-3, 0.0, a)
        cf = closed_form(p)
        sp = symbolic_spectrum(p, "logits")
        expected = sorted([0.0] + [cf.p_off] * (K - 2) + [K * cf.p_true * cf.p_off])
        assert np.allclose(sp.expanded(), expected, rtol=1e-12, atol=0)
        assert math.isclose(sp.condition_number, K * cf.p_true, rel_tol=1e-12)
        # and directly from a softmax vector with numpy
        prob = np.full(K, cf.p_off)
        prob[0] = cf.p_true
        assert np.allclose(np.linalg.eigvalsh(np.diag(prob) - np.outer(prob, prob)), expected, atol=1e-14)


def test_per_sample_hessians_are_the_blocks_of_the_dense_ones():
    p = UFMProblem(3, 2, 4, 1e-2, 2e-2, 1e-3, 0.1)
    W, H, b = explicit_minimizer(p, rotation_seed=3)
    H = H + 0.01 * torch.randn(H.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blocks = feature_hessian_blocks(p, W, H, b)
    dense = dense_hessian(p, W, H, b, parts=("H",))  # columns of H are contiguous per feature row
    d, N = p.d, p.N
    Hd = dense.reshape(d, N, d, N)
    for i in range(N):
        assert torch.allclose(Hd[:, i, :, i], blocks[i], atol=1e-14)
    lh = logit_hessians(p, W, H, b)
    z = (W @ H + b[:, None])[:, 0]
    prob = torch.softmax(z, 0)
    assert torch.allclose(lh[0], torch.diag(prob) - torch.outer(prob, prob), atol=1e-15)


def _near_minimizer(p, seed):
    """A point near the minimizer, off its symmetries: simple eigenvalues (single-vector Lanczos
    cannot be relied on for the multiplicities of an exactly symmetric point)."""
    g = torch.Generator().manual_seed(seed)
    return [t + 0.05 * torch.randn(t.shape, generator=g, dtype=torch.float64)
            for t in explicit_minimizer(p, rotation_seed=seed)]


def test_lanczos_fallback_is_announced_and_partial():
    p = UFMProblem(4, 30, 8, 5e-3, 5e-3, 0.0, 0.1)  # P = 32 + 960 = 992 parameters in (W, H)
    W, H, b = _near_minimizer(p, 0)
    with pytest.warns(LanczosFallbackWarning, match=r"P = 992 parameters .* top 5 eigenvalues by Lanczos"):
        part = numeric_spectrum(p, W, H, b, "full", max_bytes=10**6, top_k=5)
    assert not part.complete and part.condition_number is None and part.null_dim is None
    dense = torch.linalg.eigvalsh(dense_hessian(p, W, H, b, parts=("W", "H"))).numpy()
    assert np.allclose(part.expanded(), dense[-5:], rtol=1e-8)
    # the features operator: N blocks of d x d = 120 * 64 * 8 bytes, over a 50 kB limit
    with pytest.warns(LanczosFallbackWarning, match=r"features Hessian has P = 960 parameters"):
        part = numeric_spectrum(p, W, H, b, "features", max_bytes=50_000, top_k=3)
    blocks = torch.linalg.eigvalsh(feature_hessian_blocks(p, W, H, b)).reshape(-1).sort().values.numpy()
    assert not part.complete and np.allclose(part.expanded(), blocks[-3:], rtol=1e-8)


def test_lanczos_agrees_with_dense_on_a_mid_size_case():
    p = UFMProblem(5, 20, 8, 5e-3, 5e-3, 0.0, 0.1)  # 845 parameters
    W, H, b = _near_minimizer(p, 2)
    dense = torch.linalg.eigvalsh(dense_hessian(p, W, H, b, parts=("W", "H"))).numpy()[-20:]
    lanczos = top_eigenvalues(p, W, H, b, k=20, parts=("W", "H"))
    assert np.allclose(lanczos, dense, rtol=1e-8, atol=0)


def test_distinct_groups_close_values():
    values, mults = distinct(np.array([1.0, 1.0 + 1e-9, 2.0, 0.5]), rtol=1e-6)
    assert values == pytest.approx([0.5, 1.0, 2.0]) and mults == [1, 2, 1]


def test_bad_input():
    p = UFMProblem(5, 2, 3)  # d < K - 1
    with pytest.raises(InvalidParameterError, match="'dim' parameter .* \\[4, inf\\)"):
        symbolic_spectrum(p, "full")
    with pytest.raises(InvalidParameterError, match="'definition'"):
        symbolic_spectrum(UFMProblem(3, 2, 3), "hessian")


def test_exactly_at_the_threshold_the_zero_roots_are_null():
    """s = (1 - alpha)/K: W = H = 0 with a degenerate Hessian; the dense spectrum has the same zeros."""
    p = UFMProblem(4, 4, 4, 0.125, 0.125, 0.0, 0.0)  # s = sqrt(4 * 0.125^2) = 0.25 = 1/K
    sym = symbolic_spectrum(p, "full")
    W, H, b = explicit_minimizer(p)
    num = numeric_spectrum(p, W, H, b, "full")
    assert sym.null_dim == num.null_dim == 12
    assert math.isclose(sym.condition_number, num.condition_number, rel_tol=1e-9)


def test_full_with_the_bias_as_a_variable():
    """lambda_b = 0: details give kappa with b included (its shift null), checked against a dense Hessian."""
    p = UFMProblem(4, 2, 5, 5e-3, 5e-3, 0.0, 0.1)
    sym = symbolic_spectrum(p, "full")
    W, H, b = explicit_minimizer(p, rotation_seed=1)
    ev = np.sort(torch.linalg.eigvalsh(dense_hessian(p, W, H, b)).numpy())  # all of W, H, b
    null = np.abs(ev) <= 1e-9 * ev.max()
    assert null.sum() == rotation_null_dim(4, 5) + 1
    assert math.isclose(sym.details["condition_number_with_bias"], ev.max() / ev[~null].min(), rel_tol=1e-8)


def _reference_spectrum(p, definition, with_bias=False):
    """The per-eigenvalue evaluation the vectorized one replaced, kept as the reference: every piece
    at one problem with Python scalars, quadratic roots one at a time, blocks by scipy's generalized
    eigh, then all P eigenvalues expanded and grouped."""
    from scipy.linalg import eigh

    from ufm.theory._generated import hessian as gen
    from ufm.theory.spectra import ZERO_RTOL, spectrum_key

    cf = closed_form(p)
    key = spectrum_key(definition, cf.trivial, p.lambda_b > 0 or with_bias, p.K == 2)
    q = dict(K=p.K, n=p.n, d=p.d, lambda_w=p.lambda_w, lambda_h=p.lambda_h, lambda_b=p.lambda_b, alpha=p.alpha,
             p_t=cf.p_true, p_o=cf.p_off, s=cf.reg_strength, rho_w=cf.w_norm, rho_h=cf.h_norm)
    pairs = []
    for name, mult, kind, payload in gen.SPECTRA[key](**q, xp=np):
        mult = int(round(mult))
        if mult <= 0:
            continue
        if kind == "values":
            vals, zero = [float(v) for v in payload], [type(v) is int and v == 0 for v in payload]
            if with_bias and name == "span, trivial representation" and len(vals) == 1:
                zero = [True]
        elif kind == "quadratic":
            c2, c1, c0 = (float(c) for c in payload)
            disc = max(c1 * c1 - 4 * c2 * c0, 0.0)
            r = -(c1 + math.copysign(math.sqrt(disc), c1)) / 2
            vals, zero = ([0.0, 0.0] if r == 0 else [r / c2, c0 / r]), [False, False]
        else:
            vals = list(eigh(np.asarray(payload[0], float), np.asarray(payload[1], float), eigvals_only=True))
            zero = [False] * len(vals)
        pairs += [(v, mult, z) for v, z in zip(vals, zero)]
    scale = max(abs(v) for v, _, _ in pairs)
    pairs = [(v, m, z or abs(v) <= ZERO_RTOL * scale) for v, m, z in pairs]
    null_dim = sum(m for _, m, z in pairs if z)
    rest = np.repeat([v for v, _, z in pairs if not z], [m for _, m, z in pairs if not z])
    values, mults = distinct(rest, rtol=1e-12)
    if null_dim:
        values, mults = [0.0] + values, [null_dim] + mults
    kappa = float(rest.max() / rest.min()) if rest.size and rest.min() > 0 else math.nan
    return values, mults, null_dim, kappa


GRID = list(itertools.product((2, 3, 4, 7), (0, 1, 4), (1, 3, 50), (1e-3, 5e-3, 0.1), (5e-3, 0.3),
                              (0.0, 1e-2), (0.0, 0.1, 0.3)))


@pytest.mark.parametrize("definition", DEFINITIONS + ("full, b included",))
def test_vectorized_spectra_equal_the_per_eigenvalue_evaluation(definition):
    """symbolic_spectra over a grid of problems (both branches, K = 2, d = K - 1 and d > K, lambda_b
    zero or not) against the reference above, problem by problem: the same multiplicities and null
    dimension, eigenvalues and condition numbers equal to rounding (the spectra's blocks are solved
    by a batched Cholesky and eigvalsh instead of scipy's eigh)."""
    from ufm.theory.spectra import symbolic_spectra

    with_bias = definition == "full, b included"
    dfn = "full" if with_bias else definition
    problems = [UFMProblem(K, n, K - 1 + dd, lw, lh, lb, a) for K, dd, n, lw, lh, lb, a in GRID
                if not (with_bias and lb > 0)]
    cols = [np.array([getattr(p, f) for p in problems]) for f in ("K", "n", "d", "lambda_w", "lambda_h",
                                                                 "lambda_b", "alpha")]
    batch = symbolic_spectra(*cols, definition)
    for i, p in enumerate(problems):
        values, mults, null_dim, kappa = _reference_spectrum(p, dfn, with_bias)
        assert batch.null_dim[i] == null_dim and batch.multiplicities[i].sum() == sum(mults), p
        got = np.repeat(batch.values[i][~batch.null[i]], batch.multiplicities[i][~batch.null[i]])
        scale = max(abs(v) for v in values)
        assert np.allclose(np.sort(got), np.repeat(values, mults)[null_dim:], rtol=0, atol=1e-13 * scale), p
        k = batch.condition_number[i]
        assert (math.isnan(k) and math.isnan(kappa)) or math.isclose(k, kappa, rel_tol=1e-12), p
        if not with_bias:  # the one-problem spectrum: the same evaluation, so the same bits
            one = symbolic_spectrum(p, dfn)
            assert one.multiplicities == mults and one.null_dim == null_dim, p
            assert np.allclose(one.eigenvalues, values, rtol=0, atol=1e-13 * scale), p
            assert one.condition_number == k or math.isnan(k) and math.isnan(one.condition_number), p
        elif p.lambda_b == 0:
            full = symbolic_spectrum(p, "full").details["condition_number_with_bias"]
            assert full == k or math.isnan(k) and math.isnan(full), p


def test_vectorized_spectra_at_a_large_n_are_not_expanded():
    """n = 5000, K = 10: P = 500,100 eigenvalues, each spectrum a handful of values with multiplicities
    that add up to P (the per-eigenvalue evaluation is the reference on a few of them)."""
    from ufm.theory.spectra import symbolic_spectra

    alphas = np.linspace(0, 0.3, 200)
    batch = symbolic_spectra(10, 5000, 10, 1e-3, 1e-3, 0.0, alphas, "full")
    assert batch.values.shape[0] == 200 and batch.values.shape[1] < 30
    assert np.all(batch.multiplicities.sum(1) == 10 * 10 + 10 * 10 * 5000)
    for i in (0, 77, 199):
        _, _, null_dim, kappa = _reference_spectrum(UFMProblem(10, 5000, 10, 1e-3, 1e-3, 0.0, alphas[i]), "full")
        assert batch.null_dim[i] == null_dim and math.isclose(batch.condition_number[i], kappa, rel_tol=1e-12)


def test_python_integers_past_the_exact_range_of_int64_products(monkeypatch):
    """Where 64 n d K^4 could leave 2^53, K, n and d enter the generated code as Python ints (as for one
    problem); forced here at a small size, they give the bits of the int64 evaluation."""
    import ufm.theory.spectra as spectra

    alphas = np.linspace(0, 0.3, 40)
    fast = {d: spectra.symbolic_spectra(7, 30, 9, 1e-3, 2e-3, 0.0, alphas, d) for d in spectra.MAP_DEFINITIONS}
    monkeypatch.setattr(spectra, "_EXACT_INT", 1)
    for d, f in fast.items():
        slow = spectra.symbolic_spectra(7, 30, 9, 1e-3, 2e-3, 0.0, alphas, d)
        assert np.array_equal(f.values, slow.values) and np.array_equal(f.multiplicities, slow.multiplicities)
        assert np.array_equal(f.condition_number, slow.condition_number, equal_nan=True)
    huge = spectra.symbolic_spectra(300, 10**5, 300, 1e-4, 1e-4, 0.0, alphas, "full")
    assert np.all(huge.multiplicities.sum(1) == 300 * 300 + 300 * 300 * 10**5)
