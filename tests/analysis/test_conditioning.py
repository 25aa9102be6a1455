"""Conditioning: CE against LS per definition of the Hessian."""
import math

import pytest

from ufm import InvalidParameterError, UFMProblem
from ufm.analysis.conditioning import conditioning, summarize
from ufm.theory.spectra import Spectrum


def _sp(alpha, dfn, kappa):
    return Spectrum(problem=UFMProblem(3, 2, 3, alpha=alpha), definition=dfn, source="symbolic", eigenvalues=[1.0],
                    multiplicities=[1], null_dim=0, condition_number=kappa)


def test_summarize_verdicts():
    spectra = [_sp(0.0, "logits", 5.0), _sp(0.1, "logits", 4.0), _sp(0.2, "logits", 3.0),
               _sp(0.0, "full", 5.0), _sp(0.1, "full", 6.0), _sp(0.2, "full", 7.0),
               _sp(0.0, "features", 5.0), _sp(0.1, "features", 4.0), _sp(0.2, "features", 6.0),
               _sp(0.1, "classifier", 2.0)]
    s = summarize(spectra)
    assert s["logits"]["verdict"] == "lower with LS" and s["full"]["verdict"] == "higher with LS"
    assert s["features"]["verdict"] == "mixed" and s["classifier"]["verdict"] == "no CE baseline"
    assert s["logits"] == {"alphas": [0.0, 0.1, 0.2], "kappa": [5.0, 4.0, 3.0], "verdict": "lower with LS"}


def test_conditioning_symbolic_and_numeric_sources():
    p = UFMProblem(3, 2, 4, 1e-2, 1e-2)
    out = conditioning(p, alphas=[0.0, 0.2], numeric=True)
    assert [(s.alpha, s.source) for s in out].count((0.2, "numeric")) == 4
    for s in out:
        if s.source == "numeric":
            twin = next(x for x in out if x.source == "symbolic" and x.alpha == s.alpha
                        and x.definition == s.definition)
            assert math.isclose(s.condition_number, twin.condition_number, rel_tol=1e-6)
            assert s.details["solver_status"] == "converged" and s.details["grad_norm"] < 1e-12


@pytest.mark.parametrize("kwargs, match", [
    (dict(alphas=[]), "'alphas' parameter of conditioning must hold at least one value"),
    (dict(alphas=[0.0, 1.0]), "'alphas' parameter of conditioning must be a float in the range \\[0, 1\\)"),
    (dict(definitions=["hessian"]), "'definitions'"),
    (dict(null_rtol=0.0), "'null_rtol'"),
])
def test_conditioning_bad_input(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        conditioning(UFMProblem(3, 2, 3), **kwargs)


def test_summarize_full_with_bias_and_undefined():
    p0, p1 = UFMProblem(10, 10, 10), UFMProblem(10, 10, 10, alpha=0.1)
    s = summarize(conditioning(p0, alphas=[0.0, 0.1]))
    assert s["full, b included"]["verdict"] == "higher with LS"
    assert s["full, b included"]["kappa"][0] > s["full"]["kappa"][0]
    assert summarize([_sp(0.0, "logits", float("nan")), _sp(0.1, "logits", 2.0)])["logits"]["verdict"] == "undefined"


def test_alphas_replace_the_problems_alpha_and_a_conflicting_one_is_refused():
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2, 0.0, 0.1)
    with pytest.raises(InvalidParameterError, match=r"'alphas'.*problem.alpha = 0.1"):
        conditioning(p, alphas=[0.0, 0.2])
    assert sorted({s.alpha for s in conditioning(p, alphas=[0.0, 0.1])}) == [0.0, 0.1]
    assert {s.alpha for s in conditioning(p.replace(alpha=0.0), alphas=[0.2])} == {0.2}  # alpha 0: the default
