"""The batched UFM solver: one iteration loop around the methods of :mod:`ufm.numerics.methods`.

Many configurations with the same (K, d, n, loss) but different alpha, lambdas and seeds are
solved as one tensor program: parameters are stacked along a leading batch dimension and
every step is a handful of batched matmuls (:class:`~ufm.numerics.objective.UFMObjective`).
Each configuration keeps its own L-BFGS history, line-search step and stopping test (gd and
momentum share the one ``lr``), and is frozen once it converges or stalls, so a batched solve
gives the result of solving each configuration alone, up to rounding: batched and single
matrix products may differ in the last bit, so an L-BFGS configuration can stop an iteration
earlier or later (benchmarks/README.md measures the differences).

On the CPU, :func:`solve` runs the batch in consecutive parts whose solver state fits in
:data:`PART_BYTES` (about 130 configurations of K = 10, d = 16, n = 50 with L-BFGS); on a GPU
the batch is one part. Since the configurations are independent, the parts give one batch's
results up to rounding (an L-BFGS configuration may stop a step earlier or later, as above), and
their trajectories are merged onto the steps one batch would record.

:func:`iterate` is the one loop (stopping, stalls, divergence, records); :func:`solve` validates
its arguments and runs it from seeded random starts. What is recorded along the way beyond the
objective and the gradient norm is the caller's business: a ``recorder`` maps the current
(W, H, b) to named (B,) tensors (``ufm.analysis.tracking`` passes the NC measures), so this
module measures nothing itself; nor does it render anything: a progress display passes an
``on_step`` hook (:data:`OnStep`; the command line's is ``ufm.report.progress``).

Dtype and device: float64 by default; CUDA when available, else CPU; both overridable.
Initial points are drawn on the CPU from each configuration's seed and then moved, so
they do not depend on the device or on the batch composition.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from ufm._core.validation import (SEED, Interval, InvalidParameterError, Options, OrNone, check_param,
                                  validate_params, warn_closed_form)
from ufm.numerics.methods import METHODS, Method
from ufm.numerics.objective import UFMObjective
from ufm.problem import UFMProblem

__all__ = ["solve", "iterate", "SolveResult", "IterateResult", "SolverDivergedError", "Recorder", "OnStep"]

#: a recorder maps views W (B, K, d), H (B, d, N), b (B, K) of the current point to named (B,) tensors
Recorder = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Dict[str, torch.Tensor]]
#: a progress hook: ``on_step(step, max_steps, grad_norm, tol)`` with ``grad_norm`` the largest
#: ||grad f|| of the configurations still running (of all of them once none is); it only reads
OnStep = Callable[[int, int, float, float], None]
#: an objective above this many times max(1, |f(x0)|) has diverged
DIVERGENCE_FACTOR = 1e8


class SolverDivergedError(RuntimeError):
    """The objective or gradient became non-finite (or exploded) during a solve."""


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
        trajectory: ``None``, or a dict of ``step (T,)``, ``objective`` and ``grad_norm`` (each
            ``(T, B)``) and whatever the recorder adds (``ufm.solve`` adds ``nc1``, ``nc2_h``,
            ``nc3``), recorded every ``record_every`` steps and at the last step.
        method, options, seeds: how it was solved (``seeds[i]`` started configuration i).

    The per-configuration numbers are tensors on the solve's device (``status`` and ``seeds``, a
    string and an int per configuration, are lists); :meth:`to_dict` gives everything as plain
    Python values (nested lists), for JSON.
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

    def to_dict(self) -> dict:
        """Every field as plain values: problems as dicts, tensors as nested lists, the trajectory
        (when recorded) as a dict of lists."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["problems"] = [p.to_dict() for p in self.problems]
        for k, v in out.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.tolist()
        if self.trajectory is not None:
            out["trajectory"] = {k: v.tolist() for k, v in self.trajectory.items()}
        return out

    @property
    def labels(self) -> torch.Tensor:
        p = self.problems[0]
        return torch.arange(p.N, device=self.H.device) // p.n


@dataclass
class IterateResult:
    """The state :func:`iterate` ends in: ``x (B, P)``, ``f (B,)``, ``grad_norm (B,)``, per
    configuration ``steps`` taken, ``stalled`` and ``diverged_at`` (the step at which it
    diverged, or None; only with ``on_divergence="freeze"``), and the last step of the loop."""

    x: torch.Tensor
    f: torch.Tensor
    grad_norm: torch.Tensor
    steps: torch.Tensor
    stalled: torch.Tensor
    diverged_at: List[Optional[int]] = field(default_factory=list)
    step: int = 0


