"""Tests of ufm.metrics.calibration against independent references.

The references below are written out directly from the conventions of the module
docstring of ufm/metrics/calibration.py: a softmax per row with ``math.exp``, bins
found by comparing against j/B in a Python loop, equal-mass groups from a sorted
index list, and the NLL with numpy's log-sum-exp. None of them calls into the module.
"""
from __future__ import annotations

import ast
import math
import pathlib
import warnings

import numpy as np
import pytest
import torch

from ufm import InvalidParameterError
from ufm.metrics import calibration
from ufm.metrics.calibration import (TemperatureAtBoundWarning, adaptive_ece, calibration_summary, ece,
                                     fit_temperature, nll, reliability_bins)


# ---------------------------------------------------------------------------
# Independent references (plain Python loops / numpy, float64).

def ref_confidence_correct(logits, labels, T=1.0):
    """Top-label confidence and 0/1 correctness, one row at a time."""
    confs, corrects = [], []
    for row, y in zip(np.asarray(logits, dtype=np.float64).tolist(), np.asarray(labels).tolist()):
        m = max(row)
        e = [math.exp((v - m) / T) for v in row]
        total = sum(e)
        confs.append(max(x / total for x in e))
        pred = row.index(m)  # first index of the maximum
        corrects.append(1.0 if pred == y else 0.0)
    return confs, corrects


def ref_groups_equal_width(confs, B):
    """Indices in each bin: [0, 1/B] for j = 0, (j/B, (j+1)/B] for j >= 1."""
    groups = [[] for _ in range(B)]
    for i, c in enumerate(confs):
        for j in range(B):
            lo, hi = j / B, (j + 1) / B
            if (j == 0 and c <= hi) or lo < c <= hi:
                groups[j].append(i)
                break
    return groups


def ref_groups_equal_mass(confs, B):
    """Sorted by confidence (stable), cut into B runs of sizes q+1 (the first r) and q."""
    order = sorted(range(len(confs)), key=lambda i: confs[i])
    q, r = divmod(len(confs), B)
    groups, start = [], 0
    for j in range(B):
        size = q + (1 if j < r else 0)
        groups.append(order[start:start + size])
        start += size
    return groups


def ref_ece(confs, corrects, groups):
    N = len(confs)
    total = 0.0
    for g in groups:
        if g:
            acc = sum(corrects[i] for i in g) / len(g)
            conf = sum(confs[i] for i in g) / len(g)
            total += len(g) / N * abs(acc - conf)
    return total


def ref_nll(logits, labels, T=1.0):
    s = np.asarray(logits, dtype=np.float64) / T
    m = s.max(axis=1)
    lse = m + np.log(np.exp(s - m[:, None]).sum(axis=1))
    return float(np.mean(lse - s[np.arange(len(s)), labels]))


def sample_labels(logits, rng):
    """Labels drawn from softmax(logits), so that the logits are perfectly calibrated."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(z))
    return np.minimum((u[:, None] > np.cumsum(p, axis=1)).sum(axis=1), z.shape[1] - 1)


def random_problem(N=400, K=5, scale=2.0, seed=0):
    """Random logits with labels drawn from their softmax (so a fitted T is near 1, inside the bounds)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, K)) * scale
    return z, sample_labels(z, rng)


# ---------------------------------------------------------------------------
# Values against the references.

