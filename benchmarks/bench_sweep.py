"""Sweep throughput: closed-form-only sweeps of 10^5 and 10^6 points and the rerun of the finished one,
a 1,000-point conditioning sweep at n = 5000, and a numeric sweep of 256 points run batched and in
parallel against a sequential loop over the points.

    .venv/bin/python benchmarks/bench_sweep.py            # about 2 minutes on a 2-core CPU
    .venv/bin/python benchmarks/bench_sweep.py --quick    # seconds

1. ``run_sweep`` of 100 K values (2..101, d = K, n = 10) x 100 alphas in [0, 0.3] x 10 (lambda_W,
   lambda_H) pairs, ``what = closed-form``, into a fresh folder: the wall time of the call (grid
   expansion, vectorized closed forms, the SQLite store, results.csv).
2. The same grid with 1,000 alphas: 10^6 points (goal: at most 5 s, store and results.csv included),
   then ``run_sweep`` again on the finished folder (goal: at most 2 s).
3. ``ufm sweep --what closed-form,conditioning`` as a command (a fresh process: start-up included) over
   K in {5, 10}, d = K, n = 5000, 50 alphas in [0, 0.3] x 2 lambda_W x 5 lambda_H: 1,000 points, both
   branches (goal: at most 5 s). Its condition numbers are the symbolic spectra, evaluated from the
   distinct eigenvalues and their multiplicities for all points at once.
4. 256 points, K in {5, 10}, d = K, n = 20, 16 alphas in [0, 0.3] x 8 seeds, ``what = solve``
   (batched L-BFGS to 1e-10, compared with the closed form): ``run_sweep`` with the default
   process pool (groups of up to 64 same-shape points on ``--workers`` processes, started with
   spawn, so each pays for importing torch) and with ``workers=0`` (the same groups in this
   process) against a sequential loop that solves one point at a time in this process (``compute_group`` on each
   point alone, no store). Both give the same numbers (checked: the worst error per point).

``--quick``: 10^4, 10^5 and 100 points for parts 1-3 and 32 numeric points. The 1-minute load average is
printed before each part: the figures are only comparable on a quiet machine.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine  # benchmarks/ is on sys.path when a script here runs

from ufm.sweep import SweepSpec, run_sweep
from ufm.sweep.runner import compute_group
from ufm.records.store import SweepStore


def _grid(n_alpha: int, n_K: int) -> SweepSpec:
    return SweepSpec(alphas=[round(0.3 * i / (n_alpha - 1), 6) for i in range(n_alpha)],
                     classes=list(range(2, 2 + n_K)), per_class=[10], lambda_w=[5e-3, 1e-2],
                     lambda_h=[5e-3, 1e-2, 2e-2, 4e-2, 8e-2])


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def closed_form_parts(tmp: Path, quick: bool) -> None:
    """Parts 1-3: the closed-form sweeps, the rerun and the conditioning command."""
    for label, spec, goal in (("closed-form sweep", _grid(50 if quick else 100, 20 if quick else 100), None),
                              ("closed-form sweep", _grid(100 if quick else 1000, 100), 5.0)):
        out = tmp / f"cf{len(spec.alphas)}"
        print(_load())
        t0 = time.perf_counter()
        s = run_sweep(spec, out)
        t = time.perf_counter() - t0
        print(f"{label}: {s['total']:,} points in {t:.2f} s" + (f" (goal for 10^6 points: at most {goal:g} s)"
                                                                 if goal else ""))
    t0 = time.perf_counter()
    s = run_sweep(spec, out)
    print(f"rerun of the finished sweep: {s['total']:,} points, {s['computed']} computed, "
          f"{time.perf_counter() - t0:.2f} s (goal: at most 2 s)")
    n_alpha = 5 if quick else 50
    args = ["--what", "closed-form,conditioning", "--classes", "5,10", "--per-class", "5000", "--alphas",
            ",".join(repr(round(0.3 * i / (n_alpha - 1), 6)) for i in range(n_alpha)), "--lambda-w", "5e-4,1e-3",
            "--lambda-h", "2e-4,5e-4,1e-3,2e-3,4e-3"]
    print(_load())
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ufm", "sweep", "--out", str(tmp / "cond"), *args], check=True,
                   capture_output=True)
    t = time.perf_counter() - t0
    with SweepStore(tmp / "cond" / "sweep.sqlite") as store:
        n, trivial = store.count(), sum(r["result"]["trivial"] for r in store.rows())
    print(f"ufm sweep --what closed-form,conditioning: {n:,} points at n = 5000 ({trivial} past the threshold) "
          f"in {t:.2f} s, start-up included (goal for 1,000 points: at most 5 s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4, 10^5 and 100 points, and 32 numeric points")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print("machine:", machine())
    tmp = Path(tempfile.mkdtemp())
    try:
        closed_form_parts(tmp, args.quick)
        print(_load())
        seeds = 2 if args.quick else 8
        spec = SweepSpec(alphas=[round(0.02 * i, 2) for i in range(16)], classes=[5, 10], per_class=[20],
                         seeds=seeds, what=["solve"])
        t0 = time.perf_counter()
        run_sweep(spec, tmp / "num", workers=args.workers)
        t_par = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sweep(spec, tmp / "num0", workers=0)
        t_batch = time.perf_counter() - t0
        points = spec.points()
        t0 = time.perf_counter()
        loop = [compute_group([p], ["solve"])[0] for p in points]
        t_seq = time.perf_counter() - t0
        stored = {r["key"]: r["result"] for r in SweepStore(tmp / "num" / "sweep.sqlite").rows()}
        diff = max(abs(stored[r["key"]]["max_error"] - r["result"]["max_error"]) for r in loop)
        print(f"numeric sweep: {len(points)} points, batched + {args.workers} processes {t_par:.1f} s "
              f"(speed-up {t_seq / t_par:.1f}x), batched in this process {t_batch:.1f} s (speed-up "
              f"{t_seq / t_batch:.1f}x), sequential one-point loop {t_seq:.1f} s "
              f"(largest difference in max_error: {diff:.1e})")
        print(_load())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
