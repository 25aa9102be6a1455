"""Logit statistics against a per-sample loop written independently."""
import math

import pytest
import torch

from ufm.metrics.logits import logit_statistics


def _reference(Z, y):
    gaps, pt, po = [], [], []
    for z, k in zip(Z.tolist(), y.tolist()):
        others = [v for j, v in enumerate(z) if j != k]
        gaps.append(z[k] - sum(others) / len(others))
        e = [math.exp(v) for v in z]
        p = [v / sum(e) for v in e]
        pt.append(p[k])
        po.append(sum(v for j, v in enumerate(p) if j != k) / len(others))
    return {"logit_gap": sum(gaps) / len(gaps), "p_true": sum(pt) / len(pt), "p_off": sum(po) / len(po)}


@pytest.mark.parametrize("K", [2, 3, 10])
def test_logit_statistics_equal_a_per_sample_loop(K):
    g = torch.Generator().manual_seed(K)
    Z = torch.randn(57, K, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, K, (57,), generator=g)
    got, ref = logit_statistics(Z, y), _reference(Z, y)
    assert set(got) == {"logit_gap", "p_true", "p_off"}
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-15)


def test_at_a_collapsed_point_every_sample_has_the_same_values():
    K, gap = 4, 2.5
    Z = torch.zeros(8, K, dtype=torch.float64)
    y = torch.arange(8) % K
    Z[torch.arange(8), y] = gap
    s = logit_statistics(Z, y)
    assert s["logit_gap"] == pytest.approx(gap)
    assert s["p_true"] == pytest.approx(math.exp(gap) / (math.exp(gap) + K - 1))
    assert s["p_off"] == pytest.approx(1 / (math.exp(gap) + K - 1))
