"""Is the label-smoothing minimizer better conditioned than the cross-entropy one? Per definition.

Computes the Hessian spectra of the UFM at its global minimizer for CE (alpha = 0) and label
smoothing, for the four operators of the README ("Conditioning"), from the symbolic derivation
and at a numerically found minimizer, and prints whether label smoothing lowers the condition
number under each definition.
"""
import numpy as np

from ufm import UFMProblem
from ufm.conditioning import conditioning, summarize

problem = UFMProblem(num_classes=4, per_class=3, dim=5, lambda_w=5e-3, lambda_h=5e-3)
spectra = conditioning(problem, alphas=[0.0, 0.05, 0.1], numeric=True)

print(f"{'alpha':>5} {'definition':<10} {'kappa (symbolic)':>16} {'kappa (numeric)':>15} {'null':>4} "
      f"{'max eigenvalue error':>20}")
for s in (s for s in spectra if s.source == "symbolic"):
    n = next(x for x in spectra if x.source == "numeric" and x.alpha == s.alpha and x.definition == s.definition)
    err = np.max(np.abs(s.expanded() - n.expanded())) / np.abs(s.expanded()).max()
    print(f"{s.alpha:>5g} {s.definition:<10} {s.condition_number:>16.8g} {n.condition_number:>15.8g} "
          f"{s.null_dim:>4} {err:>20.1e}")

print()
for definition, v in summarize(spectra).items():
    print(f"{definition:<10} {v['verdict']}")
