"""Calibration of classifiers from their logits: reliability bins, ECE, NLL, temperature scaling.

Conventions:

* logits z (N, K) with K >= 2, integer labels y (N,) in [0, K); a temperature T > 0
  divides the logits, p_i = softmax(z_i / T);
* top-label confidence c_i = max_k p_ik, correctness correct_i = [argmax_k z_ik == y_i],
  ties going to the lowest class index (as ``torch.argmax`` and ``np.argmax``); the
  prediction does not depend on T, only the confidence does;
* equal-width bins: bin j = (j/B, (j+1)/B] for j >= 1 and [0, 1/B] for j = 0, so a
  confidence exactly on an edge goes to the lower bin (c = 0.2 with B = 5 is in bin 0);
  the edges are the float64 numbers j / B;
* equal-mass bins: the samples sorted by confidence (stable sort, so ties keep their
  input order) are split into B contiguous groups whose sizes differ by at most one,
  the larger groups first (as ``np.array_split``); with N < B the last groups are empty;
* ``ece`` = sum_j (n_j / N) |acc_j - conf_j| over the non-empty equal-width bins (Guo,
  Pleiss, Sun and Weinberger, On Calibration of Modern Neural Networks, 2017), where
  acc_j and conf_j are the mean correctness and the mean confidence in bin j;
* ``adaptive_ece`` = the same sum over equal-mass bins: the top-label "AdaECE" of
  Mukhoti et al., Calibrating Deep Neural Networks using Focal Loss, 2020, and the
  top-label form of the adaptive calibration error of Nixon et al., Measuring
  Calibration in Deep Learning, 2019 (their ACE also averages over all K classes;
  this one does not);
* ``nll`` = (1/N) sum_i -log softmax(z_i / T)_{y_i} (natural log);
* temperature scaling (Guo et al. 2017): the T > 0 minimizing ``nll`` on held-out
  validation logits, applied unchanged to the test logits.

Everything is computed in float64 with numpy whatever the input dtype; torch tensors
(any device) are copied to host memory as float64 first. Scalars come back as Python
floats, per-bin values as numpy arrays. Softmax and log-softmax subtract the row
maximum first, so logits of any magnitude are safe.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional, Tuple

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ufm._core.validation import InvalidParameterError, Interval, UFMWarning, check_param

__all__ = [
    "reliability_bins",
    "ece",
    "adaptive_ece",
    "nll",
    "fit_temperature",
    "calibration_summary",
    "TemperatureAtBoundWarning",
]

_N_BINS = Interval("int", 1, None, "left")
_TEMPERATURE = Interval("float", 0, None, "neither")
_XATOL = 1e-10  # tolerance of the temperature fit, on log T (a relative tolerance on T)


class TemperatureAtBoundWarning(UFMWarning):
    """The fitted temperature sits at an end of ``bounds``; the true minimizer may lie beyond it."""


# ---------------------------------------------------------------------------
# Input checks and conversion (the entry point of every public function).

def _shape(x: np.ndarray) -> str:
    return f"shape {tuple(x.shape)}"


def _to_numpy(x, dtype=None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if dtype is not None:
            x = x.to(dtype=dtype)
        return x.cpu().numpy()
    return np.asarray(x)


def _check_inputs(logits, labels, caller: str, name: str = "logits",
                  label_name: str = "labels") -> Tuple[np.ndarray, np.ndarray]:
    """Validated float64 logits (N, K) and int64 labels (N,), as numpy arrays."""
    if isinstance(logits, torch.Tensor):
        ok_dtype = not (logits.is_complex() or logits.dtype == torch.bool)
        z = _to_numpy(logits, torch.float64) if ok_dtype else None
    else:
        z = np.asarray(logits)
        ok_dtype = z.dtype != np.bool_ and (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer))
    if not ok_dtype or z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 2:
        got = f"dtype {logits.dtype if z is None else z.dtype}" if not ok_dtype else _shape(z)
        hint = (" For a single binary logit s, pass the two columns (0, s)."
                if ok_dtype and z.ndim == 2 and z.shape[1] == 1 else "")
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must be a 2-D array (N, K) of real numbers with N >= 1 "
            f"and K >= 2. Got {got} instead.{hint}", param=name, value=got,
            expected="a 2-D array (N, K) with N >= 1 and K >= 2")
    z = z.astype(np.float64, copy=False)  # (N, K)
    bad = int(np.size(z) - np.count_nonzero(np.isfinite(z)))
    if bad:
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must hold finite values. Got {bad} non-finite entries instead.",
            param=name, value=bad, expected="finite values")
    N, K = z.shape
    if isinstance(labels, torch.Tensor):
        int_dtype = not (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool)
        y = _to_numpy(labels) if int_dtype else None
    else:
        y = np.asarray(labels)
        int_dtype = y.dtype != np.bool_ and np.issubdtype(y.dtype, np.integer)
    if not int_dtype or y.ndim != 1 or y.shape[0] != N:
        got = f"dtype {labels.dtype if y is None else y.dtype}" if not int_dtype else _shape(y)
        raise InvalidParameterError(
            f"The {label_name!r} parameter of {caller} must be an integer array (N,) with N = {N} "
            f"(the rows of {name!r}). Got {got} instead.", param=label_name, value=got,
            expected=f"an integer array of shape ({N},)")
    y = y.astype(np.int64, copy=False)  # (N,)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= K:
        raise InvalidParameterError(
            f"The {label_name!r} parameter of {caller} must hold ints in the range [0, {K}) "
            f"(K = {K} columns of {name!r}). Got values in [{lo}, {hi}] instead.",
            param=label_name, value=(lo, hi), expected=f"ints in the range [0, {K})")
    return z, y


def _check_bounds(bounds, caller: str) -> Tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
        ok = all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (0 < lo < hi < math.inf):
        raise InvalidParameterError(
            f"The 'bounds' parameter of {caller} must be a pair (low, high) of floats with "
            f"0 < low < high < inf. Got {bounds!r} instead.", param="bounds", value=bounds,
            expected="a pair (low, high) with 0 < low < high < inf")
    return lo, hi


# ---------------------------------------------------------------------------
# Pure float64 kernels on validated arrays.

def _shifted(z: np.ndarray):
    """Logits minus their row maximum (N, K), and the argmax (N,) (first index on ties)."""
    top = np.argmax(z, axis=1)  # (N,)
    return z - z[np.arange(z.shape[0]), top][:, None], top  # (N, K) with s[i, top_i] = 0


def _rest(s: np.ndarray, top: np.ndarray) -> np.ndarray:
    """sum_{k != top_i} exp(s_ik) (N,) for rows whose maximum s_{i, top_i} is 0.

    The softmax normalizer is 1 + rest: the top-label confidence is 1 / (1 + rest)
    (exactly 1/K for K equal logits) and log sum_k exp(s_ik) = log1p(rest), which
    keeps the tiny but nonzero log-loss of confident rows (rest below float64 eps).
    """
    e = np.exp(s)  # (N, K), entries in [0, 1]
    e[np.arange(s.shape[0]), top] = 0.0
    return e.sum(axis=1)


def _confidence_correct(z: np.ndarray, y: np.ndarray, temperature: float):
    """Top-label confidence c (N,) and correctness (N,) as float64 0/1."""
    s, top = _shifted(z)
    conf = 1.0 / (1.0 + _rest(s / temperature, top))  # (N,) = max_k softmax(z / T)_k
    correct = (top == y).astype(np.float64)  # (N,)
    return conf, correct


def _bin_ids(conf: np.ndarray, n_bins: int, adaptive: bool) -> np.ndarray:
    """Bin index (N,) of each sample; see the module docstring for both schemes."""
    N = conf.shape[0]
    if adaptive:
        order = np.argsort(conf, kind="stable")  # (N,)
        sizes = np.full(n_bins, N // n_bins)
        sizes[: N % n_bins] += 1  # larger groups first, as np.array_split
        ids = np.empty(N, dtype=np.int64)
        ids[order] = np.repeat(np.arange(n_bins), sizes)
        return ids
    edges = np.arange(n_bins + 1) / n_bins  # (B+1,), j / B
    # side="left": index i with edges[i-1] < c <= edges[i], i.e. right-closed bins (j/B, (j+1)/B].
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


def _ece(conf: np.ndarray, correct: np.ndarray, ids: np.ndarray, n_bins: int) -> float:
    # sum_j (n_j/N) |acc_j - conf_j| = (1/N) sum_j |sum_{i in j} (correct_i - c_i)|; empty bins add 0.
    gap = np.bincount(ids, weights=correct - conf, minlength=n_bins)  # (B,)
    return float(np.abs(gap).sum() / conf.shape[0])


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    s, top = _shifted(z)
    s = s / temperature  # (N, K)
    return float(np.mean(np.log1p(_rest(s, top)) - s[np.arange(z.shape[0]), y]))


def _metrics(z: np.ndarray, y: np.ndarray, temperature: float, n_bins: int, suffix: str) -> dict:
    conf, correct = _confidence_correct(z, y, temperature)  # (N,), (N,)
    return {"ece" + suffix: _ece(conf, correct, _bin_ids(conf, n_bins, False), n_bins),
            "adaptive_ece" + suffix: _ece(conf, correct, _bin_ids(conf, n_bins, True), n_bins),
            "nll" + suffix: _nll(z, y, temperature)}


def _fit_temperature(z: np.ndarray, y: np.ndarray, lo: float, hi: float, caller: str) -> float:
    s, top = _shifted(z)  # (N, K); shifting a row changes no softmax
    s_y = s[np.arange(z.shape[0]), y]  # (N,)

    def objective(u):  # nll at T = exp(u)
        beta = math.exp(-u)
        return float(np.mean(np.log1p(_rest(beta * s, top)) - beta * s_y))

    a, b = math.log(lo), math.log(hi)
    res = minimize_scalar(objective, bounds=(a, b), method="bounded", options={"xatol": _XATOL, "maxiter": 500})
    if not res.success:
        raise RuntimeError(f"{caller}: the temperature fit did not converge ({res.message}); "
                           "check the logits, or narrow 'bounds'")
    u, f = float(res.x), float(res.fun)
    # Brent never evaluates the ends; take one when it is at least as good (a minimizer at or
    # beyond a bound, or an NLL flat to float64 precision there).
    for end in (a, b):
        f_end = objective(end)
        if f_end <= f:
            u, f = end, f_end
    if u in (a, b):
        T = lo if u == a else hi
        warnings.warn(
            f"{caller}: the fitted temperature {T:g} is at an end of bounds=({lo:g}, {hi:g}); "
            "the NLL may still decrease beyond it (e.g. validation data that the model separates "
            "perfectly drive T to 0). Widen 'bounds' if this is not intended.",
            TemperatureAtBoundWarning, stacklevel=3)
        return T
    return math.exp(u)


# ---------------------------------------------------------------------------
# Public functions.

def reliability_bins(logits, labels, n_bins: int = 15, *, adaptive: bool = False,
                     temperature: float = 1.0) -> dict:
    """Per-bin counts, mean confidence and accuracy: the data of a reliability diagram.

    Conventions (binning, confidence, ties): see the module docstring.

    Args:
        logits: (N, K) torch tensor or numpy array of real numbers, K >= 2.
        labels: (N,) integer tensor or array in [0, K).
        n_bins: B >= 1.
        adaptive: False for equal-width bins on [0, 1], True for equal-mass bins.
        temperature: T > 0 dividing the logits before the softmax.

    Returns:
        dict of numpy arrays of length B: ``lower`` and ``upper`` (the bin edges j/B and
        (j+1)/B; for equal-mass bins the smallest and largest confidence in the bin, NaN
        if empty), ``count`` (int64, summing to N), ``confidence`` (mean c in the bin)
        and ``accuracy`` (mean correctness), both NaN for an empty bin; float64.

    Example:
        >>> import numpy as np
        >>> bins = reliability_bins(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), n_bins=2)
        >>> bins["count"].tolist(), bins["accuracy"].tolist()
        ([0, 2], [nan, 0.5])
    """
    caller = "reliability_bins"
    check_param("n_bins", n_bins, _N_BINS, caller)
    check_param("temperature", temperature, _TEMPERATURE, caller)
    if not isinstance(adaptive, (bool, np.bool_)):
        raise InvalidParameterError(f"The 'adaptive' parameter of {caller} must be a bool. "
                                    f"Got {adaptive!r} instead.", param="adaptive", value=adaptive,
                                    expected="a bool")
    z, y = _check_inputs(logits, labels, caller)
    conf, correct = _confidence_correct(z, y, float(temperature))  # (N,), (N,)
    ids = _bin_ids(conf, n_bins, bool(adaptive))  # (N,)
    count = np.bincount(ids, minlength=n_bins)  # (B,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(ids, weights=conf, minlength=n_bins) / count  # (B,), NaN where empty
        accuracy = np.bincount(ids, weights=correct, minlength=n_bins) / count  # (B,)
    if adaptive:
        lower = np.full(n_bins, np.nan)
        upper = np.full(n_bins, np.nan)
        np.fmin.at(lower, ids, conf)  # fmin/fmax ignore the NaN start value
        np.fmax.at(upper, ids, conf)
    else:
        edges = np.arange(n_bins + 1) / n_bins  # (B+1,)
        lower, upper = edges[:-1], edges[1:]
    return {"lower": lower, "upper": upper, "count": count.astype(np.int64),
            "confidence": mean_conf, "accuracy": accuracy}


def ece(logits, labels, n_bins: int = 15, *, temperature: float = 1.0) -> float:
    """Expected calibration error with B equal-width bins (Guo et al. 2017).

    ECE = sum_j (n_j / N) |acc_j - conf_j| over the non-empty bins j = (j/B, (j+1)/B]
    (bin 0 closed at 0), on the top-label confidence of softmax(z / T). Conventions: see
    the module docstring.

    Warning: the value depends on B and on the binning; other libraries differ (some
    use left-closed bins, some 10 bins by default). Compare numbers only under one
    convention.

    Args:
        logits: (N, K) torch tensor or numpy array, K >= 2.
        labels: (N,) integer tensor or array in [0, K).
        n_bins: B >= 1.
        temperature: T > 0 dividing the logits.

    Returns:
        ECE as a Python float in [0, 1].
    """
    caller = "ece"
    check_param("n_bins", n_bins, _N_BINS, caller)
    check_param("temperature", temperature, _TEMPERATURE, caller)
    z, y = _check_inputs(logits, labels, caller)
    conf, correct = _confidence_correct(z, y, float(temperature))
    return _ece(conf, correct, _bin_ids(conf, n_bins, False), n_bins)


def adaptive_ece(logits, labels, n_bins: int = 15, *, temperature: float = 1.0) -> float:
    """ECE with B equal-mass bins (top-label AdaECE; Nixon et al. 2019, Mukhoti et al. 2020).

    The samples sorted by confidence are split into B contiguous groups of sizes
    differing by at most one (as ``np.array_split``), and the ECE sum is taken over
    those groups. Unlike the class-wise ACE of Nixon et al., only the top label is
    scored. Conventions: see the module docstring.

    Args:
        logits: (N, K) torch tensor or numpy array, K >= 2.
        labels: (N,) integer tensor or array in [0, K).
        n_bins: B >= 1.
        temperature: T > 0 dividing the logits.

    Returns:
        adaptive ECE as a Python float in [0, 1].
    """
    caller = "adaptive_ece"
    check_param("n_bins", n_bins, _N_BINS, caller)
    check_param("temperature", temperature, _TEMPERATURE, caller)
    z, y = _check_inputs(logits, labels, caller)
    conf, correct = _confidence_correct(z, y, float(temperature))
    return _ece(conf, correct, _bin_ids(conf, n_bins, True), n_bins)


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (1/N) sum_i -log softmax(z_i / T)_{y_i}, natural log.

    Args:
        logits: (N, K) torch tensor or numpy array, K >= 2.
        labels: (N,) integer tensor or array in [0, K).
        temperature: T > 0 dividing the logits.

    Returns:
        NLL as a Python float (nats per sample); equals
        ``torch.nn.functional.cross_entropy(logits / T, labels)`` computed in float64.
    """
    caller = "nll"
    check_param("temperature", temperature, _TEMPERATURE, caller)
    z, y = _check_inputs(logits, labels, caller)
    return _nll(z, y, float(temperature))


