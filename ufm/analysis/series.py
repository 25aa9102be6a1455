"""Reading recorded series: the first record that reaches a level, and summaries over runs.

One definition each of "steps (or epochs) to reach eps" and of the summary statistic over
seeds, shared by every analysis, so that the command line and the reports show the same
numbers.
"""
from __future__ import annotations

import math
from statistics import mean
from typing import Optional, Sequence

__all__ = ["first_reached", "mean_or_none"]


def first_reached(steps: Sequence, values: Sequence, level: float, inclusive: bool = False):
    """The first step whose value is below ``level`` (at most ``level`` with ``inclusive``), or
    None if no recorded value reaches it. Missing values (None or NaN) never reach it."""
    for s, v in zip(steps, values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if v < level or (inclusive and v <= level):
            return s
    return None


def mean_or_none(values: Sequence) -> Optional[float]:
    """The mean over runs (the summary statistic of every analysis), or None when a run has no
    value (e.g. did not reach a tolerance): a mean over the runs that did would flatter them."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return float(mean(values))
