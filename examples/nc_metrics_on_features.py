"""NC metrics of features that are near, but not at, neural collapse: a simplex ETF of class
means plus within-class noise, with a self-dual classifier. The same function applies to a
network's penultimate features.

    python examples/nc_metrics_on_features.py
"""
import torch

import ufm

K, d, n = 10, 32, 200
g = torch.Generator().manual_seed(0)
means = 4.0 * ufm.simplex_etf(K, d)  # (K, d)
labels = torch.arange(K).repeat_interleave(n)  # (N,)
for noise in (1.0, 0.1, 0.01):
    features = means[labels] + noise * torch.randn(K * n, d, generator=g, dtype=torch.float64)  # (N, d)
    m = ufm.nc_metrics(features, labels, weight=means, num_classes=K)
    print(f"noise {noise:>5}: " + ", ".join(f"{k}={v:.3g}" for k, v in m.items() if k in
                                             ("nc1", "nc2_h", "nc2_w", "nc3", "nc4")))
