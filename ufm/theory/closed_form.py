"""Closed-form UFM minimizers, compiled from the symbolic derivation.

Evaluates the expressions derived in ``ufm.theory.symbolic.minimizer`` (see
``derivations/minimizer.md``, equations cited as (Mk)) through generated Python
source (``ufm.theory._generated.minimizer``), vectorized over configurations, in numpy or
torch. sympy is never imported here, and torch only by the functions that build tensors
(:func:`simplex_etf`, :func:`explicit_minimizer`) or are given ``xp=torch``, so that the light
commands (``ufm closed-form``) start without it.

Conventions (README, "Conventions"): objective
(1/N) sum_i L + (lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2,
label-smoothed target (1 - alpha) e_y + (alpha/K) 1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, List, Optional

import numpy as np

from ufm._core.validation import Interval, InvalidParameterError, check_param, require_closed_form, warn_closed_form
from ufm.problem import UFMProblem
from ufm.records.schema import CLOSED_FORM_QUANTITIES
from ufm.theory._generated import minimizer as _gen

__all__ = ["ClosedForm", "ClosedFormArrays", "closed_form", "closed_forms", "closed_form_arrays", "alpha_threshold", "explicit_minimizer", "simplex_etf"]

_GENERATED = {"label_smoothing": _gen.FUNCTIONS}
_QUANTITIES = CLOSED_FORM_QUANTITIES


@dataclass(frozen=True)
class ClosedFormArrays:
    """The closed-form minimizer of many problems at once (:func:`closed_form_arrays`): the fields of
    :class:`ClosedForm`, each an array of the broadcast shape of the inputs (numpy float64, or torch
    tensors of the inputs' dtype and device; ``trivial`` boolean).

    Attributes:
        logit_gap, p_true, p_off, w_norm, h_norm, objective: as in :class:`ClosedForm`.
        threshold: s_crit (M22). reg_strength: s = sqrt(n lambda_W lambda_H).
        trivial: s >= s_crit, where the only minimizer is W = H = 0 (logit_gap = norms = 0,
            p_true = p_off = 1/K, f* = ell(0)).
    """

    logit_gap: Any
    p_true: Any
    p_off: Any
    w_norm: Any
    h_norm: Any
    objective: Any
    threshold: Any
    reg_strength: Any
    trivial: Any

    def to_dict(self) -> dict:
        """The fields by name (the arrays themselves, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def closed_form_arrays(alpha, K, n, lambda_w, lambda_h, loss: str = "label_smoothing", xp=np) -> ClosedFormArrays:
    """Closed-form minimizer quantities, vectorized over broadcastable arrays.

    No validation: the caller passes valid parameters (use :func:`closed_form` for one
    checked problem). Works with ``xp=numpy`` (float64 arrays) or ``xp=torch``
    (results take the dtype of the first floating-point tensor argument, float64 if
    there is none, and the device of the first tensor argument).

    Returns:
        :class:`ClosedFormArrays`: ``logit_gap`` (Delta*, M14), ``p_true``, ``p_off`` (M15, M16),
        ``w_norm`` = ||w_k*||, ``h_norm`` = ||h_k*|| (M17, M18), ``objective`` = f* (M19),
        ``threshold`` = s_crit (M22), ``reg_strength`` = s = sqrt(n lambda_W lambda_H),
        ``trivial`` (bool, s >= s_crit: the only minimizer is W = H = 0, where
        logit_gap = norms = 0, p_true = p_off = 1/K and f* = ell(0)).
    """
    fns = _GENERATED[loss]
    if xp is not np and getattr(xp, "__name__", "") == "torch":
        torch = xp
        tensors = [a for a in (alpha, K, n, lambda_w, lambda_h) if isinstance(a, torch.Tensor)]
        floats = [a for a in tensors if a.is_floating_point()]
        kw = dict(dtype=floats[0].dtype if floats else torch.float64,
                  device=tensors[0].device if tensors else None)
        args = torch.broadcast_tensors(*[torch.as_tensor(a, **kw) for a in (alpha, K, n, lambda_w, lambda_h)])
        where, full = torch.where, lambda a, v: torch.full_like(a, v)
    else:
        args = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in (alpha, K, n, lambda_w, lambda_h)])
        where, full = np.where, lambda a, v: np.full_like(a, v)
    a, k, nn, lw, lh = args
    s = xp.sqrt(nn * lw * lh)
    threshold = fns["threshold"](*args, xp) + 0 * s
    trivial = s >= threshold
    out = {"threshold": threshold, "reg_strength": s, "trivial": trivial}
    with np.errstate(all="ignore"):  # the nonzero branch is NaN past the threshold; replaced below
        for name in _QUANTITIES:
            out[name] = fns[name](*args, xp)
    zero = full(s, 0.0)
    out["logit_gap"] = where(trivial, zero, out["logit_gap"])
    out["w_norm"] = where(trivial, zero, out["w_norm"])
    out["h_norm"] = where(trivial, zero, out["h_norm"])
    out["p_true"] = where(trivial, 1.0 / k, out["p_true"])
    out["p_off"] = where(trivial, 1.0 / k, out["p_off"])
    out["objective"] = where(trivial, fns["trivial_objective"](*args, xp) + 0 * s, out["objective"])
    return ClosedFormArrays(**out)


