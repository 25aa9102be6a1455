"""Commands on one UFM problem or a grid of them: ``closed-form``, ``solve``, ``verify``,
``conditioning`` and ``convergence``.

Their flags come from ``ufm.problem.CONSTRAINTS`` (the problem), ``solve.constraints`` (the
solver) and the constraints of ``verify``, ``conditioning`` and ``convergence``.
"""
from __future__ import annotations

import time

from ufm._core.validation import ALPHA, Interval, ListOf, Options
from ufm.cli.grid import grid_flags
from ufm.cli.parser import COUNT, SEED, Commands, Parser, UsageError, add_flag, allow_list, device_of, dtype_of

__all__ = ["add_parser", "problem_flags", "problem_of"]

_PROBLEM_FLAGS = (  # (names, UFMProblem parameter, default, help)
    (("-K", "--num-classes"), "num_classes", 10, "number of classes K >= 2 (default 10)"),
    (("-n", "--per-class"), "per_class", 10, "samples per class n >= 1 (default 10)"),
    (("-d", "--dim"), "dim", None, "feature dimension d >= 1 (default K)"),
    (("--lambda-w",), "lambda_w", 5e-3, "weight decay on W, > 0 (default 5e-3)"),
    (("--lambda-h",), "lambda_h", 5e-3, "weight decay on H, > 0 (default 5e-3)"),
    (("--lambda-b",), "lambda_b", 0.0, "weight decay on b, >= 0 (default 0)"),
    (("--alpha",), "alpha", 0.0, "label smoothing in [0, 1); 0 is CE (default 0)"),
)
_ALPHAS = ListOf(ALPHA)  # what ufm._core.validation.check_alphas enforces
_DEVICE_HELP = "cpu, cuda, ... (default: cuda if available)"


def problem_flags(p: Parser, lists: bool = False) -> None:
    """The flags of a UFMProblem (README, Conventions). ``lists``: each also takes a comma-separated
    list, and ``--alphas`` is another name of ``--alpha``."""
    from ufm.problem import CONSTRAINTS

    g = p.add_argument_group("problem (README, Conventions)" + ("; each flag takes one value or a list" if lists else ""))
    for names, param, default, help_ in _PROBLEM_FLAGS:
        if lists and param == "alpha":
            names = names + ("--alphas",)
        add_flag(p, *names, param=param, constraint=CONSTRAINTS[param], group=g, default=default, help=help_)
        if lists:
            allow_list(p, param)


def problem_of(args):
    """The UFMProblem of the problem flags (d defaults to K)."""
    from ufm.problem import UFMProblem

    return UFMProblem.from_config(vars(args), dim=args.num_classes if args.dim is None else args.dim)


