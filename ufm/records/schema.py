"""The names of recorded quantities, defined once for every writer and reader.

A sweep's store and ``results.csv`` hold one row per point: the configuration columns, then
result columns named by the functions below (``cf_logit_gap``, ``kappa_full``,
``conv_steps_nc1_1e-06``, ...). The convergence analysis names its own row entries with
:func:`steps_column` too, so the sweep column is that name with the ``conv_`` prefix.
"""
from __future__ import annotations

import re
from typing import Union

from ufm._core.validation import InvalidParameterError

__all__ = ["dim_of", "CONFIG_COLUMNS", "CLOSED_FORM_QUANTITIES", "SOLVE_QUANTITIES", "CONVERGENCE_PREFIX", "closed_form_column",
           "numeric_column", "kappa_column", "steps_column", "steps_column_parts", "convergence_column",
           "convergence_steps_column"]

#: the configuration of a sweep point, in column order
CONFIG_COLUMNS = ("num_classes", "per_class", "dim", "lambda_w", "lambda_h", "lambda_b", "alpha", "seed")
#: the closed-form quantities a sweep records (``cf_<q>``, and ``num_<q>`` from a solve)
CLOSED_FORM_QUANTITIES = ("logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective")
#: what a sweep's solve component records beside the closed-form quantities (``num_<q>``)
SOLVE_QUANTITIES = ("nc1", "grad_norm", "steps", "status")
#: the prefix of the convergence component's columns
CONVERGENCE_PREFIX = "conv_"


def closed_form_column(quantity: str) -> str:
    """``cf_<quantity>``: the closed-form value."""
    return f"cf_{quantity}"


def numeric_column(quantity: str) -> str:
    """``num_<quantity>``: the value measured at the numerical solution."""
    return f"num_{quantity}"


def kappa_column(definition: str, with_bias: bool = False) -> str:
    """``kappa_<definition>`` (``kappa_full_with_bias``: the full Hessian with b as a variable)."""
    return f"kappa_{definition}" + ("_with_bias" if with_bias else "")


def steps_column(quantity: str, eps: float) -> str:
    """``steps_<quantity>_<eps>``: the first recorded step with ``quantity`` below ``eps``."""
    return f"steps_{quantity}_{eps:g}"


def steps_column_parts(name: str):
    """``(quantity, eps)`` of a :func:`steps_column` name, with or without the ``conv_`` prefix
    (``conv_steps_grad_norm_1e-06`` -> ``("grad_norm", 1e-06)``); None for any other name
    (``steps_recorded``, ``conv_lr``)."""
    if name.startswith(CONVERGENCE_PREFIX):
        name = name[len(CONVERGENCE_PREFIX):]
    if not name.startswith("steps_"):
        return None
    quantity, _, eps = name[len("steps_"):].rpartition("_")
    try:
        return (quantity, float(eps)) if quantity else None
    except ValueError:
        return None


def convergence_column(name: str) -> str:
    """A column of the convergence component: ``conv_<name>``."""
    return CONVERGENCE_PREFIX + name


def convergence_steps_column(quantity: str, eps: float) -> str:
    """``conv_steps_<quantity>_<eps>`` (e.g. ``conv_steps_nc1_1e-06``)."""
    return convergence_column(steps_column(quantity, eps))


_DIM = re.compile(r"^\s*(?:(\d+)\s*\*?\s*)?K\s*(?:([+-])\s*(\d+))?\s*$")


def dim_of(expr: Union[int, str], K: int) -> int:
    """The d of a sweep's ``dims`` item: an int, or an expression ``[a]K[+-b]`` (``K-1``, ``2K``)
    evaluated at K; the one reading of these expressions for the sweep and its figures."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr
    m = _DIM.match(str(expr))
    if not m:
        raise InvalidParameterError(f"The 'dims' parameter of SweepSpec must hold ints or expressions like K, "
                                    f"K-1, 2K, K+3. Got {expr!r} instead.", param="dims", value=expr,
                                    expected="ints or expressions like K, K-1, 2K")
    a = int(m.group(1) or 1)
    b = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
    return a * K + b
