"""Tests of ufm.metrics.nc against independent numpy float64 references.

Every reference below is written out directly from the conventions of the module
docstring of ufm/metrics/nc.py (dense matrices, plain loops over classes); none of
them calls into ufm except to build inputs (``simplex_etf``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from problems import DTYPES

import ufm
from ufm import InvalidParameterError, NCAccumulator, nc_metrics, simplex_etf
from ufm.metrics.accumulators import NC4Accumulator
from ufm.metrics.nc import nc1

@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one intra-op thread. On a small, busy CPU, torch's multi-threaded
    index_add_ spends ~0.1 s per call on thread synchronization, which made this module
    several times slower; the results do not depend on it. Restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


ALL_KEYS = ("nc1", "nc2_h", "nc2_h_equinorm", "nc2_h_equiangular",
            "nc2_w", "nc2_w_equinorm", "nc2_w_equiangular", "nc3", "nc4")


# ---------------------------------------------------------------------------
# Independent references (numpy, float64).

def ref_stats(X, y, K):
    """Direct two-pass class statistics: means, counts, global mean, Sigma_W, Sigma_B."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    N, d = X.shape
    means = np.zeros((K, d))
    counts = np.zeros(K, dtype=np.int64)
    for k in range(K):
        Xk = X[y == k]
        counts[k] = len(Xk)
        means[k] = Xk.mean(axis=0)
    mu_g = means.mean(axis=0)
    sigma_w = np.zeros((d, d))
    for k in range(K):
        R = X[y == k] - means[k]
        sigma_w += R.T @ R
    sigma_w /= N
    sigma_b = np.zeros((d, d))
    for k in range(K):
        v = (means[k] - mu_g)[:, None]
        sigma_b += v @ v.T
    sigma_b /= K
    return means, counts, mu_g, sigma_w, sigma_b


def ref_nc1(sigma_w, sigma_b, K):
    """tr(Sigma_W Sigma_B^+)/K with the pseudo-inverse on the top min(K-1, d) eigenpairs."""
    d = sigma_b.shape[0]
    r = min(K - 1, d)
    lam, V = np.linalg.eigh(sigma_b)
    lam, V = lam[d - r:], V[:, d - r:]
    pinv = (V / lam) @ V.T
    return np.trace(sigma_w @ pinv) / K


def ref_nc2(V):
    K = V.shape[0]
    G = V @ V.T
    G = G / np.linalg.norm(G, "fro")
    target = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
    return np.linalg.norm(G - target, "fro")


def ref_equinorm(V):
    norms = np.array([np.sqrt(np.sum(v * v)) for v in V])
    return np.std(norms) / np.mean(norms)  # np.std is the population std (ddof=0)


def ref_equiangular(V):
    K = V.shape[0]
    vals = []
    for j in range(K):
        for k in range(K):
            if j != k:
                cos = V[j] @ V[k] / (np.linalg.norm(V[j]) * np.linalg.norm(V[k]))
                vals.append(abs(cos + 1.0 / (K - 1)))
    return float(np.mean(vals))


def ref_nc3(W, M):
    return np.linalg.norm(W / np.linalg.norm(W, "fro") - M / np.linalg.norm(M, "fro"), "fro")


def ref_nc4(X, means, W, b):
    X = np.asarray(X, dtype=np.float64)
    mismatches = 0
    for h in X:
        ncc = int(np.argmin([np.linalg.norm(h - m) for m in means]))
        clf = int(np.argmax(W @ h + b))
        mismatches += ncc != clf
    return mismatches / len(X)


