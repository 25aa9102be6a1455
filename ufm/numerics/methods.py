"""Descent methods of the batched solver, one class each, dispatched by name through :data:`METHODS`.

Each method implements one step on flat parameters ``x (B, P)`` with its own options
(``defaults``); :func:`ufm.numerics.solve.iterate` runs the one loop around them (stopping,
stalls, divergence, records). A new method is a subclass with a ``step`` and an entry in
``METHODS``.
"""
from __future__ import annotations

import torch

from ufm.numerics.objective import UFMObjective

__all__ = ["Method", "GradientDescent", "Momentum", "LBFGS", "METHODS"]


class Method:
    """A descent method: ``init(x, f, g)`` once, then ``step(x, f, g, active) -> (x, f, g, failed)``.

    ``active (B,)`` marks the configurations still iterating (the others' new values are
    discarded by the loop); ``failed (B,)`` marks those whose step could not be taken (an
    L-BFGS line search that found no acceptable step).
    """

    name: str = ""  # the name of METHODS it is registered under
    defaults: dict = {}  # the method's own options and their defaults; other methods' options are refused
    max_steps: int = 100_000  # default step cap
    patience: int = 5_000  # default steps without a new best gradient norm before "stalled"

    def __init__(self, objective: UFMObjective, **options):
        self.obj = objective
        self.options = {**self.defaults, **options}

    def init(self, x, f, g):
        pass


class GradientDescent(Method):
    """x <- x - lr * grad f."""

    name = "gd"
    defaults = {"lr": 0.5}

    def step(self, x, f, g, active):
        x_new = x - self.options["lr"] * g
        f_new, g_new = self.obj.value_and_grad(x_new)
        return x_new, f_new, g_new, torch.zeros_like(active)


class Momentum(Method):
    """Heavy-ball momentum: v <- mu v - lr grad f;  x <- x + v (Polyak 1964)."""

    name = "momentum"
    defaults = {"lr": 0.5, "momentum": 0.9}

    def init(self, x, f, g):
        self.v = torch.zeros_like(x)

    def step(self, x, f, g, active):
        self.v = self.options["momentum"] * self.v - self.options["lr"] * g
        x_new = x + self.v
        f_new, g_new = self.obj.value_and_grad(x_new)
        return x_new, f_new, g_new, torch.zeros_like(active)


def _bdot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of (B, P) tensors, without a (B, P) temporary."""
    return torch.bmm(u.unsqueeze(1), v.unsqueeze(2)).view(-1)


class LBFGS(Method):
    """Limited-memory BFGS with a backtracking (Armijo) line search, per configuration.

    Two-loop recursion (Nocedal and Wright, Numerical Optimization, Alg. 7.4) on each
    configuration's own history of ``history`` pairs; a pair is kept only if it has
    positive curvature. The line search accepts a step when the Armijo condition
    holds, or, when the objective change is below its rounding error, when the
    gradient norm decreases (so the solve can reach gradient norms near machine
    precision).
    """

    name = "lbfgs"
    defaults = {"history": 10, "c1": 1e-4, "max_backtracks": 50}
    max_steps = 5_000
    patience = 100

    def init(self, x, f, g):
        m, (B, P) = self.options["history"], x.shape
        self.S = torch.zeros(m, B, P, dtype=x.dtype, device=x.device)
        self.Y = torch.zeros_like(self.S)
        self.rho = torch.zeros(m, B, dtype=x.dtype, device=x.device)
        self.k = 0
        gn = torch.linalg.vector_norm(g, dim=1)
        self.gamma = 1.0 / gn.clamp(min=1.0)  # initial scaling (B,)

    def _direction(self, g):
        m = self.options["history"]
        q = g.clone()
        alphas = []
        order = [(self.k - 1 - j) % m for j in range(min(self.k, m))]  # newest first
        for i in order:
            a = self.rho[i] * _bdot(self.S[i], q)  # (B,)
            q.addcmul_(self.Y[i], a[:, None], value=-1.0)
            alphas.append(a)
        r = q.mul_(self.gamma[:, None])
        for i, a in zip(reversed(order), reversed(alphas)):
            beta = self.rho[i] * _bdot(self.Y[i], r)
            r.addcmul_(self.S[i], (a - beta)[:, None])
        return r.neg_()

    def step(self, x, f, g, active):
        d = self._direction(g)
        gd = _bdot(g, d)  # (B,)
        bad = ~(gd < 0) | ~torch.isfinite(gd)
        if bool(bad.any()):  # not a descent direction: fall back to scaled steepest descent
            d = torch.where(bad[:, None], -g * self.gamma[:, None], d)
            gd = _bdot(g, d)
        gnorm = torch.linalg.vector_norm(g, dim=1)
        eps = torch.finfo(x.dtype).eps
        t = torch.ones_like(f)
        accepted = ~active  # inactive configurations need no step
        x_new, f_new, g_new = x, f, g
        for attempt in range(self.options["max_backtracks"]):
            xt = torch.addcmul(x, d, t[:, None])
            ft, gt = self.obj.value_and_grad(xt)
            gtn = torch.linalg.vector_norm(gt, dim=1)
            finite = torch.isfinite(ft) & torch.isfinite(gtn)
            armijo = ft <= f + self.options["c1"] * t * gd
            flat = ((ft - f).abs() <= 16 * eps * f.abs().clamp(min=1.0)) & (gtn < gnorm)
            ok = finite & (armijo | flat) & ~accepted
            if attempt == 0 and bool((ok | ~active).all()):
                # The common case: every active configuration takes the full step. (Inactive
                # ones get values here that the caller discards; their pair is not stored.)
                x_new, f_new, g_new, accepted = xt, ft, gt, torch.ones_like(accepted)
                break
            x_new = torch.where(ok[:, None], xt, x_new)
            f_new = torch.where(ok, ft, f_new)
            g_new = torch.where(ok[:, None], gt, g_new)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            t = torch.where(accepted, t, t / 2)
        failed = active & ~accepted
        # Curvature pair; rejected (rho = 0) where the curvature is not clearly positive.
        s, y = x_new - x, g_new - g
        sy, yy, ss = _bdot(s, y), _bdot(y, y), _bdot(s, s)
        valid = active & accepted & (sy > 1e-10 * torch.sqrt(ss * yy)) & (yy > 0)
        m = self.options["history"]
        i = self.k % m
        self.S[i] = torch.where(valid[:, None], s, torch.zeros_like(s))
        self.Y[i] = torch.where(valid[:, None], y, torch.zeros_like(y))
        self.rho[i] = torch.where(valid, 1.0 / torch.where(valid, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        self.gamma = torch.where(valid, sy / torch.where(valid, yy, torch.ones_like(yy)), self.gamma)
        self.k += 1
        if bool(failed.any()):  # forget the history of configurations whose search failed
            self.rho[:, failed] = 0
        return x_new, f_new, g_new, failed


#: name -> method class (``solve(method=NAME)``)
METHODS = {cls.name: cls for cls in (GradientDescent, Momentum, LBFGS)}
