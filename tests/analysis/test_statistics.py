"""The statistics rule of the network claims, against hand-computed bounds and binomial probabilities."""
import math

import pytest

from ufm.analysis.statistics import (BOOTSTRAP_FROM, MIN_SEEDS, RESAMPLES, bootstrap_bounds, combine, judge,
                                     sign_test_bounds, sign_test_rank)


def _binom_cdf(n: int, j: int) -> float:
    """P(Binomial(n, 1/2) <= j), written out independently of the module."""
    return sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n


@pytest.mark.parametrize("n", range(1, 21))
def test_sign_test_rank_is_the_largest_k_with_binomial_tail_at_most_5_percent(n):
    ks = [k for k in range(1, n + 1) if _binom_cdf(n, k - 1) <= 0.05]
    assert sign_test_rank(n) == (max(ks) if ks else 0)


def test_sign_test_ranks_by_hand():
    # n = 3, 4: P(B <= 0) = 1/8, 1/16 > 0.05: no bound; n = 5: 1/32 <= 0.05 < 6/32: the minimum
    assert [sign_test_rank(n) for n in (3, 4, 5, 6)] == [0, 0, 1, 1]
    # n = 10: P(B <= 1) = 11/1024 = 0.0107 <= 0.05 < P(B <= 2) = 56/1024 = 0.0547: the second smallest
    assert _binom_cdf(10, 1) == 11 / 1024 and _binom_cdf(10, 2) == 56 / 1024 and sign_test_rank(10) == 2
    assert sign_test_bounds([5, 3, 9, 1, 4, 8, 2, 7, 6, 10]) == (2.0, 9.0)


def test_five_seeds_bound_by_the_minimum_and_maximum_three_and_four_have_no_bound():
    assert sign_test_bounds([0.3, 0.1, 0.5, 0.2, 0.4]) == (0.1, 0.5)
    assert sign_test_bounds([1, 2, 3, 4]) == (-math.inf, math.inf)
    assert sign_test_bounds([1, 2, 3]) == (-math.inf, math.inf)


def test_a_clear_effect_over_five_seeds_holds_and_its_reverse_fails():
    r = judge([0.3, 0.1, 0.5, 0.2, 0.4])
    assert (r["verdict"], r["method"], r["n"], r["interval"]) == ("holds", "sign test", 5, [0.1, 0.5])
    assert r["mean"] == pytest.approx(0.3) and "above 0" in r["reason"]
    back = judge([-0.3, -0.1, -0.5, -0.2, -0.4])
    assert back["verdict"] == "fails" and back["interval"] == [-0.5, -0.1] and "below 0" in back["reason"]


def test_two_seeds_are_inconclusive_whatever_the_effects():
    for effects in ([100.0, 200.0], [-5.0, -6.0], [1.0]):
        r = judge(effects)
        assert r["verdict"] == "inconclusive" and r["method"] == "too few seeds" and r["n"] < MIN_SEEDS
        assert "fewer than 3" in r["reason"]


def test_three_or_four_positive_seeds_cannot_hold():
    for effects in ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]):
        r = judge(effects)
        assert r["verdict"] == "inconclusive" and r["interval"] == [-math.inf, math.inf]
        assert "no finite 95% bound" in r["reason"]


def test_a_tie_never_counts_in_the_claimed_direction():
    assert judge([0.0, 1.0, 2.0, 3.0, 4.0])["verdict"] == "inconclusive"  # the minimum is 0, not > 0
    assert judge([0.0] * 5)["verdict"] == "inconclusive" and judge([0.0] * 8)["verdict"] == "inconclusive"
    # a tie counts against the claim, never for it: replacing a positive effect by a tie never makes it hold
    for base in ([0.5, -0.6, 0.8, -0.3, 0.9, -0.4, 0.2], [0.5, 0.1, 0.8, 0.3, -0.05]):
        assert judge(base)["verdict"] == "inconclusive"
        for i in (i for i, v in enumerate(base) if v > 0):
            assert judge(base[:i] + [0.0] + base[i + 1:])["verdict"] == "inconclusive"
    assert judge([0.0, 0.0, 0.0, 0.0, 0.0, 5.0])["verdict"] == "inconclusive"  # the bootstrap too


def test_bootstrap_bounds_against_the_binomial_distribution_of_the_mean():
    # effects three 1s and three 0s: the resampled mean is Binomial(6, 1/2)/6. P(mean = 0) = 1/64 < 0.05 <
    # P(mean <= 1/6) = 7/64, so the 5th percentile is 1/6; symmetrically the 95th is 5/6.
    assert _binom_cdf(6, 0) < 0.05 < _binom_cdf(6, 1)
    lower, upper = bootstrap_bounds([1, 0, 1, 0, 1, 0])
    assert lower == pytest.approx(1 / 6) and upper == pytest.approx(5 / 6)
    r = judge([1, 0, 1, 0, 1, 0])
    assert r["method"] == "bootstrap" and r["verdict"] == "holds" and r["interval"] == pytest.approx([1 / 6, 5 / 6])


def test_bootstrap_is_reproducible_and_exact_on_constant_effects():
    assert BOOTSTRAP_FROM == 6 and RESAMPLES == 10_000
    effects = [0.3, -0.1, 0.5, 0.2, 0.4, 0.05, 0.6]
    assert bootstrap_bounds(effects) == bootstrap_bounds(effects)
    assert bootstrap_bounds([0.25] * 7) == (0.25, 0.25)
    lower, upper = bootstrap_bounds(effects)
    assert min(effects) < lower < sum(effects) / len(effects) < upper < max(effects)


def test_missing_effects_are_left_out_and_counted():
    r = judge([0.1, None, 0.2, float("nan"), 0.3, 0.4, 0.5])
    assert r["n"] == 5 and r["dropped"] == 2 and r["effects"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert r["verdict"] == "holds" and "2 without a value left out" in r["reason"]


def test_combining_parts_never_says_more_than_every_part():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["fails", "fails"]) == "fails"
    assert combine(["holds", "fails"]) == "inconclusive"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["holds", "not-applicable"]) == "holds"  # judged parts decide; the others are reported
    assert combine(["not-applicable", "not-evaluated"]) == "not-applicable"
    assert combine(["not-evaluated"]) == "not-evaluated" and combine([]) == "not-evaluated"