def ref_metrics(X, y, K, W=None, b=None):
    means, _, mu_g, sigma_w, sigma_b = ref_stats(X, y, K)
    M = means - mu_g
    out = {
        "nc1": ref_nc1(sigma_w, sigma_b, K),
        "nc2_h": ref_nc2(M),
        "nc2_h_equinorm": ref_equinorm(M),
        "nc2_h_equiangular": ref_equiangular(M),
    }
    if W is not None:
        W = np.asarray(W, dtype=np.float64)
        b = np.zeros(K) if b is None else np.asarray(b, dtype=np.float64)
        out.update({
            "nc2_w": ref_nc2(W),
            "nc2_w_equinorm": ref_equinorm(W),
            "nc2_w_equiangular": ref_equiangular(W),
            "nc3": ref_nc3(W, M),
            "nc4": ref_nc4(X, means, W, b),
        })
    return out


def random_orthogonal(d, rng):
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


# ---------------------------------------------------------------------------
# 1. Exact simplex ETF: every metric is 0.

@pytest.mark.parametrize("K,d", [(2, 1), (3, 2), (4, 3), (5, 9), (10, 9), (10, 16)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transform", [False, True])
def test_simplex_etf_gives_zero(K, d, dtype, transform):
    rng = np.random.default_rng(1000 * K + d)
    n = 6
    E = simplex_etf(K, d).numpy()  # (K, d), unit rows, <e_j, e_k> = -1/(K-1)
    # sanity of the input itself, so a failure below is about nc.py
    np.testing.assert_allclose(E @ E.T, (K * np.eye(K) - 1) / (K - 1), atol=1e-14)
    if transform:
        Q = random_orthogonal(d, rng)
        E = E @ Q.T
        c = 3.0 * rng.standard_normal(d)  # constant global offset
    else:
        c = np.zeros(d)
    scale_h, scale_w = 2.5, 0.7
    X = np.repeat(scale_h * E, n, axis=0) + c  # (K n, d), class k repeated n times
    y = np.repeat(np.arange(K), n)
    W = scale_w * E  # self-dual classifier
    b = -W @ c  # keeps W h + b = W (h - c), so decisions are unaffected by the offset
    # Shuffle the rows so batches mix classes.
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    out = nc_metrics(torch.tensor(X, dtype=dtype), torch.tensor(y), torch.tensor(W, dtype=dtype),
                     torch.tensor(b, dtype=dtype), batch_size=5)
    assert set(out) == set(ALL_KEYS)
    # float64 inputs: only float64 round-off (~1e-15) remains. float32 inputs: the ETF,
    # the offset and the classifier are rounded to float32 (relative error ~6e-8) before
    # the float64 accumulation, so the geometry is an ETF only up to ~1e-7; 1e-5 leaves
    # margin for the sqrt/normalizations (nc2, nc3 are first order in that error).
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for key in ALL_KEYS:
        assert abs(out[key]) <= tol, (key, out[key])
    assert out["nc4"] == 0.0


# ---------------------------------------------------------------------------
# 2. Random data against the dense float64 reference.

RANDOM_CASES = [
    # (N, d, K): generic; d < K - 1; d > N / K; binary
    (300, 7, 4),
    (300, 3, 6),
    (40, 15, 4),
    (25, 30, 3),
    (50, 2, 2),
]


def make_random(N, d, K, seed, unbalanced=True):
    rng = np.random.default_rng(seed)
    centers = 2.0 * rng.standard_normal((K, d))
    if unbalanced:  # every class present, unequal counts (global mean convention matters)
        y = np.concatenate([np.arange(K), rng.integers(0, K, N - K)])
        y = np.where(rng.random(N) < 0.3, 0, y)
        y[:K] = np.arange(K)
        y = rng.permutation(y)
    else:
        y = rng.permutation(np.arange(N) % K)
    X = centers[y] + rng.standard_normal((N, d)) + 0.5
    W = rng.standard_normal((K, d))
    b = 0.3 * rng.standard_normal(K)
    return X, y, W, b


@pytest.mark.parametrize("N,d,K", RANDOM_CASES)
def test_random_matches_reference(N, d, K):
    X, y, W, b = make_random(N, d, K, seed=N + 7 * d + 31 * K)
    counts = np.bincount(y, minlength=K)
    assert counts.min() >= 1 and len(set(counts)) > 1  # unbalanced on purpose
    ref = ref_metrics(X, y, K, W, b)
    out = nc_metrics(torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b), batch_size=13)
    assert set(out) == set(ALL_KEYS)
    for key in ALL_KEYS:
        assert isinstance(out[key], float)
        assert out[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-14), key
    # nc4 must be non-trivial in at least the generic case, to exercise the decision logic
    if (N, d, K) == (300, 7, 4):
        assert 0 < ref["nc4"] < 1


@pytest.mark.parametrize("N,d,K", RANDOM_CASES[:3])
def test_random_nc1_matches_numpy_pinv(N, d, K):
    """Cross-check the eigh reference with numpy's pinv when rank(Sigma_B) = min(K-1, d)."""
    X, y, _, _ = make_random(N, d, K, seed=5 + N + d + K)
    _, _, _, sigma_w, sigma_b = ref_stats(X, y, K)
    lam = np.linalg.eigvalsh(sigma_b)
    expected = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / K
    assert ref_nc1(sigma_w, sigma_b, K) == pytest.approx(expected, rel=1e-9)
    out = nc_metrics(torch.tensor(X), torch.tensor(y))
    assert out["nc1"] == pytest.approx(expected, rel=1e-9)
    assert lam[-1] > 0


def test_random_without_weight_has_only_feature_metrics():
    X, y, _, _ = make_random(120, 5, 3, seed=3)
    out = nc_metrics(torch.tensor(X), torch.tensor(y))
    assert set(out) == {"nc1", "nc2_h", "nc2_h_equinorm", "nc2_h_equiangular"}
    ref = ref_metrics(X, y, 3)
    for key in out:
        assert out[key] == pytest.approx(ref[key], rel=1e-10)


def test_float32_features_accumulated_in_float64():
    """float32 inputs: the metrics are those of the float32 values, computed in float64."""
    X, y, W, b = make_random(300, 7, 4, seed=11)
    X32, W32, b32 = (torch.tensor(a, dtype=torch.float32) for a in (X, W, b))
    ref = ref_metrics(X32.double().numpy(), y, 4, W32.double().numpy(), b32.double().numpy())
    out = nc_metrics(X32, torch.tensor(y), W32, b32, batch_size=17)
    for key in ALL_KEYS:
        assert out[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-14), key


def test_num_classes_inferred_from_weight_and_explicit():
    X, y, W, b = make_random(100, 4, 3, seed=9)
    a = nc_metrics(torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b))
    c = nc_metrics(torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b), num_classes=3)
    assert a == c


