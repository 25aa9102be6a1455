"""The verdicts of the claims registry (``ufm.analysis.claims``) as a text table (``ufm claims``)
and as Markdown (reports).

Both render the results of ``evaluate_claims`` as they are: one row per claim (id, statement,
verdict, the measured effect with its two-sided 90% interval, where the evidence is), one
indented row per part of a claim judged in several parts, then each reason. Nothing here
decides: verdicts, effects and reasons come from the analysis.
"""
from __future__ import annotations

from typing import List, Mapping, Sequence

__all__ = ["effect_text", "claims_lines", "claims_markdown"]

_HEADER = ("id", "statement", "verdict", "effect [90% interval]", "evidence")


def _g(v, unbounded: str = "nan") -> str:
    """A number with its sign; a missing one (JSON writes an infinite bound as null) as ``unbounded``."""
    if v is None or v != v or v in (float("inf"), float("-inf")):
        return unbounded
    return f"{v:+.3g}"


def _interval(interval) -> str:
    return f"[{_g(interval[0], '-inf')}, {_g(interval[1], '+inf')}]"


def effect_text(r: Mapping) -> str:
    """The effect of a result or a part: ``+1.2 [+0.3, +2] (n = 5)``, else its ``measured`` words,
    else ``-``. An interval without a finite bound (too few seeds) reads ``[-inf, +inf]``."""
    effect = r.get("mean", r.get("effect"))
    interval = r.get("interval")
    if effect is not None and interval:
        text = f"{_g(effect)} {_interval(interval)}" + (f" (n = {r['n']})" if r.get("n") is not None else "")
    else:
        text = r.get("measured") or (f"{effect:.3g}" if effect is not None else "-")
    scaled = r.get("after_scaling")
    if scaled:
        text += f"; after scaling {_g(scaled['mean'])} {_interval(scaled['interval'])}"
    return text


def _rows(results: Sequence[Mapping]) -> List[tuple]:
    rows = []
    for r in results:
        rows.append((r["id"], r["statement"], r["verdict"], effect_text(r), r["evidence"]))
        if len(r["parts"]) > 1:
            rows += [("", f"  {p['label']}", p["verdict"], effect_text(p), "") for p in r["parts"]]
    return rows


def _reasons(results: Sequence[Mapping]) -> List[tuple]:
    """(id or part label, reason) in table order; a claim in several parts gives its parts' reasons."""
    out = []
    for r in results:
        if len(r["parts"]) > 1:
            out.append((r["id"], f"{r['verdict']}: see its parts"))
            out += [(f"  {p['label']}", p["reason"]) for p in r["parts"]]
        else:
            out.append((r["id"], r["reason"]))
    return out


def claims_lines(results: Sequence[Mapping]) -> List[str]:
    """The text table of ``ufm claims``, then the reasons."""
    rows = [_HEADER] + _rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(_HEADER[-1]))
    lines += ["", "Reasons (interval: two one-sided 95% bounds, i.e. a two-sided 90% interval):"]
    lines += [f"{name}: {reason}" for name, reason in _reasons(results)]
    return [line.rstrip() for line in lines]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def claims_markdown(results: Sequence[Mapping]) -> str:
    """The claims as a Markdown table (parts as indented rows), then the reasons as a list."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for row in _rows(results):
        cells = [f"`{row[0]}`" if row[0] else "", row[1].strip() if row[0] else f"&nbsp;&nbsp;{row[1].strip()}",
                 f"**{row[2]}**" if row[0] else row[2], row[3], row[4]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "Intervals: two one-sided 95% bounds (a two-sided 90% interval).", ""]
    lines += [f"- {'  ' if name.startswith('  ') else ''}`{name.strip()}`: {reason}"
              for name, reason in _reasons(results)]
    return "\n".join(lines) + "\n"
