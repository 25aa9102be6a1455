"""Tests of the named NC conventions (ufm.metrics.conventions) against independent values.

Two kinds of reference, neither calling into ufm:

1. a small unbalanced case (K = 3, d = 2, six features) whose every measure is worked out by
   hand below, as exact fractions and square roots, for each convention;
2. numpy transliterations of each code base's NC code (the neural-collapse notebook that the
   authors of Guo et al. 2025 follow, Papyan et al. 2020, tding1/Neural-Collapse for Zhu et al.
   2021, jinxinzhou/nc_loss for Zhou et al. 2022), on random unbalanced data, through
   ``nc_metrics`` and through the streaming accumulators.
"""
from __future__ import annotations

from math import sqrt

import numpy as np
import pytest
import scipy.linalg as scilin
import torch

from ufm import InvalidParameterError, NCAccumulator, nc_metrics
from ufm.metrics.accumulators import NC4Accumulator, TwoPassNC
from ufm.metrics.conventions import CONVENTION_NAMES, CONVENTIONS
from ufm.metrics.nc import measures

NAMES = ("ufm", "guo2025", "zhu2021", "zhou2022", "papyan2020")
ALL_KEYS = ("nc1", "nc2_h", "nc2_h_equinorm", "nc2_h_equiangular",
            "nc2_w", "nc2_w_equinorm", "nc2_w_equiangular", "nc3", "nc4")


# ---------------------------------------------------------------------------
# 1. The hand-computed case.
#
# class 0: (3, 1), (3, -1), (3, 0)   mean (3, 0)    deviations (0, 1), (0, -1), (0, 0)
# class 1: (0, 3)                    mean (0, 3)    deviation 0
# class 2: (0, -2), (0, -4)          mean (0, -3)   deviations (0, 1), (0, -1)
# N = 6, Sigma_W = diag(0, 4)/6 = diag(0, 2/3).
#
# Mean of the class means (1, 0): M = (2, 0), (-1, 3), (-1, -3); Sigma_B = M^T M / 3 = diag(2, 6);
#   tr(Sigma_W Sigma_B^+) = (2/3)(1/6) = 1/9.
# Mean over the samples (9, -3)/6 = (3/2, -1/2): M' = (3/2, 1/2), (-3/2, 7/2), (-3/2, -5/2);
#   Sigma_B' = [[9/4, -1/4], [-1/4, 25/4]], det 14, (Sigma_B')^-1 = [[25/4, 1/4], [1/4, 9/4]] / 14;
#   tr(Sigma_W Sigma_B'^-1) = (2/3)(9/4)/14 = 3/28.
# W = (3, 0), (0, 2), (0, -2) (row mean (1, 0); centred Wc = (2, 0), (-1, 2), (-1, -2)), b = (5, 0, 0).
#
# With E = (I - 11^T/3)/sqrt(2) (||E||_F = 1, <A, E> = (tr A - sum A / 3)/sqrt(2)), every
# distance || A/||A||_F - B ||_F with ||B||_F = 1 is sqrt(2 - 2 <A, B>/||A||_F):
# * nc2_h:  G = M M^T, ||G||^2 = 360, tr 24, sum 0            -> sqrt(2 - 48/sqrt(720));
#           G' = M' M'^T, ||G'||^2 = 398.25, tr 25.5, sum 4.5  -> sqrt(2 - 48/sqrt(796.5));
# * nc2_w:  W W^T, ||.||^2 = 145, tr 17, sum 9                 -> sqrt(2 - 28/sqrt(290));
#           Wc Wc^T, ||.||^2 = 100, tr 14, sum 0               -> sqrt(2 - 28/sqrt(200));
# * nc3 (difference): ||W||^2 = 17, ||M||^2 = 24, <W, M> = 18 -> squared 2 - 36/sqrt(408);
#           with M': ||M'||^2 = 25.5, <W, M'> = 16.5           -> squared 2 - 33/sqrt(433.5);
# * nc3 (product): W M'^T = [[9/2, -9/2, -9/2], [1, 7, -5], [-1, -7, 5]], ||.||^2 = 210.75,
#           tr 16.5, sum -4.5                                    -> sqrt(2 - 36/sqrt(421.5));
#           Wc M'^T = [[3, -3, -3], [-1/2, 17/2, -7/2], [-5/2, -11/2, 13/2]], ||.||^2 = 190.5,
#           tr 18, sum 0                                         -> sqrt(2 - 36/sqrt(381));
# * nc2_w_equinorm: norms 3, 2, 2, mean 7/3; population std sqrt(2)/3 -> sqrt(2)/7,
#           sample std 1/sqrt(3) -> sqrt(3)/7;
# * nc2_h_equinorm: norms 2, sqrt(10), sqrt(10) (mean a = (2 + 2 sqrt(10))/3, population variance
#           ((2 - a)^2 + 2 (sqrt(10) - a)^2)/3 = 2 (sqrt(10) - 2)^2 / 9, written out below);
#           with M': norms sqrt(5/2), sqrt(29/2), sqrt(17/2);
# * nc2_w_equiangular: cosines 0, 0, -1 -> |0 + 1/2|, |0 + 1/2|, |-1 + 1/2| -> 1/2;
# * nc2_h_equiangular: cosines -1/sqrt(10) (twice), -4/5; with M': cos_jk = G'_jk/sqrt(G'_jj G'_kk);
# * nc4: the NCC decisions 0, 0, 0, 1, 2, 2; argmax(W h + b) 0, 0, 0, 1, 0, 2 -> 1/6.

