"""Reading recorded series: first step reaching a level, the mean over runs."""
import math

from ufm.analysis.series import first_reached, mean_or_none


def test_first_reached_is_strict_unless_inclusive_and_skips_missing_values():
    steps, values = [0, 10, 20, 30], [1.0, None, 0.5, math.nan]
    assert first_reached(steps, values, 0.5) is None
    assert first_reached(steps, values, 0.5, inclusive=True) == 20
    assert first_reached(steps, values, 0.6) == 20
    assert first_reached(steps, [0.1, 0.0], 0.2) == 0
    assert first_reached([], [], 1.0) is None


def test_the_mean_is_none_when_a_run_has_no_value():
    assert mean_or_none([100, 200, 300]) == 200.0
    assert mean_or_none([100, None]) is None
    assert mean_or_none([]) is None