@dataclass
class _Progress:
    """Per-configuration bookkeeping of the loop: best gradient norm, steps since, failures."""

    best: torch.Tensor
    since: torch.Tensor
    failed_before: torch.Tensor
    stalled: torch.Tensor

    @classmethod
    def start(cls, gnorm: torch.Tensor) -> "_Progress":
        zeros = torch.zeros_like(gnorm, dtype=torch.bool)
        return cls(gnorm.clone(), torch.zeros_like(gnorm, dtype=torch.int64), zeros, zeros.clone())

    def stalls(self, gnorm, failed, active, tol, patience) -> torch.Tensor:
        """The active configurations that stall now: no new best gradient norm for ``patience``
        steps (the tolerance is below what the dtype resolves), or two failed steps in a row."""
        improved = gnorm < self.best
        self.best = torch.where(improved, gnorm, self.best)
        self.since = torch.where(improved, torch.zeros_like(self.since), self.since + 1)
        twice = failed & self.failed_before
        self.failed_before = failed
        stuck = twice if patience is None else (self.since >= patience) | twice
        stalled = active & stuck & (gnorm >= tol)
        self.stalled = self.stalled | stalled
        return stalled


def iterate(objective: UFMObjective, method: Method, x: torch.Tensor, *, tol: float, max_steps: int,
            patience: Optional[int] = None, record_every: int = 0,
            on_record: Optional[Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], bool]] = None,
            on_divergence: str = "raise", describe: Callable[[int], str] = str, first: int = 0,
            on_step: Optional[OnStep] = None) -> IterateResult:
    """Run ``method`` on ``objective`` from ``x (B, P)``: the one loop of every solve.

    A configuration stops when ||grad f|| < ``tol`` (``tol = 0``: never), when it stalls (no new
    best gradient norm for ``patience`` steps, None: never; or two failed steps in a row), or at
    ``max_steps``. ``on_record(step, x, f, grad_norm, diverged)`` is called at step 0, every
    ``record_every`` steps (0: never) and at the last step; returning True ends the loop. A
    configuration whose objective becomes non-finite or grows past DIVERGENCE_FACTOR times its
    start raises :class:`SolverDivergedError` (``on_divergence="raise"``, naming the step and
    ``describe(i)``) or is frozen at its last finite point and reported in ``diverged_at``
    (``"freeze"``). ``first``: the index of ``x``'s first row in the caller's batch, for that message.
    ``on_step`` (:data:`OnStep`, for progress displays) is called at step 0 and after every step;
    it changes nothing in the loop.
    """
    f, g = objective.value_and_grad(x)
    f0 = f.abs().clamp(min=1.0)
    method.init(x, f, g)
    gnorm = torch.linalg.vector_norm(g, dim=1)
    steps = torch.zeros(objective.B, dtype=torch.int64, device=objective.device)
    active = gnorm >= tol
    diverged = torch.zeros_like(active)
    diverged_at: List[Optional[int]] = [None] * objective.B
    progress = _Progress.start(gnorm)
    step, recorded = 0, None
    if on_step is not None:
        on_step(0, max_steps, _largest(gnorm, active), tol)
    if on_record is not None:
        recorded = 0
        if on_record(0, x, f, gnorm, diverged):
            return IterateResult(x, f, gnorm, steps, progress.stalled, diverged_at, 0)
    while step < max_steps and bool(active.any()):
        x_new, f_new, g_new, failed = method.step(x, f, g, active)
        step += 1
        gnorm_new = torch.linalg.vector_norm(g_new, dim=1)  # non-finite if any entry is
        bad = active & (~torch.isfinite(f_new) | ~torch.isfinite(gnorm_new) | (f_new > DIVERGENCE_FACTOR * f0))
        accept = active
        if bool(bad.any()):
            if on_divergence == "raise":
                _raise_diverged(method, step, int(bad.nonzero()[0]), f_new, describe, first)
            for i in bad.nonzero().flatten().tolist():
                diverged_at[i] = step
            diverged, accept = diverged | bad, active & ~bad
        frozen = ~accept
        if bool(frozen.any()):  # frozen configurations keep their values (copied row by row: few)
            rows = frozen.nonzero()[:, 0]
            x_new[rows], g_new[rows] = x[rows], g[rows]
            f_new, gnorm_new = torch.where(accept, f_new, f), torch.where(accept, gnorm_new, gnorm)
        x, f, g, gnorm = x_new, f_new, g_new, gnorm_new
        steps = steps + accept.to(torch.int64)
        active = accept & ~progress.stalls(gnorm, failed, accept, tol, patience) & (gnorm >= tol)
        if on_step is not None:
            on_step(step, max_steps, _largest(gnorm, active), tol)
        if on_record is not None and record_every and step % record_every == 0:
            recorded = step
            if on_record(step, x, f, gnorm, diverged):
                break
    if on_record is not None and recorded != step:
        on_record(step, x, f, gnorm, diverged)
    return IterateResult(x, f, gnorm, steps, progress.stalled, diverged_at, step)