def test_bias_defaults_to_zero():
    X, y, W, _ = make_random(200, 6, 5, seed=21)
    out = nc_metrics(torch.tensor(X), torch.tensor(y), torch.tensor(W))
    assert out["nc4"] == pytest.approx(ref_metrics(X, y, 5, W, np.zeros(5))["nc4"], abs=0)


# ---------------------------------------------------------------------------
# 3. nc1 variants.

@pytest.mark.parametrize("N,d,K", RANDOM_CASES)
def test_unnormalized_is_K_times_normalized(N, d, K):
    X, y, _, _ = make_random(N, d, K, seed=100 + N + d + K)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    a = nc_metrics(Xt, yt, nc1_variant="normalized")["nc1"]
    u = nc_metrics(Xt, yt, nc1_variant="unnormalized")["nc1"]
    assert u == pytest.approx(K * a, rel=1e-12)
    means, _, _, sigma_w, sigma_b = ref_stats(X, y, K)
    assert u == pytest.approx(K * ref_nc1(sigma_w, sigma_b, K), rel=1e-10)


def test_nc1_function_batched_and_nan_when_sigma_b_zero():
    rng = np.random.default_rng(0)
    K, d = 4, 5
    sws, sbs, refs = [], [], []
    for _ in range(3):
        A = rng.standard_normal((d, d)); sw = A @ A.T / d
        B = rng.standard_normal((K, d)); B -= B.mean(0); sb = B.T @ B / K
        sws.append(sw); sbs.append(sb); refs.append(ref_nc1(sw, sb, K))
    got = nc1(torch.tensor(np.stack(sws)), torch.tensor(np.stack(sbs)), K)
    np.testing.assert_allclose(got.numpy(), refs, rtol=1e-10)
    z = nc1(torch.eye(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64), K)
    assert torch.isnan(z)


