"""ufm: the unconstrained feature model (UFM) of neural collapse, under CE and label smoothing.

The public API, one name a line (conventions in the README, "Conventions"). Names are
imported on first use, so ``import ufm`` is cheap and a light command imports neither torch
nor sympy; ``from ufm import X`` and ``ufm.X`` work as usual. The layers behind these names
are described in ``ARCHITECTURE.md``.
"""
from ufm._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    # problem specification and errors
    "UFMProblem": "ufm.problem",
    "InvalidParameterError": "ufm._core.validation",
    "ClosedFormNotApplicableWarning": "ufm._core.validation",
    # theory: closed forms and derived spectra
    "ClosedForm": "ufm.theory.closed_form",
    "ClosedFormArrays": "ufm.theory.closed_form",
    "closed_form": "ufm.theory.closed_form",
    "closed_form_arrays": "ufm.theory.closed_form",
    "closed_forms": "ufm.theory.closed_form",
    "explicit_minimizer": "ufm.theory.closed_form",
    "simplex_etf": "ufm.theory.closed_form",
    "Spectrum": "ufm.theory.spectra",
    "symbolic_spectrum": "ufm.theory.spectra",
    "derive_minimizer": "ufm.theory.symbolic.minimizer",
    # numerics: the batched solver and Hessian spectra
    "SolveResult": "ufm.numerics.solve",
    "SolverDivergedError": "ufm.numerics.solve",
    "numeric_spectrum": "ufm.numerics.spectrum",
    # metrics
    "nc_metrics": "ufm.metrics.accumulators",
    "NCAccumulator": "ufm.metrics.accumulators",
    "logit_statistics": "ufm.metrics.logits",
    "norm_statistics": "ufm.metrics.logits",
    # analyses
    "solve": "ufm.analysis.tracking",
    "measure": "ufm.analysis.verify",
    "compare": "ufm.analysis.verify",
    "verify": "ufm.analysis.verify",
    "default_grid": "ufm.analysis.verify",
    "conditioning": "ufm.analysis.conditioning",
    "summarize": "ufm.analysis.conditioning",
    "compare_sources": "ufm.analysis.conditioning",
    "convergence": "ufm.analysis.convergence",
    "regime_map": "ufm.analysis.regimes",
    "regime_of": "ufm.analysis.regimes",
    "evaluate_claims": "ufm.analysis.claims",
    # networks trained in one's own loop: the records of ufm train, in a run folder
    "Tracker": "ufm.dnn.track",
    "FeatureProbe": "ufm.dnn.evaluate",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ufm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