def _largest(gnorm: torch.Tensor, active: torch.Tensor) -> float:
    """The largest ``gnorm (B,)`` over the ``active (B,)`` configurations; over all if none is."""
    return float(torch.where(active, gnorm, 0.0).max() if bool(active.any()) else gnorm.max())


def _raise_diverged(method: Method, step: int, i: int, f_new: torch.Tensor, describe, first: int) -> None:
    lr = method.options.get("lr")
    hint = (f"try a smaller learning rate (lr={lr} now, e.g. lr={lr / 4:g})" if lr is not None
            else "try a smaller init_scale or method='gd' with a small lr")
    raise SolverDivergedError(f"{method.name} diverged at step {step} for configuration {first + i} ({describe(i)}): "
                              f"objective = {float(f_new[i])}; {hint}.")


def _describe(p: UFMProblem) -> str:
    return (f"K={p.K}, d={p.d}, n={p.n}, alpha={p.alpha}, lambda_w={p.lambda_w}, "
            f"lambda_h={p.lambda_h}, lambda_b={p.lambda_b}")


def _check_problems(problems) -> List[UFMProblem]:
    problems = [problems] if isinstance(problems, UFMProblem) else list(problems)
    if not problems:
        raise InvalidParameterError("The 'problems' parameter of solve must be a non-empty sequence. Got [] instead.",
                                    param="problems", value=[], expected="a non-empty sequence of UFMProblem")
    for p in problems:
        if not isinstance(p, UFMProblem):
            raise InvalidParameterError(f"The 'problems' parameter of solve must hold UFMProblem objects. "
                                        f"Got {type(p).__name__} instead.", param="problems")
    shapes = {p.shape for p in problems}
    if len(shapes) > 1:
        raise InvalidParameterError(f"The 'problems' parameter of solve must share (K, d, n, loss) to be "
                                    f"solved as one batch. Got {sorted(shapes)} instead; group them first.",
                                    param="problems")
    return problems


def _method_options(method: str, **given) -> dict:
    """The options given for ``method`` (None: its default); an option of another method is refused."""
    cls = METHODS[method]
    for name, value in given.items():
        if value is not None and name not in cls.defaults:
            methods = [m for m, c in METHODS.items() if name in c.defaults]
            raise InvalidParameterError(
                f"The {name!r} parameter of solve applies to method {' or '.join(map(repr, methods))} only. "
                f"Got {name}={value!r} with method={method!r} instead.", param=name, value=value,
                expected=f"used with method {' or '.join(methods)}")
    return {name: type(cls.defaults[name])(value) for name, value in given.items() if value is not None}


def _seeds(seeds, count: int) -> List[int]:
    out = [int(seeds)] * count if isinstance(seeds, numbers.Integral) else [int(s) for s in seeds]
    for s in out:
        check_param("seeds", s, SEED, "solve")
    if len(out) != count:
        raise InvalidParameterError(f"The 'seeds' parameter of solve must be an int or hold one seed per problem "
                                    f"({count}). Got {len(out)} seeds instead.", param="seeds", value=seeds)
    return out


def _pair(problems: List[UFMProblem], seeds, pairing: str) -> tuple:
    """(problems, seeds) as solve pairs them: unchanged for ``zip``; every problem from every seed,
    problem-major, for ``product``."""
    if pairing != "product":
        return problems, seeds
    seeds = [int(seeds)] if isinstance(seeds, numbers.Integral) else list(seeds)
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter of solve must hold at least one seed with "
                                    "pairing='product'. Got [] instead.", param="seeds", value=seeds)
    return [p for p in problems for _ in seeds], [s for _ in problems for s in seeds]