def alpha_threshold(K, n, lambda_w, lambda_h, loss: str = "label_smoothing") -> float:
    """The smoothing factor past which the only minimizer is W = H = 0: the alpha at which the
    derived threshold s_crit(alpha) (M22) equals s = sqrt(n lambda_W lambda_H).

    Found by root-finding on the generated threshold (which falls with alpha), not from a
    formula written here; negative when even cross-entropy is past the threshold.
    """
    from scipy.optimize import brentq

    fn = _GENERATED[loss]["threshold"]
    s = math.sqrt(n * lambda_w * lambda_h)
    gap = lambda a: float(fn(np.float64(a), K, n, lambda_w, lambda_h, np)) - s  # noqa: E731
    lo, hi = -1.0, 1.0
    while gap(lo) < 0:
        lo *= 2
    while gap(hi) > 0:
        hi *= 2
    return float(brentq(gap, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))


@dataclass(frozen=True)
class ClosedForm:
    """The closed-form global minimizer of one UFM problem.

    Attributes:
        logit_gap: Delta* = z_true - z_off at every sample (M14).
        p_true, p_off: softmax probabilities of the true class and of each other class.
        w_norm, h_norm: ||w_k*|| for every class, ||h_i*|| for every sample.
        objective: f* (M19; the bias term is 0 since b* = 0).
        bias_norm: ||b*|| = 0 (M20; for lambda_b = 0 any b0 * 1 is also optimal).
        threshold: s_crit; the nonzero minimizer exists iff reg_strength < threshold.
        reg_strength: s = sqrt(n lambda_W lambda_H).
        trivial: True past the threshold: the only minimizer is W = H = 0.
        applies: False when d < K - 1 (values are those of the ETF ansatz, not a minimizer).
    """

    problem: UFMProblem
    logit_gap: float
    p_true: float
    p_off: float
    w_norm: float
    h_norm: float
    objective: float
    bias_norm: float
    threshold: float
    reg_strength: float
    trivial: bool
    applies: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problem"] = self.problem.to_dict()
        return d


def closed_form(problem: UFMProblem) -> ClosedForm:
    """The closed-form global minimizer of ``problem`` (validated by UFMProblem).

    Warns with ClosedFormNotApplicableWarning when d < K - 1.
    """
    if not isinstance(problem, UFMProblem):
        raise InvalidParameterError(
            f"The 'problem' parameter of closed_form must be a UFMProblem. Got {type(problem).__name__} instead.")
    if not problem.closed_form_applies:
        warn_closed_form(problem.K, problem.d, "closed_form")
    p = problem
    v = closed_form_arrays(p.alpha, p.K, p.n, p.lambda_w, p.lambda_h, loss=p.loss)
    return ClosedForm(problem=p, bias_norm=0.0, applies=p.closed_form_applies,
                      trivial=bool(v.trivial),
                      **{k: float(getattr(v, k)) for k in _QUANTITIES + ("threshold", "reg_strength")})


