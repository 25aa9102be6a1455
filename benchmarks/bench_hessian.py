"""Hessian spectra of the UFM objective: dense (autodiff build + eigvalsh) vs Lanczos.

Measures what ``ufm.numerics.hessian`` costs at the exact minimizer of the UFM, as a
function of the number of parameters P = Kd + dN + K (N = Kn), in two parts:

1. **Dense spectrum vs P.** ``dense_hessian(problem, W, H, b)`` (the (P, P) float64
   Hessian in all of W, H, b, built by reverse-over-reverse autodiff in chunks of rows,
   ``torch.func.jacrev`` of the gradient, then symmetrised) and ``torch.linalg.eigvalsh`` of it,
   timed separately; the total is their sum (per call). Default sizes: K = 10, d = 10,
   n in {2, 5, 10, 20, 40}, i.e. P = 310 ... 4,110. The median of ``--repeats`` calls is
   reported for P <= ``--repeat-max-p`` (default 2,500), a single call above.
2. **Lanczos vs dense for the top 20 eigenvalues.** ``top_eigenvalues(problem, W, H, b,
   k=20)`` (scipy ``eigsh``, ``which="LA"``, tol = 0, on exact Hessian-vector products)
   against the dense route (build + full ``eigvalsh``, then the 20 largest values), at
   n = 40 (P = 4,110) and n = 99 (P = 10,010; the dense Hessian takes 0.75 GiB), in the
   same run: ``--compare-repeats`` (default 3) rounds of dense-then-Lanczos for
   P <= ``--compare-repeat-max-p`` (default 5,000), one round above; the median is
   reported. Printed: both times, the ratio dense / Lanczos, the number of
   Hessian-vector products (HVPs) Lanczos used in each round (counted by wrapping
   ``ufm.numerics.hessian.objective_single``, which each product evaluates once) and the
   largest relative difference between the two sets of top-20 eigenvalues, compared in
   sorted order (expected ~1e-14 or better).

Memory (Linux only; on by default, off with ``--quick`` or ``--no-memory``, on with
``--memory``): for each size of part 2, a
fresh subprocess (glibc ``MALLOC_MMAP_THRESHOLD_=131072``, so freed blocks go back to
the OS) warms up on n = 2, then reports the growth of its peak resident set size
(``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs``) over one
dense build + eigvalsh and over one Lanczos call.

The dense Hessian is built by ``dense_hessian`` as the library builds it, with its memory
guard lifted (``max_bytes`` = 64 GiB) so that P = 10,010 runs densely.

Problem: lambda_W = lambda_H = 5e-3, lambda_b = 0, alpha = 0 (flags change them), at
``explicit_minimizer(problem, rotation_seed=0)``, float64, CPU. One warm-up call of
each routine on the smallest problem first; wall time with ``time.perf_counter``.
torch's thread count is left at its default unless ``--threads`` is given. The 1-minute
load average is printed at the start, after every size and at the end (it counts the
benchmark's own two threads, so about 2 means no other load): with both vCPUs busy,
torch's OpenMP threads, eigvalsh above all, slow down by a large and variable factor.

Run (about 2 minutes on a 2-core CPU; ``--quick``, part 1 at n in {2, 5, 10} and part 2
at n in {10, 20} without the memory probes, takes 10 to 20 seconds):

    .venv/bin/python benchmarks/bench_hessian.py
    .venv/bin/python benchmarks/bench_hessian.py --quick
    .venv/bin/python benchmarks/bench_hessian.py --n 2 5 10 --compare-n 20 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from ufm import UFMProblem, explicit_minimizer
from ufm.numerics import hessian as hessian_module
from ufm.numerics.hessian import dense_hessian, hessian_bytes
from ufm.numerics.spectrum import top_eigenvalues
from _machine import machine, memory_supported, reset_peak, status_kib  # benchmarks/ is on sys.path when a script here runs

TOP_K = 20


def make_problem(args, n: int):
    """The problem with n samples per class and its exact minimizer (W, H, b), float64."""
    p = UFMProblem(num_classes=args.K, per_class=n, dim=args.d, lambda_w=args.lambda_w, lambda_h=args.lambda_h,
                   lambda_b=args.lambda_b, alpha=args.alpha)
    W, H, b = explicit_minimizer(p, rotation_seed=0)
    return p, W, H, b


def num_params(p: UFMProblem) -> int:
    return p.K * p.d + p.d * p.N + p.K


# --- peak memory (Linux) ---------------------------------------------------------------

def memory_probe(args, n: int) -> None:
    """Run in a fresh subprocess: growth of the peak RSS (MiB) across one dense build +
    eigvalsh and across one Lanczos call, after a warm-up on the smallest problem; JSON."""
    p0 = make_problem(args, 2)
    dense_times(*p0)
    lanczos_time(*p0)
    p, W, H, b = make_problem(args, n)
    before = reset_peak()
    dense_times(p, W, H, b)
    dense = (status_kib("VmHWM") - before) / 1024
    before = reset_peak()
    lanczos_time(p, W, H, b)
    lanc = (status_kib("VmHWM") - before) / 1024
    print(json.dumps({"n": n, "dense_mib": dense, "lanczos_mib": lanc}))


def measure_memory(args, n: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_memprobe", str(n), "--K", str(args.K), "--d", str(args.d),
           "--threads", str(torch.get_num_threads()),
           "--lambda-w", repr(args.lambda_w), "--lambda-h", repr(args.lambda_h), "--lambda-b", repr(args.lambda_b),
           "--alpha", repr(args.alpha)]
    # A fixed mmap threshold makes glibc return every large block to the OS when it is freed,
    # so that RSS follows the live memory (no freed-but-retained heap hides the growth).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


class CountHVP:
    """Counts evaluations of the objective inside ``ufm.numerics.hessian`` (one per
    Hessian-vector product in ``top_eigenvalues``) by wrapping ``objective_single``."""

    def __enter__(self):
        self.count = 0
        self._orig = hessian_module.objective_single

        def counted(*a, **kw):
            self.count += 1
            return self._orig(*a, **kw)

        hessian_module.objective_single = counted
        return self

    def __exit__(self, *exc):
        hessian_module.objective_single = self._orig


# --- the measured routines ---------------------------------------------------------------

def dense_times(p, W, H, b):
    """(build s, eigvalsh s, eigenvalues ascending as numpy)."""
    t0 = time.perf_counter()
    Hs = dense_hessian(p, W, H, b, max_bytes=64 * 2**30)  # (P, P)
    t1 = time.perf_counter()
    ev = torch.linalg.eigvalsh(Hs)  # (P,)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, ev.numpy()


def lanczos_time(p, W, H, b):
    """(seconds, top-k eigenvalues ascending, number of Hessian-vector products)."""
    with CountHVP() as c:
        t0 = time.perf_counter()
        top = top_eigenvalues(p, W, H, b, k=TOP_K)
        t = time.perf_counter() - t0
    return t, top, c.count


def run_dense_scaling(args, n: int) -> dict:
    p, W, H, b = make_problem(args, n)
    P = num_params(p)
    assert P * P * 8 == hessian_bytes(p)
    reps = args.repeats if P <= args.repeat_max_p else 1
    builds, eigs = [], []
    for _ in range(reps):
        tb, te, _ = dense_times(p, W, H, b)
        builds.append(tb)
        eigs.append(te)
    tb, te = statistics.median(builds), statistics.median(eigs)
    tot = statistics.median([x + y for x, y in zip(builds, eigs)])
    row = {"n": n, "P": P, "mib": hessian_bytes(p) / 2**20, "reps": reps, "build": tb, "eig": te, "total": tot}
    print(f"  dense n={n:>3} P={P:>6}: build {tb:8.3f} s, eigvalsh {te:8.3f} s, total {tot:8.3f} s "
          f"({reps} call{'s' if reps > 1 else ''}; load {os.getloadavg()[0]:.2f})", flush=True)
    return row


def run_compare(args, n: int) -> dict:
    p, W, H, b = make_problem(args, n)
    P = num_params(p)
    reps = args.compare_repeats if P <= args.compare_repeat_max_p else 1
    dense, lanc, hvps, rels = [], [], [], []
    for r in range(reps):  # rounds of dense, then Lanczos
        tb, te, ev = dense_times(p, W, H, b)
        dense.append((tb, te))
        tl, top, count = lanczos_time(p, W, H, b)
        lanc.append(tl)
        hvps.append(count)
        print(f"  compare n={n:>3} P={P:>6} round {r + 1}: dense {tb + te:8.3f} s (build {tb:.3f} + eigvalsh "
              f"{te:.3f}), Lanczos {tl:7.3f} s, {count} HVPs (load {os.getloadavg()[0]:.2f})", flush=True)
        top_dense = ev[-TOP_K:]  # ascending, like top
        rels.append(float(np.max(np.abs(top_dense - top) / np.abs(top_dense))))
        del ev
    t_build = statistics.median(x[0] for x in dense)
    t_eig = statistics.median(x[1] for x in dense)
    t_dense = statistics.median(x[0] + x[1] for x in dense)
    t_lanc = statistics.median(lanc)
    return {"n": n, "P": P, "mib": hessian_bytes(p) / 2**20, "reps": reps, "build": t_build, "eig": t_eig,
            "dense": t_dense, "lanczos": t_lanc, "ratio": t_dense / t_lanc, "hvps": hvps, "rel": max(rels),
            "lmax": float(top[-1]), "l20": float(top[0])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="dense scaling at n in {2, 5, 10}, comparison at n in {10, 20} (P = 1,110 and 2,110), "
                         "no memory probes")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--n", type=int, nargs="+", default=[2, 5, 10, 20, 40],
                    help="samples per class for part 1 (dense spectrum vs P)")
    ap.add_argument("--compare-n", type=int, nargs="+", default=[40, 99],
                    help="samples per class for part 2 (Lanczos vs dense)")
    ap.add_argument("--repeats", type=int, default=5, help="part 1: calls per size (median) for P <= --repeat-max-p")
    ap.add_argument("--compare-repeats", type=int, default=3,
                    help="part 2: rounds of dense-then-Lanczos (median) for P <= --compare-repeat-max-p")
    ap.add_argument("--repeat-max-p", type=int, default=2500, help="part 1: larger problems are run once")
    ap.add_argument("--compare-repeat-max-p", type=int, default=5000, help="part 2: larger problems are run once")
    ap.add_argument("--lambda-w", type=float, default=5e-3)
    ap.add_argument("--lambda-h", type=float, default=5e-3)
    ap.add_argument("--lambda-b", type=float, default=0.0)
    ap.add_argument("--alpha", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--memory", dest="memory", action="store_true", default=None,
                    help="measure the peak RSS growth in part 2 (default, except with --quick)")
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--_memprobe", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memprobe is not None:
        memory_probe(args, args._memprobe)
        return
    if args.quick:
        args.n, args.compare_n, args.repeats, args.compare_repeats = [2, 5, 10], [10, 20], 3, 1
    if args.memory is None:
        args.memory = not args.quick
    mem = args.memory and memory_supported()

    t_start = time.perf_counter()
    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"problem: K={args.K}, d={args.d}, lambda_W={args.lambda_w:g}, lambda_H={args.lambda_h:g}, "
          f"lambda_b={args.lambda_b:g}, alpha={args.alpha:g}, at explicit_minimizer(rotation_seed=0), float64, cpu; "
          f"dense Hessian by dense_hessian (chunked jacrev of the gradient); Lanczos: top {TOP_K} by scipy eigsh on HVPs", flush=True)

    # Warm-up: one call of each routine on the smallest problem (lazy imports, kernels, allocator).
    p, W, H, b = make_problem(args, min(args.n + args.compare_n))
    dense_times(p, W, H, b)
    lanczos_time(p, W, H, b)

    print("\npart 1: dense spectrum vs number of parameters", flush=True)
    rows = [run_dense_scaling(args, n) for n in args.n]
    print("\npart 2: top 20 eigenvalues, Lanczos vs dense", flush=True)
    comp = [run_compare(args, n) for n in args.compare_n]

    print("\ndense spectrum (build = dense_hessian, eigvalsh = torch.linalg.eigvalsh; median of the calls), seconds")
    hdr = f"{'n':>4}{'P':>8}{'Hessian MiB':>13}{'calls':>7}{'build':>10}{'eigvalsh':>10}{'total':>10}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['n']:>4}{r['P']:>8}{r['mib']:>13.1f}{r['reps']:>7}{r['build']:>10.3f}{r['eig']:>10.3f}"
              f"{r['total']:>10.3f}")
    if len(rows) >= 2:
        a, z = rows[0], rows[-1]
        print(f"growth from P={a['P']} to P={z['P']} ({z['P'] / a['P']:.1f}x P): build {z['build'] / a['build']:.0f}x, "
              f"eigvalsh {z['eig'] / a['eig']:.0f}x, total {z['total'] / a['total']:.0f}x")
        x, y = rows[-2], rows[-1]
        e = lambda k: np.log(y[k] / x[k]) / np.log(y["P"] / x["P"])  # noqa: E731
        print(f"local exponent (time ~ P^e) between P={x['P']} and P={y['P']}: build {e('build'):.2f}, "
              f"eigvalsh {e('eig'):.2f}, total {e('total'):.2f}")

    print(f"\ntop {TOP_K} eigenvalues: dense (build + full eigvalsh) vs Lanczos (median of the rounds), seconds")
    hdr = (f"{'n':>4}{'P':>8}{'Hessian MiB':>13}{'rounds':>8}{'build':>9}{'eigvalsh':>10}{'dense':>9}"
           f"{'Lanczos':>9}{'dense/Lanczos':>15}{'HVPs':>12}{'max rel diff':>14}")
    print(hdr)
    print("-" * len(hdr))
    for r in comp:
        hv = "/".join(str(h) for h in r["hvps"])
        print(f"{r['n']:>4}{r['P']:>8}{r['mib']:>13.1f}{r['reps']:>8}{r['build']:>9.3f}{r['eig']:>10.3f}"
              f"{r['dense']:>9.3f}{r['lanczos']:>9.3f}{r['ratio']:>14.1f}x{hv:>12}{r['rel']:>14.1e}")
    for r in comp:
        print(f"P={r['P']}: top-{TOP_K} eigenvalues {r['l20']:.6g} .. {r['lmax']:.6g}; max relative difference "
              f"{r['rel']:.1e} ({'ok' if r['rel'] < 1e-10 else 'LARGER than 1e-10'}); "
              f"Lanczos {1e3 * r['lanczos'] / max(r['hvps'][0], 1):.2f} ms per HVP (first round)")
    if mem:
        print("\npeak extra memory of one call (growth of peak RSS in a fresh subprocess), MiB", flush=True)
        for r in comp:
            m = measure_memory(args, r["n"])
            print(f"P={r['P']:>6}: dense build + eigvalsh {m['dense_mib']:+9.1f} MiB "
                  f"({m['dense_mib'] / r['mib']:.1f}x the {r['mib']:.1f} MiB Hessian); "
                  f"Lanczos {m['lanczos_mib']:+7.1f} MiB", flush=True)
    elif args.memory:
        print("\nmemory: skipped (needs Linux /proc/self/status VmHWM and a writable /proc/self/clear_refs)")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}; total run time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
