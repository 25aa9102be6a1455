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

Evaluation: each spectrum is its derived pieces, a handful of distinct values with multiplicities
(quadratic roots, the generalized eigenvalues of the span blocks); they are never expanded into the
P eigenvalues. :func:`symbolic_spectra` evaluates them with numpy for many problems at once (one call
of the generated code per spectrum key); :func:`symbolic_spectrum` is the same evaluation at one problem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ufm._core.validation import Options, check_param, require_closed_form
from ufm.problem import UFMProblem
from ufm.theory.keys import DEFINITIONS, MAP_DEFINITIONS, WITH_BIAS, spectrum_key

__all__ = ["DEFINITIONS", "Spectrum", "Spectra", "spectrum_key", "symbolic_spectrum", "symbolic_spectra",
           "rotation_null_dim", "distinct", "condition_number", "condition_numbers"]

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
    The one definition, for derived and numerical spectra alike (:func:`condition_numbers` in batch)."""
    rest = np.asarray(rest, dtype=float).reshape(1, -1)
    return float(condition_numbers(rest, np.ones(rest.shape, dtype=bool))[0])


def condition_numbers(values: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """:func:`condition_number` of each row of ``values`` (..., m), over the entries where ``rest`` is
    True (the eigenvalues off the null space): the largest over the smallest, NaN when no entry is
    left or the smallest is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.where(rest, values, -np.inf).max(-1)
        low = np.where(rest, values, np.inf).min(-1)
        positive = rest.any(-1) & (low > 0)
        return np.where(positive, top / np.where(positive, low, 1.0), np.nan)


def rotation_null_dim(K: int, d: int) -> int:
    """Dimension of the rotation orbit of a collapsed minimizer, dim O(d) - dim O(d-K+1)
    = (K-1)(2d-K)/2: the null space of the ``full`` Hessian (H-section of hessian.md)."""
    return d * (d - 1) // 2 - (d - K + 1) * (d - K) // 2


@dataclass
class Spectra:
    """The derived spectra of N problems at once (:func:`symbolic_spectra`), as slots: problem i has the
    eigenvalue ``values[i, j]`` with multiplicity ``multiplicities[i, j]`` for every slot j, one slot per
    value of a derived piece (a value may fill several slots; multiplicity 0 marks an unused slot).

    Attributes:
        definition: one of ``MAP_DEFINITIONS`` (``full, b included``: b a variable although lambda_b = 0).
        values, multiplicities, null: (N, m) arrays; ``null`` marks the slots in the null space
            (literal zeros of the derivation, and values below ZERO_RTOL of the largest).
        null_dim, condition_number, trivial: (N,) arrays, as in :class:`Spectrum`.
    """

    definition: str
    values: np.ndarray
    multiplicities: np.ndarray
    null: np.ndarray
    null_dim: np.ndarray
    condition_number: np.ndarray
    trivial: np.ndarray


#: roots of the derived quadratics and blocks below this fraction of the largest eigenvalue are
#: zeros (they are exactly 0 only at special points, e.g. s = s_crit, where rounding leaves ~1e-17)
ZERO_RTOL = 1e-12
#: the bound under which the integer products of the derivation (up to 64 n d K^4) are exact in int64
#: and in float64, as the Python ints of one problem are
_EXACT_INT = 2 ** 53


def symbolic_spectrum(problem: UFMProblem, definition: str) -> Spectrum:
    """The derived spectrum of one operator at the closed-form minimizer of ``problem``.

    Evaluated by the same piece and condition-number code as :func:`symbolic_spectra` (which the tests
    compare with it), on one point.

    Raises:
        InvalidParameterError: unknown definition, or d < K - 1 (no closed form).
    """
    check_param("definition", definition, Options(DEFINITIONS), "symbolic_spectrum")
    require_closed_form(problem.K, problem.d, "symbolic_spectrum")
    p = problem
    q, trivial = _inputs(p.K, p.n, p.d, p.lambda_w, p.lambda_h, p.lambda_b, p.alpha)
    cf_trivial = bool(trivial[0])
    key = spectrum_key(definition, cf_trivial, p.lambda_b > 0, p.K == 2)
    pieces = _pieces(_generated()[key], q, shift_is_null=False)
    values, mults, zero = _slots(pieces)
    null, null_dim, cond = _summary(values, mults, zero)
    components = [(name, int(m[0]), [float(v) for v in vals[0]]) for name, m, vals, _ in pieces if m[0] > 0]
    details = {"trivial": cf_trivial, "key": key, "components": components}
    if definition == "full" and not cf_trivial:
        details["rotation_null_dim"] = rotation_null_dim(p.K, p.d)
    if definition == "full" and p.lambda_b == 0:
        # The same Hessian with b as a variable: the shift b0 1 is one more null direction, and the
        # other K - 1 bias directions have curvature, so the condition number can differ.
        key_b = spectrum_key("full", cf_trivial, True, p.K == 2)
        with_b = _summary(*_slots(_pieces(_generated()[key_b], q, shift_is_null=True)))
        details["condition_number_with_bias"] = float(with_b[2][0])
    rest = (mults[0] > 0) & ~null[0]
    vals, counts = _distinct_slots(values[0][rest], mults[0][rest], rtol=1e-12)
    if null_dim[0]:
        vals, counts = [0.0] + vals, [int(null_dim[0])] + counts
    return Spectrum(problem=p, definition=definition, source="symbolic", eigenvalues=vals,
                    multiplicities=counts, null_dim=int(null_dim[0]), condition_number=float(cond[0]),
                    details=details)


