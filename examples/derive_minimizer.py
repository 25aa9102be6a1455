"""Derive the UFM minimizer symbolically, print its LaTeX, and evaluate it for one problem.

    python examples/derive_minimizer.py
"""
import sympy as sp

import ufm

derivation = ufm.derive_minimizer("label_smoothing")  # sympy; alpha = 0 is cross-entropy
print("Optimal logit gap, s = sqrt(n lambda_W lambda_H):")
print("  LS:", derivation.latex("logit_gap"))
print("  CE:", sp.latex(derivation.special_case("logit_gap", alpha=0)))
print("Threshold on s:", sp.latex(derivation.results_in_s["threshold"]))

problem = ufm.UFMProblem(num_classes=10, per_class=50, dim=16, lambda_w=5e-4, lambda_h=5e-4, alpha=0.05)
cf = ufm.closed_form(problem)
print(f"\nK=10, n=50, d=16, lambda=5e-4, alpha=0.05: logit gap {cf.logit_gap:.6f}, p_true {cf.p_true:.6f}, "
      f"||w|| {cf.w_norm:.6f}, ||h|| {cf.h_norm:.6f}, f* {cf.objective:.6f}, trivial: {cf.trivial}")
W, H, b = ufm.explicit_minimizer(problem)
print("explicit minimizer shapes:", tuple(W.shape), tuple(H.shape), tuple(b.shape))