@pytest.mark.parametrize("T", [1.0, 0.7, 2.5])
@pytest.mark.parametrize("B", [1, 4, 15])
def test_ece_and_adaptive_ece_match_loop_reference(B, T):
    z, y = random_problem(N=333, seed=B)
    confs, corrects = ref_confidence_correct(z, y, T)
    want = ref_ece(confs, corrects, ref_groups_equal_width(confs, B))
    want_adaptive = ref_ece(confs, corrects, ref_groups_equal_mass(confs, B))
    assert ece(z, y, B, temperature=T) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert adaptive_ece(z, y, B, temperature=T) == pytest.approx(want_adaptive, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("N", [7, 500])  # N = 7 < B leaves bins empty in both schemes
def test_reliability_bins_match_loop_reference(adaptive, N):
    B, T = 10, 1.3
    z, y = random_problem(N=N, seed=N)
    confs, corrects = ref_confidence_correct(z, y, T)
    groups = (ref_groups_equal_mass if adaptive else ref_groups_equal_width)(confs, B)
    bins = reliability_bins(z, y, B, adaptive=adaptive, temperature=T)
    assert sorted(bins) == ["accuracy", "confidence", "count", "lower", "upper"]
    assert all(isinstance(v, np.ndarray) and v.shape == (B,) for v in bins.values())
    for j, g in enumerate(groups):
        assert bins["count"][j] == len(g)
        if g:
            assert bins["confidence"][j] == pytest.approx(sum(confs[i] for i in g) / len(g), rel=1e-12)
            assert bins["accuracy"][j] == pytest.approx(sum(corrects[i] for i in g) / len(g), rel=1e-12)
        else:
            assert np.isnan(bins["confidence"][j]) and np.isnan(bins["accuracy"][j])
        if adaptive:
            lo, hi = (min(confs[i] for i in g), max(confs[i] for i in g)) if g else (np.nan, np.nan)
        else:
            lo, hi = j / B, (j + 1) / B
        np.testing.assert_allclose([bins["lower"][j], bins["upper"][j]], [lo, hi], rtol=1e-12)


def test_tiny_case_by_hand():
    # Four samples, K = 2, logits (log c, log(1 - c)) so that the confidence is c:
    #   c = 0.90 correct, c = 0.85 wrong, c = 0.70 correct, c = 0.65 correct.
    c = np.array([0.90, 0.85, 0.70, 0.65])
    z = np.log(np.stack([c, 1 - c], axis=1))  # (4, 2), argmax = class 0
    y = np.array([0, 1, 0, 0])
    # 5 equal-width bins: (0.8, 1] holds 0.90 and 0.85 -> acc 1/2, conf 0.875, gap 0.375;
    # (0.6, 0.8] holds 0.70 and 0.65 -> acc 1, conf 0.675, gap 0.325;
    # ECE = 2/4 * 0.375 + 2/4 * 0.325 = 0.1875 + 0.1625 = 0.35.
    assert ece(z, y, n_bins=5) == pytest.approx(0.35, rel=1e-12)
    # 2 equal-mass bins are the same two pairs: 0.35 again.
    assert adaptive_ece(z, y, n_bins=2) == pytest.approx(0.35, rel=1e-12)
    # 4 equal-mass bins of one sample each: (|1 - 0.65| + |1 - 0.70| + |0 - 0.85| + |1 - 0.90|) / 4
    #   = (0.35 + 0.30 + 0.85 + 0.10) / 4 = 1.6 / 4 = 0.4.
    assert adaptive_ece(z, y, n_bins=4) == pytest.approx(0.4, rel=1e-12)
    # NLL = -(ln 0.90 + ln 0.15 + ln 0.70 + ln 0.65) / 4
    #     = (0.1053605 + 1.8971200 + 0.3566749 + 0.4307829) / 4 = 0.6974846 (7 digits).
    assert nll(z, y) == pytest.approx(0.6974846, abs=1e-7)
    assert nll(z, y) == pytest.approx(-(math.log(0.9) + math.log(0.15) + math.log(0.7) + math.log(0.65)) / 4,
                                      rel=1e-12)
    bins = reliability_bins(z, y, n_bins=5)
    assert bins["count"].tolist() == [0, 0, 0, 2, 2]
    np.testing.assert_allclose(bins["accuracy"][3:], [1.0, 0.5])
    np.testing.assert_allclose(bins["confidence"][3:], [0.675, 0.875], rtol=1e-12)


def test_confidence_on_a_bin_edge_goes_to_the_lower_bin():
    # K = 5 equal logits: c = 1/5 = 0.2 exactly, the upper edge of bin 0 = [0, 0.2] of 5 bins.
    bins = reliability_bins(np.zeros((1, 5)), np.array([2]), n_bins=5)
    assert bins["confidence"][0] == 0.2 and bins["upper"][0] == 0.2
    assert bins["count"].tolist() == [1, 0, 0, 0, 0]
    assert reliability_bins(np.zeros((3, 5)), np.array([0, 1, 2]), n_bins=5)["count"].tolist() == [3, 0, 0, 0, 0]
    # K = 2 equal logits: c = 0.5 = 2/4 is the upper edge of bin 1 = (0.25, 0.5] of 4 bins.
    assert reliability_bins(np.zeros((2, 2)), np.array([0, 1]), n_bins=4)["count"].tolist() == [0, 2, 0, 0]
    # c = 1 exactly (exp(-1000) underflows to 0) is in the last bin (14/15, 1].
    bins = reliability_bins(np.array([[0.0, -1000.0]]), np.array([0]))
    assert bins["confidence"][-1] == 1.0 and bins["count"][-1] == 1
    # Ties in the logits: the prediction is the first maximal class (as torch.argmax).
    tied = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert np.nansum(reliability_bins(tied, np.array([0, 0]))["accuracy"]) == 1.0
    assert np.nansum(reliability_bins(tied, np.array([1, 1]))["accuracy"]) == 0.0


def test_large_logits_are_stable():
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]])
    y = np.array([1, 2])
    # -log softmax: row 0 = 1000 + log(1 + e^-1000 + e^-2000) = 1000; row 1 = 1 + log(1 + e^-1).
    assert nll(z, y) == pytest.approx((1000.0 + 1.0 + math.log1p(math.exp(-1.0))) / 2, rel=1e-14)
    assert math.isfinite(ece(z, y)) and math.isfinite(adaptive_ece(z, y))
    # A confident, correct row keeps its tiny loss: -log(1/(1 + e^-40)) = log1p(e^-40).
    assert nll(np.array([[40.0, 0.0]]), np.array([0])) == pytest.approx(math.exp(-40.0), rel=1e-12)


