"""The symbols of the derivations, named as in the paper (sympy)."""
import sympy as sp

__all__ = ["SYMBOLS", "Delta", "alpha", "K", "n", "lambda_W", "lambda_H", "lambda_b", "rho_w", "rho_h", "P", "s"]

Delta = sp.Symbol("Delta", positive=True)  # logit gap
alpha = sp.Symbol("alpha", nonnegative=True)
K = sp.Symbol("K", positive=True, integer=True)
n = sp.Symbol("n", positive=True, integer=True)
lambda_W = sp.Symbol("lambda_W", positive=True)
lambda_H = sp.Symbol("lambda_H", positive=True)
lambda_b = sp.Symbol("lambda_b", nonnegative=True)
rho_w = sp.Symbol("rho_w", positive=True)
rho_h = sp.Symbol("rho_h", positive=True)
P = sp.Symbol("P", positive=True)  # product rho_w * rho_h
s = sp.Symbol("s", positive=True)  # regularization strength sqrt(n lambda_W lambda_H)

SYMBOLS = {
    "Delta": Delta, "alpha": alpha, "K": K, "n": n,
    "lambda_W": lambda_W, "lambda_H": lambda_H, "lambda_b": lambda_b,
    "rho_w": rho_w, "rho_h": rho_h, "P": P, "s": s,
}
