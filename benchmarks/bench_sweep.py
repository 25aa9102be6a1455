"""Sweep throughput: a closed-form-only sweep of 10^5 points, and a numeric sweep of 256 points
run batched and in parallel against a sequential loop over the points.

    .venv/bin/python benchmarks/bench_sweep.py            # about 2 minutes on a 2-core CPU
    .venv/bin/python benchmarks/bench_sweep.py --quick    # seconds

1. ``run_sweep`` of 100 K values (2..101, d = K, n = 10) x 100 alphas in [0, 0.3] x 10 (lambda_W,
   lambda_H) pairs, ``what = closed-form``, into a fresh folder: the wall time of the call (grid
   expansion, vectorized closed forms, the SQLite store, results.csv). Goal: under 5 s.
2. 256 points, K in {5, 10}, d = K, n = 20, 16 alphas in [0, 0.3] x 8 seeds, ``what = solve``
   (batched L-BFGS to 1e-10, compared with the closed form): ``run_sweep`` with the default
   process pool (groups of up to 64 same-shape points on ``--workers`` processes, started with
   spawn, so each pays for importing torch) and with ``workers=0`` (the same groups in this
   process) against a sequential loop that solves one point at a time in this process (``compute_group`` on each
   point alone, no store). Both give the same numbers (checked: the worst error per point).
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _machine import machine  # benchmarks/ is on sys.path when a script here runs

from ufm.sweep import SweepSpec, run_sweep
from ufm.sweep.runner import compute_group
from ufm.records.store import SweepStore


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 closed-form points and 32 numeric points")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print("machine:", machine())
    tmp = Path(tempfile.mkdtemp())
    try:
        nK = 20 if args.quick else 100
        spec = SweepSpec(alphas=[round(0.3 * i / 99, 6) for i in range(100 if not args.quick else 50)],
                         classes=list(range(2, 2 + nK)), per_class=[10], lambda_w=[5e-3, 1e-2],
                         lambda_h=[5e-3, 1e-2, 2e-2, 4e-2, 8e-2])
        t0 = time.perf_counter()
        s = run_sweep(spec, tmp / "cf")
        t_cf = time.perf_counter() - t0
        print(f"closed-form sweep: {s['total']} points in {t_cf:.2f} s (goal: 10^5 points under 5 s)")

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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