def _solver_flags(p: Parser, tol: float) -> None:
    from ufm.numerics.solve import solve

    c = solve.constraints
    g = p.add_argument_group("solver")
    add_flag(p, "--method", param="method", constraint=c["method"], group=g, default="lbfgs", help="default lbfgs")
    for flag, param, default, help_ in (
            ("--tol", "tol", tol, f"gradient-norm tolerance (default {tol:g})"),
            ("--max-steps", "max_steps", None, "step cap (default 5000 lbfgs, 100000 gd/momentum)"),
            ("--lr", "lr", None, "step size of gd/momentum (default 0.5)"),
            ("--momentum", "momentum", None, "heavy-ball coefficient (default 0.9)"),
            ("--history", "history", None, "L-BFGS memory (default 10)"),
            ("--patience", "patience", None, "stop as stalled after this many steps without a new best gradient "
                                             "norm (default 100 lbfgs, 5000 gd/momentum)"),
            ("--init-scale", "init_scale", 1.0, "initial entries ~ N(0, s^2/d) (default 1)")):
        add_flag(p, flag, param=param, constraint=c[param], group=g, default=default, help=help_)
    add_flag(p, "--device", param="device", group=g, default=None,
             help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")


# -- closed-form ------------------------------------------------------------------------------

def _closed_form_flags(p: Parser) -> None:
    problem_flags(p, lists=True)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (a list when a flag holds a list)")
    out.add_argument("--csv", action="store_true", help="print CSV, one problem a row")
    p.add_argument("--latex", action="store_true", help="also print the LaTeX of each closed form")


def closed_form_command(args) -> int:
    """One problem: its values, one a line; lists: a table (or CSV, or a JSON list), one problem a row,
    over the Cartesian product of the lists."""
    from ufm.report.text import closed_form_csv, closed_form_lines, closed_form_table, json_text
    from ufm.theory._generated import minimizer as generated
    from ufm.theory.closed_form import closed_forms

    values = [getattr(args, k) for k in ("num_classes", "per_class", "dim", "lambda_w", "lambda_h", "lambda_b",
                                         "alpha")]
    cfs = closed_forms(*values)
    many = any(isinstance(v, list) for v in values)
    latex = generated.LATEX if args.latex else None
    if args.csv:
        print(closed_form_csv(cfs), end="")
    elif args.json:
        d = [cf.to_dict() for cf in cfs] if many else cfs[0].to_dict()
        print(json_text({"closed_forms": d, "latex": latex} if latex and many else
                        {**d, "latex": latex} if latex else d))
    elif many:
        print("\n".join(closed_form_table(cfs) + ([f"  {k} = {tex}" for k, tex in latex.items()] if latex else [])))
    else:
        print("\n".join(closed_form_lines(cfs[0], latex)))
    return 0


# -- solve -------------------------------------------------------------------------------------

def _solve_flags(p: Parser) -> None:
    from ufm.metrics.conventions import CONVENTION_NAMES

    problem_flags(p)
    _solver_flags(p, tol=1e-10)
    add_flag(p, "--seed", param="seed", constraint=SEED, default=0, help="seed of the random initial point (default 0)")
    add_flag(p, "--seeds", param="seeds", constraint=COUNT, default=1,
             help="solve from N seeds, --seed .. --seed+N-1, in one batch, and print the spread (default 1)")
    p.add_argument("--nc1-variant", choices=["normalized", "unnormalized"], default="normalized",
                   help="NC1 with 1/K (normalized, default) or without")
    add_flag(p, "--nc-convention", param="convention", constraint=Options(CONVENTION_NAMES), default="ufm",
             help=f"the NC metrics' convention: {', '.join(CONVENTION_NAMES)} (default ufm; README, NC metrics)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the results are printed all the same)")


def solve_command(args) -> int:
    from ufm.analysis.verify import solve_and_compare, solve_seeds
    from ufm.report.progress import Progress
    from ufm.report.text import json_text, solve_lines, solve_seeds_lines

    options = dict(nc1_variant=args.nc1_variant, convention=args.convention, method=args.method, tol=args.tol,
                   max_steps=args.max_steps, lr=args.lr, momentum=args.momentum, history=args.history,
                   init_scale=args.init_scale, patience=args.patience, dtype=dtype_of(args.dtype),
                   device=device_of(args.device))
    if args.seed + args.seeds - 1 > SEED.right:
        raise UsageError(f"--seed {args.seed} with --seeds {args.seeds} reaches seed {args.seed + args.seeds - 1}; "
                         f"seeds must be at most {SEED.right}.")
    with Progress(quiet=args.quiet) as progress:
        if args.seeds > 1:
            out = solve_seeds(problem_of(args), range(args.seed, args.seed + args.seeds), **options,
                              on_step=progress.solver("solve"))
        else:
            out = solve_and_compare(problem_of(args), seed=args.seed, **options, on_step=progress.solver("solve"))
    if args.json:
        print(json_text(out))
    else:
        print("\n".join(solve_seeds_lines(out) if args.seeds > 1 else solve_lines(out, args.nc1_variant, args.convention)))
    return 0


# -- verify ------------------------------------------------------------------------------------

def _verify_flags(p: Parser) -> None:
    from ufm.analysis.verify import verify
    from ufm.numerics.solve import solve

    c = verify.constraints
    add_flag(p, "--tol", param="tol", constraint=c["tol"], default=1e-6, help="maximum relative error (default 1e-6)")
    grid_flags(p, {"classes": "3,5,10", "per_class": "10", "seeds": "2"},
               "a TOML file of grid keys, as for ufm sweep; flags written beside it override its keys")
    add_flag(p, "--method", param="method", constraint=solve.constraints["method"], default="lbfgs",
             help="default lbfgs")
    add_flag(p, "--solver-tol", param="solver_tol", constraint=c["solver_tol"], default=1e-11,
             help="gradient-norm tolerance (default 1e-11)")
    add_flag(p, "--max-steps", param="max_steps", constraint=solve.constraints["max_steps"], default=None,
             help="step cap")
    add_flag(p, "--device", param="device", default=None, help=_DEVICE_HELP)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the results are printed all the same)")



