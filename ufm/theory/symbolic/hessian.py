"""Symbolic Hessian spectra of the UFM at its global minimizers (sympy).

Four operators, each at the closed-form minimizer of ``derivations/minimizer.md``
(README, "Conditioning"):

* ``logits``: the Hessian of the per-sample loss with respect to the logits, K x K;
* ``features``: the Hessian of f with respect to H at W = W*, b = b* (dN x dN);
* ``classifier``: the Hessian of f with respect to W at H = H*, b = b* (Kd x Kd);
* ``full``: the Hessian of f in (W, H), and b as well when lambda_b > 0.

The derivation works for symbolic K, n, d. At a collapsed point the parameter space
splits into subspaces the Hessian leaves invariant:

1. *within-class* moves of H (features of one class moving with zero sum), where the
   Hessian is the per-sample features Hessian;
2. *perpendicular* moves: W and the class means along the d - K + 1 directions
   orthogonal to the span of the ETF (the rotations fixing the span act on them);
3. *span* moves: W, the class means and b inside the span. The symmetric group S_K
   (relabel the classes, and rotate the ETF with them) acts on this subspace and commutes
   with the Hessian, so by Schur's lemma the Hessian is block diagonal over the isotypic
   components of four irreducible representations: trivial (dim 1), standard
   (dim K - 1), (K-2, 2) (dim K(K-3)/2) and (K-2, 1, 1) (dim (K-1)(K-2)/2). Each block is
   a small matrix pair (H_r, G_r) (Hessian and metric on one copy of each
   representation); its generalized eigenvalues are eigenvalues of the Hessian with
   multiplicity dim r.

The block entries are sums over class and logit indices of products of Kronecker deltas
and constants; :class:`PatternSums` evaluates such sums exactly for symbolic K by
splitting each index into "one of a few named indices" and "one of the others", so the
entries come out as rational functions of K, not as a fit over sample values of K.
Blocks of size 2 give closed-form eigenvalues (a quadratic); the standard block of the
full Hessian (3 x 3 without b, 4 x 4 with b, after one closed-form eigenvalue
lambda_W is split off) has a characteristic polynomial that does not factor over the
rationals, so ufm evaluates it from its closed-form entries and says so.

``derivations/hessian.py`` prints this derivation and writes ``derivations/hessian.md``
and ``ufm/theory/_generated/hessian.py``, which ``ufm.theory.spectra`` evaluates at run
time without sympy. Equations are cited there as (Hk).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import sympy as sp

from ufm.theory.keys import DEFINITIONS, spectrum_key
from ufm.theory.symbolic.codegen import generated_comment, generated_header, pycode
from ufm.theory.symbolic.minimizer import derive_minimizer

from ufm.theory.symbolic.pattern_sums import PatternSums, delta, unit, zero1, zero2
from ufm.theory.symbolic.steps import Step, steps_markdown, steps_text
from ufm.theory.symbolic.symbols import K, alpha, lambda_b, lambda_H, lambda_W, n, rho_h, rho_w, s

__all__ = ["PatternSums", "Component", "HessianDerivation", "derive_hessian", "collapsed_spectra", "DEFINITIONS",
           "HESSIAN_TITLE",
           "hessian_to_markdown", "hessian_to_python", "hessian_to_text", "spectrum_key"]

d = sp.Symbol("d", positive=True, integer=True)
p_t = sp.Symbol("p_t", positive=True)  # p_true at the minimizer
p_o = sp.Symbol("p_o", positive=True)  # p_off at the minimizer
x = sp.Symbol("x")  # eigenvalue variable

HESSIAN_TITLE = "Hessian spectra of the UFM at its global minimizers"

#: Relations that hold on the collapsed branch: lambda_W ||w||^2 = n lambda_H ||h||^2 and
#: s^2 = n lambda_W lambda_H give lambda_W = s rho_h / rho_w, n lambda_H = s rho_w / rho_h.
COLLAPSED_RELATIONS = {lambda_W: s * rho_h / rho_w, lambda_H: s * rho_w / (n * rho_h)}
#: The trivial branch W = H = 0: uniform softmax, and p - t = (1 - alpha)(1/K - e_y) has the
#: same form as on the collapsed branch with s replaced by (1 - alpha)/K.
TRIVIAL_POINT = {rho_w: 0, rho_h: 0, p_o: 1 / K, p_t: 1 / K, s: (1 - alpha) / K}


def _prob(k, j):  # softmax of a class-k sample at the minimizer
    return p_t if j == k else p_o


def _logit_hessian(k, j, l):  # A_k = diag(p_k) - p_k p_k^T
    return _prob(k, j) * delta(j, l) - _prob(k, j) * _prob(k, l)


def _loss_gradient(k, j):  # g_k = p_k - t_k = s 1 - K s e_k on the collapsed branch (step 1)
    return s - K * s * delta(j, k)


# A direction in span coordinates: (Y, Z, beta) with Y = dW U (K x K, zero row sums),
# Z = U^T dM (K x K, zero column sums), beta = db (K); U = [u_1..u_K] the unit simplex ETF.

def _bilinear(S: PatternSums, D1, D2, parts=("loss", "W", "H", "b")) -> sp.Expr:
    """The Hessian bilinear form of f on two span directions (step 3, eq. for B)."""
    (Y1, Z1, B1), (Y2, Z2, B2) = D1, D2

    def dz(Y, Z, B, j, k):
        return rho_h * Y(j, k) + rho_w * Z(j, k) + B(j)

    total = sp.S.Zero
    if "loss" in parts:
        def per_class(k, bk):
            quad = S(lambda j, bj: S(lambda l, bl: dz(Y1, Z1, B1, j, k) * _logit_hessian(k, j, l)
                                     * dz(Y2, Z2, B2, l, k), bj), bk)
            cross = S(lambda j, bj: _loss_gradient(k, j) * S(lambda l, bl: Y1(j, l) * Z2(l, k)
                                                             + Y2(j, l) * Z1(l, k), bj), bk)
            return quad + (K - 1) / K * cross
        total += S(per_class) / K
    if "W" in parts:
        total += lambda_W * (K - 1) / K * S(lambda i, bi: S(lambda j, bj: Y1(i, j) * Y2(i, j), bi))
    if "H" in parts:
        total += lambda_H * n * (K - 1) / K * S(lambda i, bi: S(lambda j, bj: Z1(i, j) * Z2(i, j), bi))
    if "b" in parts:
        total += lambda_b * S(lambda i, bi: B1(i) * B2(i))
    return total


def _metric(S: PatternSums, D1, D2) -> sp.Expr:
    """Squared-norm inner product of two span directions in the parameters (W, H, b)."""
    (Y1, Z1, B1), (Y2, Z2, B2) = D1, D2
    return ((K - 1) / K * S(lambda i, bi: S(lambda j, bj: Y1(i, j) * Y2(i, j), bi))
            + n * (K - 1) / K * S(lambda i, bi: S(lambda j, bj: Z1(i, j) * Z2(i, j), bi))
            + S(lambda i, bi: B1(i) * B2(i)))


def _representations():
    """One copy of each irreducible representation in each of Y, Z, beta (step 3)."""
    v = lambda i: unit(1)(i) - unit(2)(i)  # a vector of the standard representation
    u = lambda i: unit(3)(i) - unit(4)(i)
    sym = lambda i, j: v(i) * u(j) + u(i) * v(j)  # (K-2, 2): symmetric, zero diagonal and row sums
    cyc = {(1, 2): 1, (2, 3): 1, (3, 1): 1, (2, 1): -1, (3, 2): -1, (1, 3): -1}
    anti = lambda i, j: sp.S(cyc.get((i[1], j[1]), 0)) if i[0] == j[0] == "named" else sp.S.Zero  # (K-2, 1, 1)
    centred = lambda i, j: delta(i, j) - 1 / K
    return {
        "trivial": (0, "1", {"Y": (centred, zero2, zero1), "Z": (zero2, centred, zero1),
                             "b": (zero2, zero2, lambda i: sp.S.One)}),
        "standard": (2, "K - 1", {"Y1": (lambda i, j: v(j), zero2, zero1),
                                  "Y2": (lambda i, j: delta(i, j) * v(i) - v(i) / K, zero2, zero1),
                                  "Z1": (zero2, lambda i, j: v(i), zero1),
                                  "Z2": (zero2, lambda i, j: delta(i, j) * v(j) - v(j) / K, zero1),
                                  "b": (zero2, zero2, v)}),
        "(K-2,2)": (4, "K*(K - 3)/2", {"Y": (sym, zero2, zero1), "Z": (zero2, sym, zero1)}),
        "(K-2,1,1)": (3, "(K - 1)*(K - 2)/2", {"Y": (anti, zero2, zero1), "Z": (zero2, anti, zero1)}),
    }


# ---------------------------------------------------------------------------
# Spectrum components.

@dataclass
class Component:
    """Eigenvalues of one invariant piece of an operator, each with ``multiplicity``.

    Exactly one of ``values`` (closed-form eigenvalues), ``quadratic`` (coefficients
    (c2, c1, c0) of det(H_r - x G_r): two closed-form roots) or ``block`` (the matrix pair
    (H_r, G_r), evaluated numerically) is set. A value that is literally 0 is a null
    direction (a symmetry), counted in the null space.
    """

    name: str
    multiplicity: sp.Expr
    values: Optional[List[sp.Expr]] = None
    quadratic: Optional[Tuple[sp.Expr, sp.Expr, sp.Expr]] = None
    block: Optional[Tuple[sp.Matrix, sp.Matrix]] = None

    def count(self) -> sp.Expr:
        per_copy = len(self.values) if self.values is not None else 2 if self.quadratic else self.block[0].rows
        return self.multiplicity * per_copy


@dataclass
class HessianDerivation:
    """Steps (for the Markdown) and, per spectrum key, the list of components."""

    steps: List[Step]
    spectra: Dict[str, List[Component]]


def _simplify(e):
    return sp.factor(sp.simplify(e))


def _at(expr, subs_list):
    """expr with each substitution of ``subs_list`` applied in turn (the trivial point, then K = 2)."""
    for subs in subs_list:
        expr = expr.subs(subs)
    return expr


def _reduce(S, dirs, known, parts, branch_subs, null_relations):
    """The block of one representation: deflate the ``known`` eigenvectors (closed-form
    values, returned first) and return the rest as values (1 x 1), a quadratic (2 x 2)
    or a matrix pair."""
    names = list(dirs)
    Hm = sp.Matrix(len(names), len(names), lambda i, j: _bilinear(S, dirs[names[i]], dirs[names[j]], parts))
    G = sp.Matrix(len(names), len(names), lambda i, j: _metric(S, dirs[names[i]], dirs[names[j]]))
    Hm = _at(Hm.subs(p_t, 1 - (K - 1) * p_o), branch_subs).applyfunc(_simplify)
    G = _at(G, branch_subs).applyfunc(_simplify)
    values = []
    keep = list(range(len(names)))
    for name in known:  # a direction the loss does not see: eigenvalue from the regularizer alone
        i = names.index(name)
        val = _simplify(Hm[i, i] / G[i, i])
        residual = (Hm[:, i] - val * G[:, i]).applyfunc(sp.simplify)
        if any(e != 0 for e in residual):
            raise RuntimeError(f"{name} is not an eigenvector: residual {residual}")
        values.append(val)
        keep.remove(i)
    # Deflate: complete the known vectors' G-orthogonal complement (Gram-Schmidt in G).
    basis = []
    for j in keep:
        v = sp.zeros(len(names), 1)
        v[j] = 1
        for name in known:
            i = names.index(name)
            v[i] -= G[i, j] / G[i, i]
        basis.append(v)
    if not basis:
        return values, None
    B = sp.Matrix.hstack(*basis)
    Hr = (B.T * Hm * B).applyfunc(_simplify)
    Gr = (B.T * G * B).applyfunc(_simplify)
    if Hr.rows == 1:
        return values + [_simplify(Hr[0, 0] / Gr[0, 0])], None
    if Hr.rows == 2:
        poly = sp.Poly(sp.expand((Hr - x * Gr).det()), x)
        c2, c1, c0 = [_simplify(c) for c in poly.all_coeffs()]
        if null_relations and sp.simplify(c0.subs(null_relations)) == 0:
            return values + [sp.S.Zero, _simplify((-c1 / c2).subs(null_relations))], None
        return values, (c2, c1, c0)
    return values, (Hr, Gr)


def _components_from_blocks(prefix, reps, parts, branch_subs, null_relations, binary, with_bias, only=None):
    comps = []
    for rep, (m, mult, dirs) in reps.items():
        if binary and rep != "standard" and rep != "trivial":
            continue  # multiplicity 0 at K = 2
        chosen = {k: v for k, v in dirs.items()
                  if (only is None or k[0] in only) and (with_bias or k != "b")
                  and not (binary and k in ("Y2", "Z2"))}
        if not chosen:
            continue
        # loss-invariant directions: a common shift of a sample's logits (Y1), of all biases (b = 1)
        known = [k for k in chosen if k == "Y1" or (rep == "trivial" and k == "b")]
        S = PatternSums(m)
        values, rest = _reduce(S, chosen, known, parts, branch_subs, null_relations)
        name = f"{prefix}, {rep} representation"
        multiplicity = sp.sympify(mult, locals={"K": K})
        if values:
            comps.append(Component(name, multiplicity, values=values))
        if isinstance(rest, tuple) and isinstance(rest[0], sp.Matrix):
            comps.append(Component(name, multiplicity, block=rest))
        elif rest is not None:
            comps.append(Component(name, multiplicity, quadratic=rest))
    return comps


def _setting_step(steps: List[Step]) -> None:
    """Step 1: the gradient of the loss in the logits at the minimizer, and the norm relations."""
    mz = derive_minimizer("label_smoothing").results_in_s
    g_off = sp.simplify(mz["p_off"] - alpha / K)
    g_true = sp.simplify(mz["p_true"] - (1 - alpha + alpha / K))
    if sp.simplify(g_off - s) != 0 or sp.simplify(g_true + (K - 1) * s) != 0:
        raise RuntimeError(f"loss gradient at the minimizer: got {g_off}, {g_true}")
    gap = sp.Symbol("Delta", positive=True)
    steps.append(Step(
        "Setting: logits, their gradient and Hessian at the minimizer",
        "At the collapsed minimizer every class-k sample has the logits of the ETF: softmax p_t on "
        "class k and p_o on the others (M15, M16), p_t + (K-1) p_o = 1. The loss gradient in the logits "
        "is p - t; its off-class entries equal the regularization strength s = sqrt(n lambda_W lambda_H), "
        "so g_k = s 1 - K s e_k. The loss Hessian in the logits is A_k = diag(p_k) - p_k p_k^T. "
        "The norms satisfy lambda_W rho_w^2 = n lambda_H rho_h^2 and rho_w rho_h = (K-1) Delta*/K, "
        "with rho_w = ||w_k*||, rho_h = ||h_k*|| (M17, M18).",
        [(r"p_{\mathrm{off}}^\star - \alpha/K", g_off), (r"p_{\mathrm{true}}^\star - (1 - \alpha + \alpha/K)", g_true),
         (r"\lambda_W", COLLAPSED_RELATIONS[lambda_W]), (r"\lambda_H", COLLAPSED_RELATIONS[lambda_H]),
         (r"\rho_w \rho_h", (K - 1) * gap / K)]))



def _logits_step(steps: List[Step]) -> list:
    """Step 2 (a): eigenvectors 1, e_2 - e_3 and K e_1 - 1 of A_1, checked entrywise for symbolic K."""
    S3 = PatternSums(3)
    eig_logits = []
    for vec, val, label in ((lambda i: sp.S.One, sp.S.Zero, "1"),
                            (lambda i: unit(2)(i) - unit(3)(i), p_o, "e_2 - e_3"),
                            (lambda i: K * unit(1)(i) - 1, K * p_t * p_o, "K e_1 - 1")):
        for probe in (("named", 1), ("named", 2), ("named", 3), ("free", 0)):
            lhs = S3(lambda l, bl: _logit_hessian(("named", 1), probe, l) * vec(l), (probe,) if probe[0] == "free" else ())
            res = sp.simplify((lhs - val * vec(probe)).subs(p_t, 1 - (K - 1) * p_o))
            if res != 0:
                raise RuntimeError(f"logits eigenvector {label}: residual {res}")
        eig_logits.append(val)
    steps.append(Step(
        "(a) The Hessian of the per-sample loss in the logits",
        "A_1 (a class-1 sample) has eigenvector 1 with eigenvalue 0 (softmax is invariant to a common "
        "shift), the K-2 vectors e_j - e_l (j, l != 1) with eigenvalue p_o, and K e_1 - 1 with eigenvalue "
        "K p_t p_o; each is checked entrywise for symbolic K. The condition number on the complement of "
        "the null vector is K p_t for K >= 3 (K p_t > 1 on the collapsed branch) and 1 for K = 2.",
        [(r"\mu_{\mathbf{1}}", eig_logits[0]), (r"\mu_{e_j - e_l}", eig_logits[1]),
         (r"\mu_{K e_1 - \mathbf{1}}", eig_logits[2]),
         (r"\kappa_{\mathrm{logits}}", K * p_t)]))

    return eig_logits


def _subspaces_step(steps: List[Step]) -> None:
    """Step 3: the invariant subspaces and the span coordinates (Y, Z, beta)."""
    steps.append(Step(
        "Invariant subspaces and span coordinates",
        "Split H into class means M (K columns) and within-class deviations (zero sum per class), and R^d "
        "into the span of the ETF (K-1 dimensions) and its orthogonal complement. At a collapsed point the "
        "Hessian leaves invariant: within-class moves; moves of W and M orthogonal to the span; moves of W, "
        "M, b inside the span. Inside the span write Y = dW U (zero row sums), Z = U^T dM (zero column "
        "sums) and beta = db, where U = [u_1..u_K] is the unit simplex ETF (U U^T = K/(K-1) on the span). "
        "Then the logits of class k move by dz_k = rho_h Y e_k + rho_w Z e_k + beta, the second-order "
        "logit term is dW dm_k = (K-1)/K Y Z e_k, and the Hessian bilinear form and the metric are:",
        [(r"B", sp.Symbol(r"\frac{1}{K}\sum_k \left[dz_k^\top A_k dz'_k + \frac{K-1}{K} g_k^\top (Y Z' + Y' Z) e_k"
                          r"\right] + \lambda_W \frac{K-1}{K}\langle Y, Y'\rangle + \lambda_H n \frac{K-1}{K}"
                          r"\langle Z, Z'\rangle + \lambda_b \langle \beta, \beta'\rangle")),
         (r"\|(dW, dH, db)\|^2", sp.Symbol(r"\frac{K-1}{K}\|Y\|^2 + n\frac{K-1}{K}\|Z\|^2 + \|\beta\|^2"))]))



def _per_sample():
    """The per-sample features eigenvalues (name, multiplicity per sample, value): the within-class kind."""
    omega = rho_w**2 / ((K - 1) * n)
    return [("span of the ETF", K - 2, lambda_H + omega * p_o),
            ("span of the ETF", sp.S.One, lambda_H + omega * K * p_t * p_o),
            ("orthogonal to the span", d - K + 1, lambda_H)]


def _full_components(reps, subs, rel, binary: bool, bias: bool, per_sample) -> List[Component]:
    """(d) the full Hessian: span blocks, moves orthogonal to the span, within-class moves."""
    parts = ("loss", "W", "H", "b") if bias else ("loss", "W", "H")
    comps = _components_from_blocks("span", reps, parts, subs, rel, binary, bias)
    # Perpendicular block per direction e: dW = x e^T, dm_k = y_k e; no first-order logit
    # change, cross term (2/K) sum_k g_k^T x y_k = -2 s x^T P y; in orthonormal H coordinates
    # y' = sqrt(n) y: [[lambda_W, -s/sqrt(n) P], [-s/sqrt(n) P, lambda_H]].
    perp = sp.Matrix([[lambda_W, -s / sp.sqrt(n)], [-s / sp.sqrt(n), lambda_H]])
    c2, c1, c0 = sp.Poly(sp.expand((perp - x * sp.eye(2)).det()), x).all_coeffs()
    c0 = _at(c0, subs)
    comps.append(Component("orthogonal to the span, all-ones direction", d - K + 1,
                           values=[lambda_W, lambda_H]))
    if rel is not None and sp.simplify(c0.subs(s, sp.sqrt(n * lambda_W * lambda_H))) == 0:
        comps.append(Component("orthogonal to the span, rotations", (K - 1) * (d - K + 1),
                               values=[sp.S.Zero, lambda_W + lambda_H]))
    else:
        comps.append(Component("orthogonal to the span", (K - 1) * (d - K + 1),
                               quadratic=(c2, c1, c0)))
    for name, m, v in per_sample:
        comps.append(Component(f"within-class, {name}", K * (n - 1) * m,
                               values=[_simplify(_at(v, subs))]))
    return comps


def _branch_spectra(trivial: bool, reps, eig_logits, spectra: Dict[str, List[Component]]) -> None:
    """Every spectrum of one branch (collapsed or trivial), for K >= 3 and K = 2, b in or out."""
    point = [TRIVIAL_POINT] if trivial else []
    rel = None if trivial else COLLAPSED_RELATIONS
    # (a)
    vals = [_at(v, point) for v in eig_logits]
    spectra[spectrum_key("logits", trivial, False, False)] = [
        Component("null (common shift)", sp.S.One, values=[vals[0]]),
        Component("e_j - e_l", K - 2, values=[vals[1]]),
        Component("K e_y - 1", sp.S.One, values=[_simplify(vals[2])])]
    per_sample = _per_sample()
    for binary in (False, True):
        subs = point + [{K: 2}] if binary else point
        # (b) features: per sample, blocks of the within-class kind; checked against the span blocks.
        spectra[spectrum_key("features", trivial, False, binary)] = [
            Component(f"each sample, {name}", n * K * m, values=[_simplify(_at(v, subs))])
            for name, m, v in per_sample]
        # (c) classifier: the Y blocks of the span, and lambda_W on the complement of the span.
        cls = _components_from_blocks("span", reps, ("loss", "W"), subs, rel, binary, False, only=("Y",))
        cls.append(Component("orthogonal to the span", K * (d - K + 1), values=[lambda_W]))
        spectra[spectrum_key("classifier", trivial, False, binary)] = cls
        for bias in (False, True):
            spectra[spectrum_key("full", trivial, bias, binary)] = _full_components(reps, subs, rel, binary, bias,
                                                                                    per_sample)
        if not trivial and not binary:
            # features, checked: the Z-only span blocks carry the per-sample eigenvalues.
            zc = _components_from_blocks("span", reps, ("loss", "H"), subs, rel, binary, False, only=("Z",))
            _check_features(zc, per_sample)


def _closing_steps(steps: List[Step]) -> None:
    """The steps after the span blocks: moves orthogonal to the span, within-class moves, the null space."""
    perp = sp.Matrix([[lambda_W, -s / sp.sqrt(n)], [-s / sp.sqrt(n), lambda_H]])
    perp_det = sp.simplify(perp.det().subs(s, sp.sqrt(n * lambda_W * lambda_H)))
    steps.append(Step(
        "Moves orthogonal to the span",
        "For a unit direction e orthogonal to the span, dW = x e^T and dm_k = y_k e change no logit to first "
        "order; the second-order term (2/K) sum_k g_k^T x y_k = -2 s x^T (I - J/K) y couples them. In "
        "orthonormal coordinates (x, sqrt(n) y) the block is the matrix below on the K-1 directions orthogonal "
        "to the all-ones vector (lambda_W and lambda_H on that vector). Its determinant vanishes on the "
        "collapsed branch, since s^2 = n lambda_W lambda_H: eigenvalues 0 (rotations mixing the span with e) and "
        "lambda_W + lambda_H, each (K-1)(d-K+1) times.",
        [(r"\begin{pmatrix} \lambda_W & -s/\sqrt{n} \\ -s/\sqrt{n} & \lambda_H \end{pmatrix}", perp),
         (r"\det\ (\text{collapsed branch})", perp_det)]))
    omega = rho_w**2 / ((K - 1) * n)
    steps.append(Step(
        "Within-class moves and the features Hessian",
        "f is a sum of one term per column h_i, so its Hessian in H is block diagonal: (1/N) W^T A_k W + "
        "lambda_H I for a class-k sample. W W^T = rho_w^2 K/(K-1) (I - J/K) and A_k 1 = 0, so the nonzero "
        "eigenvalues of W^T A_k W are rho_w^2 K/(K-1) times those of A_k off the null vector. Moves of the "
        "samples of one class with zero sum do not move W's gradient, so they carry the same eigenvalues in "
        "the full Hessian, K(n-1) times each. (The derivation checks that the class-mean blocks of the span "
        "reproduce them.)",
        [(r"\mu_{e_j - e_l}", lambda_H + omega * p_o), (r"\mu_{K e_y - \mathbf{1}}", lambda_H + omega * K * p_t * p_o),
         (r"\mu_{\perp}", lambda_H)]))
    null_dim = (K - 1) * (d - K + 1) + (K - 1) * (K - 2) / 2
    orbit = d * (d - 1) / 2 - (d - K + 1) * (d - K) / 2
    if sp.simplify(null_dim - orbit) != 0:
        raise RuntimeError("null space: the zero eigenvalues do not count the rotation orbit")
    steps.append(Step(
        "Null space and condition numbers",
        "On the collapsed branch the full Hessian has exact zeros only from the rotations: (K-1)(d-K+1) "
        "orthogonal to the span and (K-1)(K-2)/2 in the (K-2,1,1) block (rotations inside the span). Their "
        "count equals the dimension of the orbit, dim O(d) - dim O(d-K+1). The condition number of each "
        "operator is its largest eigenvalue over its smallest nonzero one. On the trivial branch (W = H = 0, "
        "s >= s_crit) the same blocks hold with rho_w = rho_h = 0, p = 1/K and s replaced by (1 - alpha)/K "
        "(the loss gradient there is (1 - alpha)(1/K - e_y)); no eigenvalue is forced to zero.",
        [(r"\dim \mathrm{null}", sp.factor(null_dim)), (r"\dim O(d) - \dim O(d-K+1)", sp.factor(orbit))]))


@lru_cache(maxsize=None)
def _collapsed_spectra() -> Dict[str, List[Component]]:
    spectra: Dict[str, List[Component]] = {}
    _branch_spectra(False, _representations(), _logits_step([]), spectra)
    return spectra


def collapsed_spectra() -> Dict[str, List[Component]]:
    """The spectra of the collapsed branch alone (the keys ``spectrum_key(dfn, False, ...)``), as
    :func:`derive_hessian` derives them, without the trivial branch (for ``ufm.theory.symbolic.conditioning``)."""
    return dict(_collapsed_spectra())


@lru_cache(maxsize=None)
def derive_hessian() -> HessianDerivation:
    """Derive the spectra of the four operators on both branches (module docstring)."""
    steps: List[Step] = []
    _setting_step(steps)
    eig_logits = _logits_step(steps)
    _subspaces_step(steps)
    reps = _representations()
    spectra: Dict[str, List[Component]] = collapsed_spectra()
    _branch_spectra(True, reps, eig_logits, spectra)
    steps += _block_steps(spectra)
    _closing_steps(steps)
    return HessianDerivation(steps=steps, spectra=spectra)


def _check_features(zc, per_sample):
    """The class-mean (Z) blocks must reproduce the per-sample features eigenvalues."""
    expected = [sp.simplify(v.subs(p_t, 1 - (K - 1) * p_o)) for _, _, v in per_sample[:2]]
    for c in zc:
        if c.values is not None:
            ok = all(any(sp.simplify(v - e) == 0 for e in expected) for v in c.values)
        elif c.quadratic is not None:  # both per-sample eigenvalues must be its roots
            c2, c1, c0 = c.quadratic
            ok = all(sp.simplify(c2 * e**2 + c1 * e + c0) == 0 for e in expected)
        else:
            ok = False
        if not ok:
            raise RuntimeError(f"features: span block {c.name} does not give the per-sample eigenvalues")


def _block_steps(spectra) -> List[Step]:
    steps = [Step(
        "Span blocks by representation of S_K",
        "Y carries the representations trivial + 2 standard + (K-2,2) + (K-2,1,1); so does Z; beta carries "
        "trivial + standard. One copy of each (trivial: Y = Z = I - J/K, beta = 1; standard, for v = e_1 - "
        "e_2: Y1 = 1 v^T, Y2 = diag(v) - v 1^T/K, Z1 = v 1^T, Z2 = diag(v) - 1 v^T/K, beta = v; (K-2,2): "
        "Y = Z = v u^T + u v^T with u = e_3 - e_4; (K-2,1,1): Y = Z = the cyclic antisymmetric matrix on "
        "classes 1, 2, 3) gives the block of each representation. Y1 = 1 v^T adds the same amount to every "
        "logit of a sample, and beta = 1 shifts all biases: the loss does not see them, so they are "
        "eigenvectors with eigenvalues lambda_W and lambda_b, split off before the rest of the block is "
        "reduced. The blocks of the full Hessian on the collapsed branch (K >= 3, with b):", [])]
    for c in spectra[spectrum_key("full", False, True, False)]:
        if not c.name.startswith("span"):
            continue
        if c.values is not None:
            steps[-1].equations += [(rf"\mu\ [\text{{{c.name}}}]", v) for v in c.values]
        elif c.quadratic is not None:
            c2, c1, c0 = c.quadratic
            steps[-1].equations.append((rf"\det(H_r - x G_r)\ [\text{{{c.name}}}]", c2 * x**2 + c1 * x + c0))
        else:
            Hr, Gr = c.block
            steps[-1].equations += [(rf"H_r\ [\text{{{c.name}}}]", Hr), (rf"G_r\ [\text{{{c.name}}}]", Gr)]
    return steps


# ---------------------------------------------------------------------------
# Export.

def hessian_to_text(derivation: HessianDerivation) -> str:
    lines = steps_text(derivation.steps)
    lines += ["", "== Spectra (eigenvalue x multiplicity)"]
    for key, comps in derivation.spectra.items():
        lines.append(f"  {key}")
        for c in comps:
            what = (", ".join(sp.sstr(v) for v in c.values) if c.values is not None else
                    f"roots of {sp.sstr(c.quadratic[0] * x**2 + c.quadratic[1] * x + c.quadratic[2])}"
                    if c.quadratic is not None else f"eigenvalues of a {c.block[0].rows}x{c.block[0].rows} block")
            lines.append(f"    [{c.name}] x {sp.sstr(c.multiplicity)}: {what}")
    return "\n".join(lines) + "\n"


def hessian_to_markdown(derivation: HessianDerivation) -> str:
    lines = [f"# {HESSIAN_TITLE}", "",
             generated_comment("hessian.py"), "",
             "Symbols: p_t = p_true*, p_o = p_off* (M15, M16), rho_w = ||w_k*||, rho_h = ||h_k*|| (M17, M18), "
             "s = sqrt(n lambda_W lambda_H). Conventions: see the README, \"Conditioning\".", ""]
    lines += steps_markdown(derivation.steps, "H")
    lines += ["## Spectra", "",
              "Each row: the eigenvalues of one invariant piece and their multiplicity. A quadratic means "
              "the two roots of c_2 x^2 + c_1 x + c_0; a block means the generalized eigenvalues of the "
              "matrix pair shown above. Pieces of multiplicity 0 for a given K, d, n are absent.", ""]
    for key, comps in derivation.spectra.items():
        lines += [f"### `{key}`", "", "| piece | multiplicity | eigenvalues |", "|---|---|---|"]
        for c in comps:
            if c.values is not None:
                what = ", ".join(f"${sp.latex(v)}$" for v in c.values)
            elif c.quadratic is not None:
                what = "roots of $" + sp.latex(c.quadratic[0] * x**2 + c.quadratic[1] * x + c.quadratic[2]) + "$"
            else:
                what = f"{c.block[0].rows} x {c.block[0].rows} block (no closed form: see the span step)"
            lines.append(f"| {c.name} | ${sp.latex(c.multiplicity)}$ | {what} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_PY_ARGS = {K: "K", n: "n", d: "d", lambda_W: "lambda_w", lambda_H: "lambda_h", lambda_b: "lambda_b",
            alpha: "alpha", p_t: "p_t", p_o: "p_o", s: "s", rho_w: "rho_w", rho_h: "rho_h"}


def _py(expr) -> str:
    return pycode(expr, _PY_ARGS)


def hessian_to_python(derivation: HessianDerivation) -> str:
    """Python source: per spectrum key a function of the point's quantities returning
    ``[(name, multiplicity, kind, payload), ...]`` with kind ``values``, ``quadratic``
    (c2, c1, c0) or ``block`` (H_r, G_r as nested lists)."""
    args = ", ".join(_PY_ARGS.values())
    lines = generated_header("Compiled Hessian spectra at the UFM minimizers.", "hessian.py",
                             "Evaluated by ufm.theory.spectra; see derivations/hessian.md.")
    names = {}
    for i, (key, comps) in enumerate(derivation.spectra.items()):
        fname = "_" + key.replace("/", "_")
        names[key] = fname
        lines += [f"def {fname}({args}, xp):", "    return ["]
        for c in comps:
            if c.values is not None:
                payload = "values", "[" + ", ".join(_py(v) for v in c.values) + "]"
            elif c.quadratic is not None:
                payload = "quadratic", "(" + ", ".join(_py(v) for v in c.quadratic) + ")"
            else:
                Hr, Gr = c.block
                mats = ["[" + ", ".join("[" + ", ".join(_py(M[r, q]) for q in range(M.cols)) + "]"
                                        for r in range(M.rows)) + "]" for M in (Hr, Gr)]
                payload = "block", "(" + ", ".join(mats) + ")"
            lines.append(f"        ({c.name!r}, {_py(c.multiplicity)}, {payload[0]!r}, {payload[1]}),")
        lines += ["    ]", "", ""]
    lines += ["SPECTRA = {" + ", ".join(f"{k!r}: {v}" for k, v in names.items()) + "}"]
    return "\n".join(lines) + "\n"
