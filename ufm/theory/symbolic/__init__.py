"""The symbolic derivations (sympy), run at build time by the scripts in ``derivations/``.

    minimizer  the closed-form CE/LS minimizer under the neural-collapse ansatz
    hessian    the Hessian spectra at that minimizer, for symbolic K, n, d

Nothing at run time imports this package (it needs sympy).
"""