def _verify_grid(args) -> list:
    """(problem, seed) pairs: the default grid (``default_grid``, its three lambda settings) unless a
    grid flag other than --classes, --per-class, --seeds or a --config is given; then the Cartesian
    product of the lists, as ``ufm sweep`` expands it."""
    from ufm.analysis.verify import DEFAULT_ALPHAS, default_grid
    from ufm.cli.grid import GRID_KEYS, grid_spec
    from ufm.problem import UFMProblem

    # the rest of a grid given by flags or a file: d in {K-1, K, 2K} and the default grid's alphas
    rest = {"dims": ["K-1", "K", "2K"], "alphas": list(DEFAULT_ALPHAS), "lambda_w": [5e-3], "lambda_h": [5e-3],
            "lambda_b": [0.0]}
    if args.config is None and all(getattr(args, k) is None for k in rest):
        return [pt for n in args.per_class for pt in default_grid(n, range(args.seeds), args.classes)]
    for key, value in rest.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    spec = grid_spec(args, GRID_KEYS)
    return [(UFMProblem.from_config(p), p["seed"]) for p in spec.points()]


def verify_command(args) -> int:
    """Exit code 1 when a point disagrees with the closed form."""
    from ufm.analysis.verify import summarize_rows, verify
    from ufm.report.progress import Progress
    from ufm.report.text import json_text, verify_lines

    grid = _verify_grid(args)
    t0 = time.perf_counter()
    with Progress(quiet=args.quiet) as progress:
        rows = verify(grid, tol=args.tol, method=args.method, solver_tol=args.solver_tol, max_steps=args.max_steps,
                      dtype=dtype_of(args.dtype), device=device_of(args.device),
                      on_step=progress.solver("verify: solve"))
    seconds = time.perf_counter() - t0
    summary = summarize_rows(rows)
    if args.json:
        print(json_text({"tol": args.tol, "passed": summary["passed"], "total": summary["total"],
                         "seconds": seconds, "rows": rows}))
    else:
        print("\n".join(verify_lines(rows, summary, args.tol, seconds)))
    return 0 if summary["passed"] == summary["total"] else 1


# -- conditioning ------------------------------------------------------------------------------

