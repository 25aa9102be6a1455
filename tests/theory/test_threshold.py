"""The alpha past which the only minimizer is W = H = 0, found on the derived threshold."""
import math

import pytest
from problems import reg_strength, threshold

from ufm import UFMProblem, closed_form
from ufm.theory.closed_form import alpha_threshold


@pytest.mark.parametrize("K, n, lw, lh", [(10, 10, 5e-3, 5e-3), (3, 5, 1e-2, 2e-2), (2, 1, 1e-3, 1e-3),
                                          (100, 50, 1e-5, 1e-4)])
def test_alpha_threshold_matches_the_written_threshold_and_the_closed_form(K, n, lw, lh):
    a = alpha_threshold(K, n, lw, lh)
    s = math.sqrt(n * lw * lh)
    # independent: s_crit = (1 - alpha)/K (Zhu et al. at alpha = 0), so alpha* = 1 - K s
    assert a == pytest.approx(1 - K * s, abs=1e-13)
    p = UFMProblem(K, n, K, lw, lh, alpha=min(max(a, 0.0), 0.999))
    assert threshold(p) == pytest.approx(reg_strength(p), rel=1e-9) or a < 0
    if 0 < a - 1e-6 and a + 1e-6 < 1:
        assert not closed_form(p.replace(alpha=a - 1e-6)).trivial and closed_form(p.replace(alpha=a + 1e-6)).trivial


def test_past_the_threshold_even_for_ce_the_alpha_is_negative():
    assert alpha_threshold(10, 10, 0.1, 0.1) < 0
