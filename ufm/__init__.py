"""ufm: the unconstrained feature model (UFM) of neural collapse, under CE and label smoothing.

The public API (conventions in the README, "Conventions"):

    UFMProblem          validated problem specification (K, n, d, lambdas, alpha, loss)
    closed_form         closed-form global minimizer of one problem
    closed_form_arrays  the same, vectorized over arrays of parameters (numpy or torch)
    explicit_minimizer  the exact minimizer (W*, H*, b*) as tensors
    simplex_etf         a K x d simplex equiangular tight frame
    solve               batched numerical solver (gd, momentum, lbfgs)
    nc_metrics          NC1-NC4 of labelled features (streaming, float64)
    NCAccumulator       the streaming accumulator behind nc_metrics
    verify              numeric vs closed-form comparison over a grid
    derive_minimizer    the symbolic derivation (imports sympy on first use)
"""
from ._validation import ClosedFormNotApplicableWarning, InvalidParameterError
from .metrics.nc import NCAccumulator, nc_metrics
from .numerics.solver import SolveResult, SolverDivergedError, solve
from .problem import UFMProblem
from .theory.closed_form import ClosedForm, closed_form, closed_form_arrays, explicit_minimizer, simplex_etf
from .verify import default_grid, verify

from ._version import __version__  # noqa: E402

__all__ = [
    "UFMProblem",
    "ClosedForm",
    "closed_form",
    "closed_form_arrays",
    "explicit_minimizer",
    "simplex_etf",
    "solve",
    "SolveResult",
    "SolverDivergedError",
    "nc_metrics",
    "NCAccumulator",
    "verify",
    "default_grid",
    "derive_minimizer",
    "InvalidParameterError",
    "ClosedFormNotApplicableWarning",
]


def __getattr__(name):
    if name == "derive_minimizer":  # keeps sympy out of `import ufm`
        from .theory.symbolic import derive_minimizer

        return derive_minimizer
    raise AttributeError(f"module 'ufm' has no attribute {name!r}")
