"""Analyses: computations that combine theory, numerics and metrics and return records and verdicts.

    verify        numerical solutions against the closed form
    conditioning  Hessian spectra and condition numbers at the minimizers, CE against LS
    convergence   gradient descent from random starts: steps and rates against the spectra
"""