_POSITIVE = Interval("float", 0, None, "neither")


@validate_params({
    "method": Options(tuple(METHODS)),
    "tol": _POSITIVE,
    "max_steps": OrNone(Interval("int", 1, None, "left")),  # 0 steps would report "not converged" for nothing
    "lr": OrNone(_POSITIVE),
    "momentum": OrNone(Interval("float", 0, 1, "left")),
    "history": OrNone(Interval("int", 1, None, "left")),
    "init_scale": _POSITIVE,
    "record_every": Interval("int", 0, None, "left"),
    "patience": OrNone(Interval("int", 1, None, "left")),
    "pairing": Options(("zip", "product")),
})
def solve(problems: Union[UFMProblem, Sequence[UFMProblem]], *, method: str = "lbfgs",
          seeds: Union[int, Sequence[int]] = 0, tol: float = 1e-10, max_steps: Optional[int] = None,
          lr: Optional[float] = None, momentum: Optional[float] = None, history: Optional[int] = None,
          init_scale: float = 1.0, dtype: torch.dtype = torch.float64, device=None,
          record_every: int = 0, initial_point: Optional[torch.Tensor] = None,
          patience: Optional[int] = None, recorder: Optional[Recorder] = None,
          on_step: Optional[OnStep] = None, pairing: str = "zip") -> SolveResult:
    """Solve a batch of UFM problems from random initial points.

    Args:
        problems: one UFMProblem or a sequence sharing (K, d, n, loss).
        method: ``"gd"`` (gradient descent), ``"momentum"`` (heavy ball) or ``"lbfgs"``.
        seeds: one seed for all configurations, or a sequence: with ``pairing="zip"`` (the
            default) one per configuration, ``seeds[i]`` starting ``problems[i]``; with
            ``pairing="product"`` every problem from every seed, problem-major (configuration
            ``i * len(seeds) + j`` is ``problems[i]`` from ``seeds[j]``; ``result.problems`` and
            ``result.seeds`` list them in that order).
        tol: stop a configuration when ||grad f||_2 < tol (over all of W, H, b).
        max_steps: step cap (default 100000 for gd/momentum, 5000 for lbfgs).
        lr: step size of gd/momentum (default 0.5); momentum: mu (default 0.9);
            history: L-BFGS memory (default 10).
        init_scale: entries of the initial W, H, b ~ N(0, init_scale^2 / d).
        dtype, device: default float64 and CUDA when available, else CPU.
        record_every: if > 0, record the objective, the gradient norm and what ``recorder``
            returns every so many steps (and at the last step).
        initial_point: optional flat start ``(B, P)`` instead of the seeded draw.
        patience: stop a configuration as ``"stalled"`` after this many steps without a new
            best gradient norm (default 100 for lbfgs, 5000 for gd/momentum).
        recorder: maps (W, H, b) to named (B,) tensors recorded beside the objective.
        on_step: a progress hook (:data:`OnStep`), called at step 0 and after every step; the
            result does not depend on it. A batch solved in consecutive parts (on the CPU,
            :data:`PART_BYTES`) shows it each part's loop in turn, from step 0.

    Returns:
        SolveResult with tensors in ``dtype`` on ``device``.

    Raises:
        InvalidParameterError: bad arguments (named, with the valid range).
        SolverDivergedError: the objective became non-finite; names the step and
            configuration and suggests a smaller learning rate.
    """
    problems, seeds = _pair(_check_problems(problems), seeds, pairing)
    cls = METHODS[method]
    max_steps = cls.max_steps if max_steps is None else max_steps
    patience = cls.patience if patience is None else patience
    if dtype not in (torch.float32, torch.float64):
        raise InvalidParameterError(f"The 'dtype' parameter of solve must be torch.float32 or torch.float64. "
                                    f"Got {dtype} instead.", param="dtype", value=dtype)
    options = _method_options(method, lr=lr, momentum=momentum, history=history)
    seeds = _seeds(seeds, len(problems))
    if not problems[0].closed_form_applies:
        warn_closed_form(problems[0].K, problems[0].d, "solve")
    obj = UFMObjective(problems, dtype=dtype, device=device)
    x = obj.initial_point(seeds, init_scale) if initial_point is None else \
        initial_point.to(dtype=dtype, device=obj.device).clone()
    if tuple(x.shape) != (obj.B, obj.num_params):
        raise InvalidParameterError(f"The 'initial_point' parameter of solve must have shape "
                                    f"({obj.B}, {obj.num_params}). Got {tuple(x.shape)} instead.",
                                    param="initial_point")
    parts = [_solve_part(problems, start, stop, x[start:stop], cls, options, obj.device,
                         dict(tol=tol, max_steps=max_steps, patience=patience, record_every=record_every,
                              on_step=on_step), recorder)
             for start, stop in _chunks(obj, cls, options)]
    ends = [end for end, _ in parts]
    W, H, b = obj.unpack(torch.cat([end.x for end in ends]))
    grad_norm = torch.cat([end.grad_norm for end in ends])
    converged = grad_norm < tol
    stalled = torch.cat([end.stalled for end in ends])
    status = ["converged" if c else ("stalled" if st else "max_steps")
              for c, st in zip(converged.tolist(), stalled.tolist())]
    return SolveResult(problems=problems, W=W, H=H, b=b, objective=torch.cat([end.f for end in ends]),
                       grad_norm=grad_norm, steps=torch.cat([end.steps for end in ends]), converged=converged,
                       status=status, method=method,
                       options={**cls.defaults, **options, "tol": tol, "max_steps": max_steps, "patience": patience,
                                "init_scale": init_scale,
                                "dtype": str(dtype).replace("torch.", ""), "device": str(obj.device)},
                       seeds=seeds, trajectory=_merge_trajectories([t for _, t in parts], record_every))