def _conditioning_flags(p: Parser) -> None:
    from ufm.analysis.conditioning import conditioning
    from ufm.analysis.regimes import regime_map

    c = conditioning.constraints
    names = c["definitions"].item.names
    problem_flags(p)
    allow_list(p, "num_classes")  # -K 3,5,10 with --map
    p.set_defaults(num_classes=None)  # not given: 10 for one point, 3,5,10,100 for --map
    g = p.add_argument_group("regime map (derivations/conditioning.md)")
    g.add_argument("--map", action="store_true",
                   help="print the regime map instead: over s K in (0, 1), per definition, K (-K takes a list, "
                        "default 3,5,10,100), d-regime and lambda_W/lambda_H, whether LS lowers kappa at every "
                        "alpha in (0, --alpha-max] below the threshold; -n enters 'full, b included' only")
    rc = regime_map.constraints
    add_flag(p, "--alpha-max", param="alpha_max", constraint=rc["alpha_max"], group=g, default=None,
             help="with --map: the largest alpha compared with CE, in (0, 1) (default 0.3)")
    add_flag(p, "--lambda-ratio", param="lambda_ratios", constraint=rc["lambda_ratios"], group=g, default=None,
             help="with --map: comma-separated values of lambda_W/lambda_H, > 0 (default 1,10,100)")
    add_flag(p, "--alphas", param="alphas", constraint=_ALPHAS, default=None,
             help="comma-separated smoothing factors in [0, 1) (default: --alpha)")
    add_flag(p, "--definitions", param="definitions", constraint=c["definitions"], default=",".join(names),
             help=f"comma-separated operators among {', '.join(names)} (default all)")
    p.add_argument("--numeric", action="store_true",
                   help="also compute the spectra at a numerically found minimizer (L-BFGS, dense eigvalsh)")
    add_flag(p, "--seed", param="seed", constraint=SEED, default=0, help="seed of the numerical solve (default 0)")
    add_flag(p, "--solver-tol", param="solver_tol", constraint=c["solver_tol"], default=1e-12,
             help="gradient-norm tolerance of the numerical solve (default 1e-12)")
    add_flag(p, "--null-rtol", param="null_rtol", constraint=c["null_rtol"], default=1e-7,
             help="numeric null space: |eigenvalue| <= null-rtol * max|eigenvalue| (default 1e-7)")
    # in GiB, the API's max_bytes in bytes: the same range, 1 KiB .. 1 EiB
    lo, hi = c["max_bytes"].left / 2**30, c["max_bytes"].right / 2**30
    add_flag(p, "--max-gib", param="max_gib", constraint=Interval("float", lo, hi, "both"), default=4.0,
             help="memory for a dense Hessian in GiB, estimated peak (3 times the matrix); larger ones fall "
                  "back to Lanczos (default 4)")
    add_flag(p, "--device", param="device", default=None, help=_DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per (alpha, definition, source)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the results are printed all the same)")


#: the flags a single-point ``ufm conditioning`` does not take, and those ``--map`` does not
_MAP_ONLY = (("alpha_max", "--alpha-max"), ("lambda_ratios", "--lambda-ratio"))
_POINT_ONLY = (("alphas", "--alphas"), ("dim", "-d/--dim"), ("numeric", "--numeric"))


def conditioning_command(args) -> int:
    from ufm.analysis.conditioning import conditioning, summarize
    from ufm.analysis.regimes import regime_of
    from ufm.report.progress import Progress
    from ufm.report.text import conditioning_lines, json_text

    if args.map:
        return _regime_map_command(args)
    for dest, flag in _MAP_ONLY:
        if getattr(args, dest) is not None:
            raise UsageError(f"{flag} applies only with --map")
    if isinstance(args.num_classes, list):
        raise UsageError(f"-K/--num-classes takes one value without --map. Got {args.num_classes!r} instead.")
    args.num_classes = 10 if args.num_classes is None else args.num_classes
    problem = problem_of(args)
    with Progress(quiet=args.quiet) as progress:
        spectra = conditioning(problem, alphas=args.alphas, definitions=args.definitions, numeric=args.numeric,
                               seed=args.seed, solver_tol=args.solver_tol, null_rtol=args.null_rtol,
                               max_bytes=int(args.max_gib * 2**30), device=device_of(args.device),
                               on_step=progress.solver("conditioning: solve"),
                               on_spectrum=progress.counter("conditioning", "numeric spectra"))
    if args.json:
        print(json_text([s.to_dict() for s in spectra]))
        return 0
    summary = summarize(spectra)
    compared = [d for d in summary if max(summary[d]["alphas"]) > 0]  # the definitions with an alpha > 0
    where = regime_of(problem, alphas=args.alphas, definitions=compared) if compared else None
    print("\n".join(conditioning_lines(problem.to_dict(), spectra, summary, where)))
    return 0