# ---------------------------------------------------------------------------
# 4. Streaming.

@pytest.mark.parametrize("N,d,K", RANDOM_CASES)
def test_batch_size_does_not_change_results(N, d, K):
    X, y, W, b = make_random(N, d, K, seed=200 + N + d + K)
    args = (torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b))
    small = nc_metrics(*args, batch_size=7)
    big = nc_metrics(*args, batch_size=10**6)
    one = nc_metrics(*args, batch_size=1)
    for key in ALL_KEYS:
        assert small[key] == pytest.approx(big[key], rel=1e-12, abs=1e-15), key
        assert one[key] == pytest.approx(big[key], rel=1e-12, abs=1e-15), key


@pytest.mark.parametrize("N,d,K", RANDOM_CASES)
def test_accumulator_shuffled_batches_match_direct(N, d, K):
    X, y, _, _ = make_random(N, d, K, seed=300 + N + d + K)
    means, counts, mu_g, sigma_w, sigma_b = ref_stats(X, y, K)
    rng = np.random.default_rng(1)
    # Variable batch sizes, batches fed in a shuffled order.
    cuts = np.sort(rng.choice(np.arange(1, N), size=min(9, N - 1), replace=False))
    batches = np.split(np.arange(N), cuts)
    acc = NCAccumulator(K, d)
    for i in rng.permutation(len(batches)):
        idx = batches[i]
        acc.update(torch.tensor(X[idx]), torch.tensor(y[idx]))
    st = acc.statistics()
    assert st.num_classes == K
    assert st.means.dtype == torch.float64 and st.sigma_w.dtype == torch.float64
    np.testing.assert_array_equal(st.counts.numpy(), counts)
    np.testing.assert_allclose(st.means.numpy(), means, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st.global_mean.numpy(), mu_g, rtol=1e-12, atol=1e-13)
    scale_w = np.abs(sigma_w).max()
    scale_b = np.abs(sigma_b).max()
    np.testing.assert_allclose(st.sigma_w.numpy(), sigma_w, rtol=1e-10, atol=1e-12 * scale_w)
    np.testing.assert_allclose(st.sigma_b.numpy(), sigma_b, rtol=1e-10, atol=1e-12 * scale_b)
    assert np.array_equal(st.sigma_w.numpy(), st.sigma_w.numpy().T)