HAND_X = [(3, 1), (3, -1), (3, 0), (0, 3), (0, -2), (0, -4)]
HAND_Y = [0, 0, 0, 1, 2, 2]
HAND_W = [(3, 0), (0, 2), (0, -2)]
HAND_B = [5, 0, 0]


def _cv(norms, ddof):
    n = np.asarray(norms, dtype=np.float64)
    return sqrt(((n - n.mean()) ** 2).sum() / (len(n) - ddof)) / n.mean()


def _equiangular(G):
    K = len(G)
    return sum(abs(G[j][k] / sqrt(G[j][j] * G[k][k]) + 1 / (K - 1))
               for j in range(K) for k in range(K) if j != k) / (K * (K - 1))


_G = [[4, -2, -2], [-2, 10, -8], [-2, -8, 10]]  # M M^T
_GS = [[2.5, -0.5, -3.5], [-0.5, 14.5, -6.5], [-3.5, -6.5, 8.5]]  # M' M'^T
_H_CLASS = {"nc2_h": sqrt(2 - 48 / sqrt(720)), "nc2_h_equiangular": _equiangular(_G),
            "nc2_h_equinorm": (sqrt(2 * (sqrt(10) - 2) ** 2 / 9), [2, sqrt(10), sqrt(10)])}
_H_SAMPLES = {"nc2_h": sqrt(2 - 48 / sqrt(796.5)), "nc2_h_equiangular": _equiangular(_GS),
              "nc2_h_equinorm": (None, [sqrt(2.5), sqrt(14.5), sqrt(8.5)])}


def hand_expected(name):
    """The hand-computed values of the case above under convention ``name``."""
    samples = name in ("zhu2021", "zhou2022", "papyan2020")
    ddof = 1 if name in ("guo2025", "papyan2020") else 0
    trace = 3 / 28 if samples else 1 / 9
    h = _H_SAMPLES if samples else _H_CLASS
    pop_std, h_norms = h["nc2_h_equinorm"]
    out = {"nc1": trace if name == "guo2025" else trace / 3,
           "nc2_h": h["nc2_h"], "nc2_h_equiangular": h["nc2_h_equiangular"],
           "nc2_h_equinorm": _cv(h_norms, ddof),
           "nc2_w": sqrt(2 - 28 / sqrt(200)) if name == "zhou2022" else sqrt(2 - 28 / sqrt(290)),
           "nc2_w_equinorm": sqrt(3) / 7 if ddof else sqrt(2) / 7,
           "nc2_w_equiangular": 0.5, "nc4": 1 / 6}
    if pop_std is not None and not ddof:  # the closed form of the population std, as a check on _cv
        assert _cv(h_norms, 0) == pytest.approx(pop_std / ((2 + 2 * sqrt(10)) / 3), rel=1e-14)
    out["nc3"] = {"ufm": sqrt(2 - 36 / sqrt(408)), "guo2025": 2 - 36 / sqrt(408),
                  "papyan2020": 2 - 33 / sqrt(433.5), "zhu2021": sqrt(2 - 36 / sqrt(421.5)),
                  "zhou2022": sqrt(2 - 36 / sqrt(381))}[name]
    return out


