"""Commands on sweeps: ``sweep`` (run a grid of problems, or show its progress) and ``plot``
(redraw a sweep's or an experiment's figures from its records).

The value lists of ``sweep`` are lists of UFMProblem values (``ufm.problem.CONSTRAINTS``),
checked item by item; ``--dims`` holds ints or expressions in K, which ``SweepSpec`` checks.
"""
from __future__ import annotations

import sys

from ufm._core.validation import ListOf, Options
from ufm.cli.parser import CLUSTER, COUNT, WORKERS, Commands, Parser, UsageError, add_flag, out_folder

__all__ = ["add_parser"]


class _DimWord:
    """A ``--dims`` item: an int, or an expression in K (``K``, ``K-1``, ``2K``) that
    ``SweepSpec`` evaluates and checks."""

    def describe(self) -> str:
        return "an int or an expression like K, K-1, 2K"

    def contains(self, value) -> bool:
        return isinstance(value, (int, str))

    def parse(self, text: str):
        return int(text) if text.lstrip("-").isdigit() else text


_LISTS = (  # (flag, UFMProblem parameter, SweepSpec key, default, help)
    ("--alphas", "alpha", "alphas", "0,0.05,0.1", "comma-separated smoothing factors (default 0,0.05,0.1)"),
    ("--classes", "num_classes", "classes", "10", "comma-separated K values (default 10)"),
    ("--dims", None, "dims", "K", "comma-separated d values: ints or K, K-1, 2K, K+3 (default K)"),
    ("--per-class", "per_class", "per_class", "10", "comma-separated n values (default 10)"),
    ("--lambda-w", "lambda_w", "lambda_w", "5e-3", "comma-separated values (default 5e-3)"),
    ("--lambda-h", "lambda_h", "lambda_h", "5e-3", "comma-separated values (default 5e-3)"),
    ("--lambda-b", "lambda_b", "lambda_b", "0", "comma-separated values (default 0)"),
)


def _sweep_flags(p: Parser) -> None:
    from ufm.problem import CONSTRAINTS
    from ufm.sweep import WHAT

    p.add_argument("--out", type=out_folder, default=None, help="output folder (sweep.sqlite, results.csv, spec.json); required to run")
    p.add_argument("--config", default=None, help="a TOML file with the keys below (instead of the flags)")
    for flag, param, key, default, help_ in _LISTS:
        item = _DimWord() if param is None else CONSTRAINTS[param]
        add_flag(p, flag, param=key, constraint=ListOf(item), default=default, help=help_)
    add_flag(p, "--seeds", param="seeds", constraint=COUNT, default=1, help="seeds per configuration (default 1)")
    add_flag(p, "--what", param="what", constraint=ListOf(Options(WHAT)), default="closed-form",
             help=f"comma-separated: {', '.join(WHAT)} (default closed-form)")
    add_flag(p, "--workers", param="workers", constraint=WORKERS, default=None,
             help="worker processes (default: one per CPU; 0 runs in this process)")
    add_flag(p, "--cluster", param="cluster", constraint=CLUSTER, default=None,
             help="local-dask (a LocalCluster) or dask://HOST:PORT (an existing scheduler); default: local processes")
    add_flag(p, "--device", param="device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--status", metavar="DIR", default=None, help="print the progress of the sweep in DIR and exit")


def _spec(args):
    """The SweepSpec of ``--config`` (whose errors are the file's, not a flag's) or of the flags."""
    from ufm._core.validation import InvalidParameterError
    from ufm.sweep import SweepSpec

    if args.config:
        try:
            return SweepSpec.from_toml(args.config)
        except InvalidParameterError as e:
            raise UsageError(str(e)) from None
    return SweepSpec(**{key: getattr(args, key) for _, _, key, _, _ in _LISTS}, seeds=args.seeds, what=args.what)


def sweep_command(args) -> int:
    from ufm._core.executors import ClusterError
    from ufm.report.text import sweep_done_line, sweep_status_line
    from ufm.sweep import run_sweep, sweep_status

    if args.status:
        try:
            print(sweep_status_line(sweep_status(args.status)))
        except FileNotFoundError as e:
            raise UsageError(str(e)) from None
        return 0
    if not args.out:
        raise UsageError("--out DIR is required to run a sweep (or --status DIR to see one).")
    spec = _spec(args)
    try:
        summary = run_sweep(spec, args.out, workers=args.workers, cluster=args.cluster, device=args.device,
                            progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
    except ClusterError as e:
        raise UsageError(str(e)) from None
    print(sweep_done_line(summary, args.out))
    return 0


def _plot_flags(p: Parser) -> None:
    p.add_argument("out", help="a folder written by `ufm sweep`")


def plot_command(args) -> int:
    from ufm.report.folders import plot_folder

    try:
        paths = plot_folder(args.out)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    for path in paths:
        print(path)
    return 0


def add_parser(commands: Commands) -> None:
    commands.add("sweep", "a grid of problems: closed form, solve, conditioning, convergence per point; resumable",
                 _sweep_flags, sweep_command)
    commands.add("plot", "draw a sweep's (or an experiment's) standard figures from its records", _plot_flags,
                 plot_command)