def fit_temperature(logits, labels, *, bounds=(0.05, 20.0)) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimizing ``nll(logits / T, labels)``.

    Fit on a validation split, never on the test set: the fitted T is then applied
    unchanged to the test logits (see :func:`calibration_summary`). Fitting on the
    test set reports a calibration the model would not have on new data.

    The one-dimensional problem is solved on u = log T in [log low, log high] with
    bounded Brent search (``scipy.optimize.minimize_scalar(method="bounded")``) with
    ``xatol=1e-10`` on log T; at a smooth minimum the NLL is flat to float64 rounding
    over a relative width of about sqrt(eps) in T, so T is accurate to about 1e-7
    relative (3e-8 on the two-class example of the tests). The NLL is convex in 1/T,
    hence unimodal in log T, so the search finds the global minimizer within the
    bounds. When the minimizer lies at a bound (e.g. validation data that the model
    separates perfectly, where the NLL keeps falling as T -> 0), or the NLL is flat
    to float64 precision there, that bound is returned and a
    :class:`TemperatureAtBoundWarning` is emitted.

    Args:
        logits: (N, K) validation logits, torch tensor or numpy array, K >= 2.
        labels: (N,) integer validation labels in [0, K).
        bounds: (low, high) with 0 < low < high < inf, the search range for T.

    Returns:
        the fitted temperature T as a Python float.
    """
    caller = "fit_temperature"
    lo, hi = _check_bounds(bounds, caller)
    z, y = _check_inputs(logits, labels, caller)
    return _fit_temperature(z, y, lo, hi, caller)


def calibration_summary(logits, labels, *, val_logits=None, val_labels=None, temperature: Optional[float] = None,
                        n_bins: int = 15) -> dict:
    """ECE, adaptive ECE and NLL of test logits, and the same after temperature scaling.

    Args:
        logits: (N, K) test logits, torch tensor or numpy array, K >= 2.
        labels: (N,) integer test labels in [0, K).
        val_logits: optional (M, K) validation logits; with ``val_labels``, T is fitted
            on them by :func:`fit_temperature` (default bounds) and applied to the test
            logits.
        val_labels: optional (M,) integer validation labels in [0, K).
        temperature: optional T > 0 already fitted (e.g. once per epoch on a validation
            split, then applied to several splits); not together with ``val_logits``.
        n_bins: B >= 1, for both ECEs.

    Returns:
        dict of Python floats: ``ece``, ``adaptive_ece``, ``nll`` and, with validation
        logits or a temperature, ``temperature``, ``ece_ts``, ``adaptive_ece_ts``,
        ``nll_ts`` (test metrics at that temperature).
    """
    caller = "calibration_summary"
    check_param("n_bins", n_bins, _N_BINS, caller)
    if temperature is not None:
        check_param("temperature", temperature, _TEMPERATURE, caller)
        if val_logits is not None:
            raise InvalidParameterError(
                f"The 'temperature' parameter of {caller} must be None when 'val_logits' is given (the "
                f"temperature is then fitted on them). Got {temperature!r} instead.", param="temperature",
                value=temperature, expected="None with val_logits")
    z, y = _check_inputs(logits, labels, caller)
    if (val_logits is None) != (val_labels is None):
        missing = "val_labels" if val_labels is None else "val_logits"
        raise InvalidParameterError(
            f"The {missing!r} parameter of {caller} must be given together with "
            f"{'val_logits' if missing == 'val_labels' else 'val_labels'}. Got None instead.",
            param=missing, value=None, expected="an array, given with its partner")
    out = _metrics(z, y, 1.0, n_bins, "")
    if val_logits is not None:
        zv, yv = _check_inputs(val_logits, val_labels, caller, "val_logits", "val_labels")
        if zv.shape[1] != z.shape[1]:
            raise InvalidParameterError(
                f"The 'val_logits' parameter of {caller} must have K = {z.shape[1]} columns, as 'logits'. "
                f"Got {zv.shape[1]} instead.", param="val_logits", value=zv.shape[1],
                expected=f"{z.shape[1]} columns")
        temperature = _fit_temperature(zv, yv, 0.05, 20.0, caller)
    if temperature is not None:
        out["temperature"] = temperature
        out.update(_metrics(z, y, float(temperature), n_bins, "_ts"))
    return {k: float(v) for k, v in out.items()}