def _hand_tensors(dtype=torch.float64):
    return (torch.tensor(HAND_X, dtype=dtype), torch.tensor(HAND_Y), torch.tensor(HAND_W, dtype=dtype),
            torch.tensor(HAND_B, dtype=dtype))


@pytest.mark.parametrize("name", NAMES)
def test_hand_computed_case(name):
    X, y, W, b = _hand_tensors()
    out = nc_metrics(X, y, W, b, convention=name)
    expected = hand_expected(name)
    assert set(out) == set(ALL_KEYS)
    for key in ALL_KEYS:
        assert isinstance(out[key], float)
        assert out[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), (name, key)


def test_hand_case_conventions_differ_where_documented():
    """The numbers of the issue's kind: the same names, different values (and NC1 = 1/27 vs 1/28)."""
    X, y, W, b = _hand_tensors()
    out = {name: nc_metrics(X, y, W, b, convention=name) for name in NAMES}
    assert out["ufm"]["nc1"] == pytest.approx(1 / 27, rel=1e-13)
    assert out["zhu2021"]["nc1"] == pytest.approx(1 / 28, rel=1e-13)
    assert out["guo2025"]["nc1"] == pytest.approx(3 * out["ufm"]["nc1"], rel=1e-13)
    assert out["guo2025"]["nc3"] == pytest.approx(out["ufm"]["nc3"] ** 2, rel=1e-13)
    assert out["guo2025"]["nc2_w_equinorm"] == pytest.approx(out["ufm"]["nc2_w_equinorm"] * sqrt(3 / 2), rel=1e-13)
    assert out["zhou2022"]["nc2_w"] != pytest.approx(out["zhu2021"]["nc2_w"], rel=1e-3)


def test_default_is_ufm_bit_for_bit():
    X, y, W, b = _hand_tensors()
    assert nc_metrics(X, y, W, b) == nc_metrics(X, y, W, b, convention="ufm")
    Xr, yr, Wr, br = (torch.tensor(a) for a in make_random(60, 5, 4, seed=3))
    assert nc_metrics(Xr, yr, Wr, br, batch_size=7) == nc_metrics(Xr, yr, Wr, br, batch_size=7, convention="ufm")


# ---------------------------------------------------------------------------
# 2. Transliterations of each code base (numpy, float64), on random unbalanced data.

def _class_stats(X, y, K):
    means = np.stack([X[y == k].mean(0) for k in range(K)])  # (K, d)
    Sw = sum((X[y == k] - means[k]).T @ (X[y == k] - means[k]) for k in range(K)) / len(X)
    return means, Sw


def _ncc_mismatch(X, means, W, b):
    ncc = np.array([np.argmin([np.linalg.norm(h - m) for m in means]) for h in X])
    return float(np.mean(ncc != np.argmax(X @ W.T + b, axis=1)))


def _etf_distance(A, K):
    sub = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
    return float(np.linalg.norm(A / np.linalg.norm(A, "fro") - sub, "fro"))


def ref_notebook(X, y, K, W, b, *, sample_mean, per_class):
    """The neural-collapse notebook (Han, Papyan and Donoho), which the authors of Guo et al. 2025
    follow: M (d, K); Sb = M_ M_^T / C; inv_Sb from the top C-1 singular pairs of Sb; Tr(Sw inv_Sb);
    torch.std (unbiased) CoV of the norms; coherence; ||W^T/||W|| - M_/||M_||||^2; NCC mismatch.
    Papyan et al. 2020 (the paper): mu_G over the samples and NC1 with 1/C."""
    means, Sw = _class_stats(X, y, K)
    M = means.T  # (d, K)
    muG = X.mean(0, keepdims=True).T if sample_mean else M.mean(1, keepdims=True)  # (d, 1)
    M_ = M - muG
    Sb = M_ @ M_.T / K
    U, S, _ = np.linalg.svd(Sb)
    eigvec, eigval = U[:, :K - 1], S[:K - 1]
    inv_Sb = eigvec @ np.diag(eigval ** -1) @ eigvec.T
    nc1 = np.trace(Sw @ inv_Sb) / (K if per_class else 1)

    def coherence(V):
        G = V.T @ V + np.ones((K, K)) / (K - 1)
        G -= np.diag(np.diag(G))
        return np.abs(G).sum() / (K * (K - 1))

    M_norms, W_norms = np.linalg.norm(M_, axis=0), np.linalg.norm(W.T, axis=0)
    return {"nc1": nc1, "nc2_h_equinorm": np.std(M_norms, ddof=1) / np.mean(M_norms),
            "nc2_w_equinorm": np.std(W_norms, ddof=1) / np.mean(W_norms),
            "nc2_h_equiangular": coherence(M_ / M_norms), "nc2_w_equiangular": coherence(W.T / W_norms),
            "nc3": np.linalg.norm(W.T / np.linalg.norm(W.T) - M_ / np.linalg.norm(M_)) ** 2,
            "nc4": _ncc_mismatch(X, means, W, b)}


