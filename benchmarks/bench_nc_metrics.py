"""Cost of ufm.nc_metrics on network-sized features, against X^T X and a direct implementation.

Data: N = 50,000 features of dimension d = 512 in float32, seeded: class means
M ~ N(0, 1) (K x d) plus unit Gaussian noise, labels i % K shuffled; K = 10 and 100.
Classifier for NC4: W = M, b = 0.

Timed with ``time.perf_counter`` after one warm-up call of each variant, in ``--repeats``
rounds that run every variant once (so that bursts of load from other processes hit all
variants alike); the best time and the median over rounds are printed:

* ``stream``:      ``nc_metrics(X, y, num_classes=K)``: one streaming float64 pass (NC1-NC3);
* ``stream+nc4``:  ``nc_metrics(X, y, W, b, num_classes=K)``: plus the second pass for NC4;
* ``direct``:      a per-class reference written here: for each class, its rows in
  float64, mean and centred scatter; then Sigma_W, Sigma_B, pinv(Sigma_B) and the trace.
  Its nc1 is compared with nc_metrics' (relative difference, expected ~1e-8 or better);
* ``XtX f32``:     ``X.T @ X`` in float32;
* ``XtX f64``:     ``Xd.T @ Xd`` with ``Xd = X.double()`` made beforehand (conversion excluded);
* ``XtX f64+cvt``: ``X.double().T @ X.double()`` (conversion included).

Ratios printed: stream / XtX f32, stream / XtX f64 (both XtX f64 variants), and
direct / stream. The project's goal is a streaming pass within 2x of one X^T X product;
the verdict is printed against each X^T X variant. torch's thread count is left at its
default.

Memory: with ``--memory`` (default on, Linux only), each of stream, stream+nc4 and
XtX f64+cvt is run in a fresh subprocess (with glibc's ``MALLOC_MMAP_THRESHOLD_=131072``,
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

from ufm import nc_metrics
from _machine import machine, memory_supported, reset_peak, status_kib  # benchmarks/ is on sys.path when a script here runs

GOAL_RATIO = 2.0


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


def memory_probe(what: str, N: int, d: int, K: int, seed: int) -> None:
    """Run in a fresh subprocess: growth of peak RSS (MiB) across one call, printed as JSON."""
    X, y, M = make_data(N, d, K, seed)
    b = torch.zeros(K)
    fns = {
        "stream": lambda X, y: nc_metrics(X, y, num_classes=K),
        "stream+nc4": lambda X, y: nc_metrics(X, y, M, b, num_classes=K),
        "XtX f64+cvt": lambda X, y: X.double().T @ X.double(),
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


def run_K(N: int, d: int, K: int, seed: int, repeats: int, batch_size: int) -> dict:
    X, y, M = make_data(N, d, K, seed)
    b = torch.zeros(K)
    Xd = X.double()
    fns = {
        "stream": lambda: nc_metrics(X, y, num_classes=K, batch_size=batch_size),
        "stream+nc4": lambda: nc_metrics(X, y, M, b, num_classes=K, batch_size=batch_size),
        "direct": lambda: direct_nc1(X, y, K),
        "XtX f32": lambda: X.T @ X,
        "XtX f64": lambda: Xd.T @ Xd,
        "XtX f64+cvt": lambda: X.double().T @ X.double(),
    }
    out = {name: fn() for name, fn in fns.items()}  # warm-up, and the results
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
    m_stream, m_nc4, nc1_direct = out["stream"], out["stream+nc4"], out["direct"]
    rel = abs(m_stream["nc1"] - nc1_direct) / abs(nc1_direct)
    return {"K": K, "t": t, "nc1": m_stream["nc1"], "nc1_direct": nc1_direct, "rel": rel, "nc4": m_nc4["nc4"],
            "nc1_same": m_stream["nc1"] == m_nc4["nc1"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 10,000 and 2 repeats")
    ap.add_argument("--N", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--K", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8192, help="nc_metrics batch_size (its default: 8192)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", dest="memory", action="store_true", default=True)
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--_memprobe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memprobe:
        memory_probe(args._memprobe, args.N, args.d, args.K[0], args.seed)
        return
    if args.quick:
        args.N, args.repeats = 10_000, 2

    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"data: N={args.N}, d={args.d}, float32, K in {args.K}; nc_metrics batch_size={args.batch_size}; "
          f"best of {args.repeats} interleaved rounds after a warm-up (median in brackets)\n")

    names = ["stream", "stream+nc4", "direct", "XtX f32", "XtX f64", "XtX f64+cvt"]
    rows = [run_K(args.N, args.d, K, args.seed, args.repeats, args.batch_size) for K in args.K]

    hdr = f"{'K':>4}  " + "".join(f"{n:>19}" for n in names)
    print("wall time, seconds")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        cells = "".join(f"{r['t'][n]:>10.3f} ({r['t'][n + ' med']:>6.3f})" for n in names)
        print(f"{r['K']:>4}  {cells}")

    print("\nratios (best times)")
    rh = (f"{'K':>4}{'stream/XtX f32':>16}{'stream/XtX f64':>16}{'stream/XtX f64+cvt':>20}"
          f"{'stream+nc4/stream':>19}{'direct/stream':>15}")
    print(rh)
    print("-" * len(rh))
    for r in rows:
        t = r["t"]
        print(f"{r['K']:>4}{t['stream'] / t['XtX f32']:>16.2f}{t['stream'] / t['XtX f64']:>16.2f}"
              f"{t['stream'] / t['XtX f64+cvt']:>20.2f}{t['stream+nc4'] / t['stream']:>19.2f}"
              f"{t['direct'] / t['stream']:>15.2f}")

    print("\nagreement")
    for r in rows:
        print(f"K={r['K']:>3}: nc1 streaming {r['nc1']:.12g}, direct {r['nc1_direct']:.12g}, "
              f"relative difference {r['rel']:.1e} ({'ok' if r['rel'] < 1e-8 else 'LARGER than 1e-8'}); "
              f"nc4 = {r['nc4']:.4g}; nc1 identical with and without weight: {r['nc1_same']}")

    print(f"\ngoal: streaming (NC1-NC3) within {GOAL_RATIO:g}x of one X^T X product")
    for r in rows:
        t = r["t"]
        for ref in ("XtX f32", "XtX f64", "XtX f64+cvt"):
            ratio = t["stream"] / t[ref]
            print(f"K={r['K']:>3} vs {ref:<12}: {ratio:5.2f}x -> {'met' if ratio <= GOAL_RATIO else 'NOT met'}")

    if args.memory and not memory_supported():
        print("\nmemory: skipped (needs Linux /proc/self/status VmHWM and a writable /proc/self/clear_refs)")
    elif args.memory:
        print("\npeak extra memory of one call (peak RSS growth in a fresh subprocess, MiB); "
              f"the float32 data themselves take {args.N * args.d * 4 / 2**20:.1f} MiB")
        for K in args.K:
            for what in ("stream", "stream+nc4", "XtX f64+cvt"):
                m = measure_memory(what, args.N, args.d, K, args.seed)
                print(f"K={K:>3} {what:<12}: +{m['delta_mib']:7.1f} MiB (RSS {m['rss_mib']:.0f} -> peak "
                      f"{m['peak_mib']:.0f} MiB)")
        d, K, B = args.d, max(args.K), args.batch_size
        acc = (d * d + 2 * K * d + K) * 8 / 2**20
        batch = min(B, args.N) * d * 8 / 2**20
        print(f"for reference: float64 accumulators (d^2 + 2Kd + K) = {acc:.2f} MiB at K={K}; "
              f"one float64 batch of {min(B, args.N)} x {d} = {batch:.1f} MiB")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