def symbolic_spectra(K, n, d, lambda_w, lambda_h, lambda_b, alpha, definition: str) -> Spectra:
    """The derived spectra of one operator at the closed-form minimizers of many problems, vectorized.

    The arguments are broadcastable arrays (or scalars) of UFMProblem fields; no validation beyond
    ``definition``: the caller passes valid problems with d >= K - 1 (:func:`symbolic_spectrum` checks
    one). Each problem's eigenvalues are its distinct derived values with their multiplicities (never
    the P eigenvalues expanded), evaluated with numpy for all problems of one spectrum key at once.
    ``definition`` may also be ``full, b included`` (``ufm.theory.keys.WITH_BIAS``): the full Hessian
    with b as a variable where lambda_b = 0, the shift b0 1 in its null space (where lambda_b > 0,
    b is a variable of ``full`` already, and the two are the same).

    Returns:
        :class:`Spectra` over the broadcast shape, flattened to (N,).
    """
    check_param("definition", definition, Options(MAP_DEFINITIONS), "symbolic_spectra")
    q, trivial = _inputs(K, n, d, lambda_w, lambda_h, lambda_b, alpha)
    with_bias = definition == WITH_BIAS
    dfn = "full" if with_bias else definition
    regularized = q["lambda_b"] > 0
    shift = np.full(trivial.shape, with_bias) & ~regularized
    binary = np.asarray(q["K"] == 2, dtype=bool)
    code = 8 * trivial + 4 * (regularized | shift) + 2 * binary + shift
    parts = []
    for c in np.unique(code):
        idx = np.flatnonzero(code == c)
        key = spectrum_key(dfn, bool(c & 8), bool(c & 4), bool(c & 2))
        sub = {k: v[idx] for k, v in q.items()}
        parts.append((idx, _slots(_pieces(_generated()[key], sub, shift_is_null=bool(c & 1)))))
    width = max([v.shape[1] for _, (v, _, _) in parts], default=0)
    values, mults = np.zeros((trivial.size, width)), np.zeros((trivial.size, width), dtype=np.int64)
    zero = np.zeros((trivial.size, width), dtype=bool)
    for idx, (v, m, z) in parts:  # unused slots (a key with fewer values): multiplicity 0
        values[idx, :v.shape[1]], mults[idx, :v.shape[1]], zero[idx, :v.shape[1]] = v, m, z
    null, null_dim, cond = _summary(values, mults, zero)
    return Spectra(definition=definition, values=values, multiplicities=mults, null=null, null_dim=null_dim,
                   condition_number=cond, trivial=trivial)


def _generated() -> dict:
    """The generated spectra by key (``ufm.theory._generated.hessian.SPECTRA``), imported on first use."""
    from ufm.theory._generated import hessian as gen

    return gen.SPECTRA


def _inputs(K, n, d, lambda_w, lambda_h, lambda_b, alpha):
    """The arguments of the generated spectra as flat arrays of one length (K, n, d exact integers, as
    the Python ints of one problem are; the closed form's p_t, p_o, s, rho_w, rho_h), and ``trivial``."""
    from ufm.theory.closed_form import closed_form_arrays

    floats = np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in (K, n, d, lambda_w, lambda_h, lambda_b, alpha)])
    Kf, nf, df, lw, lh, lb, a = [x.ravel() for x in floats]
    cf = closed_form_arrays(a, Kf, nf, lw, lh)
    ints = [np.broadcast_to(np.asarray(x), floats[0].shape).ravel().astype(np.int64) for x in (K, n, d)]
    if ints[0].size and 64 * int(ints[0].max()) ** 4 * int(ints[1].max()) * int(ints[2].max()) >= _EXACT_INT:
        ints = [np.array(x.tolist(), dtype=object) for x in ints]  # Python ints: exact at any size
    q = dict(K=ints[0], n=ints[1], d=ints[2], lambda_w=lw, lambda_h=lh, lambda_b=lb, alpha=a, p_t=cf.p_true,
             p_o=cf.p_off, s=cf.reg_strength, rho_w=cf.w_norm, rho_h=cf.h_norm)
    return q, np.asarray(cf.trivial, dtype=bool)