#: on the CPU the batch is solved in consecutive parts whose solver state (the parameters, the
#: gradients, the L-BFGS history) takes at most this many bytes: it bounds the memory of a large
#: batch, and on the benchmark machine parts of about 130 configurations of K = 10, d = 16,
#: n = 50 ran fastest with L-BFGS (smaller parts pay the per-operation overhead more often,
#: larger ones stream more memory; benchmarks/README.md). The parts' results are the same as
#: one batch's, up to rounding: every configuration is solved independently.
PART_BYTES = 256 * 2 ** 20


def _chunks(obj: UFMObjective, cls, options: dict) -> List[tuple]:
    """(start, stop) of the consecutive parts the batch is solved in: one on a GPU."""
    if obj.device.type != "cpu":
        return [(0, obj.B)]
    itemsize = torch.finfo(obj.dtype).bits // 8
    per_config = (cls.state_vectors({**cls.defaults, **options}) * obj.num_params + 4 * obj.K * obj.N) * itemsize
    size = max(1, PART_BYTES // per_config)
    return [(start, min(start + size, obj.B)) for start in range(0, obj.B, size)]


def _solve_part(problems, start, stop, x, cls, options, device, loop: dict, recorder):
    """Solve ``problems[start:stop]`` from ``x``: the loop's end state and what it recorded."""
    obj = UFMObjective(problems[start:stop], dtype=x.dtype, device=device)
    traj: Optional[Dict[str, list]] = {"step": []} if loop["record_every"] else None

    def record(step, x, f, gnorm, diverged):
        W, H, b = obj.unpack(x)
        for key, value in {"objective": f.clone(), "grad_norm": gnorm.clone(),
                           **(recorder(W, H, b) if recorder is not None else {})}.items():
            traj.setdefault(key, []).append(value)
        traj["step"].append(step)
        return False

    end = iterate(obj, cls(obj, **options), x, **loop, on_record=record if traj is not None else None,
                  describe=lambda i: _describe(problems[start + i]), first=start)
    return end, traj


def _merge_trajectories(parts: List[Optional[dict]], record_every: int) -> Optional[Dict[str, torch.Tensor]]:
    """One trajectory from the parts': recorded at step 0, every ``record_every`` steps and at the
    last step of the longest part, as one batch would be; a part that stopped earlier keeps its
    final (frozen) values from there on."""
    if parts[0] is None:
        return None
    last = max(t["step"][-1] for t in parts)
    steps = sorted({s for s in range(0, last + 1, record_every)} | {last})
    # per part, the index of its record at each step: the record of that step, else its last (frozen)
    index = [{s: i for i, s in enumerate(t["step"])} for t in parts]
    rows = [[where.get(s, len(t["step"]) - 1) for s in steps] for t, where in zip(parts, index)]
    out = {"step": torch.tensor(steps)}
    for key in parts[0]:
        if key != "step":
            out[key] = torch.cat([torch.stack([t[key][i] for i in r]) for t, r in zip(parts, rows)], dim=1)
    return out
