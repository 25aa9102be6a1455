"""The rule that turns per-seed effects into a verdict on a network claim (``ufm claims``).

Fixed before any run was judged by it, and never tuned to results. Every network claim of
``ufm.analysis.claims`` hands this module a list of **paired effects**, one per seed: the
measurement of the cross-entropy run of seed s (alpha = 0) against that of the label-smoothing
run of the same seed s, every other setting equal, oriented so that a **positive effect is the
direction the paper claims** (e.g. test error CE - LS for "LS lowers the test error").
Pairing by seed removes what the two runs share (data split, initialization, minibatch order
under the same seed), so the effect measures the loss and not the draw.

The rule, by the number n of finite effects:

* **n < 3**: ``inconclusive``, whatever the effects. Two seeds cannot exclude chance at any
  useful level (both positive happens with probability 1/4 when there is no effect).
* **3 <= n <= 5**: the exact **sign test**. The one-sided 95% lower bound is the order
  statistic x_(k), with k the largest index such that P(Binomial(n, 1/2) <= k - 1) <= 0.05:
  the median effect exceeds x_(k) with confidence at least 95% whatever the distribution of
  the effects. For n = 5, P(B <= 0) = 1/32 <= 0.05 < P(B <= 1) = 6/32, so k = 1 and the bound
  is the minimum; for n = 3 and 4 even P(B <= 0) (1/8, 1/16) exceeds 0.05, there is no finite
  bound, and the claim cannot hold (nor fail). The upper bound is x_(n + 1 - k),
  symmetrically. Distribution-free: with five seeds nothing is known of the spread of the
  effects, and a bootstrap of five values has too few distinct resamples to be trusted.
* **n >= 6**: a **bootstrap of the mean effect**: ``RESAMPLES`` = 10,000 resamples of the n
  effects with replacement (numpy ``default_rng(BOOTSTRAP_SEED)``, so a verdict is
  reproducible), one-sided 95% bounds = the 5th and 95th percentiles of the resampled means
  (``numpy.percentile``, linear interpolation). From six seeds on, the sign test wastes the
  sizes of the effects (for n = 6 its bound is still the minimum), while the bootstrap uses
  them.

**Verdict**: ``holds`` when the lower bound is > 0, ``fails`` when the upper bound is < 0,
``inconclusive`` otherwise. Both comparisons are strict, so a zero effect (a tie) never counts
in the claimed direction: a tie at the order statistic gives a bound of 0, not above it, and
ties pull the bootstrapped mean towards 0. Replacing an effect by a tie can therefore never turn
a claim into ``holds``.

**Reported** (:func:`judge`): the effects, their mean, the ``interval`` [lower, upper] made of
the two one-sided 95% bounds, i.e. a **two-sided 90% interval**, the method (``sign test``,
``bootstrap`` or ``too few seeds``) and n. A bound that does not exist is -inf / +inf (null in
JSON). Effects that are missing or non-finite (a run whose record is null) are left out and
counted as ``dropped``; they never count for the claim.

**Across parts** (:func:`combine`): a claim evaluated on several parts (per alpha > 0, per
quantity, per group of runs) never says more than every part supports: ``holds`` only if every
judged part holds, ``fails`` only if every judged part fails, ``inconclusive`` otherwise. Parts
that could not be judged (``not-applicable``, ``not-evaluated``) are reported beside it; when no
part could be judged, the claim takes their verdict (``not-applicable`` if any part is).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["judge", "sign_test_rank", "sign_test_bounds", "bootstrap_bounds", "combine", "describe_interval",
           "LEVEL", "MIN_SEEDS", "BOOTSTRAP_FROM", "RESAMPLES", "BOOTSTRAP_SEED", "VERDICTS", "JUDGED"]

#: the one-sided level of each bound (a two-sided 90% interval)
LEVEL = 0.05
#: below this many seeds a claim is inconclusive
MIN_SEEDS = 3
#: from this many seeds on, the bootstrap replaces the sign test
BOOTSTRAP_FROM = 6
#: bootstrap resamples and the seed of their generator
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
#: every verdict a claim can take
VERDICTS = ("holds", "fails", "inconclusive", "not-applicable", "not-evaluated")
#: the verdicts of a claim that was judged on its evidence
JUDGED = ("holds", "fails", "inconclusive")


def sign_test_rank(n: int, level: float = LEVEL) -> int:
    """The largest k >= 1 with P(Binomial(n, 1/2) <= k - 1) <= ``level``; 0 when there is none
    (n <= 4 at the 5% level): the rank of the order statistic that bounds the median."""
    k, cdf = 0, 0.0
    for j in range(n + 1):
        cdf += math.comb(n, j) / 2 ** n  # P(B <= j)
        if cdf > level:
            break
        k = j + 1
    return min(k, n)


def sign_test_bounds(effects: Sequence[float], level: float = LEVEL) -> Tuple[float, float]:
    """One-sided (1 - ``level``) lower and upper bounds on the median effect: the order
    statistics x_(k) and x_(n + 1 - k) (:func:`sign_test_rank`); -inf, +inf when k = 0."""
    x = sorted(float(v) for v in effects)
    k = sign_test_rank(len(x), level)
    if k == 0:
        return -math.inf, math.inf
    return x[k - 1], x[len(x) - k]


def bootstrap_bounds(effects: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> Tuple[float, float]:
    """The ``level`` and 1 - ``level`` percentiles of the mean of ``resamples`` resamples of
    ``effects`` with replacement (numpy ``default_rng(seed)``)."""
    x = np.asarray(effects, dtype=float)  # (n,)
    idx = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))  # (resamples, n)
    means = x[idx].mean(axis=1)  # (resamples,)
    return float(np.percentile(means, 100 * level)), float(np.percentile(means, 100 * (1 - level)))


def describe_interval(interval: Sequence[float]) -> str:
    """``[lower, upper]`` in 3 significant digits (inf where a bound does not exist)."""
    return "[" + ", ".join(f"{v:.3g}" for v in interval) + "]"


def judge(effects: Sequence[Optional[float]]) -> dict:
    """The verdict of the rule (module docstring) on per-seed ``effects`` (positive: the claimed
    direction; None or non-finite: left out).

    Returns:
        dict with ``verdict`` (holds, fails, inconclusive), ``reason`` (a sentence), ``effects``
        (the finite ones, in the given order), ``mean``, ``interval`` [lower, upper] (two
        one-sided 95% bounds: a two-sided 90% interval), ``method``, ``n`` and ``dropped``.
    """
    finite = [float(v) for v in effects if v is not None and math.isfinite(float(v))]
    n, dropped = len(finite), len(effects) - len(finite)
    mean = float(np.mean(finite)) if finite else math.nan
    if n < MIN_SEEDS:
        lower, upper, method = -math.inf, math.inf, "too few seeds"
    elif n < BOOTSTRAP_FROM:
        (lower, upper), method = sign_test_bounds(finite), "sign test"
    else:
        (lower, upper), method = bootstrap_bounds(finite), "bootstrap"
    verdict = "holds" if lower > 0 else "fails" if upper < 0 else "inconclusive"
    out = {"verdict": verdict, "effects": finite, "mean": mean, "interval": [lower, upper], "method": method,
           "n": n, "dropped": dropped}
    out["reason"] = _reason(out)
    return out


def _reason(r: dict) -> str:
    n, verdict = r["n"], r["verdict"]
    seeds = f"{n} seed{'s' if n != 1 else ''}" + (f" ({r['dropped']} without a value left out)" if r["dropped"] else "")
    if r["method"] == "too few seeds":
        return f"{seeds}: fewer than {MIN_SEEDS}, never conclusive"
    if r["method"] == "sign test" and sign_test_rank(n) == 0:
        return f"{seeds}: the sign test has no finite 95% bound below 5 seeds"
    where = {"holds": "above 0", "fails": "below 0", "inconclusive": "contains 0"}[verdict]
    return f"{seeds}, {r['method']}: 90% interval {describe_interval(r['interval'])} {where}"


def combine(verdicts: Sequence[str]) -> str:
    """The verdict of a claim over its parts' verdicts (module docstring, "Across parts")."""
    judged: List[str] = [v for v in verdicts if v in JUDGED]
    if not judged:
        return "not-applicable" if "not-applicable" in verdicts else "not-evaluated"
    if all(v == "holds" for v in judged):
        return "holds"
    if all(v == "fails" for v in judged):
        return "fails"
    return "inconclusive"