def test_accumulator_float32_batches_and_statistics_errors():
    acc = NCAccumulator(3, 2)
    with pytest.raises(ValueError, match="no batch"):
        acc.statistics()
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25], [2.0, 2.0]])
    y = np.array([0, 1, 0, 1])
    acc.update(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    with pytest.raises(ValueError, match=r"\[2\]"):  # class 2 has no sample yet
        acc.statistics()
    acc.update(torch.tensor([[4.0, 4.0]], dtype=torch.float32), torch.tensor([2]))
    st = acc.statistics()
    X = np.vstack([X, [[4.0, 4.0]]]); y = np.append(y, 2)
    means, counts, mu_g, sigma_w, sigma_b = ref_stats(X, y, 3)
    np.testing.assert_allclose(st.means.numpy(), means, rtol=1e-14)
    np.testing.assert_allclose(st.sigma_w.numpy(), sigma_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(st.sigma_b.numpy(), sigma_b, rtol=1e-12, atol=1e-15)


def test_strongly_collapsed_features_keep_nc1_precision():
    """Within-class noise 1e-7 around class means of norm ~1e3 (features float64).

    A one-pass raw-moment accumulator (sum h h^T - N mu mu^T) would lose everything here:
    the raw second moment is ~1e6 while Sigma_W is ~1e-14, i.e. 20 orders of magnitude
    apart, beyond float64's 16 digits. The shifted accumulator must match the direct
    two-pass value.
    """
    rng = np.random.default_rng(42)
    K, d, n = 5, 6, 40
    centers = rng.standard_normal((K, d))
    centers = 1e3 * centers / np.linalg.norm(centers, axis=1, keepdims=True)
    y = rng.permutation(np.repeat(np.arange(K), n))
    X = centers[y] + 1e-7 * rng.standard_normal((len(y), d))
    means, _, _, sigma_w, sigma_b = ref_stats(X, y, K)
    expected = ref_nc1(sigma_w, sigma_b, K)
    assert 1e-22 < expected < 1e-18  # the regime we mean to test
    for bs in (3, 7, 10**6):
        got = nc_metrics(torch.tensor(X), torch.tensor(y), batch_size=bs)["nc1"]
        assert got == pytest.approx(expected, rel=1e-6), bs
    acc = NCAccumulator(K, d)
    for i in range(0, len(y), 11):
        acc.update(torch.tensor(X[i:i + 11]), torch.tensor(y[i:i + 11]))
    st = acc.statistics()
    np.testing.assert_allclose(st.sigma_w.numpy(), sigma_w, rtol=1e-5, atol=1e-6 * np.abs(sigma_w).max())


# ---------------------------------------------------------------------------
# 5. nc4 by hand.

def test_nc4_hand_computed():
    # Two classes in 1-D. Class 0 at -3, -2, -1, -2 (mean -2); class 1 at 1, 2, 3, 2 (mean 2).
    # Nearest class center: boundary at 0, so every sample goes to its own class.
    # Classifier W = [[-1], [1]], b = [0, -5]: class 1 wins iff h - 5 > -h, iff h > 2.5,
    # so only h = 3 goes to class 1; the class-1 samples 1, 2, 2 disagree: nc4 = 3/8.
    X = torch.tensor([[-3.0], [1.0], [-2.0], [2.0], [-1.0], [3.0], [-2.0], [2.0]])
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    W = torch.tensor([[-1.0], [1.0]])
    b = torch.tensor([0.0, -5.0])
    for bs in (1, 3, 100):
        assert nc_metrics(X, y, W, b, batch_size=bs)["nc4"] == 3 / 8
    # Without bias the classifier boundary is at 0 too: full agreement.
    assert nc_metrics(X, y, W)["nc4"] == 0.0
    # With b = [0, 5] the classifier says 1 iff h > -2.5: the class-0 samples -2, -1, -2 disagree.
    assert nc_metrics(X, y, W, torch.tensor([0.0, 5.0]))["nc4"] == 3 / 8
    # Huge bias toward class 0: every class-1 sample disagrees.
    assert nc_metrics(X, y, W, torch.tensor([100.0, 0.0]))["nc4"] == 4 / 8

    # The second-pass accumulator directly, batches in any order, labels not needed.
    means = torch.tensor([[-2.0], [2.0]], dtype=torch.float64)
    acc = NC4Accumulator(means, W, b)
    assert np.isnan(acc.value())
    acc.update(X[5:])
    acc.update(X[:5])
    assert acc.mismatches == 3 and acc.total == 8
    assert acc.value() == 3 / 8


# ---------------------------------------------------------------------------
# 6. Bad input.

def _good():
    X, y, W, b = make_random(30, 4, 3, seed=0)  # K != d, so W.T has the wrong shape
    return torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b)


def test_invalid_parameter_error_is_value_error():
    assert issubclass(InvalidParameterError, ValueError)
    assert ufm.InvalidParameterError is InvalidParameterError


def test_labels_out_of_range():
    X, y, W, b = _good()
    bad = y.clone(); bad[4] = 3
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, bad, num_classes=3)
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, bad, W, b, num_classes=3)
    neg = y.clone(); neg[0] = -1
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, neg)
    with pytest.raises(InvalidParameterError, match="'labels'"):
        NCAccumulator(3, 4).update(X, bad)


