"""A short GPU check of the solver and the Hessian spectra: speed on CUDA and agreement with the CPU.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--device cuda]

Measures, in one run on the machine it runs on:

1. batched solves of B = 64 configurations (K=10, d=16, n=50, 8 alphas x 8 seeds): gradient descent
   (2000 steps) and L-BFGS (tol 1e-10), on the GPU and on the CPU, and a loop of one-configuration
   solves on the GPU over the first 16 configurations (time per configuration, so the ratio
   batched/loop per configuration is measured, not extrapolated from a different count);
2. a large batch (B = 1024, gd, 500 steps) on the GPU and the CPU;
3. agreement: max |W_gpu - W_cpu| for the same seeds after the gd run, and L-BFGS objectives;
4. the numeric Hessian spectra on the GPU against the symbolic ones (K=10, d=10, n=10,
   alpha in {0, 0.1}): the largest eigenvalue difference relative to the largest eigenvalue;
5. Lanczos (top 20 eigenvalues by Hessian-vector products) at about 10,000 parameters on the GPU
   and on the CPU.

Prints one JSON object and writes it to ``--out``. Timings synchronize the GPU before reading the
clock; each is the best of ``--repeats`` runs after one warm-up.
"""
import argparse
import json
import platform
import time

import numpy as np
import torch

from ufm import UFMProblem, explicit_minimizer, solve
from ufm.analysis.conditioning import compare_sources, conditioning
from ufm.numerics.spectrum import top_eigenvalues


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeats):
    fn()  # warm-up (CUDA context, kernels)
    _sync(device)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--loop", type=int, default=16, help="configurations solved one by one on the GPU")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs (seconds)")
    args = ap.parse_args()
    dev = args.device
    res = {"torch": torch.__version__, "platform": platform.platform(),
           "device": torch.cuda.get_device_name(0) if torch.device(dev).type == "cuda" else "cpu",
           "cpu_threads": torch.get_num_threads()}

    alphas = [0.025 * i for i in range(8)]
    problems = [UFMProblem(10, 50, 16, 5e-3, 5e-3, 0.0, a) for a in alphas for _ in range(8)]
    seeds = [s for _ in alphas for s in range(8)]
    gd = dict(method="gd", lr=0.5, tol=1e-30, max_steps=20 if args.quick else 2000)  # a fixed number of steps
    lb = dict(method="lbfgs", tol=1e-3 if args.quick else 1e-10)
    if args.quick:
        args.loop = 2
    for name, kw in (("gd", gd), ("lbfgs", lb)):
        t_gpu, r_gpu = _timed(lambda: solve(problems, seeds=seeds, device=dev, **kw), dev, args.repeats)
        t_cpu, r_cpu = _timed(lambda: solve(problems, seeds=seeds, device="cpu", **kw), "cpu", 1)
        m = args.loop
        t_loop, _ = _timed(lambda: [solve(problems[i], seeds=seeds[i], device=dev, **kw) for i in range(m)], dev, 1)
        res[f"{name}_B64"] = {
            "batched_gpu_s": t_gpu, "batched_cpu_s": t_cpu, "loop_gpu_s_per_config": t_loop / m,
            "batched_gpu_s_per_config": t_gpu / len(problems),
            "speedup_batched_vs_loop_gpu": (t_loop / m) / (t_gpu / len(problems)),
            "speedup_gpu_vs_cpu_batched": t_cpu / t_gpu,
            "max_abs_W_gpu_minus_cpu": float((r_gpu.W.cpu() - r_cpu.W).abs().max()),
            "max_abs_objective_gpu_minus_cpu": float((r_gpu.objective.cpu() - r_cpu.objective).abs().max()),
            "converged_gpu": int(r_gpu.converged.sum()), "steps_max_gpu": int(r_gpu.steps.max())}
        print(json.dumps({name: res[f"{name}_B64"]}), flush=True)

    nbig = 256 if args.quick else 1024
    big = [UFMProblem(10, 50, 16, 5e-3, 5e-3, 0.0, 0.3 * (i % 64) / 64) for i in range(nbig)]
    kw = dict(method="gd", lr=0.5, tol=1e-30, max_steps=5 if args.quick else 500)
    t_gpu, _ = _timed(lambda: solve(big, seeds=list(range(nbig)), device=dev, **kw), dev, 1)
    t_cpu, _ = _timed(lambda: solve(big[:128], seeds=list(range(128)), device="cpu", **kw), "cpu", 1)
    res["gd_B1024_500_steps"] = {"gpu_s": t_gpu, "cpu_s_for_128": t_cpu,
                                 "speedup_gpu_vs_cpu_per_config": (t_cpu / 128) / (t_gpu / nbig)}
    print(json.dumps({"big": res["gd_B1024_500_steps"]}), flush=True)

    t0 = time.perf_counter()
    spectra = conditioning(UFMProblem(10, 10, 10, 5e-3, 5e-3), alphas=[0.0, 0.1], numeric=True, device=dev)
    errs = [r["max_eigenvalue_error"] for r in compare_sources(spectra)]
    res["spectra_gpu_vs_symbolic"] = {"max_rel_error": errs, "seconds": time.perf_counter() - t0}
    print(json.dumps({"spectra": res["spectra_gpu_vs_symbolic"]}), flush=True)

    p = UFMProblem(10, 6 if args.quick else 62, 16, 5e-3, 5e-3, 0.0, 0.1)  # 160 + 9920 = 10,080 in (W, H)
    W, H, b = explicit_minimizer(p, rotation_seed=0)
    g = torch.Generator().manual_seed(1)
    W, H, b = [t + 0.05 * torch.randn(t.shape, generator=g, dtype=torch.float64) for t in (W, H, b)]
    out = {}
    for where in (dev, "cpu"):
        args_ = [t.to(where) for t in (W, H, b)]
        t, vals = _timed(lambda: top_eigenvalues(p, *args_, k=20, parts=("W", "H")), where, 1)
        out[where] = (t, vals)
    res["lanczos_top20_10080_params"] = {"gpu_s": out[dev][0], "cpu_s": out["cpu"][0],
                                         "max_rel_diff": float(np.max(np.abs(out[dev][1] - out["cpu"][1])
                                                                      / np.abs(out["cpu"][1])))}
    print(json.dumps({"lanczos": res["lanczos_top20_10080_params"]}), flush=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
