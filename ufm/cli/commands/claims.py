"""``ufm claims [DIR ...] [--json] [--strict]``: every claim of the paper as a verdict, on the evidence in
the given folders (experiments, runs, sweeps, demos), or, with no folder, the UFM claims on a
small grid computed now and the network claims not-evaluated (``ufm.analysis.claims``).

Exit 0 whatever the verdicts (a failing claim is a finding), unless ``--strict``: then 1 when a
claim fails (names them on stderr; inconclusive, not-applicable and not-evaluated are not failures);
2 when a folder holds none of the records the claims read.
"""
from __future__ import annotations

import sys

from ufm.cli.parser import Commands, Parser, UsageError

__all__ = ["add_parser"]


def _claims_flags(p: Parser) -> None:
    p.add_argument("folders", nargs="*", metavar="DIR",
                   help="experiment, run, sweep or demo folders (none: the UFM claims on a small grid computed now)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (every part and effect)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a claim fails on the evidence (inconclusive and not applicable do not count)")


def claims_command(args) -> int:
    from ufm.analysis.claims import evaluate_claims
    from ufm.report.claims import claims_lines
    from ufm.report.text import json_text

    try:
        results = evaluate_claims(args.folders)
    except ValueError as e:  # NoEvidenceError, or a config.json that is not a run's
        raise UsageError(str(e)) from None
    print(json_text(results) if args.json else "\n".join(claims_lines(results)))
    failed = [r["id"] for r in results if r["verdict"] == "fails"]
    if args.strict and failed:  # a finding: exit code 1
        print(f"ufm claims: {len(failed)} claim(s) fail on this evidence: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def add_parser(commands: Commands) -> None:
    commands.add("claims", "every claim of the paper as a verdict, on the evidence in the given folders",
                 _claims_flags, claims_command)