def test_labels_float():
    X, y, W, b = _good()
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, y.double())
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, y.float(), num_classes=3)
    with pytest.raises(InvalidParameterError, match="'labels'"):
        NCAccumulator(3, 4).update(X, y.float())


def test_labels_wrong_length_or_not_tensor():
    X, y, _, _ = _good()
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, y[:-1], num_classes=3)
    with pytest.raises(InvalidParameterError, match="'labels'"):
        nc_metrics(X, y.numpy(), num_classes=3)


def test_features_not_2d():
    X, y, _, _ = _good()
    with pytest.raises(InvalidParameterError, match="'features'"):
        nc_metrics(X[:, 0], y)
    with pytest.raises(InvalidParameterError, match="'features'"):
        nc_metrics(X.unsqueeze(0), y)
    with pytest.raises(InvalidParameterError, match="'features'"):
        NCAccumulator(3, 4).update(X[:, 0], y)
    with pytest.raises(InvalidParameterError, match="'features'"):
        NCAccumulator(3, 5).update(X, y)  # wrong number of columns


def test_weight_and_bias_wrong_shape():
    X, y, W, b = _good()
    with pytest.raises(InvalidParameterError, match="'weight'"):
        nc_metrics(X, y, W.T)
    with pytest.raises(InvalidParameterError, match="'weight'"):
        nc_metrics(X, y, W[:2])
    with pytest.raises(InvalidParameterError, match="'weight'"):
        nc_metrics(X, y, W[:, :2])
    with pytest.raises(InvalidParameterError, match="'weight'"):
        nc_metrics(X, y, W.reshape(-1))
    with pytest.raises(InvalidParameterError, match="'bias'"):
        nc_metrics(X, y, W, b[:2])


def test_nc1_variant_unknown():
    X, y, _, _ = _good()
    with pytest.raises(InvalidParameterError, match="'nc1_variant'"):
        nc_metrics(X, y, nc1_variant="papyan")
    with pytest.raises(InvalidParameterError, match="'variant'"):
        nc1(torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), 3, variant="raw")


def test_other_scalar_parameters():
    X, y, _, _ = _good()
    with pytest.raises(InvalidParameterError, match="'batch_size'"):
        nc_metrics(X, y, batch_size=0)
    with pytest.raises(InvalidParameterError, match="'num_classes'"):
        nc_metrics(X, torch.zeros_like(y))  # K = 1
    with pytest.raises(InvalidParameterError, match="'num_classes'"):
        NCAccumulator(1, 3)
    with pytest.raises(InvalidParameterError, match="'dim'"):
        NCAccumulator(3, 0)


def test_class_without_samples():
    X, y, W, b = _good()
    with pytest.raises(ValueError, match=r"classes \[3\]"):
        nc_metrics(X, y, num_classes=4)
    y2 = y.clone(); y2[y2 == 1] = 0
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        nc_metrics(X, y2, W, b)


# ---------------------------------------------------------------------------
# 7. NC4 fingerprint check.

def test_nc4_fingerprint_mismatch():
    X, y, W, b = _good()
    acc1 = NCAccumulator(3, 4); acc1.update(X, y)
    acc2 = NCAccumulator(3, 4); acc2.update(X + 1e-3, y)
    st1, st2 = acc1.statistics(), acc2.statistics()
    dec = NC4Accumulator(st1.means, W, b)
    dec.update(X)
    expected = ref_nc4(X.numpy(), st1.means.numpy(), W.numpy(), b.numpy())
    assert dec.value(st1) == expected  # same features: accepted
    assert dec.value() == expected  # no statistics: no check
    with pytest.raises(ValueError, match="means changed"):
        dec.value(st2)


