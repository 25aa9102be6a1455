"""Parameter constraints declared as data and checked once, at the entry point.

Every failure reads the same way::

    The 'alpha' parameter of UFMProblem must be a float in the range [0, 1). Got 1.5 instead.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Optional

__all__ = [
    "InvalidParameterError",
    "ClosedFormNotApplicableWarning",
    "UFMWarning",
    "Interval",
    "Options",
    "check_param",
]


class InvalidParameterError(ValueError, TypeError):
    """A user-supplied parameter is out of range or of the wrong type.

    Subclasses both ValueError and TypeError, so either ``except`` catches it.
    ``param``, ``value`` and ``expected`` hold the parts of the message, so that a
    command line can rephrase it with its own flag names.
    """

    def __init__(self, message: str, param: Optional[str] = None, value: Any = None,
                 expected: Optional[str] = None):
        super().__init__(message)
        self.param, self.value, self.expected = param, value, expected


class UFMWarning(UserWarning):
    """Base class of the warnings ufm itself emits (the command line prints these)."""


class ClosedFormNotApplicableWarning(UFMWarning):
    """The closed-form (simplex-ETF) minimizer does not apply, e.g. d < K - 1."""


@dataclass(frozen=True)
class Interval:
    """A real (or integer) interval constraint; ``None`` is an open end at infinity."""

    kind: str  # "int" or "float"
    left: Optional[float]
    right: Optional[float]
    closed: str = "both"  # "left", "right", "both", "neither"

    def describe(self) -> str:
        lo = "-inf" if self.left is None else _fmt(self.left)
        hi = "inf" if self.right is None else _fmt(self.right)
        lb = "[" if self.closed in ("left", "both") and self.left is not None else "("
        rb = "]" if self.closed in ("right", "both") and self.right is not None else ")"
        what = "an int" if self.kind == "int" else "a float"
        return f"{what} in the range {lb}{lo}, {hi}{rb}"

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.left is not None:
            if v < self.left or (v == self.left and self.closed not in ("left", "both")):
                return False
        if self.right is not None:
            if v > self.right or (v == self.right and self.closed not in ("right", "both")):
                return False
        return True


@dataclass(frozen=True)
class Options:
    """A string constraint: one of a fixed set of names."""

    names: tuple

    def describe(self) -> str:
        return "a str among {" + ", ".join(repr(n) for n in sorted(self.names)) + "}"

    def contains(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names


@dataclass(frozen=True)
class Boolean:
    """A Python bool (not 0 or 1)."""

    def describe(self) -> str:
        return "a bool"

    def contains(self, value: Any) -> bool:
        return isinstance(value, bool)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def check_param(name: str, value: Any, constraint, caller: str) -> Any:
    """Raise :class:`InvalidParameterError` unless ``value`` satisfies ``constraint``."""
    if not constraint.contains(value):
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must be {constraint.describe()}. "
            f"Got {value!r} instead.",
            param=name, value=value, expected=constraint.describe(),
        )
    return value


def warn_closed_form(K: int, d: int, caller: str) -> None:
    warnings.warn(
        f"{caller}: d={d} < K-1={K - 1}, so a simplex ETF does not fit in R^d and the "
        "closed-form minimizer does not apply (the numerical solver still runs).",
        ClosedFormNotApplicableWarning,
        stacklevel=3,
    )


def check_alphas(alphas, where: str) -> list:
    """A non-empty list of smoothing factors in [0, 1), in order, without repeats."""
    alphas = list(dict.fromkeys(float(a) for a in alphas))  # in order, without repeats
    if not alphas:
        raise InvalidParameterError(f"The 'alphas' parameter of {where} must hold at least one value in [0, 1). "
                                    "Got an empty list instead.", param="alphas", value=[],
                                    expected="at least one value in [0, 1)")
    for a in alphas:
        check_param("alphas", a, Interval("float", 0, 1, "left"), where)
    return alphas


def require_closed_form(K: int, d: int, caller: str) -> None:
    """Raise (naming d and its range) unless d >= K - 1, where the closed-form minimizer exists."""
    if d < K - 1:
        raise InvalidParameterError(
            f"The 'dim' parameter of {caller} must be an int in the range [K-1, inf) = [{K - 1}, inf) "
            f"for the closed-form minimizer. Got {d} instead.", param="dim", value=d,
            expected=f"an int in the range [{K - 1}, inf)")


def check_all(params: Iterable, caller: str) -> None:
    for name, value, constraint in params:
        check_param(name, value, constraint, caller)