def ref_zhu_zhou(X, y, K, W, b, *, center_w):
    """tding1/Neural-Collapse (Zhu et al. 2021; validate_NC.py, plot.py) and, with ``center_w``,
    jinxinzhou/nc_loss (Zhou et al. 2022; evaluate.py): mu_G = sum of the features / N;
    trace(Sigma_W pinv(Sigma_B)) / K with scipy's pinv; ETF distance of W W^T; || W H/||W H|| - ETF ||."""
    means, Sw = _class_stats(X, y, K)
    mu_G = X.sum(0) / len(X)
    Sb = sum(np.outer(means[k] - mu_G, means[k] - mu_G) for k in range(K)) / K
    H = (means - mu_G).T  # (d, K)
    Wm = W - W.mean(0, keepdims=True) if center_w else W
    return {"nc1": np.trace(Sw @ scilin.pinv(Sb)) / K, "nc2_w": _etf_distance(Wm @ Wm.T, K),
            "nc3": _etf_distance(Wm @ H, K), "nc2_h": _etf_distance(H.T @ H, K),
            "nc4": _ncc_mismatch(X, means, W, b)}


REFERENCES = {
    "guo2025": lambda X, y, K, W, b: ref_notebook(X, y, K, W, b, sample_mean=False, per_class=False),
    "papyan2020": lambda X, y, K, W, b: ref_notebook(X, y, K, W, b, sample_mean=True, per_class=True),
    "zhu2021": lambda X, y, K, W, b: ref_zhu_zhou(X, y, K, W, b, center_w=False),
    "zhou2022": lambda X, y, K, W, b: ref_zhu_zhou(X, y, K, W, b, center_w=True),
}


def make_random(N, d, K, seed):
    """Unbalanced features (every class present, class 0 about a third), classifier and bias."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(N) < 0.35, 0, rng.integers(0, K, N))
    y[:K] = np.arange(K)
    X = 2.0 * rng.standard_normal((K, d))[y] + rng.standard_normal((N, d)) + 0.7
    return X, y, rng.standard_normal((K, d)) + 0.4, 0.3 * rng.standard_normal(K)


CASES = [(120, 3, 4), (90, 6, 3), (40, 12, 5), (60, 2, 4)]  # d >= K - 1, d > K, d < K - 1


# the notebook's svds(Sb, k=C-1) needs C-1 <= d: the case d < K - 1 is for Zhu's and Zhou's pinv only
CODE_CASES = [(name, *case) for name in sorted(REFERENCES) for case in CASES
              if case[1] >= case[2] - 1 or name in ("zhu2021", "zhou2022")]


@pytest.mark.parametrize("name,N,d,K", CODE_CASES)
def test_matches_the_code_base(name, N, d, K):
    X, y, W, b = make_random(N, d, K, seed=N + d + K)
    assert len(set(np.bincount(y, minlength=K))) > 1  # unbalanced: the global means differ
    ref = REFERENCES[name](X, y, K, W, b)
    out = nc_metrics(torch.tensor(X), torch.tensor(y), torch.tensor(W), torch.tensor(b), convention=name,
                     batch_size=17)
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, rel=1e-9, abs=1e-13), (name, key)


@pytest.mark.parametrize("name", NAMES)
def test_streaming_gives_the_same_convention(name):
    """TwoPassNC fed in batches, and NCAccumulator + measures, give nc_metrics' numbers."""
    X, y, W, b = (torch.tensor(a) for a in make_random(150, 5, 4, seed=11))
    expected = nc_metrics(X, y, W, b, convention=name)
    two = TwoPassNC(4, 5, W, b, convention=name)
    for s in range(0, 150, 40):
        two.update_means(X[s:s + 40], y[s:s + 40])
    two.finish_means()
    for s in range(0, 150, 40):
        two.update_span(X[s:s + 40], y[s:s + 40])
    one = NCAccumulator(4, 5)
    for s in range(0, 150, 40):
        one.update(X[s:s + 40], y[s:s + 40])
    st = one.statistics()
    nc4 = NC4Accumulator(st.means, W, b)
    nc4.update(X)
    for got in (two.measures(), measures(st, W, nc4=nc4.value(st), convention=name)):
        assert set(got) == set(expected)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-10, abs=1e-14), (name, key)


