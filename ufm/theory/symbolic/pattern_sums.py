"""Exact sums over class indices for symbolic K (the block entries of the Hessian derivation).

The entries of the Hessian blocks are sums over class and logit indices of products of
Kronecker deltas and constants. :class:`PatternSums` evaluates such sums exactly for a
symbolic number of classes K by splitting each index into "one of a few named indices" and
"one of the others", so the entries come out as rational functions of K, not as a fit over
sample values of K.
"""
from __future__ import annotations

from typing import Callable

import sympy as sp

from ufm.theory.symbolic.symbols import K

__all__ = ["PatternSums", "delta", "unit", "zero1", "zero2"]


class PatternSums:
    """Sums over an index j in {1..K} of expressions that depend on j only through its
    equality with a few *named* indices 1..m and with the indices of enclosing sums.

    ``S(f, bound)`` is sum_j f(j, bound'): each named index once, each enclosing free
    index once, and one fresh representative of the remaining indices, multiplied by
    their count K - m - (number of enclosing free indices). Indices are tuples
    ``("named", t)`` or ``("free", level)``. Exact for every K >= m: where fewer than
    m + depth indices exist, the count of an enclosing sum is already 0, so the negative
    counts of inner sums are multiplied by 0.
    """

    def __init__(self, m: int):
        self.m = m

    def __call__(self, f: Callable, bound: tuple = ()) -> sp.Expr:
        free = [i for i in bound if i[0] == "free"]
        total = sp.S.Zero
        for t in range(1, self.m + 1):
            total += f(("named", t), bound)
        for i in free:
            total += f(i, bound)
        new = ("free", len(free))
        return total + (K - self.m - len(free)) * f(new, bound + (new,))


def delta(i, j):
    """Kronecker delta of two indices."""
    return sp.S.One if i == j else sp.S.Zero


def unit(t):
    """The indicator of the named index t."""
    return lambda i: sp.S.One if i == ("named", t) else sp.S.Zero


def zero1(i):
    return sp.S.Zero


def zero2(i, j):
    return sp.S.Zero