def _regime_map_command(args) -> int:
    """``ufm conditioning --map``: the regimes of :func:`ufm.analysis.regimes.regime_map`."""
    from ufm.analysis.regimes import regime_map
    from ufm.report.text import json_text, regime_map_lines
    from ufm.theory.keys import WITH_BIAS

    for dest, flag in _POINT_ONLY:
        if getattr(args, dest):
            raise UsageError(f"{flag} does not apply with --map (the map covers every s K and alpha)")
    for names, param, default, _ in _PROBLEM_FLAGS:
        if param in ("alpha", "lambda_w", "lambda_h", "lambda_b") and getattr(args, param) != default:
            raise UsageError(f"{names[0]} does not apply with --map (its axes are s K = K sqrt(n lambda_W lambda_H) "
                             "and lambda_W/lambda_H; see --lambda-ratio, --alpha-max)")
    classes = args.num_classes if isinstance(args.num_classes, list) else [args.num_classes]
    classes = [3, 5, 10, 100] if args.num_classes is None else classes
    definitions = list(args.definitions) + ([WITH_BIAS] if "full" in args.definitions else [])
    regimes = regime_map(classes=classes, alpha_max=0.3 if args.alpha_max is None else args.alpha_max,
                         lambda_ratios=[1, 10, 100] if args.lambda_ratios is None else args.lambda_ratios,
                         definitions=definitions, per_class=args.per_class)
    print(json_text(regimes) if args.json else "\n".join(regime_map_lines(regimes)))
    return 0


# -- convergence -------------------------------------------------------------------------------

def _convergence_flags(p: Parser) -> None:
    from ufm.analysis.convergence import convergence

    c = convergence.constraints
    problem_flags(p)
    add_flag(p, "--alphas", param="alphas", constraint=_ALPHAS, default="0,0.1",
             help="comma-separated smoothing factors in [0, 1) (default 0,0.1)")
    add_flag(p, "--seeds", param="seeds", constraint=COUNT, default=3,
             help="number of random starts per alpha (default 3)")
    add_flag(p, "--eps", param="eps", constraint=c["eps"], default="1e-3,1e-6,1e-9",
             help="comma-separated tolerances (default 1e-3,1e-6,1e-9)")
    add_flag(p, "--rules", param="rules", constraint=c["rules"], default="local,common",
             help="step-size rules: local, common (default both)")
    for flag, param, default, help_ in (
            ("--max-steps", "max_steps", 50_000, "step cap (default 50000)"),
            ("--record-every", "record_every", 10, "record every so many steps (default 10)"),
            ("--init-scale", "init_scale", 1.0, "initial entries ~ N(0, s^2/d) (default 1)")):
        add_flag(p, flag, param=param, constraint=c[param], default=default, help=help_)
    add_flag(p, "--device", param="device", default=None, help=_DEVICE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON (rows, predictions, trajectories)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the results are printed all the same)")


def convergence_command(args) -> int:
    from ufm.analysis.convergence import convergence
    from ufm.report.progress import Progress
    from ufm.report.text import convergence_lines, json_text

    with Progress(quiet=args.quiet) as progress:
        out = convergence(problem_of(args), alphas=args.alphas, seeds=range(args.seeds), eps=args.eps,
                          rules=args.rules, max_steps=args.max_steps, record_every=args.record_every,
                          init_scale=args.init_scale, device=device_of(args.device),
                          on_step=progress.solver("convergence: gradient descent"))
    print(json_text(out) if args.json else "\n".join(convergence_lines(out)))
    return 0


def add_parser(commands: Commands) -> None:
    for name, help_, flags, command in (
            ("closed-form", "print the closed-form global minimizer", _closed_form_flags, closed_form_command),
            ("solve", "solve the UFM numerically and compare with the closed form", _solve_flags, solve_command),
            ("verify", "solve a grid of problems and check them against the closed form", _verify_flags,
             verify_command),
            ("conditioning", "Hessian spectra and condition numbers at the minimizer, CE vs LS", _conditioning_flags,
             conditioning_command),
            ("convergence", "gradient descent from random starts, CE vs LS: steps and rates", _convergence_flags,
             convergence_command)):
        commands.add(name, help_, flags, command)