def _pieces(fn, q: dict, shift_is_null: bool):
    """The derived pieces of ``fn`` at the points ``q`` (arrays of length N): per piece its name, its
    multiplicity (N,) (0 where the derivation gives none), its values (N, k) and which of them are
    null by the derivation (k,): a literal 0, or with ``shift_is_null`` the shift b0 1 (eigenvalue
    lambda_b, 0 here)."""
    shape = q["alpha"].shape
    out = []
    with np.errstate(all="ignore"):
        for name, mult, kind, payload in fn(**q, xp=np):
            mult = np.rint(_full(mult, shape)).astype(np.int64)
            if kind == "values":
                vals = [_full(v, shape) for v in payload]
                zero = [type(v) is int and v == 0 for v in payload]  # a literal 0 of the derivation
                if shift_is_null and name == "span, trivial representation" and len(vals) == 1:
                    zero = [True]  # the eigenvalue lambda_b of the shift b0 1, 0 here
            elif kind == "quadratic":
                vals, zero = list(_roots(*[_full(c, shape) for c in payload])), [False, False]
            else:
                vals = _block(*payload, shape)
                zero = [False] * len(vals)
            out.append((name, np.maximum(mult, 0), np.stack(vals, -1), np.array(zero, dtype=bool)))
    return out


def _slots(pieces):
    """(values, multiplicities, null by the derivation) of every value of the pieces, (N, m) each."""
    values = np.concatenate([v for _, _, v, _ in pieces], -1)
    mults = np.concatenate([np.repeat(m[:, None], v.shape[1], 1) for _, m, v, _ in pieces], -1)
    zero = np.concatenate([z for _, _, _, z in pieces])
    return values, mults, np.broadcast_to(zero, values.shape)


def _summary(values, mults, zero):
    """Per row: the null slots (the derivation's zeros, and values below ZERO_RTOL of the largest),
    the null dimension and the condition number."""
    used = mults > 0
    with np.errstate(invalid="ignore"):
        scale = np.where(used, np.abs(values), 0.0).max(-1, keepdims=True) if values.shape[-1] else 0.0
        null = used & (zero | (np.abs(values) <= ZERO_RTOL * scale))
    return null, np.where(null, mults, 0).sum(-1), condition_numbers(values, used & ~null)


def _distinct_slots(values: np.ndarray, mults: np.ndarray, rtol: float):
    """Distinct values (ascending) and multiplicities of the slots: :func:`distinct`'s rule (values
    closer than ``rtol`` times the largest magnitude are one, their mean) on the values with their
    multiplicities, never expanded."""
    order = np.argsort(values, kind="stable")
    values, mults = values[order], mults[order]
    if values.size == 0:
        return [], []
    scale = float(np.abs(values).max())
    starts = np.flatnonzero(np.concatenate([[True], np.diff(values) > rtol * scale]))
    out_v, out_m = [], []
    for g, (lo, hi) in enumerate(zip(starts, list(starts[1:]) + [values.size])):
        v, m = values[lo:hi], mults[lo:hi]
        same = bool(np.all(v == v[0]))
        out_v.append(float(v[0]) if same else float(np.dot(v, m) / m.sum()))
        out_m.append(int(m.sum()))
    return out_v, out_m


def _roots(c2, c1, c0):
    """Both roots of c2 x^2 + c1 x + c0, elementwise (real: the polynomial is det(H - x G) of a
    symmetric pair with G positive definite), without cancellation."""
    disc = np.sqrt(np.maximum(c1 * c1 - 4 * c2 * c0, 0.0))
    q = -(c1 + np.copysign(disc, c1)) / 2
    safe = np.where(q == 0, 1.0, q)
    return np.where(q == 0, 0.0, q / c2), np.where(q == 0, 0.0, c0 / safe)


def _full(value, shape) -> np.ndarray:
    """``value`` (a scalar or an array of the generated code) as a float array of ``shape``."""
    if isinstance(value, np.ndarray) and value.shape == shape and value.dtype == np.float64:
        return value
    return np.broadcast_to(np.asarray(value, dtype=float), shape)


def _matrix(rows, shape) -> np.ndarray:
    """A (..., m, m) array of the nested entries ``rows`` (scalars or arrays), broadcast to ``shape``;
    (m, m) when every entry is a scalar."""
    if not any(isinstance(e, np.ndarray) for row in rows for e in row):
        return np.array(rows, dtype=float)
    out = np.empty(shape + (len(rows), len(rows)))
    for i, row in enumerate(rows):
        for j, e in enumerate(row):
            out[..., i, j] = e
    return out


def _block(Hr, Gr, shape):
    """Generalized eigenvalues (ascending) of the pairs (H_r, G_r) in batch: G = L L^T, then
    eig(L^-1 H L^-T)."""
    Linv = np.linalg.inv(np.linalg.cholesky(_matrix(Gr, shape)))
    ev = np.linalg.eigvalsh(Linv @ _matrix(Hr, shape) @ np.swapaxes(Linv, -1, -2))
    return [_full(ev[..., i], shape) for i in range(ev.shape[-1])]
