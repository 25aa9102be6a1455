"""Regime maps of the conditioning claim: where label smoothing lowers the condition number, and where not.

At fixed K, d-regime (d = K - 1 or d >= K) and ratio r = lambda_W / lambda_H, the condition number of
each definition at the collapsed minimizer depends on alpha and s = sqrt(n lambda_W lambda_H) alone
(``full, b included`` on n too; ``derivations/conditioning.md``, steps 2-5, (C11)-(C50)). At a given s
the *verdict* is taken over every alpha in (0, alpha_max] below the threshold, alpha < 1 - s K (step 7):

* ``lower``: kappa(alpha) < kappa(0) (CE) for every such alpha; ``higher``: > for every one;
* ``equal``: = for every one (the logits Hessian at K = 2, whose kappa is 1); ``mixed``: otherwise.

:func:`regime_map` covers s K in (0, 1) with intervals of one verdict each. The verdict changes only
where the slope of kappa at alpha = 0+ changes sign (``slope at CE``: the closed-form derivatives
(C12)-(C44), a Richardson difference for ``full``), where kappa(alpha_end) - kappa(0) does (``end of
the alpha range``; alpha_end = min(alpha_max, 1 - s K), approached to within ``END_FRACTION`` of the
threshold), or where an interior extremum of kappa(alpha) - kappa(0) crosses 0 (``interior
extremum``). Boundaries are bracketed on ``GRID`` points of s K, identified by which of these
expressions changes sign across the bracket, and found by regula falsi (Illinois) on it, for all
brackets at once, to 1e-10 in s K; each root is checked against the verdicts on both sides, and a
bracket that fails is halved on the verdict (``verdict bisection`` if no expression explains it).

Inside the alpha range, kappa(alpha) - kappa(0) is sampled at ``ALPHA_SAMPLES`` points per s (dense
near alpha = 0), and its largest and smallest values are refined around the sampled local extremes
(narrow excursions occur at kinks, where the extreme eigenvalue changes piece). The interior-extremum
boundaries are as accurate as that refinement: within 3e-5 in s K of a 400,000-point search in the
two cases measured, the others to the root-finding tolerance.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from ufm._core.validation import (InstanceOf, Interval, ListOf, Options, check_alphas, require_closed_form,
                                  validate_params)
from ufm.analysis.conditioning import EQUAL_RTOL
from ufm.problem import CONSTRAINTS, UFMProblem
from ufm.theory.conditioning import (D_REGIMES, MAP_DEFINITIONS, SLOPE_STEP, WITH_BIAS, kappa_regimes,
                                     kappa_slope, map_point)

__all__ = ["regime_map", "regime_of", "verdict_grid", "REGIME_VERDICTS", "MAP_DEFINITIONS", "D_REGIMES",
           "END_FRACTION", "ALPHA_SAMPLES", "GRID", "MIN_WIDTH"]

#: the verdicts of a regime
REGIME_VERDICTS = ("lower", "higher", "mixed", "equal")
#: points of s K in (0, 1) on which boundaries are bracketed (a regime narrower than 1/GRID may be missed)
GRID = 300
#: where the alpha range ends at the threshold, it is sampled up to this fraction of 1 - s K
END_FRACTION = 1 - 1e-4
#: fractions of alpha_end at which kappa(alpha) - kappa(0) is sampled: dense near alpha = 0, then even
_T = np.concatenate([np.geomspace(1e-3, 0.05, 12), np.linspace(0.075, 1.0, 28)])
ALPHA_SAMPLES = _T.size
#: local extremes of the samples refined on each side, and where (fractions of their two cells)
_LOCAL = 2
_U = np.linspace(0.0, 1.0, 10)[1:-1]
_PASSES = 3
#: |kappa(alpha) - kappa(0)| below this fraction of kappa(0) counts as equal (rounding): the
#: tolerance of the point verdicts
_EQUAL_RTOL = EQUAL_RTOL
#: a slope at CE (relative to kappa(0)) below this is 0: the rounding of the differences that give it
_SLOPE_ATOL = 1e-9
#: regimes narrower than this in s K are absorbed by a neighbour (``_intervals``)
MIN_WIDTH = 1e-6
#: s K tolerance of the root-finding
_XTOL = 1e-10

_RATIO = Interval("float", 0, None, "neither")


class _Family:
    """kappa of one (definition, K, n) for several variants (d-regime, ratio) over (alpha, s K), and the
    expressions whose signs make the verdict: the slope at CE, and the largest and smallest
    kappa(alpha) - kappa(0) over the alpha range (sampled at ``_T``, refined around the sampled local
    extremes). Every evaluation takes arrays of s K and of variant indices ``v``, so that all variants
    are computed together (one evaluation of the derived pieces serves both d-regimes)."""

    def __init__(self, definition, K, variants, per_class, alpha_max):
        self.definition, self.K, self.n, self.alpha_max = definition, K, per_class, alpha_max
        self.variants = list(variants)  # (d_regime, ratio)
        self.regime = np.array([reg for reg, _ in self.variants])
        self.ratio = np.array([float(r) for _, r in self.variants])
        self.closed = not definition.startswith("full")

    def kappa(self, alpha, sK, v):
        """kappa at (alpha, s K) of variant ``v`` (arrays, broadcast)."""
        alpha, sK, v = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(sK, float), np.asarray(v))
        both = kappa_regimes(self.definition, self.K, alpha, sK / self.K, self.ratio[v], self.n,
                             tuple(sorted(set(self.regime[np.unique(v)]))))
        out = np.empty(alpha.shape)
        for reg, k in both.items():
            mask = self.regime[v] == reg
            out[mask] = k[mask]
        return out

    def slope(self, sK, v, k, h):
        """d kappa / d alpha at CE: the closed form, or Richardson on the columns k[:, 0:3] at (0, h/2, h)."""
        if not self.closed:
            return (4 * k[:, 1] - 3 * k[:, 0] - k[:, 2]) / h
        out = np.empty(sK.shape)
        for reg in set(self.regime[v]):
            mask = self.regime[v] == reg
            out[mask] = kappa_slope(self.definition, self.K, reg, 0.0, sK[mask] / self.K, 1.0, self.n)
        return out

    def alpha_end(self, sK):
        return np.minimum(self.alpha_max, (1 - np.asarray(sK, dtype=float)) * END_FRACTION)

    def profile(self, sK, v, passes: int = None) -> dict:
        """``slope`` (relative to kappa(0)), ``gaps`` ((kappa(alpha) - kappa(0))/kappa(0) at the samples
        ``_T``), ``top``/``low`` (their largest/smallest, refined around the sampled local extremes) and
        ``top_at``/``low_at`` (the sample index of the extreme; ``ALPHA_SAMPLES - 1``: the end).
        ``passes``: of the refinement (default ``_PASSES``; the grid that brackets boundaries takes 1)."""
        sK, v = np.atleast_1d(np.asarray(sK, dtype=float)), np.atleast_1d(np.asarray(v))
        end = self.alpha_end(sK)[:, None]
        h = np.minimum(SLOPE_STEP, 1e-3 * end)  # the slope's Richardson steps (``kappa_slope``)
        k = self.kappa(np.concatenate([np.zeros_like(h), h / 2, h, end * _T], 1), sK[:, None], v[:, None])
        k0 = k[:, 0]
        g = (k[:, 3:] - k0[:, None]) / k0[:, None]
        j = np.concatenate([_local_extremes(g, 1.0), _local_extremes(g, -1.0)], 1)  # (S, 2 _LOCAL): maxima, minima
        fine = self._zoom(sK, v, end, k0, _T[j - 1], _T[j + 1], _PASSES if passes is None else passes)
        out = {"slope": self.slope(sK, v, k, h[:, 0]) / k0, "gaps": g}
        for name, sign, part in (("top", 1.0, fine[:, :_LOCAL]), ("low", -1.0, fine[:, _LOCAL:])):
            i = np.argmax(sign * g, 1)
            sampled = g[np.arange(sK.size), i]
            local = sign * (sign * part).max(1)
            better = sign * local > sign * sampled
            out[name] = np.where(better, local, sampled)
            out[name + "_at"] = np.where(better & (i == _T.size - 1), _T.size - 2, i)
        return out

    def _zoom(self, sK, v, end, k0, lo, hi, passes: int) -> np.ndarray:
        """The largest (first ``_LOCAL`` columns) and smallest (the others) relative gap in each bracket
        [lo, hi] (fractions of alpha_end, shape (S, 2 _LOCAL)): ``passes`` passes of ``len(_U)`` points,
        each zooming in on the two cells around the best point of the last."""
        sign = np.repeat([1.0, -1.0], _LOCAL)[None, :]
        best = np.full(lo.shape, -np.inf)
        for _ in range(passes):
            t = lo[..., None] + (hi - lo)[..., None] * _U  # (S, 2 _LOCAL, len(_U))
            k = self.kappa(end[:, :, None] * t, sK[:, None, None], v[:, None, None])
            g = (k - k0[:, None, None]) / k0[:, None, None]
            u = np.argmax(sign[..., None] * g, -1)
            best = np.maximum(best, sign * np.take_along_axis(g, u[..., None], -1)[..., 0])
            centre, step = np.take_along_axis(t, u[..., None], -1)[..., 0], (hi - lo) / (len(_U) + 1)
            lo, hi = centre - step, centre + step
        return sign * best

    @staticmethod
    def verdicts(prof) -> np.ndarray:
        slope, g = prof["slope"], prof["gaps"]
        out = np.full(g.shape[0], "mixed", dtype=object)
        flat = np.abs(slope) <= _SLOPE_ATOL
        out[(np.abs(g) <= _EQUAL_RTOL).all(1) & flat] = "equal"
        out[(prof["top"] < -_EQUAL_RTOL) & ((slope < 0) | flat)] = "lower"
        out[(prof["low"] > _EQUAL_RTOL) & ((slope > 0) | flat)] = "higher"
        return out

    def verdict(self, sK, v, passes: int = None) -> np.ndarray:
        return self.verdicts(self.profile(sK, v, passes))


def _local_extremes(g, sign: float) -> np.ndarray:
    """Per row, the sample indices (1 .. ALPHA_SAMPLES - 2) of the ``_LOCAL`` largest interior local
    maxima of ``sign * g`` (index 1 where there are fewer): where a narrow excursion of kappa(alpha)
    - kappa(0), e.g. at a kink where the extreme eigenvalue changes piece, may cross 0 between samples."""
    h = sign * g
    peak = (h[:, 1:-1] >= h[:, :-2]) & (h[:, 1:-1] >= h[:, 2:])
    score = np.where(peak, h[:, 1:-1], -np.inf)
    order = np.argsort(-score, 1)[:, :_LOCAL]
    return np.where(np.take_along_axis(score, order, 1) > -np.inf, order + 1, 1)


#: the expression a boundary is found on, by name: a function of a profile
_EXPRESSIONS = {"slope at CE": lambda p, side: p["slope"],
                "extremum": lambda p, side: p["top"] if side == "lower" else p["low"]}


def _illinois(f, a, b, fa, fb):
    """Roots of ``f`` (vectorized) in the brackets [a, b] with f(a) f(b) < 0: regula falsi with the
    Illinois modification, to ``_XTOL`` in s K (each f call evaluates every bracket not yet done)."""
    for _ in range(200):
        todo = np.abs(b - a) > _XTOL
        if not todo.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            c = b - fb * (b - a) / (fb - fa)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        c = np.where(np.isfinite(c) & (c > lo) & (c < hi), c, (a + b) / 2)
        fc = fb.copy()
        fc[todo] = f(c[todo], todo)
        c = np.where(todo, c, b)
        flip = np.sign(fc) != np.sign(fb)
        a, fa = np.where(flip, b, a), np.where(flip, fb, np.where(todo, fa / 2, fa))
        b, fb = c, fc
    return b


def _side(v_lo: str, v_hi: str) -> str:
    """Which extremum of kappa(alpha) - kappa(0) decides a boundary: the largest next to ``lower``, the
    smallest next to ``higher``."""
    return "lower" if "lower" in (v_lo, v_hi) else "higher"


def _boundaries(fam: _Family, lo, hi, v, v_lo, v_hi, depth: int = 0) -> List[tuple]:
    """The boundaries (variant, s K, kind, verdict to the right) in the brackets [lo, hi] of variants
    ``v`` (arrays), one per bracket: the expression that changes sign across it (the slope at CE first,
    else the extremum of kappa(alpha) - kappa(0)) is solved for all brackets at once, and each root is
    checked against the verdicts on both sides; a bracket that fails is halved (``_split``)."""
    found, todo = [], list(range(len(lo)))
    p_lo, p_hi = fam.profile(lo, v), fam.profile(hi, v)
    for name, expr in _EXPRESSIONS.items():
        for side in ("lower", "higher"):
            idx = [i for i in todo if _side(v_lo[i], v_hi[i]) == side and
                   np.sign(expr(p_lo, side)[i]) != np.sign(expr(p_hi, side)[i])]
            if not idx:
                continue
            sel = np.array(idx)
            f = lambda u, keep: expr(fam.profile(u, v[sel][keep]), side)
            roots = _illinois(f, lo[sel], hi[sel], expr(p_lo, side)[sel], expr(p_hi, side)[sel])
            delta = np.minimum(1e-9, (hi[sel] - lo[sel]) / 4)
            near = np.concatenate([np.maximum(roots - delta, lo[sel]), np.minimum(roots + delta, hi[sel]), roots])
            prof = fam.profile(near, np.tile(v[sel], 3))
            verdict, at = fam.verdicts(prof), prof["top_at" if side == "lower" else "low_at"][2 * len(sel):]
            for k, i in enumerate(idx):
                if verdict[k] == v_lo[i] and verdict[len(sel) + k] == v_hi[i]:
                    kind = name if name != "extremum" else (
                        "end of the alpha range" if at[k] == _T.size - 1 else "interior extremum")
                    found.append((int(v[i]), float(roots[k]), kind, v_hi[i]))
                    todo.remove(i)
    for i in todo:
        found += _split(fam, float(lo[i]), float(hi[i]), int(v[i]), v_lo[i], v_hi[i], depth)
    return found


def _split(fam: _Family, lo: float, hi: float, v: int, v_lo: str, v_hi: str, depth: int) -> List[tuple]:
    """A bracket that holds more than one boundary, or one no expression explains: halve it on the
    verdict and search the halves that change (a boundary found by bisection alone past 40 halvings)."""
    mid = (lo + hi) / 2
    if hi - lo < 1e-10 or depth > 40:
        return [(v, mid, "verdict bisection", v_hi)]
    v_mid = str(fam.verdict([mid], [v])[0])
    parts = [q for q in ((lo, mid, v_lo, v_mid), (mid, hi, v_mid, v_hi)) if q[2] != q[3]]
    return _boundaries(fam, np.array([q[0] for q in parts]), np.array([q[1] for q in parts]),
                       np.full(len(parts), v), [q[2] for q in parts], [q[3] for q in parts], depth + 1)


def _grid_verdicts(fam: _Family, grid) -> np.ndarray:
    """The verdict of each variant at each grid point, (variants, GRID): one coarse pass (a single
    refinement of the extremes), then the full refinement around every change, repeated until no
    change is next to a point only coarsely known (coarse and full differ only close to a boundary)."""
    V = len(fam.variants)
    verdict = fam.verdict(np.tile(grid, V), np.repeat(np.arange(V), grid.size), passes=1).reshape(V, grid.size)
    known = np.zeros(verdict.shape, dtype=bool)
    while True:
        i, j = np.nonzero(verdict[:, 1:] != verdict[:, :-1])
        near = {(a, c) for a, b in zip(i, j) for c in range(b - 1, b + 3) if 0 <= c < grid.size}
        need = sorted(q for q in near if not known[q])
        if not need:
            return verdict
        rows, cols = np.array(need).T
        verdict[rows, cols] = fam.verdict(grid[cols], rows)
        known[rows, cols] = True


def _regimes(fam: _Family) -> List[List[dict]]:
    """Per variant, the intervals of one verdict that cover s K in (0, 1), in order."""
    grid = (np.arange(GRID) + 0.5) / GRID
    verdict = _grid_verdicts(fam, grid)
    i, j = np.nonzero(verdict[:, 1:] != verdict[:, :-1])
    cuts = _boundaries(fam, grid[j], grid[j + 1], i, list(verdict[i, j]), list(verdict[i, j + 1])) if i.size else []
    return [_intervals(str(verdict[k, 0]), sorted((u, kind, right) for w, u, kind, right in cuts if w == k))
            for k in range(len(fam.variants))]


def _intervals(first: str, cuts) -> List[dict]:
    """The regimes of one variant from its leftmost verdict and its boundaries (s K, kind, verdict to the
    right). A regime narrower than ``MIN_WIDTH`` is absorbed by its left neighbour (the first by its
    right one): such slivers sit between exact ties of eigenvalues (K = 2 at lambda_W = lambda_H), where
    rounding decides the verdict."""
    edges = [0.0] + [u for u, _, _ in cuts] + [1.0]
    kinds = [None] + [kind for _, kind, _ in cuts] + [None]
    regimes = [{"sK_from": a, "sK_to": b, "verdict": v, "boundary_from": ka, "boundary_to": kb}
               for a, b, v, ka, kb in zip(edges[:-1], edges[1:], [first] + [r for _, _, r in cuts], kinds[:-1],
                                          kinds[1:])]
    out: List[dict] = []
    for r in regimes:
        if out and (r["sK_to"] - r["sK_from"] < MIN_WIDTH or out[-1]["verdict"] == r["verdict"]):
            out[-1].update(sK_to=r["sK_to"], boundary_to=r["boundary_to"])
        elif out and out[-1]["sK_to"] - out[-1]["sK_from"] < MIN_WIDTH:  # the first was a sliver
            out[-1].update(r, sK_from=out[-1]["sK_from"], boundary_from=out[-1]["boundary_from"])
        else:
            out.append(dict(r))
    return out


@validate_params({
    "classes": ListOf(CONSTRAINTS["num_classes"]),
    "alpha_max": Interval("float", 0, 1, "neither"),
    "lambda_ratios": ListOf(_RATIO),
    "definitions": ListOf(Options(MAP_DEFINITIONS)),
    "per_class": CONSTRAINTS["per_class"],
})
def regime_map(classes: Sequence[int] = (3, 5, 10, 100), alpha_max: float = 0.3,
               lambda_ratios: Sequence[float] = (1, 10, 100), definitions: Sequence[str] = MAP_DEFINITIONS,
               per_class: int = 10) -> List[dict]:
    """The regimes of the verdict "label smoothing lowers kappa" over s K in (0, 1) (module docstring).

    Args:
        classes: the values of K (ints >= 2).
        alpha_max: the largest smoothing factor compared with CE, in (0, 1).
        lambda_ratios: the values of lambda_W / lambda_H (> 0); ``logits``, ``features`` and
            ``classifier`` do not depend on it (the same regimes are listed for each).
        definitions: among ``logits``, ``features``, ``classifier``, ``full``, ``full, b included``.
        per_class: n, which ``full, b included`` depends on (the others do not).

    Returns:
        One dict per regime, ordered by definition, K, d-regime, ratio and s K: ``definition``, ``K``,
        ``d_regime`` (``"K-1"`` or ``">=K"``), ``lambda_ratio``, ``per_class`` (None where kappa does not
        depend on n), ``alpha_max``, ``sK_from``, ``sK_to``, ``verdict`` (``lower``, ``higher``,
        ``mixed``, ``equal``), ``boundary_from`` and ``boundary_to`` (which expression changes sign
        there; None at 0 and 1). The regimes of one (definition, K, d_regime, ratio) cover (0, 1)
        without gaps or overlaps.
    """
    out = []
    for definition in definitions:
        n = per_class if definition == WITH_BIAS else None
        ratios = [float(r) for r in lambda_ratios] if definition.startswith("full") else [1.0]
        for K in classes:
            variants = [(reg, r) for reg in D_REGIMES for r in ratios]
            found = dict(zip(variants, _regimes(_Family(definition, K, variants, per_class, alpha_max))))
            for reg in D_REGIMES:
                for ratio in lambda_ratios:
                    regimes = found[(reg, float(ratio) if definition.startswith("full") else 1.0)]
                    out += [{"definition": definition, "K": int(K), "d_regime": reg, "lambda_ratio": float(ratio),
                             "per_class": n, "alpha_max": float(alpha_max), **r} for r in regimes]
    return out


@validate_params({
    "definition": Options(MAP_DEFINITIONS), "K": CONSTRAINTS["num_classes"], "d_regime": Options(D_REGIMES),
    "lambda_ratio": _RATIO, "per_class": CONSTRAINTS["per_class"],
})
def verdict_grid(definition: str, K: int, d_regime: str, sK, alphas, lambda_ratio: float = 1.0,
                 per_class: int = 10) -> np.ndarray:
    """sign(kappa(alpha) - kappa(0)) on the grid ``alphas`` x ``sK`` (shape (len(alphas), len(sK))):
    -1 lower, +1 higher, 0 equal (to rounding), NaN where alpha >= 1 - s K (no collapsed branch)."""
    sK, alphas = np.asarray(sK, dtype=float), np.asarray(alphas, dtype=float)
    fam = _Family(definition, K, [(d_regime, lambda_ratio)], per_class, 0.5)
    k0 = fam.kappa(0.0, sK, 0)[None, :]
    g = (fam.kappa(alphas[:, None], sK[None, :], 0) - k0) / k0
    return np.where(np.isnan(g), np.nan, np.where(np.abs(g) <= _EQUAL_RTOL, 0.0, np.sign(g)))


#: the smallest alpha_max the map resolves: below it kappa(alpha) - kappa(0) is within float64 rounding of kappa
MIN_ALPHA_MAX = 1e-6


def _point_note(problem: UFMProblem, definition: str, sK: float, used: list) -> Optional[str]:
    """Why a point has no regime on the map (None: it has one)."""
    if definition == "full" and problem.lambda_b > 0:
        return ("lambda_b > 0 makes b a variable of `full` with curvature lambda_b, a parameter the map does not "
                "have (the map's `full` leaves b out, its `full, b included` takes lambda_b = 0)")
    if sK >= 1:
        return "s K >= 1: even the CE minimizer is W = H = 0, no collapsed branch"
    if not used:
        return "no alpha > 0 below the threshold s K < 1 - alpha among the alphas given"
    if max(used) < MIN_ALPHA_MAX:
        return (f"alpha_max = {max(used):.3g} is below {MIN_ALPHA_MAX:g}: kappa(alpha) - kappa(0) is then within "
                "float64 rounding of kappa, so the map does not resolve a regime there")
    return None


@validate_params({"problem": InstanceOf(UFMProblem), "definitions": ListOf(Options(MAP_DEFINITIONS))})
def regime_of(problem: UFMProblem, alphas: Optional[Sequence[float]] = None,
              definitions: Sequence[str] = MAP_DEFINITIONS) -> Dict[str, dict]:
    """Where ``problem`` lies on the regime map, per definition, for the alphas its verdict was taken over.

    ``alphas`` (default ``[problem.alpha]``) are those of :func:`ufm.analysis.conditioning.summarize`:
    the map's regime is taken over (0, alpha_max] with alpha_max the largest of them below the
    threshold. Returns, per definition: ``sK``, ``K``, ``d_regime``, ``lambda_ratio``, ``alphas`` (those
    > 0 below the threshold), ``alphas_past_threshold`` (> 0 but trivial: not on the map), ``alpha_max``,
    ``regime`` (the map's regime dict containing s K, or None) and ``note`` (why there is none).
    """
    alphas = check_alphas([problem.alpha] if alphas is None else alphas, "regime_of")
    require_closed_form(problem.K, problem.d, "regime_of")
    p = map_point(problem)
    used = sorted(a for a in alphas if 0 < a and p["sK"] < 1 - a)
    past = sorted(a for a in alphas if a > 0 and p["sK"] >= 1 - a)
    out = {}
    for definition in definitions:
        note = _point_note(problem, definition, p["sK"], used)
        regime = None
        if note is None:
            n = problem.n if definition == WITH_BIAS else None
            fam = _Family(definition, p["K"], [(p["d_regime"], p["lambda_ratio"])], problem.n, max(used))
            regime = next({"definition": definition, "K": p["K"], "d_regime": p["d_regime"],
                           "lambda_ratio": p["lambda_ratio"], "per_class": n, "alpha_max": max(used), **r}
                          for r in _regimes(fam)[0] if r["sK_from"] <= p["sK"] < r["sK_to"])
        out[definition] = {"sK": p["sK"], "K": p["K"], "d_regime": p["d_regime"], "lambda_ratio": p["lambda_ratio"],
                           "alphas": used, "alphas_past_threshold": past, "alpha_max": max(used) if used else None,
                           "regime": regime, "note": note}
    return out
