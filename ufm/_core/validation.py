"""Parameter constraints declared as data, attached to the functions they guard, checked once at the entry point.

A public function declares its constraints with :func:`validate_params` (after scikit-learn's
``validate_params``); every failure reads the same way::

    The 'alpha' parameter of UFMProblem must be a float in the range [0, 1). Got 1.5 instead.

The constraints stay attached to the function (``fn.constraints``), so the command line builds
its flag types from the very objects the API enforces (:meth:`Interval.parse`): the range a
message prints is the range that is checked. Errors carry ``param``, ``value`` and ``expected``,
so a caller (the command line) can rephrase them with its own names for the parameters.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

__all__ = [
    "SEED",
    "InvalidParameterError",
    "DataFileError",
    "MissingPackageError",
    "ClosedFormNotApplicableWarning",
    "UFMWarning",
    "Interval",
    "Options",
    "Boolean",
    "OrNone",
    "ListOf",
    "InstanceOf",
    "PathLike",
    "validate_params",
    "check_param",
    "check_all",
    "check_alphas",
    "require_closed_form",
    "warn_closed_form",
    "ALPHA",
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


class DataFileError(ValueError):
    """A data file that is truncated, corrupted, not in its published format, or unsafe to read
    (a pickle carrying code). The message is one line naming the file and what is wrong; the
    command line prints it and exits with code 2."""


class MissingPackageError(ImportError):
    """An optional package that a requested feature needs is not installed; the message names the
    package and the ``pip install 'ufm[EXTRA]'`` that installs it (exit code 2 on the command line)."""


class UFMWarning(UserWarning):
    """Base class of the warnings ufm itself emits (the command line prints these)."""


class ClosedFormNotApplicableWarning(UFMWarning):
    """The closed-form (simplex-ETF) minimizer does not apply, e.g. d < K - 1."""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


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
        try:  # ints compared exactly (2**63 - 1 is not 2**63)
            v = int(value) if self.kind == "int" else float(value)
        except OverflowError:  # an int too large for a float
            return False
        if self.kind != "int" and not math.isfinite(v):
            return False
        if self.left is not None:
            if v < self.left or (v == self.left and self.closed not in ("left", "both")):
                return False
        if self.right is not None:
            if v > self.right or (v == self.right and self.closed not in ("right", "both")):
                return False
        return True

    def parse(self, text: str):
        """The value of a command-line word (int or float); ValueError if it is not a number of that kind."""
        return int(text) if self.kind == "int" else float(text)


@dataclass(frozen=True)
class Options:
    """A string constraint: one of a fixed set of names."""

    names: tuple

    def describe(self) -> str:
        return "a str among {" + ", ".join(repr(n) for n in sorted(self.names)) + "}"

    def contains(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names

    def parse(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class Boolean:
    """A Python bool (not 0 or 1)."""

    def describe(self) -> str:
        return "a bool"

    def contains(self, value: Any) -> bool:
        return isinstance(value, bool)

    def parse(self, text: str) -> bool:
        low = text.strip().lower()
        if low not in ("true", "false"):
            raise ValueError(text)
        return low == "true"


@dataclass(frozen=True)
class OrNone:
    """``None`` or a value satisfying ``constraint`` (None: "use the default")."""

    constraint: Any

    def describe(self) -> str:
        return f"{self.constraint.describe()} or None"

    def contains(self, value: Any) -> bool:
        return value is None or self.constraint.contains(value)

    def parse(self, text: str):
        return self.constraint.parse(text)


@dataclass(frozen=True)
class ListOf:
    """A sequence (not a string) of at least ``min_len`` items, each satisfying ``item``."""

    item: Any
    min_len: int = 1

    def describe(self) -> str:
        return f"a list of at least {self.min_len} values, each {self.item.describe()}"

    def contains(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            return False
        values = list(value)
        return len(values) >= self.min_len and all(self.item.contains(v) for v in values)

    def parse(self, text: str) -> list:
        return [self.item.parse(x.strip()) for x in text.split(",") if x.strip()]


@dataclass(frozen=True)
class InstanceOf:
    """An instance of ``cls`` (named in messages by ``cls.__name__``)."""

    cls: type

    def describe(self) -> str:
        return f"a {self.cls.__name__}"

    def contains(self, value: Any) -> bool:
        return isinstance(value, self.cls)


class PathLike:
    """A path (str or os.PathLike)."""

    def describe(self) -> str:
        return "a path (str or os.PathLike)"

    def contains(self, value: Any) -> bool:
        return isinstance(value, (str, os.PathLike))

    def parse(self, text: str) -> str:
        return text


#: the smoothing factor alpha of label smoothing; 0 is cross-entropy
ALPHA = Interval("float", 0, 1, "left")
#: a seed of torch's generators (which take 64-bit seeds)
SEED = Interval("int", 0, 2**63 - 1, "both")


def _got(value: Any, constraint) -> str:
    """How a rejected value is shown: its repr, or its type for an object of the wrong class."""
    if isinstance(constraint, InstanceOf):
        return type(value).__name__
    return repr(value)


def _check_items(name: str, value: Any, constraint: "ListOf", caller: str) -> None:
    """A list constraint names the first offending item, with the item's own constraint."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidParameterError(f"The {name!r} parameter of {caller} must be a list of values, each "
                                    f"{constraint.item.describe()}. Got {value!r} instead.", param=name, value=value,
                                    expected=f"a list of values, each {constraint.item.describe()}")
    values = list(value)
    if len(values) < constraint.min_len:
        need = "one value" if constraint.min_len == 1 else f"{constraint.min_len} values"
        raise InvalidParameterError(f"The {name!r} parameter of {caller} must hold at least {need}, each "
                                    f"{constraint.item.describe()}. Got {values!r} instead.", param=name,
                                    value=values, expected=f"at least {need}")
    for v in values:
        check_param(name, v, constraint.item, caller)


