"""Is the label-smoothing minimizer better conditioned than the cross-entropy one? Per definition.

Computes the Hessian spectra of the UFM at its global minimizer for CE (alpha = 0) and label
smoothing, for the four operators of the README ("Conditioning"), from the symbolic derivation
and at a numerically found minimizer, and prints whether label smoothing lowers the condition
number under each definition.
"""
from ufm import UFMProblem
from ufm import compare_sources, conditioning, summarize

problem = UFMProblem(num_classes=4, per_class=3, dim=5, lambda_w=5e-3, lambda_h=5e-3)
spectra = conditioning(problem, alphas=[0.0, 0.05, 0.1], numeric=True)

print(f"{'alpha':>5} {'definition':<10} {'kappa (symbolic)':>16} {'kappa (numeric)':>15} {'null':>4} "
      f"{'max eigenvalue error':>20}")
for r in compare_sources(spectra):
    print(f"{r['alpha']:>5g} {r['definition']:<10} {r['kappa_symbolic']:>16.8g} {r['kappa_numeric']:>15.8g} "
          f"{r['null_symbolic']:>4} {r['max_eigenvalue_error']:>20.1e}")

print()
for definition, v in summarize(spectra).items():
    print(f"{definition + ':':<17} {v['verdict']}")