# ---------------------------------------------------------------------------
# Synthetic calibrated and over-confident models.

@pytest.fixture(scope="module")
def calibrated_data():
    """200k samples, K = 3, labels drawn from softmax(z): a perfectly calibrated model."""
    rng = np.random.default_rng(1234)
    z = rng.normal(size=(200_000, 3)) * 2.0
    return z, sample_labels(z, rng)


def test_calibrated_model_has_small_ece(calibrated_data):
    z, y = calibrated_data
    # Sampling noise only: about 0.5 sqrt(B / N) = 0.004; measured 0.0018 (ECE) and 0.0027 (adaptive).
    assert ece(z, y) < 0.01
    assert adaptive_ece(z, y) < 0.01


def test_overconfident_model_has_large_ece(calibrated_data):
    z, y = calibrated_data
    # Logits x 5 keep every prediction but push the confidences toward 1; measured 0.20 for both.
    assert ece(5 * z, y) > 0.15
    assert adaptive_ece(5 * z, y) > 0.15
    # Dividing by the known factor undoes it exactly.
    assert ece(5 * z, y, temperature=5.0) == pytest.approx(ece(z, y), abs=1e-12)


@pytest.fixture(scope="module")
def overconfident_data():
    """50k samples, K = 5, labels drawn from softmax(z), logits returned as 3 z (T* = 3)."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(50_000, 5)) * 1.5
    return 3.0 * z, sample_labels(z, rng)


def test_fit_temperature_recovers_the_known_factor(overconfident_data):
    z, y = overconfident_data
    T = fit_temperature(z, y)
    assert isinstance(T, float)
    # Measured 3.009 here, 2.95 to 3.03 over seeds 0-4 at 50k samples (within 2%); asserted within 5%.
    assert T == pytest.approx(3.0, rel=0.05)


def test_fitted_temperature_minimizes_nll(overconfident_data):
    z, y = overconfident_data
    T = fit_temperature(z, y)
    f = ref_nll(z, y, T)
    for other in (T * (1 - 1e-3), T * (1 + 1e-3), 1.0):
        assert f <= ref_nll(z, y, other)
    assert nll(z, y, temperature=T) == pytest.approx(f, rel=1e-12)


def test_temperature_scaling_helps_on_held_out_split(overconfident_data):
    z, y = overconfident_data
    val, test = slice(0, 25_000), slice(25_000, None)
    T = fit_temperature(z[val], y[val])
    assert ref_nll(z[test], y[test], T) < ref_nll(z[test], y[test], 1.0) - 0.1
    summary = calibration_summary(z[test], y[test], val_logits=z[val], val_labels=y[val])
    assert summary["temperature"] == T
    assert summary["nll_ts"] == pytest.approx(ref_nll(z[test], y[test], T), rel=1e-12)
    assert summary["ece_ts"] < summary["ece"] / 5


def test_fit_temperature_at_a_bound_warns():
    # Separable validation data: the NLL keeps decreasing as T -> 0, so the lower bound wins.
    z, y = np.array([[5.0, 0.0], [0.0, 5.0]]), np.array([0, 1])
    with pytest.warns(TemperatureAtBoundWarning, match="at an end of bounds"):
        assert fit_temperature(z, y, bounds=(0.1, 10.0)) == 0.1
    # An interior minimizer: no warning.
    z, y = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]), np.array([0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        T = fit_temperature(z, y)
    # Two correct rows and one wrong, all with margin a = 2/T: NLL = (2 log(1 + e^-a) + log(1 + e^a)) / 3,
    # stationary where 2 sigma(-a) = sigma(a), i.e. e^a = 2: T = 2 / ln 2 = 2.8854.
    assert T == pytest.approx(2.0 / math.log(2.0), rel=1e-7)


# ---------------------------------------------------------------------------
# Bins, summary, input kinds.

@pytest.mark.parametrize("N", [1, 14, 15, 16, 1000])
def test_bin_counts(N):
    z, y = random_problem(N=N, seed=N)
    for adaptive in (False, True):
        count = reliability_bins(z, y, 15, adaptive=adaptive)["count"]
        assert count.dtype == np.int64 and count.sum() == N
    count = reliability_bins(z, y, 15, adaptive=True)["count"]
    assert count.max() - count.min() <= 1


def test_summary_keys_and_values():
    z, y = random_problem(N=300, seed=3)
    confs, corrects = ref_confidence_correct(z, y)
    s = calibration_summary(z, y, n_bins=10)
    assert sorted(s) == ["adaptive_ece", "ece", "nll"]
    assert all(type(v) is float for v in s.values())
    assert s["ece"] == pytest.approx(ref_ece(confs, corrects, ref_groups_equal_width(confs, 10)), rel=1e-12)
    assert s["adaptive_ece"] == pytest.approx(ref_ece(confs, corrects, ref_groups_equal_mass(confs, 10)), rel=1e-12)
    assert s["nll"] == pytest.approx(ref_nll(z, y), rel=1e-12)
    zv, yv = random_problem(N=200, seed=4)
    s = calibration_summary(z, y, val_logits=zv, val_labels=yv, n_bins=10)
    assert sorted(s) == ["adaptive_ece", "adaptive_ece_ts", "ece", "ece_ts", "nll", "nll_ts", "temperature"]
    assert all(type(v) is float for v in s.values())
    T = s["temperature"]
    confs, corrects = ref_confidence_correct(z, y, T)
    assert s["ece_ts"] == pytest.approx(ref_ece(confs, corrects, ref_groups_equal_width(confs, 10)), rel=1e-12)
    assert s["adaptive_ece_ts"] == pytest.approx(ref_ece(confs, corrects, ref_groups_equal_mass(confs, 10)),
                                                 rel=1e-12)
    assert s["nll_ts"] == pytest.approx(ref_nll(z, y, T), rel=1e-12)


def test_return_types():
    z, y = random_problem(N=50)
    for value in (ece(z, y), adaptive_ece(z, y), nll(z, y), fit_temperature(z, y)):
        assert type(value) is float


def test_torch_and_numpy_inputs_agree():
    z, y = random_problem(N=500, seed=11)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    assert ece(zt, yt) == ece(z, y)
    assert adaptive_ece(zt, yt, temperature=1.5) == adaptive_ece(z, y, temperature=1.5)
    assert nll(zt, yt) == nll(z, y)
    assert fit_temperature(zt, yt) == fit_temperature(z, y)
    assert calibration_summary(zt, yt, val_logits=zt, val_labels=yt) == \
        calibration_summary(z, y, val_logits=z, val_labels=y)
    for key, value in reliability_bins(zt, yt, adaptive=True).items():
        np.testing.assert_array_equal(value, reliability_bins(z, y, adaptive=True)[key])
    # int32 labels and a list of lists are accepted too
    assert ece(z.tolist(), y.astype(np.int32)) == ece(z, y)


def test_float32_logits_match_float64():
    z, y = random_problem(N=2000, seed=5)
    z32 = z.astype(np.float32)
    z64 = z32.astype(np.float64)  # the same numbers: the module computes in float64
    assert ece(z32, y) == ece(z64, y)
    assert ece(torch.from_numpy(z32), torch.from_numpy(y)) == ece(z64, y)
    # Against the unrounded float64 logits: only the float32 rounding of the inputs differs.
    assert abs(ece(z32, y) - ece(z, y)) < 1e-6
    assert abs(adaptive_ece(z32, y) - adaptive_ece(z, y)) < 1e-6
    assert abs(nll(z32, y) - nll(z, y)) < 1e-6
    assert fit_temperature(z32, y) == pytest.approx(fit_temperature(z, y), rel=1e-6)


def test_module_does_not_import_sklearn():
    tree = ast.parse(pathlib.Path(calibration.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.split(".")[0] == "sklearn"]


# ---------------------------------------------------------------------------
# Bad input: each message names the parameter, its value and the valid range.

Z, Y = np.zeros((4, 3)), np.array([0, 1, 2, 0])


@pytest.mark.parametrize("call, match", [
    (lambda: ece(Z, Y, n_bins=0),
     r"The 'n_bins' parameter of ece must be an int in the range \[1, inf\)\. Got 0 instead\."),
    (lambda: adaptive_ece(Z, Y, n_bins=2.5), r"The 'n_bins' parameter of adaptive_ece must be an int"),
    (lambda: reliability_bins(Z, Y, n_bins=0), r"The 'n_bins' parameter of reliability_bins"),
    (lambda: calibration_summary(Z, Y, n_bins=0), r"The 'n_bins' parameter of calibration_summary"),
    (lambda: ece(Z, Y, temperature=-1),
     r"The 'temperature' parameter of ece must be a float in the range \(0, inf\)\. Got -1 instead\."),
    (lambda: nll(Z, Y, temperature=0.0), r"The 'temperature' parameter of nll must be a float in the range \(0, inf\)"),
    (lambda: reliability_bins(Z, Y, temperature=float("inf")), r"The 'temperature' parameter of reliability_bins"),
    (lambda: ece(Z, np.array([0, 1, 3, 0])),
     r"The 'labels' parameter of ece must hold ints in the range \[0, 3\) .*Got values in \[0, 3\] instead\."),
    (lambda: nll(Z, np.array([0, -1, 2, 0])), r"The 'labels' parameter of nll must hold ints in the range \[0, 3\)"),
    (lambda: ece(np.zeros(4), Y),
     r"The 'logits' parameter of ece must be a 2-D array \(N, K\) .* Got shape \(4,\) instead\."),
    (lambda: fit_temperature(torch.zeros(4), torch.tensor(Y)),
     r"The 'logits' parameter of fit_temperature must be a 2-D"),
    (lambda: ece(np.zeros((0, 3)), np.zeros(0, dtype=int)), r"The 'logits' parameter of ece .*N >= 1"),
    (lambda: ece(np.zeros((4, 1)), Y), r"K >= 2\. Got shape \(4, 1\) instead\. For a single binary logit"),
    (lambda: ece(np.full((4, 3), np.nan), Y), r"The 'logits' parameter of ece must hold finite values\. Got 12"),
    (lambda: ece(Z, Y.astype(float)), r"The 'labels' parameter of ece must be an integer array \(N,\) with N = 4"),
    (lambda: ece(Z, Y[:3]), r"The 'labels' parameter of ece .*N = 4 .*Got shape \(3,\) instead\."),
    (lambda: reliability_bins(Z, Y, adaptive="yes"), r"The 'adaptive' parameter of reliability_bins must be a bool"),
    (lambda: fit_temperature(Z, Y, bounds=(2.0, 1.0)),
     r"The 'bounds' parameter of fit_temperature must be a pair \(low, high\) .*Got \(2\.0, 1\.0\) instead\."),
    (lambda: fit_temperature(Z, Y, bounds=(0.0, 1.0)), r"The 'bounds' parameter of fit_temperature"),
    (lambda: calibration_summary(Z, Y, val_logits=Z), r"The 'val_labels' parameter of calibration_summary"),
    (lambda: calibration_summary(Z, Y, val_logits=np.zeros((2, 4)), val_labels=np.array([0, 1])),
     r"The 'val_logits' parameter of calibration_summary must have K = 3 columns"),
    (lambda: calibration_summary(Z, Y, val_logits=Z, val_labels=np.array([0, 1, 2, 5])),
     r"The 'val_labels' parameter of calibration_summary must hold ints in the range \[0, 3\)"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()


def test_bad_input_is_both_value_and_type_error():
    with pytest.raises(ValueError):
        ece(Z, Y, n_bins=0)
    with pytest.raises(TypeError):
        ece(Z, Y, n_bins=0)
