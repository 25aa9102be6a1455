"""Solve the UFM numerically for CE and several label-smoothing factors at once, and compare
each solution with the closed form.

    python examples/solve_and_compare.py
"""
import ufm

alphas = [0.0, 0.05, 0.1, 0.2, 0.4]
problems = [ufm.UFMProblem(num_classes=5, per_class=20, dim=8, lambda_w=5e-3, lambda_h=5e-3, alpha=a)
            for a in alphas]
result = ufm.solve(problems, method="lbfgs", seeds=range(len(problems)), tol=1e-11)  # one batched solve

print(f"{'alpha':>5} {'gap (num)':>12} {'gap (closed)':>12} {'rel. err':>9} {'NC1':>9} {'steps':>5}")
for i, p in enumerate(problems):
    m = ufm.measure(result, i)
    err = ufm.compare(p, m)
    print(f"{p.alpha:>5} {m['logit_gap']:>12.8f} {ufm.closed_form(p).logit_gap:>12.8f} "
          f"{err['logit_gap']:>9.1e} {m['nc1']:>9.1e} {m['steps']:>5}")
