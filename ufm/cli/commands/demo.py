"""``ufm demo`` (a short version of everything, with a report) and ``ufm report`` (the demo's
figures and report rebuilt from its records alone), through ``ufm.pipelines.demo`` and
``ufm.report.markdown``."""
from __future__ import annotations

from pathlib import Path

from ufm.cli.parser import Commands, Interrupted, Parser, UsageError, out_folder

__all__ = ["add_parser"]


def _demo_flags(p: Parser) -> None:
    p.add_argument("--out", type=out_folder, default="ufm-demo", help="output folder (default ufm-demo)")
    p.add_argument("--quick", action="store_true", help="a reduced version (seconds)")
    p.add_argument("--force", action="store_true", help="recompute stages whose records exist")
    p.add_argument("--quiet", action="store_true", help="no stage lines on stderr (the report's path is printed all "
                                                        "the same)")


def demo_command(args) -> int:
    """Each stage's start and end on stderr (the progress), the report's path on stdout."""
    from ufm.pipelines.demo import run_demo
    from ufm.report.progress import Progress

    try:
        report = run_demo(args.out, quick=args.quick, force=args.force, log=Progress(quiet=args.quiet).line)
    except KeyboardInterrupt:
        raise Interrupted(f"the finished stages are kept in {args.out}/records; rerun the same command to resume "
                          "(it reuses them)") from None
    print(f"report: {report}")
    return 0


def _report_flags(p: Parser) -> None:
    p.add_argument("out", help="a folder written by `ufm demo`")
    p.add_argument("--out", dest="to", type=out_folder, default=None,
                   help="write the figures and report.md here (default: into DIR, which is only read otherwise)")


def report_command(args) -> int:
    from ufm.report.markdown import RECORDS, build_report

    records = Path(args.out) / "records"
    missing = [str(records / f"{n}.json") for n in RECORDS if not (records / f"{n}.json").is_file()]
    if missing:
        raise UsageError(f"{', '.join(missing)} not found; run `ufm demo --out {args.out}` first.")
    try:
        print(build_report(args.out, to=args.to))
    except (ValueError, KeyError) as e:  # a record that is not what ufm demo wrote
        raise UsageError(f"unreadable record in {records}: {e}") from None
    return 0


def add_parser(commands: Commands) -> None:
    commands.add("demo", "run a short version of everything and write a report", _demo_flags, demo_command)
    commands.add("report", "rebuild the demo figures and report from its records", _report_flags, report_command)
