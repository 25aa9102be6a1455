"""Cost of ufm.nc_metrics on network-sized features, against X^T X and a direct implementation.

Data: N = 50,000 features of dimension d = 512 in float32, seeded: class means
M ~ N(0, 1) (K x d) plus unit Gaussian noise, labels i % K shuffled; K = 10 and 100.
Classifier for NC4: W = M, b = 0.

Timed with ``time.perf_counter`` after one warm-up call of each variant, in ``--repeats``
rounds that run every variant once (so that bursts of load from other processes hit all
variants alike); the best time and the median over rounds are printed:

* ``nc_metrics``:    ``nc_metrics(X, y, num_classes=K)``: the in-memory path, two passes over X
  in float64 blocks (NC1-NC3);
* ``nc_metrics+W``:  ``nc_metrics(X, y, W, b, num_classes=K)``: plus the NC4 decisions;
* ``stream 2-pass``: the streaming path for data that do not fit in memory: ``TwoPassNC`` fed
  ``--batch-size`` rows at a time, both passes (NC1-NC3);
* ``stream 1-pass``: ``NCAccumulator`` fed ``--batch-size`` rows, then ``measures`` (the one-pass
  d x d scatter that ``nc_metrics`` used before);
* ``direct``:        a per-class reference written here: for each class, its rows in
  float64, mean and centred scatter; then Sigma_W, Sigma_B, pinv(Sigma_B) and the trace;
* ``2x sum f32``:    two plain passes over X: ``X.sum(0)`` twice, float32 (the memory floor);
* ``XtX f32``:       ``X.T @ X`` in float32.

Ratios printed, with the goals of issue 12 beside them: direct / nc_metrics (goal: at least 5x)
and nc_metrics / 2x sum f32 (goal: at most 3x), with and without W. Agreement: nc1 against the
direct reference, and every key of nc_metrics against both streaming paths (largest relative
difference). torch's thread count is left at its default unless ``--threads`` is given.

Memory: with ``--memory`` (default on, Linux only), each of nc_metrics, nc_metrics+W and
stream 1-pass is run in a fresh subprocess (with glibc's ``MALLOC_MMAP_THRESHOLD_=131072``,
so freed blocks go back to the OS): after building the data and one warm-up call on
2,000 rows, the process's peak resident set size is reset (writing 5 to
``/proc/self/clear_refs``) and the growth of the peak (``VmHWM`` in ``/proc/self/status``)
over the current RSS across one full call is reported: the peak extra memory of the call,
torch's temporaries included. (``ru_maxrss`` is not used: Linux carries it over from the
parent process across fork/exec, so a fresh subprocess starts with the parent's peak.)

Run (about 2 minutes on a 2-core CPU; ``--quick`` uses N = 10,000):

    .venv/bin/python benchmarks/bench_nc_metrics.py
    .venv/bin/python benchmarks/bench_nc_metrics.py --quick
    .venv/bin/python benchmarks/bench_nc_metrics.py --K 10 --repeats 9 --no-memory
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from ufm import NCAccumulator, nc_metrics
from ufm.metrics.accumulators import TwoPassNC
from ufm.metrics.nc import measures
from _machine import machine, memory_supported, reset_peak, status_kib  # benchmarks/ is on sys.path when a script here runs

GOAL_VS_DIRECT = 5.0  # nc_metrics at least this many times faster than the direct reference
GOAL_VS_FLOOR = 3.0  # nc_metrics within this factor of two float32 X.sum(0) passes


def make_data(N: int, d: int, K: int, seed: int = 0):
    """Float32 features (N, d) = class mean + N(0, 1) noise, shuffled labels (N,), means (K, d).

    Built in chunks so that no temporary larger than a chunk is allocated.
    """
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, d, generator=g)  # (K, d) float32
    labels = (torch.arange(N) % K)[torch.randperm(N, generator=g)]  # (N,)
    X = torch.randn(N, d, generator=g)  # (N, d) float32
    for s in range(0, N, 4096):
        X[s:s + 4096].add_(means[labels[s:s + 4096]])
    return X, labels, means


def direct_nc1(X: torch.Tensor, y: torch.Tensor, K: int) -> float:
    """tr(Sigma_W Sigma_B^+) / K by a loop over classes, float64, two passes per class."""
    d = X.shape[1]
    N = X.shape[0]
    means = torch.empty(K, d, dtype=torch.float64)
    scatter = torch.zeros(d, d, dtype=torch.float64)
    for k in range(K):
        Xk = X[y == k].double()  # (n_k, d)
        mu = Xk.mean(0)
        C = Xk - mu
        scatter += C.T @ C
        means[k] = mu
    sigma_w = scatter / N
    Mc = means - means.mean(0)
    sigma_b = Mc.T @ Mc / K
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / K)


def stream_two_pass(X, y, K, batch_size, W=None, b=None) -> dict:
    """The streaming path: TwoPassNC fed batch_size rows at a time, both passes."""
    acc = TwoPassNC(K, X.shape[1], W, b)
    for s in range(0, X.shape[0], batch_size):
        acc.update_means(X[s:s + batch_size], y[s:s + batch_size])
    acc.finish_means()
    for s in range(0, X.shape[0], batch_size):
        acc.update_span(X[s:s + batch_size], y[s:s + batch_size])
    return acc.measures()


def stream_one_pass(X, y, K, batch_size) -> dict:
    """The one-pass NCAccumulator (full d x d within-class scatter) fed batch_size rows at a time."""
    acc = NCAccumulator(K, X.shape[1])
    for s in range(0, X.shape[0], batch_size):
        acc.update(X[s:s + batch_size], y[s:s + batch_size])
    return measures(acc.statistics())


def max_rel(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / abs(b[k]) if b[k] else abs(a[k]) for k in b)


def memory_probe(what: str, N: int, d: int, K: int, seed: int) -> None:
    """Run in a fresh subprocess: growth of peak RSS (MiB) across one call, printed as JSON."""
    X, y, M = make_data(N, d, K, seed)
    b = torch.zeros(K)
    fns = {
        "nc_metrics": lambda X, y: nc_metrics(X, y, num_classes=K),
        "nc_metrics+W": lambda X, y: nc_metrics(X, y, M, b, num_classes=K),
        "stream 1-pass": lambda X, y: stream_one_pass(X, y, K, 8192),
    }
    fns[what](X[:2000], torch.arange(2000) % K)  # small warm-up: library initialisation is not counted
    before = reset_peak()
    fns[what](X, y)
    peak = status_kib("VmHWM")
    print(json.dumps({"what": what, "K": K, "rss_mib": before / 1024, "peak_mib": peak / 1024,
                      "delta_mib": (peak - before) / 1024}))


def measure_memory(what: str, N: int, d: int, K: int, seed: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_memprobe", what, "--N", str(N), "--d", str(d),
           "--K", str(K), "--seed", str(seed)]
    # A fixed mmap threshold makes glibc return every large block to the OS when it is freed,
    # so that RSS follows the live memory (no freed-but-retained heap hides the growth).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


NAMES = ["nc_metrics", "nc_metrics+W", "stream 2-pass", "stream 1-pass", "direct", "2x sum f32", "XtX f32"]


def run_K(N: int, d: int, K: int, seed: int, repeats: int, batch_size: int) -> dict:
    X, y, M = make_data(N, d, K, seed)
    b = torch.zeros(K)
    fns = {
        "nc_metrics": lambda: nc_metrics(X, y, num_classes=K),
        "nc_metrics+W": lambda: nc_metrics(X, y, M, b, num_classes=K),
        "stream 2-pass": lambda: stream_two_pass(X, y, K, batch_size),
        "stream 1-pass": lambda: stream_one_pass(X, y, K, batch_size),
        "direct": lambda: direct_nc1(X, y, K),
        "2x sum f32": lambda: (X.sum(0), X.sum(0)),
        "XtX f32": lambda: X.T @ X,
    }
    out = {name: fn() for name, fn in fns.items()}  # warm-up, and the results
    out["stream 2-pass+W"] = stream_two_pass(X, y, K, batch_size, M, b)
    # Rounds: every variant once per round, so that a burst of load from other processes
    # hits all variants alike; the best and the median over rounds are kept.
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t = {}
    for name, ts in times.items():
        ts.sort()
        t[name], t[name + " med"] = ts[0], ts[len(ts) // 2]
    m, mw, nc1_direct = out["nc_metrics"], out["nc_metrics+W"], out["direct"]
    return {"K": K, "t": t, "nc1": m["nc1"], "nc1_direct": nc1_direct,
            "rel": abs(m["nc1"] - nc1_direct) / abs(nc1_direct), "nc4": mw["nc4"],
            "rel_2pass": max_rel(mw, out["stream 2-pass+W"]), "rel_1pass": max_rel(m, out["stream 1-pass"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 10,000 and 2 repeats")
    ap.add_argument("--N", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8192,
                    help="rows per batch of the streaming paths (nc_metrics uses its own default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's); 1 is steadier on a CPU shared with other work")
    ap.add_argument("--memory", dest="memory", action="store_true", default=True)
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--_memprobe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memprobe:
        memory_probe(args._memprobe, args.N, args.d, args.K[0], args.seed)
        return
    if args.quick:
        args.N, args.repeats = 10_000, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"data: N={args.N}, d={args.d}, float32, K in {args.K}; streaming batch size {args.batch_size}; "
          f"best of {args.repeats} interleaved rounds after a warm-up (median in brackets)\n")

    rows = [run_K(args.N, args.d, K, args.seed, args.repeats, args.batch_size) for K in args.K]

    print("wall time, seconds")
    for r in rows:
        print(f"K={r['K']}: " + ", ".join(f"{n} {r['t'][n]:.4f} ({r['t'][n + ' med']:.4f})" for n in NAMES))

    print("\nratios (best times), goals of issue 12 beside them")
    rh = (f"{'K':>4}{'direct/nc_metrics':>19}{'direct/(nc_metrics+W)':>23}{'nc_metrics/2x sum':>19}"
          f"{'(nc_metrics+W)/2x sum':>23}{'stream 2-pass/nc_metrics':>26}")
    print(rh)
    print("-" * len(rh))
    for r in rows:
        t = r["t"]
        print(f"{r['K']:>4}{t['direct'] / t['nc_metrics']:>19.2f}{t['direct'] / t['nc_metrics+W']:>23.2f}"
              f"{t['nc_metrics'] / t['2x sum f32']:>19.2f}{t['nc_metrics+W'] / t['2x sum f32']:>23.2f}"
              f"{t['stream 2-pass'] / t['nc_metrics']:>26.2f}")
    for r in rows:
        t = r["t"]
        for what in ("nc_metrics", "nc_metrics+W"):
            fast, floor = t["direct"] / t[what], t[what] / t["2x sum f32"]
            print(f"K={r['K']:>3} {what:<13}: {fast:5.2f}x faster than direct (goal >= {GOAL_VS_DIRECT:g}x: "
                  f"{'met' if fast >= GOAL_VS_DIRECT else 'NOT met'}); {floor:5.2f}x two float32 passes "
                  f"(goal <= {GOAL_VS_FLOOR:g}x: {'met' if floor <= GOAL_VS_FLOOR else 'NOT met'})")

    print("\nagreement")
    for r in rows:
        print(f"K={r['K']:>3}: nc1 {r['nc1']:.12g}, direct {r['nc1_direct']:.12g} (relative difference "
              f"{r['rel']:.1e}); largest relative difference over every key, nc_metrics+W vs stream 2-pass "
              f"{r['rel_2pass']:.1e}, nc_metrics vs stream 1-pass {r['rel_1pass']:.1e} "
              f"({'ok' if max(r['rel'], r['rel_2pass'], r['rel_1pass']) < 1e-10 else 'LARGER than 1e-10'}); "
              f"nc4 = {r['nc4']:.4g}")

    if args.memory and not memory_supported():
        print("\nmemory: skipped (needs Linux /proc/self/status VmHWM and a writable /proc/self/clear_refs)")
    elif args.memory:
        print("\npeak extra memory of one call (peak RSS growth in a fresh subprocess, MiB); "
              f"the float32 data themselves take {args.N * args.d * 4 / 2**20:.1f} MiB")
        for K in args.K:
            for what in ("nc_metrics", "nc_metrics+W", "stream 1-pass"):
                m = measure_memory(what, args.N, args.d, K, args.seed)
                print(f"K={K:>3} {what:<12}: +{m['delta_mib']:7.1f} MiB (RSS {m['rss_mib']:.0f} -> peak "
                      f"{m['peak_mib']:.0f} MiB)")
        d, B = args.d, args.batch_size
        print(f"for reference: the one-pass d x d scatter = {d * d * 8 / 2**20:.2f} MiB; one float64 batch of "
              f"{min(B, args.N)} x {d} = {min(B, args.N) * d * 8 / 2**20:.1f} MiB")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
