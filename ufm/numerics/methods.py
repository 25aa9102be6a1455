"""Descent methods of the batched solver, one class each, dispatched by name through :data:`METHODS`.

Each method implements one step on flat parameters ``x (B, P)`` with its own options
(``defaults``); :func:`ufm.numerics.solve.iterate` runs the one loop around them (stopping,
stalls, divergence, records). A new method is a subclass with a ``step`` and an entry in
``METHODS``; an option a user may set also needs its keyword and constraint in
:func:`ufm.numerics.solve.solve` (its type is that of its default).
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

    @classmethod
    def state_vectors(cls, options: dict) -> int:
        """About how many length-P vectors per configuration a step touches (x, g, their
        updates and temporaries), with ``options`` complete: sizes the solver's parts."""
        return 6

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

    @classmethod
    def state_vectors(cls, options: dict) -> int:
        return 7

    def init(self, x, f, g):
        self.v = torch.zeros_like(x)

    def step(self, x, f, g, active):
        self.v = self.options["momentum"] * self.v - self.options["lr"] * g
        x_new = x + self.v
        f_new, g_new = self.obj.value_and_grad(x_new)
        return x_new, f_new, g_new, torch.zeros_like(active)


class LBFGS(Method):
    """Limited-memory BFGS with a backtracking (Armijo) line search, per configuration.

    The direction is the L-BFGS product -H g in its compact form (Byrd, Nocedal and Schnabel,
    "Representations of quasi-Newton matrices and their use in limited memory methods",
    Math. Prog. 63, 1994, eq. (2.7)), which equals the two-loop recursion (Nocedal and
    Wright, Numerical Optimization, Alg. 7.4) in exact arithmetic; the tests compare them.
    Each configuration keeps its own ``history`` pairs (s, y) in one ``(B, m, 2, P)`` ring
    buffer, so that a step reads the history twice (one batched product of the new gradient
    and the new y with every stored vector, one for the combination giving the direction)
    instead of the 4m passes of the two-loop recursion. The small matrices S^T Y and Y^T Y are
    updated from the products with y (taken directly, not as differences of products with
    gradients, which cancel when y is small). A pair is kept only if it has positive
    curvature; a configuration whose line search fails forgets its history.

    The line search accepts a step when the Armijo condition holds, or, when the objective
    change is below its rounding error, when the gradient norm decreases (so the solve can
    reach gradient norms near machine precision).
    """

    name = "lbfgs"
    defaults = {"history": 10, "c1": 1e-4, "max_backtracks": 50}
    max_steps = 5_000
    patience = 100

    @classmethod
    def state_vectors(cls, options: dict) -> int:
        return 2 * options["history"] + 8

    def init(self, x, f, g):
        m, (B, P) = self.options["history"], x.shape
        kw = dict(dtype=x.dtype, device=x.device)
        # Slot i holds (s_i, y_i), or zeros where no pair is kept; the slot of the newest pair is (k - 1) % m.
        self.SY = torch.zeros(B, m, 2, P, **kw)
        self.q = torch.zeros(B, m, 2, **kw)  # s_i . g and y_i . g for the current gradient g
        # [i, j] = s_i . y_j where slot j is not older than slot i (1 on the diagonal of unkept slots), else 0
        self.StY = torch.eye(m, **kw).repeat(B, 1, 1)
        self.D = torch.zeros(B, m, **kw)  # s_i . y_i, 0 for unkept slots
        self.YtY = torch.zeros(B, m, m, **kw)  # y_i . y_j
        self.k = 0  # pairs offered so far
        self._orders = {}  # (k % m, count) -> index tensors of _order
        self.gnorm = torch.linalg.vector_norm(g, dim=1)  # ||g|| at the current point (of the active ones)
        self.gamma = 1.0 / self.gnorm.clamp(min=1.0)  # H0 = gamma I, (B,)

    def _direction(self, g, gg):
        """(d, g . d) with d = -H g = -gamma g - S top + gamma Y u, u = R^{-1} S^T g and
        top = R^{-T} ((D + gamma Y^T Y) u - gamma Y^T g); R the upper triangle of S^T Y in age
        order (unkept slots are zero vectors with a unit diagonal in R, so they add nothing)."""
        m = self.options["history"]
        count = min(self.k, m)
        gamma = self.gamma[:, None]
        if count == 0:
            return -gamma * g, -self.gamma * gg
        order, flat = self._order(count, g.device)
        R = self.StY.flatten(1)[:, flat].view(-1, count, count)
        YY = self.YtY.flatten(1)[:, flat].view(-1, count, count)
        q = self.q[:, order]  # (B, c, 2): S^T g, Y^T g
        u = torch.linalg.solve_triangular(R, q[:, :, :1], upper=True)  # (B, c, 1)
        v = torch.baddbmm(-q[:, :, 1:], YY, u).mul_(gamma[:, :, None]).addcmul_(self.D[:, order, None], u)
        top = torch.linalg.solve_triangular(R.transpose(1, 2), v, upper=False)
        w = torch.zeros_like(self.q)
        w[:, order] = torch.cat([top.neg_(), u.mul_(gamma[:, :, None])], dim=2)
        d = torch.bmm(w.view(-1, 1, 2 * m), self.SY.view(-1, 2 * m, self.SY.shape[-1]))[:, 0]
        d.sub_(g * gamma)
        return d, (w.flatten(1) * self.q.flatten(1)).sum(1) - self.gamma * gg  # g . d from the products

    def _order(self, count: int, device):
        """The slots oldest first, and the flat indices of their (count x count) block of an m x m matrix."""
        m = self.options["history"]
        key = (self.k % m, count)
        if key not in self._orders:
            order = torch.tensor([(self.k - count + j) % m for j in range(count)], device=device)
            self._orders[key] = order, (order[:, None] * m + order[None, :]).flatten()
        return self._orders[key]

    def _line_search(self, x, f, g, gnorm, d, gd, active):
        """Backtracking from t = 1: (x_new, f_new, g_new, ||g_new||, accepted) per configuration.

        Only the configurations still searching are evaluated at each trial (all of them at the
        first trial while every configuration is active: the common case); the others keep
        their point."""
        eps, c1 = torch.finfo(x.dtype).eps, self.options["c1"]
        B = x.shape[0]
        rows = None if bool(active.all()) else active.nonzero()[:, 0]  # None: every row
        t = torch.ones_like(f)
        accepted = ~active  # inactive configurations need no step
        out = None  # (x_new, f_new, g_new, gnorm_new), copied from the start on the first partial acceptance
        for _ in range(self.options["max_backtracks"]):
            if rows is not None and rows.numel() == 0:
                break
            pick = (lambda v: v) if rows is None else (lambda v: v[rows])  # noqa: E731
            xt = torch.addcmul(pick(x), pick(d), pick(t)[:, None])
            ft, gt = self.obj.value_and_grad(xt, rows)
            gtn = torch.linalg.vector_norm(gt, dim=1)
            f0 = pick(f)
            flat = ((ft - f0).abs() <= 16 * eps * f0.abs().clamp(min=1.0)) & (gtn < pick(gnorm))
            ok = torch.isfinite(ft) & torch.isfinite(gtn) & ((ft <= f0 + c1 * pick(t) * pick(gd)) | flat)
            if rows is None and bool(ok.all()):
                return xt, ft, gt, gtn, torch.ones_like(accepted)
            if out is None:
                out = (x.clone(), f.clone(), g.clone(), gnorm.clone())
            index = torch.arange(B, device=x.device) if rows is None else rows
            good = index[ok]
            for target, value in zip(out, (xt, ft, gt, gtn)):
                target[good] = value[ok]
            accepted[good] = True
            rows = index[~ok]
            t[rows] = t[rows] / 2
        if out is None:
            return x, f, g, gnorm, accepted
        return (*out, accepted)

    def step(self, x, f, g, active):
        gg = self.gnorm ** 2
        d, gd = self._direction(g, gg)
        bad = ~(gd < 0) | ~torch.isfinite(gd)
        if bool(bad.any()):  # not a descent direction: fall back to scaled steepest descent
            d = torch.where(bad[:, None], -g * self.gamma[:, None], d)
            gd = torch.where(bad, -self.gamma * gg, gd)
        x_new, f_new, g_new, self.gnorm, accepted = self._line_search(x, f, g, self.gnorm, d, gd, active)
        failed = active & ~accepted
        self._store(x_new, x, g_new, g, active & accepted)
        if bool(failed.any()):  # forget the history of configurations whose search failed
            self.SY[failed] = 0
            self.q[failed] = 0
            self.D[failed] = 0
            self.YtY[failed] = 0
            self.StY[failed] = torch.eye(self.StY.shape[1], dtype=x.dtype, device=x.device)
        return x_new, f_new, g_new, failed

    def _store(self, x_new, x, g_new, g, stepped):
        """Put the pair (x_new - x, g_new - g) in the slot of the oldest one, kept where
        ``stepped`` and the curvature is clearly positive, and bring the products with the
        stored vectors up to date for ``g_new``."""
        m = self.options["history"]
        i = self.k % m
        V = self.SY[:, i]  # (B, 2, P), a view
        torch.sub(x_new, x, out=V[:, 0])
        torch.sub(g_new, g, out=V[:, 1])
        # One pass over the history, the new pair included: the products of every stored vector
        # with g_new (for the next direction) and with y (for S^T Y and Y^T Y: taken directly,
        # not as differences of products with g_new and g, which cancel when y is small).
        both = torch.bmm(torch.stack([g_new, V[:, 1]], dim=1), self.SY.view(g.shape[0], 2 * m, -1).transpose(1, 2))
        q_new, dq = both[:, 0].reshape(-1, m, 2), both[:, 1].reshape(-1, m, 2)  # (B, m, 2) each, copies
        ss = torch.linalg.vector_norm(V[:, 0], dim=1) ** 2
        sy, yy = dq[:, i, 0], dq[:, i, 1]
        keep = stepped & (sy > 1e-10 * torch.sqrt(ss * yy)) & (yy > 0)
        drop = ~keep
        if bool(drop.any()):
            V[drop] = 0
            q_new[:, i] = q_new[:, i] * keep[:, None]
            dq = dq * keep[:, None, None]
        zero = torch.zeros((), dtype=g.dtype, device=g.device)
        sy, yy = torch.where(keep, sy, zero), torch.where(keep, yy, zero)
        self.StY[:, i, :] = 0
        self.StY[:, :, i] = dq[:, :, 0]
        self.StY[:, i, i] = torch.where(keep, sy, torch.ones_like(sy))
        self.D[:, i] = sy
        self.YtY[:, :, i] = dq[:, :, 1]
        self.YtY[:, i, :] = dq[:, :, 1]
        self.YtY[:, i, i] = yy
        self.q = q_new
        self.gamma = torch.where(keep, sy / torch.where(keep, yy, torch.ones_like(yy)), self.gamma)
        self.k += 1


#: name -> method class (``solve(method=NAME)``)
METHODS = {cls.name: cls for cls in (GradientDescent, Momentum, LBFGS)}
