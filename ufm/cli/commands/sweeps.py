"""Commands on sweeps: ``sweep`` (run a grid of problems, or show its progress) and ``plot``
(redraw a sweep's or an experiment's figures from its records).

The value lists of ``sweep`` are lists of UFMProblem values (``ufm.problem.CONSTRAINTS``),
checked item by item; ``--dims`` holds ints or expressions in K, which ``SweepSpec`` checks.
"""
from __future__ import annotations


from ufm._core.validation import ListOf, Options
from ufm.cli.grid import GRID_KEYS, grid_flags, grid_spec
from ufm.cli.parser import CLUSTER, WORKERS, Commands, Interrupted, Parser, UsageError, add_flag, out_folder

__all__ = ["add_parser"]


_DEFAULTS = {"alphas": "0,0.05,0.1", "classes": "10", "dims": "K", "per_class": "10", "lambda_w": "5e-3",
             "lambda_h": "5e-3", "lambda_b": "0", "seeds": "1"}


def _sweep_flags(p: Parser) -> None:
    from ufm.sweep import WHAT

    p.add_argument("--out", type=out_folder, default=None, help="output folder (sweep.sqlite, results.csv, spec.json); required to run")
    grid_flags(p, _DEFAULTS, "a TOML file with the keys below; flags written beside it override its keys")
    add_flag(p, "--what", param="what", constraint=ListOf(Options(WHAT)), default="closed-form",
             help=f"comma-separated: {', '.join(WHAT)} (default closed-form)")
    add_flag(p, "--workers", param="workers", constraint=WORKERS, default=None,
             help="worker processes (default: one per CPU; 0 runs in this process)")
    add_flag(p, "--cluster", param="cluster", constraint=CLUSTER, default=None,
             help="local-dask (a LocalCluster) or dask://HOST:PORT (an existing scheduler); default: local processes")
    add_flag(p, "--device", param="device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--extend", action="store_true",
                   help="add this grid to a folder holding another one (else such a folder is refused)")
    p.add_argument("--status", metavar="DIR", default=None, help="print the progress of the sweep in DIR and exit")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (points done, rate, ETA)")


def sweep_command(args) -> int:
    from ufm._core.executors import ClusterError
    from ufm.report.progress import Progress
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
    spec = grid_spec(args, GRID_KEYS + ("what",))
    try:
        with Progress(quiet=args.quiet) as progress:
            summary = run_sweep(spec, args.out, workers=args.workers, cluster=args.cluster, device=args.device,
                                log=progress.line, extend=args.extend, on_points=progress.counter("sweep", "points"))
    except KeyboardInterrupt:
        try:
            status = sweep_status(args.out)
        except (FileNotFoundError, ValueError):  # before the store was made: nothing to keep
            raise Interrupted(f"before any point was stored in {args.out}") from None
        raise Interrupted(f"{status['done']} of {status['total']} points are kept in {args.out} (results.csv lists "
                          "them); rerun the same command to resume") from None
    except ClusterError as e:
        raise UsageError(str(e)) from None
    print(sweep_done_line(summary, args.out))
    return 0


def _plot_flags(p: Parser) -> None:
    from ufm.report.folders import FORMATS, LOGY
    from ufm.report.sweep_figures import FACETS, Selection

    p.add_argument("out", help="a folder written by `ufm sweep`, `ufm experiment`, `ufm train` or `ufm.Tracker`")
    p.add_argument("--out", dest="to", type=out_folder, default=None,
                   help="write the figures here (default: into DIR, which is only read otherwise)")
    add_flag(p, "--select", param="select", constraint=Selection(), default=None,
             help="draw only these points: KEY=VALUE[,VALUE...], keys d (an int or K, K-1, 2K ...), K, n, lambda_w, "
                  "lambda_h, lambda_b, alpha (e.g. d=K-1,n=10); a sweep only")
    add_flag(p, "--facet", param="facet", constraint=Options(FACETS), default=None,
             help="one row of panels per value of this parameter (default: d, when the sweep holds several); "
                  "a sweep only")
    add_flag(p, "--logy", param="logy", constraint=Options(LOGY), default=None,
             help="log y-axis: auto (when a panel's values are positive and span more than a decade; the default), "
                  "on, off; a sweep only")
    add_flag(p, "--format", param="formats", constraint=ListOf(Options(FORMATS)), default="png",
             help=f"comma-separated file formats among {', '.join(FORMATS)} (default png)")


def plot_command(args) -> int:
    from ufm._core.validation import InvalidParameterError
    from ufm.report.folders import plot_folder

    try:
        paths = plot_folder(args.out, select=args.select, facet=args.facet, logy=args.logy, formats=args.formats,
                            to=args.to)
    except InvalidParameterError:
        raise  # phrased with the flag that feeds the parameter (ufm.cli.main)
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
