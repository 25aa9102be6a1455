"""Batched UFM solves against their peers: a scipy L-BFGS-B loop, and ufm one configuration at a time.

Workload: configurations with K=10, d=16, n=50 (8 values of alpha evenly spaced in [0, 0.3]
times seeds 0..S-1), lambda_W = lambda_H = 5e-3, lambda_b = 0, float64 on the CPU.

* **L-BFGS against scipy** (S = 8: 64 configurations, and S = 64: 512): the batched
  ``ufm.solve(problems, seeds=seeds, method="lbfgs", tol=1e-10)`` against the loop a researcher
  would write (:func:`scipy_lbfgs`, below): scipy's L-BFGS-B on a numpy objective with its
  analytic gradient, one configuration at a time, from a N(0, 0.01^2) start, with scipy's
  default memory of 10 pairs (ufm's default too), ``gtol=1e-10`` (scipy's test is on the
  largest gradient entry, weaker than ufm's 2-norm) and ``ftol=0`` (so that it does not stop on
  a small relative decrease). Accuracy: the largest relative error of the objective against
  the closed form, for every configuration, both ways (goal: <= 1e-12).
* **gd against itself** (64 configurations): fixed work, lr=0.5 and 2000 steps; the batched
  solve against ``solve([p], seeds=[s])`` in a loop; the largest differences of objective and W.
* **Arithmetic rate**: the matmul flops of the objective evaluations (3 products of
  2 K d N flops per configuration per evaluation; evaluations counted) per second of the
  batched L-BFGS solve, against the measured rate of the same three products as one batched
  float64 matmul of the workload's batch (``torch.bmm``, best of 20). The L-BFGS history
  products, memory-bound, are not counted.

Each comparison: one warm-up, then ``--repeats`` rounds of batched-then-peer, best of each,
timed with ``time.perf_counter``; the 1-minute load average is printed with every timing
(about 2 means no other load on a 2-core machine). torch's thread count is left at its default.

Goals (issue 12): batched L-BFGS >= 10x the scipy loop at 64 and at 512 configurations, at
equal accuracy; batched gd >= 10x its one-by-one loop.

Run (about 3 minutes on a 2-core CPU; ``--quick`` about 20 s):

    .venv/bin/python benchmarks/bench_batched_solver.py
    .venv/bin/python benchmarks/bench_batched_solver.py --quick
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.optimize
import torch

from ufm import UFMProblem, closed_form, solve
from ufm.numerics.objective import UFMObjective
from _machine import machine  # benchmarks/ is on sys.path when a script here runs

GOAL_RATIO = 10.0
GOAL_ACCURACY = 1e-12


def make_grid(num_alpha: int, num_seeds: int, K: int, d: int, n: int):
    """num_alpha x num_seeds problems (alpha evenly spaced in [0, 0.3]) and their seeds."""
    alphas = [0.3 * i / max(num_alpha - 1, 1) for i in range(num_alpha)]
    problems = [UFMProblem(num_classes=K, per_class=n, dim=d, lambda_w=5e-3, lambda_h=5e-3, lambda_b=0.0, alpha=a)
                for a in alphas for _ in range(num_seeds)]
    return problems, [s for _ in alphas for s in range(num_seeds)]


def scipy_lbfgs(p: UFMProblem, seed: int, tol: float = 1e-10):
    """The peer: scipy's L-BFGS-B on the UFM objective (README conventions) and its gradient."""
    K, d, n = p.K, p.d, p.n
    N = K * n
    T = np.full((K, N), p.alpha / K)  # smoothed targets
    T[np.arange(N) // n, np.arange(N)] += 1 - p.alpha

    def f_and_grad(x):
        W, H, b = x[:K * d].reshape(K, d), x[K * d:K * d + d * N].reshape(d, N), x[K * d + d * N:]
        Z = W @ H + b[:, None]
        Z -= Z.max(axis=0)
        E = np.exp(Z)
        s = E.sum(axis=0)
        f = (np.log(s).sum() - (T * Z).sum()) / N + (p.lambda_w * (W * W).sum() + p.lambda_h * (H * H).sum()
                                                      + p.lambda_b * (b * b).sum()) / 2
        G = (E / s - T) / N
        return f, np.concatenate([(G @ H.T + p.lambda_w * W).ravel(), (W.T @ G + p.lambda_h * H).ravel(),
                                  G.sum(axis=1) + p.lambda_b * b])

    x0 = np.random.default_rng(seed).normal(0.0, 0.01, K * d + d * N + K)
    return scipy.optimize.minimize(f_and_grad, x0, jac=True, method="L-BFGS-B",
                                   options=dict(maxcor=10, gtol=tol, ftol=0.0, maxiter=5000))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _rounds(label, batched, peer, repeats):
    """Best times of alternating rounds (so a burst of load is less likely to hit one side only)."""
    t_b = t_p = float("inf")
    for r in range(repeats):
        t, rb = _timed(batched)
        t_b = min(t_b, t)
        print(f"  {label} round {r + 1}: batched {t:7.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        t, rp = _timed(peer)
        t_p = min(t_p, t)
        print(f"  {label} round {r + 1}: peer    {t:7.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    return t_b, t_p, rb, rp


class _CountingEvaluations:
    """Counts the configurations evaluated by UFMObjective.value_and_grad while active."""

    def __enter__(self):
        self.rows, self._orig = 0, UFMObjective.value_and_grad
        counter = self

        def counted(obj, x, rows=None):
            counter.rows += x.shape[0]
            return counter._orig(obj, x, rows)

        UFMObjective.value_and_grad = counted
        return self

    def __exit__(self, *exc):
        UFMObjective.value_and_grad = self._orig


def matmul_peak(B: int, K: int, d: int, N: int, repeats: int = 20) -> float:
    """GFLOP/s of the objective's three products, (K,d)(d,N), (K,N)(N,d) and (d,K)(K,N), batched over B."""
    W, H, G = (torch.randn(B, *shape, dtype=torch.float64) for shape in ((K, d), (d, N), (K, N)))
    best = float("inf")
    for _ in range(repeats):
        t, _ = _timed(lambda: (torch.bmm(W, H), torch.bmm(G, H.transpose(1, 2)), torch.bmm(W.transpose(1, 2), G)))
        best = min(best, t)
    return 3 * 2 * B * K * d * N / best / 1e9


def lbfgs_vs_scipy(num_seeds, args) -> dict:
    problems, seeds = make_grid(args.num_alpha, num_seeds, args.K, args.d, args.n)
    fstar = np.array([closed_form(p).objective for p in problems])
    solve(problems[:8], seeds=seeds[:8], method="lbfgs", tol=1e-10, device="cpu", max_steps=20)  # warm-up
    scipy_lbfgs(problems[0], 0)
    with _CountingEvaluations() as count:
        counted = solve(problems, seeds=seeds, method="lbfgs", tol=1e-10, device="cpu")
    t_b, t_p, rb, rp = _rounds(f"lbfgs B={len(problems)}",
                               lambda: solve(problems, seeds=seeds, method="lbfgs", tol=1e-10, device="cpu"),
                               lambda: [scipy_lbfgs(p, s) for p, s in zip(problems, seeds)], args.repeats)
    flops = count.rows * 3 * 2 * args.K * args.d * args.K * args.n
    return dict(B=len(problems), t_batch=t_b, t_peer=t_p, ratio=t_p / t_b,
                err_batch=float(np.max(np.abs(rb.objective.numpy() - fstar) / np.abs(fstar))),
                err_peer=float(np.max(np.abs(np.array([r.fun for r in rp]) - fstar) / np.abs(fstar))),
                steps=(int(rb.steps.min()), int(rb.steps.max())), nit=(min(r.nit for r in rp), max(r.nit for r in rp)),
                converged=int(rb.converged.sum()), evals=count.rows / int(counted.steps.sum()), gflops=flops / t_b / 1e9,
                peak=matmul_peak(len(problems), args.K, args.d, args.K * args.n))


def gd_vs_loop(args) -> dict:
    problems, seeds = make_grid(args.num_alpha, 8, args.K, args.d, args.n)
    opts = dict(method="gd", lr=0.5, tol=1e-30, max_steps=args.gd_steps, device="cpu")
    solve(problems[:4], seeds=seeds[:4], **dict(opts, max_steps=50))  # warm-up
    solve(problems[:1], seeds=seeds[:1], **dict(opts, max_steps=50))
    t_b, t_p, rb, rl = _rounds("gd", lambda: solve(problems, seeds=seeds, **opts),
                               lambda: [solve([p], seeds=[s], **opts) for p, s in zip(problems, seeds)], args.repeats)
    return dict(B=len(problems), t_batch=t_b, t_peer=t_p, ratio=t_p / t_b,
                d_obj=float((rb.objective - torch.cat([r.objective for r in rl])).abs().max()),
                d_W=float((rb.W - torch.cat([r.W for r in rl])).abs().max()),
                ms_batch=1e3 * t_b / args.gd_steps, ms_one=1e3 * t_p / args.gd_steps / len(problems))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 configurations only, 300 gd steps")
    ap.add_argument("--num-alpha", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[8, 64], help="seeds per alpha, one workload each")
    ap.add_argument("--gd-steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1, help="rounds of batched-then-peer; the best time of each is kept")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.gd_steps = [8], 300
    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"workload: K={args.K}, d={args.d}, n={args.n}, float64, cpu; best of {args.repeats}", flush=True)
    rows = [lbfgs_vs_scipy(s, args) for s in args.seeds]
    gd = gd_vs_loop(args)

    print()
    hdr = (f"{'L-BFGS, B':<11}{'ufm s':>8}{'scipy s':>9}{'scipy/ufm':>11}{'ufm err':>10}{'scipy err':>11}"
           f"{'ufm steps':>11}{'scipy it':>10}{'GFLOP/s':>9}{'bmm peak':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['B']:<11}{r['t_batch']:>8.2f}{r['t_peer']:>9.2f}{r['ratio']:>10.1f}x{r['err_batch']:>10.1e}"
              f"{r['err_peer']:>11.1e}{'%d..%d' % r['steps']:>11}{'%d..%d' % r['nit']:>10}{r['gflops']:>9.2f}"
              f"{r['peak']:>10.2f}")
    print(f"\ngd, B={gd['B']}, {args.gd_steps} steps: batched {gd['t_batch']:.2f} s, one by one {gd['t_peer']:.2f} s, "
          f"{gd['ratio']:.1f}x; ms per step: batch {gd['ms_batch']:.2f}, one configuration {gd['ms_one']:.3f}; "
          f"max |d objective| {gd['d_obj']:.1e}, max |d W| {gd['d_W']:.1e}")
    print()
    for r in rows:
        accurate = r["err_batch"] <= GOAL_ACCURACY and r["err_peer"] <= GOAL_ACCURACY
        print(f"L-BFGS B={r['B']}: goal scipy/ufm >= {GOAL_RATIO:g}x at equal accuracy: "
              f"{'met' if r['ratio'] >= GOAL_RATIO and accurate else 'NOT met'} ({r['ratio']:.1f}x; accuracy "
              f"{'both' if accurate else 'NOT both'} <= {GOAL_ACCURACY:g}; {r['converged']}/{r['B']} converged); "
              f"{r['gflops']:.2f} GFLOP/s = {r['gflops'] / r['peak']:.0%} of the batched matmul's {r['peak']:.2f}; "
              f"{r['evals']:.3f} configurations evaluated per configuration-step")
    print(f"gd: goal loop/batched >= {GOAL_RATIO:g}x: {'met' if gd['ratio'] >= GOAL_RATIO else 'NOT met'} "
          f"({gd['ratio']:.1f}x)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