def test_nc4_fingerprint_accepts_same_features_with_float32_accumulator():
    """With NCAccumulator(dtype=float32) the statistics' means are float32; both fingerprints
    hash the float64 view of the means, so value(statistics) of the same features is accepted
    (a regression test: they once hashed different dtypes)."""
    X, y, W, b = _good()
    acc = NCAccumulator(3, 4, dtype=torch.float32)
    acc.update(X, y)
    st = acc.statistics()
    dec = NC4Accumulator(st.means, W, b)
    dec.update(X)
    assert dec.value(st) == dec.value()


def test_nc4_survives_a_large_common_offset():
    """Nearest-center decisions are taken about the mean of the class means, so an offset
    of 1e6 with class separation 0.01 does not turn the expansion into rounding noise."""
    K, d, n = 3, 4, 20
    g = torch.Generator().manual_seed(0)
    means = 0.01 * ufm.simplex_etf(K, d)  # (K, d)
    y = torch.arange(K).repeat_interleave(n)
    X = means[y] + 1e-4 * torch.randn(K * n, d, generator=g, dtype=torch.float64) + 1e6
    W = means.clone()
    b = -(W @ torch.full((d,), 1e6, dtype=torch.float64))  # classifier sees the offset removed
    assert nc_metrics(X, y, W, b)["nc4"] == 0.0


@pytest.mark.parametrize("K, d", [(3, 8), (5, 40), (6, 3), (4, 4)])
def test_nc1_gram_route_equals_the_d_by_d_eigenproblem(K, d):
    g = torch.Generator().manual_seed(K * d)
    X = torch.randn(30 * K, d, generator=g, dtype=torch.float64)
    y = torch.arange(30 * K) % K
    X += 3 * torch.randn(K, d, generator=g, dtype=torch.float64)[y]
    acc = NCAccumulator(K, d)
    acc.update(X, y)
    st = acc.statistics()
    M = st.means - st.global_mean
    direct = nc1(st.sigma_w, st.sigma_b, K)
    gram = nc1(st.sigma_w, st.sigma_b, K, centered_means=M)
    assert float(gram) == pytest.approx(float(direct), rel=1e-10)


