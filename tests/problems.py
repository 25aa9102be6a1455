"""Exact cases and independent references shared by the tests.

Nothing here uses ufm's solver or closed forms: the references are written with
torch's own ``cross_entropy(label_smoothing=...)`` and scipy, so agreement with ufm
is evidence, not tautology.
"""
import math

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from ufm import UFMProblem

DTYPES = [torch.float64, torch.float32]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

#: (K, d) pairs with d >= K - 1 where a simplex ETF fits, d = K - 1 included.
ETF_SHAPES = [(2, 1), (3, 2), (4, 3), (4, 6), (5, 5), (10, 9), (10, 20)]


def threshold(p: UFMProblem) -> float:
    """s_crit = (1 - alpha)/K, written independently of the derivation (Zhu et al. for alpha = 0)."""
    return (1 - p.alpha) / p.K


def reg_strength(p: UFMProblem) -> float:
    return math.sqrt(p.n * p.lambda_w * p.lambda_h)


def random_problems(seed: int, count: int, trivial: bool = False, dims=("K-1", "K", "K+3")):
    """Seeded random configurations, kept at least 20% away from the threshold."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        K = int(rng.integers(2, 9))
        dim = {"K-1": max(K - 1, 1), "K": K, "K+3": K + 3}[dims[len(out) % len(dims)]]
        lo, hi = (-1.5, -0.5) if trivial else (-3.5, -1.5)
        p = UFMProblem(K, int(rng.integers(1, 9)), dim, float(10 ** rng.uniform(lo, hi)),
                       float(10 ** rng.uniform(lo, hi)), float(rng.choice([0.0, 1e-3, 1e-2])),
                       float(rng.choice([0.0, rng.uniform(0, 0.5)])))
        ratio = reg_strength(p) / threshold(p)
        if (trivial and ratio > 1.25) or (not trivial and ratio < 0.8):
            out.append(p)
    return out


def reference_objective(p: UFMProblem, W, H, b):
    """f(W, H, b) with torch's built-in label-smoothed cross-entropy."""
    y = torch.arange(p.N) // p.n
    logits = (W @ H + b[:, None]).T  # (N, K)
    return (F.cross_entropy(logits, y, label_smoothing=p.alpha)
            + p.lambda_w / 2 * (W ** 2).sum() + p.lambda_h / 2 * (H ** 2).sum() + p.lambda_b / 2 * (b ** 2).sum())


def reference_minimize(p: UFMProblem, seed: int = 0):
    """Minimize f with scipy's L-BFGS-B (gradient by torch autograd); returns (f, W, H, b)."""
    K, d, N = p.K, p.d, p.N
    sizes = [K * d, d * N, K]
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=sum(sizes)) / math.sqrt(d)

    def split(x):
        W = x[:sizes[0]].reshape(K, d)
        H = x[sizes[0]:sizes[0] + sizes[1]].reshape(d, N)
        return W, H, x[sizes[0] + sizes[1]:]

    def fun(x):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        f = reference_objective(p, *split(t))
        (g,) = torch.autograd.grad(f, t)
        return float(f.detach()), g.numpy()

    res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 20000, "gtol": 1e-9, "ftol": 1e-16, "maxcor": 30})
    W, H, b = (torch.tensor(a) for a in split(res.x))
    return res.fun, W, H, b


#: a tiny experiment (Gaussian data, an MLP, 4 epochs, CE and one alpha, 2 seeds): the runs the
#: experiment, report and claims tests share
TINY_EXPERIMENT = """
name = "tiny"
description = "gaussian, 2 alphas x 2 seeds"
[base]
dataset = "gaussian"
dataset_options = { num_classes = 3, dim = 8, train_size_per_class = 40, test_size_per_class = 20 }
model = "mlp"
model_options = { width = 16, depth = 2 }
epochs = 4
batch_size = 16
eval_every = 2
[grid]
alpha = [0.0, 0.1]
seed = [0, 1]
"""
