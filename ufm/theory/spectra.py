"""Hessian spectra at the closed-form minimizer, from the symbolic derivation.

Evaluates the spectra derived in ``ufm.theory.symbolic.hessian`` (see
``derivations/hessian.md``, equations cited as (Hk)) through generated Python source
(``ufm.theory._generated.hessian``); sympy is never imported here. Four operators
(README, "Conditioning"):

``logits``
    Hessian of the per-sample loss in the logits, diag(p) - p p^T (K x K).
``features``
    Hessian of f in H at W = W*, b = b* (dN x dN).
``classifier``
    Hessian of f in W at H = H*, b = b* (Kd x Kd).
``full``
    Hessian of f in (W, H), with b as well when lambda_b > 0; with lambda_b = 0 the bias
    is not a variable of this operator (its minimizers form the line b0 1).

Null space: eigenvalues that are exactly zero by a symmetry (the common logit shift for
``logits``; the rotations W -> W Q^T, H -> Q H for ``full``). The condition number is
the largest eigenvalue over the smallest one off the null space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ufm._core.validation import Options, check_param, require_closed_form
from ufm.problem import UFMProblem
from ufm.theory.closed_form import closed_form
from ufm.theory.keys import DEFINITIONS, spectrum_key

__all__ = ["DEFINITIONS", "Spectrum", "spectrum_key", "symbolic_spectrum", "rotation_null_dim", "distinct",
           "condition_number"]

@dataclass
class Spectrum:
    """A Hessian spectrum: distinct eigenvalues (ascending) with multiplicities.

    Attributes:
        definition: ``logits``, ``features``, ``classifier`` or ``full``.
        source: ``symbolic`` (closed form) or ``numeric`` (at a numerical minimizer).
        eigenvalues, multiplicities: distinct values, ascending, and how often each occurs.
        null_dim: eigenvalues in the null space (``symbolic``: the zeros forced by a symmetry, and
            roots below 1e-12 of the largest, e.g. at s = s_crit; ``numeric``: |lambda| <= null_tol);
            None when the spectrum is partial.
        condition_number: largest eigenvalue / smallest eigenvalue off the null space; None when
            the spectrum is partial, NaN when undefined (no positive eigenvalue off the null space,
            or a negative one).
        null_tol: the tolerance that identified the null space (numeric), 0 for symbolic.
        complete: False when only the top of the spectrum was computed (Lanczos).
        details: extra facts: the derived pieces (``components``), the rotation null dimension, for
            ``full`` with lambda_b = 0 the ``condition_number_with_bias`` (b as a variable, its
            shift null), for numeric spectra the solver's gradient norm and status.
    """

    problem: UFMProblem
    definition: str
    source: str
    eigenvalues: List[float]
    multiplicities: List[int]
    null_dim: Optional[int]
    condition_number: Optional[float]
    null_tol: float = 0.0
    complete: bool = True
    details: dict = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return self.problem.alpha

    @property
    def smallest_nonzero(self) -> float:
        """The smallest eigenvalue off the null space (NaN if there is none)."""
        nz = [v for v in self.eigenvalues if v != 0]
        return min(nz) if nz else math.nan

    @property
    def largest(self) -> float:
        """The largest eigenvalue (NaN if every one is 0)."""
        nz = [v for v in self.eigenvalues if v != 0]
        return max(nz) if nz else math.nan

    def expanded(self) -> np.ndarray:
        """All eigenvalues, repeated by multiplicity, ascending."""
        return np.repeat(np.asarray(self.eigenvalues, dtype=float), np.asarray(self.multiplicities, dtype=int))

    def to_dict(self) -> dict:
        """The JSON record of ``ufm conditioning --json``."""
        out = {"alpha": self.alpha, "definition": self.definition, "source": self.source,
               "eigenvalues": [float(v) for v in self.eigenvalues],
               "multiplicities": [int(m) for m in self.multiplicities],
               "null_dim": self.null_dim, "condition_number": self.condition_number,
               "null_tol": self.null_tol, "complete": self.complete,
               "problem": self.problem.to_dict()}
        if self.details:
            out["details"] = self.details
        return out


def distinct(values: np.ndarray, rtol: float, scale: Optional[float] = None):
    """Group sorted eigenvalues into distinct values: consecutive values closer than
    ``rtol * scale`` (default scale max|lambda|) are one value (their mean)."""
    values = np.sort(np.asarray(values, dtype=float))
    if values.size == 0:
        return [], []
    scale = float(np.abs(values).max()) if scale is None else scale
    groups = [[values[0]]]
    for v in values[1:]:
        if v - groups[-1][-1] <= rtol * scale:
            groups[-1].append(v)
        else:
            groups.append([v])
    return [float(np.mean(g)) for g in groups], [len(g) for g in groups]


def condition_number(rest) -> float:
    """The condition number from the eigenvalues off the null space (``rest``): the largest over the
    smallest; NaN when none is left or the smallest is not positive (the point is not a minimizer).
    The one definition, for derived and numerical spectra alike."""
    rest = np.asarray(rest, dtype=float)
    return float(rest.max() / rest.min()) if rest.size and rest.min() > 0 else math.nan


def _roots(c2, c1, c0):
    """Both roots of c2 x^2 + c1 x + c0 (real: the polynomial is det(H - x G) of a
    symmetric pair with G positive definite), without cancellation."""
    disc = max(c1 * c1 - 4 * c2 * c0, 0.0)
    q = -(c1 + math.copysign(math.sqrt(disc), c1)) / 2
    if q == 0:
        return [0.0, 0.0]
    return [q / c2, c0 / q]


def _block(Hr, Gr):
    from scipy.linalg import eigh
    return list(eigh(np.asarray(Hr, dtype=float), np.asarray(Gr, dtype=float), eigvals_only=True))


def rotation_null_dim(K: int, d: int) -> int:
    """Dimension of the rotation orbit of a collapsed minimizer, dim O(d) - dim O(d-K+1)
    = (K-1)(2d-K)/2: the null space of the ``full`` Hessian (H-section of hessian.md)."""
    return d * (d - 1) // 2 - (d - K + 1) * (d - K) // 2


def symbolic_spectrum(problem: UFMProblem, definition: str) -> Spectrum:
    """The derived spectrum of one operator at the closed-form minimizer of ``problem``.

    Raises:
        InvalidParameterError: unknown definition, or d < K - 1 (no closed form).
    """
    from ufm.theory._generated import hessian as gen

    check_param("definition", definition, Options(DEFINITIONS), "symbolic_spectrum")
    require_closed_form(problem.K, problem.d, "symbolic_spectrum")
    cf = closed_form(problem)
    p = problem
    key = spectrum_key(definition, cf.trivial, p.lambda_b > 0, p.K == 2)
    values, mults, null_dim, cond, components = _evaluate(gen.SPECTRA[key], p, cf)
    details = {"trivial": bool(cf.trivial), "key": key, "components": components}
    if definition == "full" and not cf.trivial:
        details["rotation_null_dim"] = rotation_null_dim(p.K, p.d)
    if definition == "full" and p.lambda_b == 0:
        # The same Hessian with b as a variable: the shift b0 1 is one more null direction, and the
        # other K - 1 bias directions have curvature, so the condition number can differ.
        key_b = spectrum_key("full", cf.trivial, True, p.K == 2)
        details["condition_number_with_bias"] = _evaluate(gen.SPECTRA[key_b], p, cf, shift_is_null=True)[3]
    return Spectrum(problem=p, definition=definition, source="symbolic", eigenvalues=values,
                    multiplicities=mults, null_dim=null_dim, condition_number=cond, details=details)


#: roots of the derived quadratics and blocks below this fraction of the largest eigenvalue are
#: zeros (they are exactly 0 only at special points, e.g. s = s_crit, where rounding leaves ~1e-17)
ZERO_RTOL = 1e-12


def _evaluate(fn, p: UFMProblem, cf, shift_is_null: bool = False):
    q = dict(K=p.K, n=p.n, d=p.d, lambda_w=p.lambda_w, lambda_h=p.lambda_h, lambda_b=p.lambda_b,
             alpha=p.alpha, p_t=cf.p_true, p_o=cf.p_off, s=cf.reg_strength, rho_w=cf.w_norm, rho_h=cf.h_norm)
    pairs = []  # (value, multiplicity, zero)
    components = []  # (name, multiplicity, eigenvalues) per invariant piece, as derived
    for name, mult, kind, payload in fn(**q, xp=np):
        mult = int(round(mult))
        if mult <= 0:
            continue
        if kind == "values":
            vals = [float(v) for v in payload]
            zero = [type(v) is int and v == 0 for v in payload]  # a literal 0 of the derivation
            if shift_is_null and name == "span, trivial representation" and len(vals) == 1:
                zero = [True]  # the eigenvalue lambda_b of the shift b0 1, 0 here
        elif kind == "quadratic":
            vals, zero = _roots(*[float(c) for c in payload]), [False, False]
        else:
            vals = _block(*payload)
            zero = [False] * len(vals)
        pairs += [(v, mult, z) for v, z in zip(vals, zero)]
        components.append((name, mult, [float(v) for v in vals]))
    scale = max(abs(v) for v, _, _ in pairs)
    pairs = [(v, m, z or abs(v) <= ZERO_RTOL * scale) for v, m, z in pairs]
    null_dim = sum(m for _, m, z in pairs if z)
    rest = np.repeat([v for v, _, z in pairs if not z], [m for _, m, z in pairs if not z])
    values, mults = distinct(rest, rtol=1e-12)
    if null_dim:
        values, mults = [0.0] + values, [null_dim] + mults
    return values, mults, null_dim, condition_number(rest), components
