"""Batched vs looped UFM solves: wall time, speed-up and agreement.

Measures how much faster ``ufm.solve`` is when a grid of configurations sharing
(K, d, n) is solved as one batched tensor program than when the same configurations
are solved one at a time in a Python loop, and checks that both give the same
solutions.

Default workload: 64 configurations with K=10, d=16, n=50 (8 values of alpha evenly
spaced in [0, 0.3] x 8 seeds), lambda_W = lambda_H = 5e-3, lambda_b = 0, float64 on
the CPU, for two methods:

* ``gd``: fixed work, lr=0.5, tol=1e-30 (never reached) and max_steps=2000, so every
  configuration takes exactly 2000 steps;
* ``lbfgs``: run to convergence, tol=1e-10.

For each method: one warm-up solve, then the batched solve ``solve(problems,
seeds=seeds, ...)`` and the loop ``for p, s: solve([p], seeds=[s], ...)``, each timed
with ``time.perf_counter`` (``--repeats`` rounds of batched-then-loop; best of each). Printed: wall times, the ratio
loop/batched (project goal: >= 10x on a 2-core CPU), time per step, and the largest
absolute difference between the batched and looped objective and W.
torch's thread count is left at its default.

Run (about 2 minutes on a 2-core CPU; ``--quick`` takes a few seconds):

    .venv/bin/python benchmarks/bench_batched_solver.py
    .venv/bin/python benchmarks/bench_batched_solver.py --quick
    .venv/bin/python benchmarks/bench_batched_solver.py --methods lbfgs --repeats 3
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from ufm import UFMProblem, solve
from _machine import machine  # benchmarks/ is on sys.path when a script here runs

GOAL_RATIO = 10.0


def make_grid(num_alpha: int, num_seeds: int, K: int, d: int, n: int):
    """num_alpha x num_seeds problems (alpha evenly spaced in [0, 0.3]) and their seeds."""
    alphas = [0.3 * i / max(num_alpha - 1, 1) for i in range(num_alpha)]
    problems, seeds = [], []
    for a in alphas:
        for s in range(num_seeds):
            problems.append(UFMProblem(num_classes=K, per_class=n, dim=d, lambda_w=5e-3, lambda_h=5e-3,
                                       lambda_b=0.0, alpha=a))
            seeds.append(s)
    return problems, seeds


def method_options(method: str, gd_steps: int) -> dict:
    if method == "gd":
        return dict(method="gd", lr=0.5, tol=1e-30, max_steps=gd_steps)
    if method == "lbfgs":
        return dict(method="lbfgs", tol=1e-10)
    raise ValueError(method)


def run_method(method: str, problems, seeds, gd_steps: int, repeats: int) -> dict:
    opts = method_options(method, gd_steps)
    opts["device"] = "cpu"
    # Warm-up: one small batched and one single solve (allocator, kernels, lazy imports).
    warm = dict(opts, max_steps=min(opts.get("max_steps", 50), 50))
    solve(problems[:4], seeds=seeds[:4], **warm)
    solve([problems[0]], seeds=[seeds[0]], **warm)

    def loop():
        return [solve([p], seeds=[s], **opts) for p, s in zip(problems, seeds)]

    # Rounds alternate batched and looped solves, so that a burst of load from other
    # processes is less likely to hit only one of them; the best time of each is kept.
    t_batch = t_loop = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        rb = solve(problems, seeds=seeds, **opts)
        t = time.perf_counter() - t0
        t_batch = min(t_batch, t)
        print(f"  {method} round {r + 1}: batched {t:7.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        t0 = time.perf_counter()
        rl = loop()
        t = time.perf_counter() - t0
        t_loop = min(t_loop, t)
        print(f"  {method} round {r + 1}: loop    {t:7.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)

    obj_loop = torch.cat([r.objective for r in rl])
    W_loop = torch.cat([r.W for r in rl])
    steps_loop = torch.cat([r.steps for r in rl])
    conv_loop = torch.cat([r.converged for r in rl])
    return {
        "method": method,
        "t_batch": t_batch,
        "t_loop": t_loop,
        "ratio": t_loop / t_batch,
        "d_obj": float((rb.objective - obj_loop).abs().max()),
        "d_W": float((rb.W - W_loop).abs().max()),
        "steps_batch_max": int(rb.steps.max()),
        "steps_loop_total": int(steps_loop.sum()),
        "steps_min": int(rb.steps.min()),
        "steps_equal": bool(torch.equal(rb.steps, steps_loop)),
        "conv_batch": int(rb.converged.sum()),
        "conv_loop": int(conv_loop.sum()),
        "B": len(problems),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 alphas x 4 seeds and 300 gd steps")
    ap.add_argument("--methods", nargs="+", default=["gd", "lbfgs"], choices=["gd", "lbfgs"])
    ap.add_argument("--num-alpha", type=int, default=8)
    ap.add_argument("--num-seeds", type=int, default=8)
    ap.add_argument("--gd-steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1, help="rounds of batched-then-loop; the best time of each is kept")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args(argv)
    if args.quick:
        args.num_alpha, args.num_seeds, args.gd_steps = 4, 4, 300

    problems, seeds = make_grid(args.num_alpha, args.num_seeds, args.K, args.d, args.n)
    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"workload: {len(problems)} configurations, K={args.K}, d={args.d}, n={args.n}, float64, cpu; "
          f"gd: lr=0.5, {args.gd_steps} steps; lbfgs: tol=1e-10; best of {args.repeats}", flush=True)

    rows = [run_method(m, problems, seeds, args.gd_steps, args.repeats) for m in args.methods]

    print()
    hdr = (f"{'method':<7}{'batched s':>11}{'loop s':>10}{'loop/batched':>14}"
           f"{'ms/step batch':>15}{'ms/step 1 cfg':>15}{'max|d obj|':>12}{'max|d W|':>11}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        per_step_batch = 1e3 * r["t_batch"] / r["steps_batch_max"]  # one step of the whole batch
        per_step_loop = 1e3 * r["t_loop"] / r["steps_loop_total"]  # one step of one configuration
        print(f"{r['method']:<7}{r['t_batch']:>11.2f}{r['t_loop']:>10.2f}{r['ratio']:>13.1f}x"
              f"{per_step_batch:>15.2f}{per_step_loop:>15.3f}{r['d_obj']:>12.1e}{r['d_W']:>11.1e}")
    print()
    for r in rows:
        print(f"{r['method']}: steps per configuration {r['steps_min']}..{r['steps_batch_max']} "
              f"(identical batched/looped: {r['steps_equal']}); converged {r['conv_batch']}/{r['B']} batched, "
              f"{r['conv_loop']}/{r['B']} looped; goal loop/batched >= {GOAL_RATIO:g}x: "
              f"{'met' if r['ratio'] >= GOAL_RATIO else 'NOT met'} ({r['ratio']:.1f}x)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
