"""The distance to the rotation orbit of a minimizer, against a brute-force minimum over rotations."""
import math

import pytest
import torch

from ufm import UFMProblem, explicit_minimizer
from ufm.metrics.orbit import orbit_distances


def _random_rotation(d, seed):
    g = torch.Generator().manual_seed(seed)
    Q, R = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return Q * torch.sign(torch.diagonal(R))


def test_a_rotated_minimizer_is_at_distance_zero_and_a_shifted_bias_too_when_unregularized():
    p = UFMProblem(4, 3, 6, 5e-3, 5e-3, 0.0, 0.1)
    Ws, Hs, bs = explicit_minimizer(p)
    Q = _random_rotation(6, 0)
    W, H, b = Ws @ Q.T, Q @ Hs, bs + 0.7
    d = orbit_distances(Ws[None], Hs[None], W[None], H[None], b[None], torch.tensor([0.0], dtype=torch.float64))
    assert float(d[0]) < 1e-12
    d = orbit_distances(Ws[None], Hs[None], W[None], H[None], b[None], torch.tensor([1e-3], dtype=torch.float64))
    assert float(d[0]) == pytest.approx(0.7 * math.sqrt(4) / math.sqrt(float((Ws ** 2).sum() + (Hs ** 2).sum())))


def test_the_distance_is_the_minimum_over_rotations():
    """No rotation among many random ones, nor the identity, does better than the Procrustes optimum."""
    p = UFMProblem(3, 2, 3, 5e-3, 5e-3, 1e-3, 0.0)
    Ws, Hs, bs = explicit_minimizer(p)
    g = torch.Generator().manual_seed(1)
    W = Ws + 0.05 * torch.randn(Ws.shape, generator=g, dtype=torch.float64)
    H = Hs + 0.05 * torch.randn(Hs.shape, generator=g, dtype=torch.float64)
    b = 0.01 * torch.randn(3, generator=g, dtype=torch.float64)
    scale = math.sqrt(float((Ws ** 2).sum() + (Hs ** 2).sum()))
    best = float(orbit_distances(Ws[None], Hs[None], W[None], H[None], b[None],
                                 torch.tensor([1e-3], dtype=torch.float64))[0])

    def dist(Q):
        return math.sqrt(float(((W - Ws @ Q.T) ** 2).sum() + ((H - Q @ Hs) ** 2).sum() + (b ** 2).sum())) / scale

    assert best <= dist(torch.eye(3, dtype=torch.float64)) + 1e-15
    assert all(best <= dist(_random_rotation(3, s)) + 1e-15 for s in range(200))
    assert best > 0