def closed_forms(num_classes, per_class, dim, lambda_w, lambda_h, lambda_b, alpha,
                 loss: str = "label_smoothing") -> List[ClosedForm]:
    """:func:`closed_form` over the Cartesian product of the values (each argument one value or a
    list; ``dim`` None: d = K), in the order of the arguments, the last (alpha) varying fastest.
    Every problem is validated as a UFMProblem (errors name the parameter)."""
    import itertools

    lists = [v if isinstance(v, (list, tuple)) else [v]
             for v in (num_classes, per_class, dim, lambda_w, lambda_h, lambda_b, alpha)]
    return [closed_form(UFMProblem(K, n, K if d is None else d, lw, lh, lb, a, loss=loss))
            for K, n, d, lw, lh, lb, a in itertools.product(*lists)]


def simplex_etf(K: int, d: int, dtype=None, device=None):
    """A K x d simplex ETF with unit-norm rows: <m_j, m_k> = -1/(K-1) for j != k, as a torch
    tensor (``dtype`` default float64).

    Built from the Helmert basis of the subspace orthogonal to the all-ones vector,
    embedded in the first K - 1 coordinates of R^d. Requires d >= K - 1.
    """
    import torch

    check_param("K", K, Interval("int", 2, None, "left"), "simplex_etf")
    check_param("d", d, Interval("int", 1, None, "left"), "simplex_etf")
    if d < K - 1:
        raise InvalidParameterError(
            f"The 'd' parameter of simplex_etf must be an int in the range [K-1, inf) = [{K - 1}, inf). Got {d} instead.")
    U = torch.zeros(K, d, dtype=torch.float64)  # (K, d)
    for j in range(1, K):  # Helmert row j: (1,...,1, -j, 0,...)/sqrt(j(j+1)), as a column of U
        U[:j, j - 1] = 1.0 / math.sqrt(j * (j + 1))
        U[j, j - 1] = -j / math.sqrt(j * (j + 1))
    return (math.sqrt(K / (K - 1)) * U).to(dtype=dtype or torch.float64, device=device)


def explicit_minimizer(problem: UFMProblem, dtype=None, device=None,
                       rotation_seed: Optional[int] = None):
    """The exact minimizer (W*, H*, b*) of ``problem`` as tensors.

    W* = ||w*|| M (K x d) with M a simplex ETF (:func:`simplex_etf`); column i of
    H* (d x N) is (||h*|| / ||w*||) w*_{y_i} with y_i = i // n; b* = 0. Past the
    threshold, W* = H* = 0. ``rotation_seed`` applies a random orthogonal Q (d x d):
    (W* Q^T, Q H*), another point of the same minimizer orbit.

    Returns:
        (W (K, d), H (d, N), b (K,)) in ``dtype`` (default float64) on ``device``.
    """
    import torch

    dtype = dtype or torch.float64
    cf = closed_form(problem)
    require_closed_form(problem.K, problem.d, "explicit_minimizer")
    K, d, n = problem.K, problem.d, problem.n
    M = simplex_etf(K, d)  # (K, d), float64
    W = cf.w_norm * M  # (K, d)
    ratio = cf.h_norm / cf.w_norm if cf.w_norm > 0 else 0.0
    H = (ratio * W).repeat_interleave(n, dim=0).T.contiguous()  # (d, N)
    if rotation_seed is not None:
        g = torch.Generator().manual_seed(rotation_seed)
        Q, R = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        Q = Q * torch.sign(torch.diagonal(R))  # Haar-distributed
        W, H = W @ Q.T, Q @ H
    b = torch.zeros(K, dtype=torch.float64)
    return W.to(dtype=dtype, device=device), H.to(dtype=dtype, device=device), b.to(dtype=dtype, device=device)
