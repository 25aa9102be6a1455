"""Batched UFM solver: gradient descent, heavy-ball momentum and L-BFGS, in torch.

Many configurations with the same (K, d, n, loss) but different alpha, lambdas and
seeds are solved as one tensor program: parameters are stacked along a leading batch
dimension and every step is a handful of batched matmuls. Each configuration keeps its
own L-BFGS history, line-search step and stopping test (gd and momentum share the one
``lr``), and is frozen once it converges or stalls, so a batched solve gives the result
of solving each configuration alone, up to rounding: batched and single matrix products
may differ in the last bit, so an L-BFGS configuration can stop an iteration earlier or
later (benchmarks/README.md measures W differences of 2e-9 at tol 1e-10).

Objective (README, "Conventions"), per configuration::

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + (lambda_W/2)||W||_F^2
                 + (lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2,   y_i = i // n

Dtype and device: float64 by default; CUDA when available, else CPU; both overridable.
Initial points are drawn on the CPU from each configuration's seed and then moved, so
they do not depend on the device or on the batch composition.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch

from .._validation import Interval, InvalidParameterError, Options, check_param, warn_closed_form
from ..metrics.nc import class_statistics_balanced, nc1 as nc1_measure, nc2 as nc2_measure, nc3 as nc3_measure
from ..problem import UFMProblem

__all__ = ["solve", "SolveResult", "SolverDivergedError", "UFMObjective", "METHODS", "default_device"]


class SolverDivergedError(RuntimeError):
    """The objective or gradient became non-finite (or exploded) during a solve."""


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class UFMObjective:
    """The batched UFM objective and its analytic gradient on flat parameters ``x (B, P)``.

    The data term is label-smoothed cross-entropy fused with its gradient for speed; the
    tests check it against ``ufm.losses.label_smoothing_cross_entropy`` and against
    torch's own ``cross_entropy(label_smoothing=alpha)`` under autograd.

    P = K d + d N + K; ``unpack(x)`` gives views W (B, K, d), H (B, d, N), b (B, K).
    """

    def __init__(self, problems: Sequence[UFMProblem], dtype=torch.float64, device=None):
        p0 = problems[0]
        if p0.loss != "label_smoothing":  # the fused objective below is label-smoothed CE only
            raise InvalidParameterError(f"The 'loss' parameter of UFMObjective must be 'label_smoothing'. "
                                        f"Got {p0.loss!r} instead.")
        self.K, self.d, self.n, self.N = p0.K, p0.d, p0.n, p0.N
        self.B = len(problems)
        self.dtype, self.device = dtype, torch.device(device) if device is not None else default_device()
        kw = dict(dtype=dtype, device=self.device)
        self.alpha = torch.tensor([p.alpha for p in problems], **kw)  # (B,)
        self.lambda_w = torch.tensor([p.lambda_w for p in problems], **kw)  # (B,)
        self.lambda_h = torch.tensor([p.lambda_h for p in problems], **kw)  # (B,)
        self.lambda_b = torch.tensor([p.lambda_b for p in problems], **kw)  # (B,)
        self.labels = torch.arange(self.N, device=self.device) // self.n  # (N,)
        self._y_index = self.labels.view(1, 1, -1).expand(self.B, 1, self.N).contiguous()  # (B, 1, N)
        self.sizes = (self.K * self.d, self.d * self.N, self.K)

    @property
    def num_params(self) -> int:
        return sum(self.sizes)

    def unpack(self, x: torch.Tensor):
        a, b_, _ = self.sizes
        W = x[:, :a].view(-1, self.K, self.d)  # (B, K, d)
        H = x[:, a:a + b_].view(-1, self.d, self.N)  # (B, d, N)
        b = x[:, a + b_:]  # (B, K)
        return W, H, b

    def pack(self, W, H, b) -> torch.Tensor:
        return torch.cat([W.reshape(W.shape[0], -1), H.reshape(H.shape[0], -1), b], dim=1)

    def value_and_grad(self, x: torch.Tensor):
        """f (B,) and its gradient (B, P).

        Written to make few passes over (B, K, N) and (B, P) memory, in place where it
        can: log-sum-exp shifted by the per-sample max, the smoothed-target terms from the
        true-class logit and the logit sum (never a (B, K, N) target tensor).
        """
        W, H, b = self.unpack(x)
        N, K = self.N, self.K
        a = self.alpha[:, None, None]  # (B, 1, 1)
        lw, lh, lb = self.lambda_w, self.lambda_h, self.lambda_b
        Z = torch.baddbmm(b.unsqueeze(-1), W, H)  # logits (B, K, N)
        Z.sub_(Z.amax(dim=1, keepdim=True))  # shifted logits z - max
        z_true = Z.gather(1, self._y_index)  # (B, 1, N)
        z_sum = Z.sum(1, keepdim=True)  # (B, 1, N)
        P = Z.exp_()  # unnormalized softmax, in place of Z
        s = P.sum(1, keepdim=True)  # (B, 1, N)
        # loss_i = -sum_j t_j log p_j = log s_i - (1 - alpha) z_true,i - (alpha/K) sum_j z_j,i
        loss = (torch.log(s) - (1 - a) * z_true - (a / K) * z_sum).sum((1, 2)) / N  # (B,)
        f = (loss + lw / 2 * torch.linalg.vector_norm(W, dim=(1, 2)) ** 2
             + lh / 2 * torch.linalg.vector_norm(H, dim=(1, 2)) ** 2 + lb / 2 * (b * b).sum(1))
        G = P.div_(s)  # softmax, (B, K, N)
        G.sub_(a / K).scatter_add_(1, self._y_index, (a - 1).expand(-1, 1, N))  # p - t
        G.mul_(1.0 / N)  # dloss/dZ
        grad = torch.empty_like(x)
        gW, gH, gb = self.unpack(grad)
        gW.copy_(torch.bmm(G, H.transpose(1, 2)).addcmul_(W, lw[:, None, None]))  # (B, K, d)
        gH.copy_(torch.bmm(W.transpose(1, 2), G).addcmul_(H, lh[:, None, None]))  # (B, d, N)
        gb.copy_(G.sum(2).addcmul_(b, lb[:, None]))  # (B, K)
        return f, grad

    def initial_point(self, seeds: Sequence[int], init_scale: float) -> torch.Tensor:
        """Entries of W, H, b ~ N(0, init_scale^2 / d), drawn on the CPU per seed."""
        xs = []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            xs.append(torch.randn(self.num_params, generator=g, dtype=torch.float64) * (init_scale / math.sqrt(self.d)))
        return torch.stack(xs).to(dtype=self.dtype, device=self.device)


@dataclass
class SolveResult:
    """Output of :func:`solve` for a batch of B configurations.

    Attributes:
        problems: the B problems, in input order.
        W (B, K, d), H (B, d, N), b (B, K): the solutions.
        objective (B,), grad_norm (B,): at the solutions.
        steps (B,): iterations taken by each configuration.
        converged (B,): grad_norm < tol reached within max_steps.
        status: per configuration, ``"converged"``, ``"max_steps"`` (step cap reached) or
            ``"stalled"`` (no new best gradient norm for ``patience`` steps: the tolerance is
            below what the dtype resolves).
        trajectory: ``None``, or a dict of ``step (T,)`` and ``objective``, ``grad_norm``,
            ``nc1``, ``nc2_h``, ``nc3`` (each ``(T, B)``) recorded every ``record_every``
            steps (and at the last step), with the measures of ``ufm.metrics.nc``.
        method, options, seeds: how it was solved.
    """

    problems: List[UFMProblem]
    W: torch.Tensor
    H: torch.Tensor
    b: torch.Tensor
    objective: torch.Tensor
    grad_norm: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor
    status: List[str]
    method: str
    options: dict
    seeds: List[int]
    trajectory: Optional[Dict[str, torch.Tensor]] = None

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def labels(self) -> torch.Tensor:
        p = self.problems[0]
        return torch.arange(p.N, device=self.H.device) // p.n


# ---------------------------------------------------------------------------
# Methods: each has init(x, f, g) and step(x, f, g, active) -> (x, f, g, failed).

class _Method:
    defaults: dict = {}  # the method's own options and their defaults; other methods' options are refused
    max_steps: int = 100_000  # default step cap
    patience: int = 5_000  # default steps without a new best gradient norm before "stalled"

    def __init__(self, objective: UFMObjective, **options):
        self.obj = objective
        self.options = {**self.defaults, **options}

    def init(self, x, f, g):
        pass


class GradientDescent(_Method):
    """x <- x - lr * grad f."""

    defaults = {"lr": 0.5}

    def step(self, x, f, g, active):
        x_new = torch.add(x, g, alpha=-self.options["lr"])
        f_new, g_new = self.obj.value_and_grad(x_new)
        return x_new, f_new, g_new, torch.zeros_like(active)


class Momentum(_Method):
    """Heavy-ball momentum: v <- mu v - lr grad f;  x <- x + v (Polyak 1964)."""

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


class LBFGS(_Method):
    """Limited-memory BFGS with a backtracking (Armijo) line search, per configuration.

    Two-loop recursion (Nocedal and Wright, Numerical Optimization, Alg. 7.4) on each
    configuration's own history of ``history`` pairs; a pair is kept only if it has
    positive curvature. The line search accepts a step when the Armijo condition
    holds, or, when the objective change is below its rounding error, when the
    gradient norm decreases (so the solve can reach gradient norms near machine
    precision).
    """

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


METHODS = {"gd": GradientDescent, "momentum": Momentum, "lbfgs": LBFGS}


def _describe(p: UFMProblem) -> str:
    return (f"K={p.K}, d={p.d}, n={p.n}, alpha={p.alpha}, lambda_w={p.lambda_w}, "
            f"lambda_h={p.lambda_h}, lambda_b={p.lambda_b}")


def solve(problems: Union[UFMProblem, Sequence[UFMProblem]], *, method: str = "lbfgs",
          seeds: Union[int, Sequence[int]] = 0, tol: float = 1e-10, max_steps: Optional[int] = None,
          lr: Optional[float] = None, momentum: Optional[float] = None, history: Optional[int] = None,
          init_scale: float = 1.0, dtype: torch.dtype = torch.float64, device=None,
          record_every: int = 0, initial_point: Optional[torch.Tensor] = None,
          patience: Optional[int] = None) -> SolveResult:
    """Solve a batch of UFM problems from random initial points.

    Args:
        problems: one UFMProblem or a sequence sharing (K, d, n, loss).
        method: ``"gd"`` (gradient descent), ``"momentum"`` (heavy ball) or ``"lbfgs"``.
        seeds: one seed for all configurations, or one per configuration.
        tol: stop a configuration when ||grad f||_2 < tol (over all of W, H, b).
        max_steps: step cap (default 100000 for gd/momentum, 5000 for lbfgs).
        lr: step size of gd/momentum (default 0.5); momentum: mu (default 0.9);
            history: L-BFGS memory (default 10).
        init_scale: entries of the initial W, H, b ~ N(0, init_scale^2 / d).
        dtype, device: default float64 and CUDA when available, else CPU.
        record_every: if > 0, record objective, gradient norm, NC1, NC2 (means) and NC3
            every so many steps.
        initial_point: optional flat start ``(B, P)`` instead of the seeded draw.
        patience: stop a configuration as ``"stalled"`` after this many steps without a new
            best gradient norm (default 100 for lbfgs, 5000 for gd/momentum).

    Returns:
        SolveResult with tensors in ``dtype`` on ``device``.

    Raises:
        InvalidParameterError: bad arguments (named, with the valid range).
        SolverDivergedError: the objective became non-finite; names the step and
            configuration and suggests a smaller learning rate.
    """
    if isinstance(problems, UFMProblem):
        problems = [problems]
    problems = list(problems)
    if not problems:
        raise InvalidParameterError("The 'problems' parameter of solve must be a non-empty sequence. Got [] instead.")
    for p in problems:
        if not isinstance(p, UFMProblem):
            raise InvalidParameterError(f"The 'problems' parameter of solve must hold UFMProblem objects. "
                                        f"Got {type(p).__name__} instead.")
    shapes = {p.shape for p in problems}
    if len(shapes) > 1:
        raise InvalidParameterError(f"The 'problems' parameter of solve must share (K, d, n, loss) to be "
                                    f"solved as one batch. Got {sorted(shapes)} instead; group them first.")
    check_param("method", method, Options(tuple(METHODS)), "solve")
    check_param("tol", tol, Interval("float", 0, None, "neither"), "solve")
    check_param("init_scale", init_scale, Interval("float", 0, None, "neither"), "solve")
    check_param("record_every", record_every, Interval("int", 0, None, "left"), "solve")
    cls = METHODS[method]
    max_steps = cls.max_steps if max_steps is None else max_steps
    check_param("max_steps", max_steps, Interval("int", 0, None, "left"), "solve")
    if dtype not in (torch.float32, torch.float64):
        raise InvalidParameterError(f"The 'dtype' parameter of solve must be torch.float32 or torch.float64. "
                                    f"Got {dtype} instead.")
    patience = cls.patience if patience is None else patience
    check_param("patience", patience, Interval("int", 1, None, "left"), "solve")
    options = {}
    for name, value in (("lr", lr), ("momentum", momentum), ("history", history)):
        if value is not None and name not in cls.defaults:
            methods = [m for m, c in METHODS.items() if name in c.defaults]
            raise InvalidParameterError(
                f"The {name!r} parameter of solve applies to method {' or '.join(map(repr, methods))} only. "
                f"Got {name}={value!r} with method={method!r} instead.", param=name, value=value,
                expected=f"used with method {' or '.join(methods)}")
    if lr is not None:
        check_param("lr", lr, Interval("float", 0, None, "neither"), "solve")
        options["lr"] = float(lr)
    if momentum is not None:
        check_param("momentum", momentum, Interval("float", 0, 1, "left"), "solve")
        options["momentum"] = float(momentum)
    if history is not None:
        check_param("history", history, Interval("int", 1, None, "left"), "solve")
        options["history"] = int(history)
    seeds = [int(seeds)] * len(problems) if isinstance(seeds, numbers.Integral) else [int(s) for s in seeds]
    if len(seeds) != len(problems):
        raise InvalidParameterError(f"The 'seeds' parameter of solve must be an int or hold one seed per problem "
                                    f"({len(problems)}). Got {len(seeds)} seeds instead.")
    if not problems[0].closed_form_applies:
        warn_closed_form(problems[0].K, problems[0].d, "solve")

    obj = UFMObjective(problems, dtype=dtype, device=device)
    x = obj.initial_point(seeds, init_scale) if initial_point is None else \
        initial_point.to(dtype=dtype, device=obj.device).clone()
    if tuple(x.shape) != (obj.B, obj.num_params):
        raise InvalidParameterError(f"The 'initial_point' parameter of solve must have shape "
                                    f"({obj.B}, {obj.num_params}). Got {tuple(x.shape)} instead.")
    solver = cls(obj, **options)
    f, g = obj.value_and_grad(x)
    f0 = f.abs().clamp(min=1.0)
    solver.init(x, f, g)
    gnorm = torch.linalg.vector_norm(g, dim=1)
    steps = torch.zeros(obj.B, dtype=torch.int64, device=obj.device)
    active = gnorm >= tol
    traj = {"step": [], "objective": [], "grad_norm": [], "nc1": [], "nc2_h": [], "nc3": []} if record_every else None

    def record(step):
        W, H, _ = obj.unpack(x)
        _, centered, sw, sb = class_statistics_balanced(H, obj.n)
        traj["step"].append(step)
        traj["objective"].append(f.clone())
        traj["grad_norm"].append(gnorm.clone())
        traj["nc1"].append(nc1_measure(sw, sb, obj.K, centered_means=centered))
        traj["nc2_h"].append(nc2_measure(centered))
        traj["nc3"].append(nc3_measure(W, centered))

    best_gnorm = gnorm.clone()
    since_best = torch.zeros_like(steps)
    failed_before = torch.zeros_like(active)
    status_stalled = torch.zeros_like(active)
    step = 0
    if traj is not None:
        record(0)
    while step < max_steps and bool(active.any()):
        x_new, f_new, g_new, failed = solver.step(x, f, g, active)
        step += 1
        gnorm_new = torch.linalg.vector_norm(g_new, dim=1)  # non-finite if any entry is
        bad = active & (~torch.isfinite(f_new) | ~torch.isfinite(gnorm_new) | (f_new > 1e8 * f0))
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            hint = (f"try a smaller learning rate (lr={solver.options['lr']} now, e.g. lr={solver.options['lr'] / 4:g})"
                    if "lr" in solver.options else "try a smaller init_scale or method='gd' with a small lr")
            raise SolverDivergedError(
                f"{method} diverged at step {step} for configuration {i} ({_describe(problems[i])}): "
                f"objective = {float(f_new[i])}; {hint}.")
        if bool(active.all()):
            x, f, g, gnorm = x_new, f_new, g_new, gnorm_new
        else:  # frozen configurations keep their values
            a = active[:, None]
            x = torch.where(a, x_new, x)
            f = torch.where(active, f_new, f)
            g = torch.where(a, g_new, g)
            gnorm = torch.where(active, gnorm_new, gnorm)
        steps = steps + active.to(torch.int64)
        # Stall: no new best gradient norm for `patience` steps (the tolerance is below what
        # this dtype can resolve), or two failed line searches in a row (lbfgs).
        improved = gnorm < best_gnorm
        best_gnorm = torch.where(improved, gnorm, best_gnorm)
        since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
        twice = failed & failed_before
        failed_before = failed
        stalled = active & ((since_best >= patience) | twice) & (gnorm >= tol)
        status_stalled = status_stalled | stalled
        active = active & ~stalled
        active = active & (gnorm >= tol)
        if traj is not None and (step % record_every == 0):
            record(step)
    if traj is not None and (not traj["step"] or traj["step"][-1] != step):
        record(step)
    W, H, b = obj.unpack(x)
    if traj is not None:
        traj = {"step": torch.tensor(traj["step"]),
                **{k: torch.stack(v) for k, v in traj.items() if k != "step"}}
    converged = gnorm < tol
    status = ["converged" if c else ("stalled" if st else "max_steps")
              for c, st in zip(converged.tolist(), status_stalled.tolist())]
    return SolveResult(problems=problems, W=W.clone(), H=H.clone(), b=b.clone(), objective=f, grad_norm=gnorm,
                       steps=steps, converged=converged, status=status, method=method,
                       options={**solver.options, "tol": tol, "max_steps": max_steps, "patience": patience,
                                "init_scale": init_scale,
                                "dtype": str(dtype).replace("torch.", ""), "device": str(obj.device)},
                       seeds=seeds, trajectory=traj)
