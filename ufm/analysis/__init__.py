"""Analyses: computations that combine theory, numerics and metrics and return records and verdicts.

    verify        numerical solutions against the closed form
    conditioning  Hessian spectra and condition numbers at the minimizers, CE against LS
    convergence   gradient descent from random starts: steps and rates against the spectra
    networks      the UFM's predictions against trained runs (``ufm validate``)
    statistics    the rule that turns per-seed effects into a verdict
    evidence      the records the claims judge, read from folders or computed on the spot
    claims        every claim of the paper as a verdict (``ufm claims``)
"""
