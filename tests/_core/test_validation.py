"""Constraints as data: descriptions, membership, command-line parsing, and validate_params."""
import math

import pytest

from ufm._core.validation import (Boolean, InstanceOf, Interval, InvalidParameterError, ListOf, Options, OrNone,
                                  check_alphas, validate_params)


@pytest.mark.parametrize("constraint, inside, outside, text", [
    (Interval("float", 0, 1, "left"), [0, 0.5, 0.999], [1, -1e-300, math.nan, math.inf, True, "0.5"],
     "a float in the range [0, 1)"),
    (Interval("float", 0, None, "neither"), [1e-300, 1e300], [0, -1, math.inf], "a float in the range (0, inf)"),
    (Interval("int", 2, None, "left"), [2, 10**12], [1, 2.0, True], "an int in the range [2, inf)"),
    (Interval("float", 0, 1, "both"), [0, 1], [1.0000001], "a float in the range [0, 1]"),
    (Options(("gd", "lbfgs")), ["gd"], ["adam", 1, None], "a str among {'gd', 'lbfgs'}"),
    (Boolean(), [True, False], [0, 1, "true"], "a bool"),
    (OrNone(Interval("int", 1, None, "left")), [None, 1], [0, "1"], "an int in the range [1, inf) or None"),
    (InstanceOf(dict), [{}], [[], None], "a dict"),
])
def test_constraints_describe_and_contain(constraint, inside, outside, text):
    assert constraint.describe() == text
    assert all(constraint.contains(v) for v in inside)
    assert not any(constraint.contains(v) for v in outside)


def test_command_line_parsing_follows_the_kind():
    assert Interval("int", 0, None, "left").parse("3") == 3
    with pytest.raises(ValueError):
        Interval("int", 0, None, "left").parse("2.5")
    assert Interval("float", 0, None, "left").parse("1e-3") == 1e-3
    assert ListOf(Interval("float", 0, 1, "left")).parse("0, 0.1,,0.2") == [0.0, 0.1, 0.2]
    assert Boolean().parse("False") is False
    with pytest.raises(ValueError):
        Boolean().parse("yes")


@validate_params({"tol": Interval("float", 0, None, "neither"), "eps": ListOf(Interval("float", 0, 1, "neither")),
                  "method": Options(("gd", "lbfgs")), "steps": OrNone(Interval("int", 0, None, "left"))})
def _solve(problem, *, tol=1e-10, eps=(1e-3,), method="gd", steps=None):
    return tol, list(eps), method, steps


def test_validate_params_checks_every_declared_parameter_with_one_message_form():
    assert _solve(1) == (1e-10, [1e-3], "gd", None)
    with pytest.raises(InvalidParameterError, match=r"^The 'tol' parameter of _solve must be a float in the range "
                                                    r"\(0, inf\)\. Got 0 instead\.$") as e:
        _solve(1, tol=0)
    assert (e.value.param, e.value.value, e.value.expected) == ("tol", 0, "a float in the range (0, inf)")
    with pytest.raises(InvalidParameterError, match=r"'method' parameter of _solve must be a str among"):
        _solve(1, method="adam")
    with pytest.raises(InvalidParameterError, match=r"'steps'.*\[0, inf\) or None\. Got -1 instead"):
        _solve(1, steps=-1)


def test_a_list_names_its_first_offending_item_with_the_item_constraint():
    with pytest.raises(InvalidParameterError, match=r"'eps' parameter of _solve must be a float in the range "
                                                    r"\(0, 1\)\. Got 0\.0 instead") as e:
        _solve(1, eps=[1e-3, 0.0, 2.0])
    assert e.value.value == 0.0
    with pytest.raises(InvalidParameterError, match=r"'eps' .* must hold at least one value"):
        _solve(1, eps=[])
    with pytest.raises(InvalidParameterError, match=r"'eps' .* must be a list of values"):
        _solve(1, eps="0.1")


def test_the_constraints_stay_attached_and_wrong_calls_stay_type_errors():
    assert set(_solve.constraints) == {"tol", "eps", "method", "steps"}
    assert _solve.constraints["tol"].contains(1.0)
    with pytest.raises(TypeError):
        _solve()  # a missing positional argument is Python's error, not a constraint's


def test_a_constraint_on_a_parameter_the_function_lacks_is_a_declaration_error():
    with pytest.raises(TypeError, match="has no parameter 'tl'"):
        validate_params({"tl": Interval("float", 0, None, "neither")})(lambda tol=1: tol)


def test_wrong_class_is_reported_by_type_name():
    @validate_params({"problem": InstanceOf(dict)})
    def f(problem):
        return problem

    with pytest.raises(InvalidParameterError, match=r"must be a dict\. Got list instead"):
        f([1])


def test_check_alphas_keeps_order_drops_repeats_and_names_the_bad_value():
    assert check_alphas([0.1, 0, 0.1, 0.05], "x") == [0.1, 0.0, 0.05]
    with pytest.raises(InvalidParameterError, match=r"'alphas' parameter of x must be a float in the range \[0, 1\)\. "
                                                    r"Got 1\.0 instead"):
        check_alphas([0, 1], "x")
    with pytest.raises(InvalidParameterError, match="at least one value"):
        check_alphas([], "x")
