import math
import warnings

import pytest

from ufm import ClosedFormNotApplicableWarning, InvalidParameterError, UFMProblem, closed_form


@pytest.mark.parametrize("name, value, pattern", [
    ("alpha", 1.0, r"'alpha' parameter of UFMProblem must be a float in the range \[0, 1\)\. Got 1\.0"),
    ("alpha", -0.1, r"'alpha'.*\[0, 1\)"),
    ("alpha", math.nan, r"'alpha'.*Got nan"),
    ("num_classes", 1, r"'num_classes' parameter of UFMProblem must be an int in the range \[2, inf\)\. Got 1"),
    ("num_classes", 3.0, r"'num_classes'.*an int"),
    ("per_class", 0, r"'per_class'.*\[1, inf\)"),
    ("dim", 0, r"'dim'.*\[1, inf\)"),
    ("lambda_w", -1e-3, r"'lambda_w'.*\(0, inf\)"),
    ("lambda_w", 0.0, r"'lambda_w'.*\(0, inf\)"),
    ("lambda_h", math.inf, r"'lambda_h'.*Got inf"),
    ("lambda_b", -1.0, r"'lambda_b'.*\[0, inf\)"),
    ("loss", "focal", r"'loss'.*'label_smoothing'"),
    ("alpha", True, r"'alpha'"),
])
def test_invalid_parameter_named_with_range(name, value, pattern):
    kwargs = dict(num_classes=4, per_class=3, dim=4, lambda_w=1e-3, lambda_h=1e-3, lambda_b=0.0, alpha=0.1)
    kwargs[name] = value
    with pytest.raises(InvalidParameterError, match=pattern) as info:
        UFMProblem(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert info.value.param == name


def test_valid_problem_normalizes_types_and_shape():
    p = UFMProblem(5, 2, 7, 1, 2, 0, 0)
    assert isinstance(p.lambda_w, float) and p.alpha == 0.0
    assert (p.K, p.n, p.d, p.N) == (5, 2, 7, 10)
    assert p.shape == (5, 7, 2, "label_smoothing")
    assert p.replace(alpha=0.2).alpha == 0.2
    with pytest.raises(InvalidParameterError):
        p.replace(alpha=2.0)


def test_small_dimension_warns_that_closed_form_does_not_apply():
    p = UFMProblem(6, 2, 3)
    assert not p.closed_form_applies
    with pytest.warns(ClosedFormNotApplicableWarning, match=r"d=3 < K-1=5"):
        cf = closed_form(p)
    assert cf.applies is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        closed_form(UFMProblem(6, 2, 5))  # d = K - 1: no warning
