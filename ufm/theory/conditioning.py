"""Condition numbers at the collapsed minimizer, vectorized over arrays of (alpha, s), without sympy.

Evaluates ``derivations/conditioning.md`` (equations cited as (Ck)) through the generated
``ufm.theory._generated.conditioning``. With s = sqrt(n lambda_W lambda_H) and the ratio
r = lambda_W / lambda_H, on the collapsed branch s < (1 - alpha)/K, where p_o = s + alpha/K,
p_t = 1 - (K-1) p_o and Delta = log(p_t/p_o) (C5-C7):

* ``logits``: kappa = K p_t (C11; 1 for K = 2, C15), no lambda, W, H or d in it;
* ``features``: kappa = K (Delta p_o p_t + s)/(Delta p_o + K s) at d = K - 1 (C19) and
  1 + Delta p_t p_o / s at d >= K (C27); ``classifier``: 1 + Delta p_t p_o / s for every d (C35, C43).
  Which eigenvalue is the largest and which the smallest is stated with each (C17-C48), and
  ``kappa_slope`` evaluates their derivatives in alpha (C12, C20, C28, C36, C44);
* ``full`` (W, H) and ``full, b included`` (W, H, b with lambda_b = 0, the shift b0 1 null): the
  derived pieces in units of sqrt(lambda_W lambda_H) (step 5, C49-C50), the span block solved in batch
  (Cholesky of its metric, then ``eigvalsh``). ``full`` depends on (K, alpha, s, d-regime, r) alone;
  ``full, b included`` on n as well (its bias row carries sqrt(n) in those units).

The d-regime is ``"K-1"`` (d = K - 1) or ``">=K"`` (every d >= K gives the same numbers). The numbers
equal ``ufm.theory.spectra.symbolic_spectrum(...).condition_number`` (and its
``condition_number_with_bias``) at every collapsed point, with the same null-space rule
(``ZERO_RTOL``); points off the collapsed branch give NaN. Within 1e-3 of the threshold, where kappa
grows like 1/Delta, both lose about log10(kappa) digits to rounding.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional

import numpy as np

from ufm._core.validation import Interval, Options, check_all, check_param
from ufm.theory.keys import D_REGIMES, MAP_DEFINITIONS, WITH_BIAS, conditioning_key
from ufm.theory.spectra import ZERO_RTOL, _block, _full, _roots  # the batched pieces, shared

__all__ = ["MAP_DEFINITIONS", "D_REGIMES", "WITH_BIAS", "kappa", "kappa_regimes", "kappa_slope", "d_regime_of",
           "map_point",
           "kappa_of_problem", "SLOPE_STEP"]

#: the step of the one-sided difference that gives d kappa / d alpha of ``full`` (Richardson: error O(step^2))
SLOPE_STEP = 1e-4


def d_regime_of(K: int, d: int) -> str:
    """``"K-1"`` for d = K - 1, ``">=K"`` for d >= K (ValueError below K - 1: no closed form)."""
    if d < K - 1:
        raise ValueError(f"d = {d} < K - 1 = {K - 1}: the collapsed minimizer does not exist")
    return "K-1" if d == K - 1 else ">=K"


def map_point(problem) -> dict:
    """Where a UFMProblem sits among the arguments of :func:`kappa`: K, its d-regime, s K with
    s = sqrt(n lambda_W lambda_H), the ratio lambda_W / lambda_H, n and lambda_b."""
    s = float(np.sqrt(problem.n * problem.lambda_w * problem.lambda_h))
    return {"K": problem.K, "d_regime": d_regime_of(problem.K, problem.d), "sK": s * problem.K,
            "lambda_ratio": problem.lambda_w / problem.lambda_h, "per_class": problem.n, "lambda_b": problem.lambda_b}


def _check(definition, K, d_regime, lambda_ratio, per_class, caller):
    check_all([("definition", definition, Options(MAP_DEFINITIONS)), ("K", K, Interval("int", 2, None, "left")),
               ("d_regime", d_regime, Options(D_REGIMES)),
               ("per_class", per_class, Interval("int", 1, None, "left"))], caller)
    ratio = np.asarray(lambda_ratio, dtype=float)
    bad = ~(np.isfinite(ratio) & (ratio > 0))
    if bad.any():  # one value (or an array of them): each must be a positive float
        check_param("lambda_ratio", float(ratio[bad].flat[0]), _RATIO, caller)


_RATIO = Interval("float", 0, None, "neither")


def kappa(definition: str, K: int, d_regime: str, alpha, s, lambda_ratio=1.0, per_class: int = 10) -> np.ndarray:
    """kappa of ``definition`` at the collapsed minimizer, broadcast over the arrays ``alpha``, ``s``
    (and ``lambda_ratio``).

    Args:
        definition: one of ``MAP_DEFINITIONS`` (``logits``, ``features``, ``classifier``, ``full``,
            ``full, b included``).
        K: the number of classes (>= 2); d_regime: ``"K-1"`` or ``">=K"``.
        alpha, s: smoothing factors and strengths s = sqrt(n lambda_W lambda_H) (arrays, broadcast).
        lambda_ratio: lambda_W / lambda_H, > 0 (enters ``full`` only; a float or an array).
        per_class: n; enters ``full, b included`` (and, through the within-class pieces being there
            or not, nothing else: derivations/conditioning.md checks they are never the only extreme).

    Returns:
        float64 array of the broadcast shape; NaN where s >= (1 - alpha)/K (no collapsed branch).
    """
    _check(definition, K, d_regime, lambda_ratio, per_class, "kappa")
    return _kappa_regimes(definition, K, alpha, s, lambda_ratio, per_class, (d_regime,))[d_regime]


def kappa_regimes(definition: str, K: int, alpha, s, lambda_ratio=1.0, per_class: int = 10,
                  regimes=D_REGIMES) -> Dict[str, np.ndarray]:
    """:func:`kappa` for each d-regime in ``regimes``, from one evaluation of the derived pieces."""
    for d_regime in regimes:
        _check(definition, K, d_regime, lambda_ratio, per_class, "kappa_regimes")
    return _kappa_regimes(definition, K, alpha, s, lambda_ratio, per_class, tuple(regimes))


def _kappa_regimes(definition, K, alpha, s, lambda_ratio, per_class, regimes) -> Dict[str, np.ndarray]:
    from ufm.theory._generated import conditioning as gen

    alpha, s, r = np.broadcast_arrays(np.asarray(alpha, dtype=float), np.asarray(s, dtype=float),
                                      np.asarray(lambda_ratio, dtype=float))
    collapsed = (s > 0) & (s < (1 - alpha) / K)
    a, sv = np.where(collapsed, alpha, 0.0), np.where(collapsed, s, 0.5 / K)  # a collapsed stand-in elsewhere
    if definition in ("full", WITH_BIAS):
        key = conditioning_key(definition, "K-1", K == 2)
        values = _piece_values(gen.FULL[key](K, per_class, K, a, sv, r, np), sv.shape)
        out = {reg: _kappa_of(values, _present(key, K, per_class, reg)) for reg in regimes}
    else:
        out = {reg: _full(gen.KAPPA[conditioning_key(definition, reg, K == 2)](K, a, sv, r, np), sv.shape)
               for reg in regimes}
    return {reg: np.where(collapsed, v, np.nan) for reg, v in out.items()}


@lru_cache(maxsize=None)
def _present(key: str, K: int, n: int, d_regime: str) -> tuple:
    """Which pieces of the full Hessian exist (multiplicity > 0) for (K, n) in the d-regime."""
    from ufm.theory._generated import conditioning as gen

    d = K - 1 if d_regime == "K-1" else K
    return tuple(int(round(float(m))) > 0 for _, m, _, _ in gen.FULL[key](K, n, d, 0.0, 0.5 / K, 1.0, np))


def kappa_slope(definition: str, K: int, d_regime: str, alpha, s, lambda_ratio: float = 1.0,
                per_class: int = 10) -> np.ndarray:
    """d kappa / d alpha at fixed s (alpha = 0: the slope at CE). The closed forms' derivatives (C) for
    ``logits``, ``features`` and ``classifier``; for ``full`` a one-sided (forward) difference with
    Richardson extrapolation, (4 k(alpha + h/2) - 3 k(alpha) - k(alpha + h)) / h, h = ``SLOPE_STEP``,
    the right derivative where the largest or smallest eigenvalue switches piece."""
    _check(definition, K, d_regime, lambda_ratio, per_class, "kappa_slope")
    from ufm.theory._generated import conditioning as gen

    alpha, s, r = np.broadcast_arrays(np.asarray(alpha, dtype=float), np.asarray(s, dtype=float),
                                      np.asarray(lambda_ratio, dtype=float))
    if definition in ("full", WITH_BIAS):
        h = np.minimum(SLOPE_STEP, 1e-3 * np.abs((1 - K * s) - alpha))  # stay on the collapsed branch
        k = lambda t: kappa(definition, K, d_regime, alpha + t, s, r, per_class)
        return (4 * k(h / 2) - 3 * k(0.0) - k(h)) / h
    collapsed = (s > 0) & (s < (1 - alpha) / K)
    a, sv = np.where(collapsed, alpha, 0.0), np.where(collapsed, s, 0.5 / K)
    fn = gen.SLOPE[conditioning_key(definition, d_regime, K == 2)]
    return np.where(collapsed, _full(fn(K, a, sv, r, np), sv.shape), np.nan)


def _piece_values(pieces, shape):
    """(values, literal zeros, piece index) of every eigenvalue of the derived pieces, each an array of
    ``shape``: the quadratics' roots and the blocks' generalized eigenvalues solved in batch."""
    values, literal, owner = [], [], []
    for i, (_name, _mult, kind, payload) in enumerate(pieces):
        if kind == "values":
            vals = [_full(v, shape) for v in payload]
            literal += [type(v) is int and v == 0 for v in payload]
        elif kind == "quadratic":
            vals = list(_roots(*[_full(c, shape) for c in payload]))
            literal += [False, False]
        else:
            vals = _block(*payload, shape)
            literal += [False] * len(vals)
        values += vals
        owner += [i] * len(vals)
    return np.stack(values, -1), np.array(literal), np.array(owner)


def _kappa_of(values, present) -> np.ndarray:
    """The largest over the smallest eigenvalue of the pieces ``present``, off the null space
    (the rule of ``ufm.theory.spectra``: literal zeros of the derivation, and values below ZERO_RTOL of the
    largest); NaN when the smallest is not positive."""
    V, literal, owner = values
    keep = np.array(present)[owner]
    V, literal = V[..., keep], literal[keep]
    null = literal | (np.abs(V) <= ZERO_RTOL * np.abs(V).max(-1, keepdims=True))
    top = np.where(null, -np.inf, V).max(-1)
    low = np.where(null, np.inf, V).min(-1)
    return np.where((low > 0) & np.isfinite(low), top / np.where(low > 0, low, 1.0), np.nan)


def kappa_of_problem(problem, definition: str) -> Optional[float]:
    """kappa of ``definition`` at ``problem``'s collapsed minimizer through :func:`kappa` (None when
    ``full`` includes b with lambda_b > 0, which the map's arguments do not describe)."""
    if definition == "full" and problem.lambda_b > 0:
        return None
    p = map_point(problem)
    return float(kappa(definition, p["K"], p["d_regime"], problem.alpha, p["sK"] / p["K"], p["lambda_ratio"],
                       problem.n))
