"""The symbolic derivations (sympy), run at build time by the scripts in ``derivations/``.

    minimizer     the closed-form CE/LS minimizer under the neural-collapse ansatz
    hessian       the Hessian spectra at that minimizer, for symbolic K, n, d
    conditioning  the condition numbers on the collapsed branch as functions of (K, alpha, s, d-regime,
                  lambda_W/lambda_H): closed forms, their extremes and slopes, the full Hessian's pieces

Nothing at run time imports this package (it needs sympy).
"""