@pytest.mark.parametrize("K, d", [(4, 16), (5, 3), (3, 2)])
def test_two_pass_equals_nc_metrics_and_merges_shards_exactly(K, d):
    """TwoPassNC (NC1 from the span of the class means) against nc_metrics (full Sigma_W), in one
    process and as two shards merged with a summing all_reduce."""
    from ufm.metrics.accumulators import TwoPassNC

    g = torch.Generator().manual_seed(K * 10 + d)
    M = 3 * torch.randn(K, d, generator=g, dtype=torch.float64)
    y = torch.arange(211) % K
    X = (M[y] + torch.randn(211, d, generator=g, dtype=torch.float64)).float()
    W, b = torch.randn(K, d, generator=g), torch.randn(K, generator=g)
    ref = nc_metrics(X, y, W, b)
    one = TwoPassNC(K, d, W, b)
    for s in range(0, 211, 50):
        one.update_means(X[s:s + 50], y[s:s + 50])
    one.finish_means()
    for s in range(0, 211, 50):
        one.update_span(X[s:s + 50], y[s:s + 50])
    got = one.measures()
    assert set(got) == set(ref)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-13), key
    # two "processes" (threads) on shards, merged by a summing all_reduce entered by both
    import threading

    barrier, slots = threading.Barrier(2), [None, None]

    def make_reduce(rank):
        def all_reduce(t):
            slots[rank] = t.clone()
            barrier.wait()
            t.copy_(slots[0] + slots[1])
            barrier.wait()
        return all_reduce

    results = [None, None]

    def process(rank, xs, ys):
        acc, reduce = TwoPassNC(K, d, W, b), make_reduce(rank)
        acc.update_means(xs, ys)
        acc.finish_means(reduce)
        acc.update_span(xs, ys)
        results[rank] = acc.measures(reduce)

    threads = [threading.Thread(target=process, args=(0, X[:90], y[:90])),
               threading.Thread(target=process, args=(1, X[90:], y[90:]))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for got in results:
        for key in ref:
            assert got[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-13), key


# ---------------------------------------------------------------------------
# 8. The in-memory path of nc_metrics against the streaming paths and the dense reference.

@pytest.mark.parametrize("N,d,K", [(400, 24, 5), (300, 7, 4), (120, 3, 6), (600, 40, 12)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_memory_and_streaming_paths_equal_the_dense_reference(N, d, K, dtype):
    """nc_metrics (two passes over the tensor in float64 blocks), TwoPassNC fed batches, and the
    one-pass NCAccumulator with an NC4Accumulator pass: every key equal to the dense reference."""
    from ufm.metrics.accumulators import TwoPassNC
    from ufm.metrics.nc import measures

    X, y, W, b = make_random(N, d, K, seed=N + d + K)
    Xt, yt, Wt, bt = (torch.tensor(a) for a in (X, y, W, b))
    Xt, Wt, bt = Xt.to(dtype), Wt.to(dtype), bt.to(dtype)
    ref = ref_metrics(Xt.double().numpy(), y, K, Wt.double().numpy(), bt.double().numpy())
    fast = nc_metrics(Xt, yt, Wt, bt)
    two = TwoPassNC(K, d, Wt, bt, block_rows=5)  # blocks smaller than the batches
    for s in range(0, N, 37):
        two.update_means(Xt[s:s + 37], yt[s:s + 37])
    two.finish_means()
    for s in range(0, N, 37):
        two.update_span(Xt[s:s + 37], yt[s:s + 37])
    one = NCAccumulator(K, d)
    for s in range(0, N, 53):
        one.update(Xt[s:s + 53], yt[s:s + 53])
    st = one.statistics()
    dec = NC4Accumulator(st.means, Wt, bt)
    dec.update(Xt)
    paths = {"nc_metrics": fast, "TwoPassNC": two.measures(), "NCAccumulator": measures(st, Wt, nc4=dec.value(st))}
    for name, got in paths.items():
        assert list(got) == list(ALL_KEYS), name
        for key in ALL_KEYS:
            assert got[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-14), (name, key)
    assert 0 < ref["nc4"] < 1  # the decisions are exercised


def test_in_memory_nc4_decides_ties_as_the_one_pass_path():
    """0/1 features: many samples are exactly equidistant from two class means, so the decisions
    hinge on the lowest-index rule and on the last bit of the means. nc_metrics must take the
    means of the one-pass accumulator and the NC4Accumulator's arithmetic: the same count."""
    g = torch.Generator().manual_seed(3)
    K, d, N = 3, 5, 90
    X = (torch.rand(N, d, generator=g) > 0.5).to(torch.float32)
    y = torch.arange(N) % K
    W = torch.randn(K, d, generator=g)
    for bs in (7, 8192):
        acc = NCAccumulator(K, d)
        for s in range(0, N, bs):
            acc.update(X[s:s + bs], y[s:s + bs])
        st = acc.statistics()
        dec = NC4Accumulator(st.means, W)
        dec.update(X)
        assert nc_metrics(X, y, W, batch_size=bs)["nc4"] == dec.value(st)
    # a classifier that ties everywhere (W = 0, b = 0): argmax picks class 0 for every sample
    zero = nc_metrics(X, y, torch.zeros(K, d))["nc4"]
    means = torch.stack([X[y == k].double().mean(0) for k in range(K)])
    assert zero == ref_nc4(X.double().numpy(), means.numpy(), np.zeros((K, d)), np.zeros(K))


def test_in_memory_path_keeps_the_messages_of_the_one_pass_path():
    X, y, _, _ = _good()
    with pytest.raises(ValueError, match="NCAccumulator.statistics: no batch has been added"):
        nc_metrics(X[:0], y[:0], num_classes=3)
    with pytest.raises(InvalidParameterError, match="'dim' parameter of NCAccumulator"):
        nc_metrics(X[:, :0], y)
    with pytest.raises(ValueError, match=r"NCAccumulator.statistics: classes \[3\] have no samples"):
        nc_metrics(X, y, num_classes=4)