def check_param(name: str, value: Any, constraint, caller: str) -> Any:
    """Raise :class:`InvalidParameterError` unless ``value`` satisfies ``constraint``."""
    if isinstance(constraint, ListOf):
        _check_items(name, value, constraint, caller)
        return value
    if not constraint.contains(value):
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must be {constraint.describe()}. "
            f"Got {_got(value, constraint)} instead.",
            param=name, value=value, expected=constraint.describe(),
        )
    return value


def check_all(params: Iterable, caller: str) -> None:
    """:func:`check_param` for each (name, value, constraint)."""
    for name, value, constraint in params:
        check_param(name, value, constraint, caller)


def validate_params(constraints: Mapping[str, Any], *, caller: Optional[str] = None) -> Callable:
    """Decorator: check the named parameters of a function against ``constraints`` on every
    call, before its body runs, and attach them as ``fn.constraints``.

    Arguments left at their defaults are checked too, so a default is always a valid value.
    ``caller`` is the name used in messages (default: the function's name).

    Example:
        >>> @validate_params({"tol": Interval("float", 0, None, "neither")})
        ... def solve(tol=1e-10):
        ...     return tol
        >>> solve(tol=0)
        Traceback (most recent call last):
        ...
        ufm._core.validation.InvalidParameterError: The 'tol' parameter of solve must be a float in the range (0, inf). Got 0 instead.
    """
    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        unknown = sorted(set(constraints) - set(sig.parameters))
        if unknown:  # a declaration error, raised when the module is imported
            raise TypeError(f"validate_params: {fn.__qualname__} has no parameter {unknown[0]!r}")
        name = caller or fn.__name__

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            for param, constraint in constraints.items():
                value = bound.arguments.get(param, sig.parameters[param].default)
                check_param(param, value, constraint, name)
            return fn(*args, **kwargs)

        wrapper.constraints = dict(constraints)
        return wrapper

    return decorate


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
        check_param("alphas", a, ALPHA, where)
    return alphas


def require_closed_form(K: int, d: int, caller: str) -> None:
    """Raise (naming d and its range) unless d >= K - 1, where the closed-form minimizer exists."""
    if d < K - 1:
        raise InvalidParameterError(
            f"The 'dim' parameter of {caller} must be an int in the range [K-1, inf) = [{K - 1}, inf) "
            f"for the closed-form minimizer. Got {d} instead.", param="dim", value=d,
            expected=f"an int in the range [{K - 1}, inf)")