def test_balanced_data_the_global_means_agree():
    """On balanced classes the two global means coincide: zhu2021's nc1 and nc2_h are ufm's, and
    papyan2020 is guo2025 with the 1/K."""
    rng = np.random.default_rng(5)
    K, d, n = 4, 5, 7
    y = np.repeat(np.arange(K), n)
    X = 2 * rng.standard_normal((K, d))[y] + rng.standard_normal((K * n, d))
    W, b = rng.standard_normal((K, d)), np.zeros(K)
    t = [torch.tensor(a) for a in (X, y, W, b)]
    out = {name: nc_metrics(*t, convention=name) for name in NAMES}
    for key in ("nc1", "nc2_h", "nc2_h_equinorm", "nc2_h_equiangular"):
        assert out["zhu2021"][key] == pytest.approx(out["ufm"][key], rel=1e-12)
    assert out["papyan2020"]["nc1"] == pytest.approx(out["guo2025"]["nc1"] / K, rel=1e-12)
    for key in ALL_KEYS[1:]:
        assert out["papyan2020"][key] == pytest.approx(out["guo2025"][key], rel=1e-12)


# ---------------------------------------------------------------------------
# 3. The registry and validation.

def test_every_convention_is_documented():
    assert CONVENTION_NAMES == NAMES
    for name, c in CONVENTIONS.items():
        assert c.name == name and len(c.reference) > 40 and any(str(y) in c.reference for y in range(2020, 2026))
        assert c.global_mean in ("class means", "samples") and c.equinorm_correction in (0, 1)
        assert c.nc3 in ("difference", "squared difference", "product")
        assert isinstance(c.nc1_per_class, bool) and isinstance(c.center_w, bool)


@pytest.mark.parametrize("call", [
    lambda c: nc_metrics(*_hand_tensors(), convention=c),
    lambda c: TwoPassNC(3, 2, None, convention=c),
    lambda c: measures(_hand_statistics(), convention=c),
], ids=["nc_metrics", "TwoPassNC", "measures"])
@pytest.mark.parametrize("bad", ["zhu", "UFM", 3, None])
def test_unknown_convention_is_refused(call, bad):
    with pytest.raises(InvalidParameterError) as e:
        call(bad)
    msg = str(e.value)
    assert e.value.param == "convention" and "'convention'" in msg and repr(bad) in msg
    for name in NAMES:
        assert repr(name) in msg


def _hand_statistics():
    acc = NCAccumulator(3, 2)
    X, y, _, _ = _hand_tensors()
    acc.update(X, y)
    return acc.statistics()


def test_nc_metrics_declares_the_constraint():
    assert set(nc_metrics.constraints["convention"].names) == set(NAMES)


@pytest.mark.parametrize("name", NAMES[1:])
def test_unnormalized_variant_only_with_ufm(name):
    X, y, W, b = _hand_tensors()
    with pytest.raises(InvalidParameterError, match="'nc1_variant' parameter of nc_metrics must be 'normalized' "
                                                    f"with convention '{name}'"):
        nc_metrics(X, y, W, b, convention=name, nc1_variant="unnormalized")
    two = TwoPassNC(3, 2, W, b, convention=name)
    two.update_means(X, y)
    two.finish_means()
    two.update_span(X, y)
    with pytest.raises(InvalidParameterError, match="'nc1_variant'"):
        two.measures(nc1_variant="unnormalized")
    assert nc_metrics(X, y, W, b, convention="ufm", nc1_variant="unnormalized")["nc1"] == pytest.approx(1 / 9)
