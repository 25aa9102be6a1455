"""The regime map of the conditioning claim: its wall time for K in {3, 5, 10, 100} and three ratios.

    .venv/bin/python benchmarks/bench_regimes.py            # about 10 s on a 2-core CPU
    .venv/bin/python benchmarks/bench_regimes.py --repeats 1

``regime_map(classes=(3, 5, 10, 100), alpha_max=0.3, lambda_ratios=(1, 10, 100))``: every definition
(logits, features, classifier, full, full with b), both d-regimes, each crossover found by root-finding
on the derived expressions (``ufm.analysis.regimes``). One warm-up call first (imports, the generated
module); then ``--repeats`` timed calls, with the median and the best printed, and the 1-minute load
average before and after (it counts the benchmark's own work, so about 1 means no other load on two
cores). Goal: under 10 s. Printed as well: the number of regimes and of crossovers by the expression
that defines them, and the crossovers of the features Hessian at K = 10.
"""
import argparse
import os
import statistics
import time
from collections import Counter

from _machine import machine  # benchmarks/ is on sys.path when a script here runs

from ufm.analysis.regimes import regime_map


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("machine:", machine())
    regime_map(classes=(3,), lambda_ratios=(1,))  # warm-up
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        regimes = regime_map(classes=(3, 5, 10, 100), alpha_max=0.3, lambda_ratios=(1, 10, 100))
        times.append(time.perf_counter() - t0)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    kinds = Counter(r["boundary_to"] for r in regimes if r["boundary_to"])
    configs = {(r["definition"], r["K"], r["d_regime"], r["lambda_ratio"]) for r in regimes}
    print(f"regime map, K in (3, 5, 10, 100) x ratios (1, 10, 100) x 5 definitions x 2 d-regimes "
          f"({len(configs)} configurations): {len(regimes)} regimes, crossovers by " +
          ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())))
    print(f"wall time: median {statistics.median(times):.2f} s, best {min(times):.2f} s over {len(times)} calls "
          f"(goal: under 10 s) -> {'met' if statistics.median(times) < 10 else 'NOT met'}")
    for r in regimes:
        if r["definition"] == "features" and r["K"] == 10 and r["lambda_ratio"] == 1 and r["sK_from"] > 0:
            print(f"  features, K = 10, d-regime {r['d_regime']}: {r['verdict']} from s K = {r['sK_from']:.4f} "
                  f"({r['boundary_from']})")


if __name__ == "__main__":
    main()
